#!/usr/bin/env python3
"""The fleet fault test (protocol/CLUSTER.md §7): three turnstiled daemons sharing a model limit
through a 3-member etcd, fleet.py holders on every host, and faults injected while they run;
the checker judges the holders' records afterwards.

    python3 fleet_faults.py --duration 60            # faults for a minute (at least one of each kind)
    python3 fleet_faults.py --duration 600 --keep    # make cluster-chaos; keep the run directory

What runs, all on loopback in one temporary directory (/tmp/tsff-*):

- etcd: 3 members (etcd-cluster.sh), killed, paused and restarted by the faults;
- daemons h1, h2, h3: turnstiled on a socket and state directory of its own, each with the same
  `[cluster]` (endpoints, a prefix unique to the run, `lease_ttl_ms`, `shared = ["models",
  "projects"]`, `on_loss = "revoke"`), `[[models]] name = "fake/opus" concurrency_limit = 3`
  and `[[projects]] name = "web" max = 2`;
- holders: one fleet.py with 4 short holders per host (hold 5..50 ms, acquire with wait), one
  with a short holder per host in project web (each grant claims the model's unit and the
  project's together), and one with a long holder per host (hold 2.5..4 s, longer than any `valid_until_ms` a 2 s host
  lease gives; idle 2..5 s between), which is there for the daemon freezes: a holder whose
  daemon is frozen must stop by itself at `valid_until_ms`.

The faults, in a shuffled order per round, rounds repeated until --duration has passed (at
least one round): `etcd_leader_kill` and `etcd_follower_kill` (SIGKILL, down a moment, restart
on its data), `etcd_quorum_loss` (SIGSTOP the leader and a follower, so that the daemons' txns
and keepalives time out, then SIGCONT), `daemon_pause` (SIGSTOP a daemon past its lease ttl,
while one of its long holders holds, then SIGCONT) and `daemon_kill` (SIGKILL a daemon and
start it again on its state directory). Before the holders start, each daemon grants and takes
back one unit (a probe). After each fault the harness waits (polling, with a deadline) until
etcd is healthy, every daemon reachable and every daemon granting again; a daemon that grants
nothing for 30 s while the others do is reported as stalled (liveness) and not waited for
until a later `daemon_kill` restarts it.

Then it stops the holders (a stop file; they finish their cycle and release), waits until every
daemon's `status` holds nothing and etcd has no slot left, and runs the checker: `--limit 3
--resource fake/opus --project-limit web=2`, `--open-until *=` the instant the holders were all gone, the final
statuses and etcd's count of slots, `--lost-grace-ms` (see LOST_GRACE_MS) and a bound on waits.
It prints the faults injected by kind, the grants checked and the violations, and a JSON line
of the same. Exit status: 0 clean, 1 violations (or a stall, a fault kind never injected, no
grant), 2 the harness itself failed (something did not start or recover in time).

Everything it starts (etcd members, daemons, holders) is stopped on every way out: normal end,
exception, SIGINT, SIGTERM, SIGHUP. FLEET_LOG_LEVEL sets the daemons' --log-level (default
info; debug shows each claim held back and each unit freed).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from checker import Options, Report, check_files  # noqa: E402
from fleet import Connection, Disconnected  # noqa: E402
from history import now_ns, read_history  # noqa: E402

__all__ = ["MODEL", "LIMIT", "FAULT_KINDS", "Etcd", "Daemon", "Fleet", "Harness", "HarnessError", "Result",
           "daemon_config", "find_turnstiled", "have_etcd", "run", "main"]

MODEL = "fake/opus"
LIMIT = 3
#: A project whose cap is shared too: one holder per host asks in it, so the cap binds and
#: claims of two units (the model's and the project's) go through every fault.
PROJECT = "web"
PROJECT_CAP = 2
HOSTS = ("h1", "h2", "h3")
FAULT_KINDS = ("etcd_leader_kill", "etcd_follower_kill", "etcd_quorum_loss", "daemon_pause", "daemon_kill")
#: How much later than its daemon a holder may learn that its lease was revoked or expired: the
#: daemon frees the unit and writes the event in one loop turn, and a waiter on the same host may
#: be granted in the next one, so holder and waiter read their lines in a race (README.md beside
#: this file, "A lost lease"). A holder's own stop at valid_until is stamped before its deadline,
#: which is at least the daemon's margin (lease ttl / 10) before etcd could give the unit away.
LOST_GRACE_MS = 100


class HarnessError(Exception):
    """Something the harness needs did not happen in time (a start, a recovery): not a verdict
    on the daemons' safety, but the run proves nothing."""


def find_turnstiled() -> str:
    return os.environ.get("TURNSTILED") or str(REPO / ".build/debug/turnstiled")


def have_etcd() -> bool:
    return all(shutil.which(os.environ.get(var, name)) for var, name in (("ETCD", "etcd"), ("ETCDCTL", "etcdctl")))


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Polls ``predicate`` until it returns something true, or raises HarnessError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, Disconnected, HarnessError, subprocess.SubprocessError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def log(message: str) -> None:
    print(f"[fleet_faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- etcd ---------------------------------------------------------------------------------


class Etcd:
    """The 3-member cluster of etcd-cluster.sh in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.endpoints: list[str] = []
        self.started = False

    def _run(self, *args: str, timeout: float = 90) -> str:
        command = ["bash", str(HERE / "etcd-cluster.sh"), args[0], self.dir, *args[1:]]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise HarnessError(f"{' '.join(command)}: no end within {timeout} s") from error
        if done.returncode != 0:
            raise HarnessError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def start(self) -> None:
        self.started = True
        self.endpoints = self._run("start").splitlines()[-1].split(",")

    def stop(self) -> None:
        if self.started:
            self._run("stop")
            self.started = False

    def kill(self, member: int) -> None:
        self._run("kill", str(member))

    def restart(self, member: int) -> None:
        self._run("restart", str(member))

    def pause(self, member: int) -> None:
        self._run("pause", str(member))

    def resume(self, member: int) -> None:
        self._run("resume", str(member))

    def leader(self) -> int:
        return int(self._run("leader"))

    def wait_healthy(self) -> None:
        self._run("wait-healthy")

    def pid(self, member: int) -> int | None:
        try:
            return int(Path(self.dir, f"m{member}", "pid").read_text())
        except (OSError, ValueError):
            return None

    def dump(self, prefix: str) -> str:
        """Every key under ``prefix``, a line each: key, create and mod revisions, lease (hex),
        value; for a report."""
        etcdctl = os.environ.get("ETCDCTL", "etcdctl")
        done = subprocess.run([etcdctl, f"--endpoints={','.join(self.endpoints)}", "--dial-timeout=2s",
                               "--command-timeout=3s", "get", prefix, "--prefix", "-w", "json"],
                              capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            return done.stderr
        answer = json.loads(done.stdout)
        lines = [f"revision {answer.get('header', {}).get('revision')}"]
        for kv in answer.get("kvs", []):
            key = base64.b64decode(kv["key"]).decode(errors="replace")
            value = base64.b64decode(kv.get("value", "")).decode(errors="replace")
            lines.append(f"{key} create_revision={kv.get('create_revision')} mod_revision={kv.get('mod_revision')} "
                         f"lease={kv.get('lease', 0):x} {value}")
        return "\n".join(lines) + "\n"

    def count(self, prefix: str) -> int:
        """How many keys start with ``prefix`` (a linearizable read through any member)."""
        etcdctl = os.environ.get("ETCDCTL", "etcdctl")
        done = subprocess.run([etcdctl, f"--endpoints={','.join(self.endpoints)}", "--dial-timeout=2s",
                               "--command-timeout=3s", "get", prefix, "--prefix", "--keys-only", "--limit=1", "-w", "json"],
                              capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise HarnessError(f"etcdctl get {prefix}: {done.stderr.strip()}")
        return int(json.loads(done.stdout).get("count", 0))


# --- daemons ------------------------------------------------------------------------------


def daemon_config(host: str, endpoints: list[str] | None, prefix: str, lease_ttl_ms: int,
                  limit: int = LIMIT, on_loss: str = "revoke") -> str:
    """The shared config: a model limit of ``limit`` on MODEL, and (with endpoints) the
    `[cluster]` table that shares it. Without endpoints each daemon counts on its own: the
    broken fleet the product exists to prevent. ``on_loss = "keep"`` makes a daemon that lets
    its holders run past its safe deadline (another broken fleet, for the checker's tests)."""
    text = (f'[limits]\nglobal = 64\n\n[[models]]\nname = "{MODEL}"\nconcurrency_limit = {limit}\n'
            f'\n[[projects]]\nname = "{PROJECT}"\nmax = {PROJECT_CAP}\n')
    if endpoints:
        text += ("\n[cluster]\n"
                 f"endpoints = [{', '.join(json.dumps(e) for e in endpoints)}]\n"
                 f"prefix = {json.dumps(prefix)}\n"
                 f"host = {json.dumps(host)}\n"
                 f"lease_ttl_ms = {lease_ttl_ms}\n"
                 'shared = ["models", "projects"]\n'
                 f'on_loss = "{on_loss}"\n')
    return text


class Daemon:
    """A turnstiled on a socket and state directory of its own (as test_end_to_end.py starts
    one): a start waits for its "turnstiled ready" log line. Its log (every start appended)
    is ``log`` in its directory."""

    def __init__(self, host: str, directory: str, config: str, turnstiled: str) -> None:
        self.host = host
        self.dir = directory
        self.turnstiled = turnstiled
        self.socket = os.path.join(directory, "s")  # short: socket paths are limited to ~100 bytes
        os.makedirs(directory, exist_ok=True)
        Path(directory, "turnstile.toml").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self, timeout: float = 30) -> None:
        ready = threading.Event()
        self.process = subprocess.Popen(
            [self.turnstiled, "--socket", self.socket, "--state-dir", os.path.join(self.dir, "state"),
             "--config", os.path.join(self.dir, "turnstile.toml"),
             "--log-level", os.environ.get("FLEET_LOG_LEVEL", "info")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._copy_log, args=(self.process, ready), daemon=True).start()
        if not ready.wait(timeout):
            self.kill()
            raise HarnessError(f"{self.host}: turnstiled not ready within {timeout} s; log tail:\n{self.log_tail()}")
        if self.process.poll() is not None:
            raise HarnessError(f"{self.host}: turnstiled exited with {self.process.returncode}; log tail:\n"
                               f"{self.log_tail()}")

    def _copy_log(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stdout is not None
        with open(os.path.join(self.dir, "log"), "ab") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()
                if b"turnstiled ready" in line:
                    ready.set()
        ready.set()  # it exited: start() looks at why

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self.dir, "log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, op: str, timeout: float = 5, **fields: Any) -> dict[str, Any]:
        connection = Connection(self.socket)
        try:
            request_id = connection.send(op, **fields)
            deadline = time.monotonic() + timeout
            while True:
                got = connection.read(deadline - time.monotonic())
                if got is None:
                    raise Disconnected(f"{self.host}: no answer to {op} within {timeout} s")
                if got[0].get("id") == request_id:
                    return got[0]
        finally:
            connection.close()

    def status(self) -> dict[str, Any]:
        answer = self.request("status")
        if not answer.get("ok"):
            raise Disconnected(f"{self.host}: status refused: {answer}")
        return answer

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing saved beyond what the journal already holds."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.paused = False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.paused:
            self.resume()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cluster_state(status: dict[str, Any]) -> bool | None:
    """Whether a daemon's status says it reaches etcd (CLUSTER.md §6: ``cluster.reachable``);
    None if the status says nothing about the cluster."""
    cluster = status.get("cluster")
    if not isinstance(cluster, dict) or "reachable" not in cluster:
        return None
    return bool(cluster["reachable"])


def model_in_use(status: dict[str, Any]) -> int:
    return int(((status.get("models") or {}).get(MODEL) or {}).get("in_use", 0))


def grants_so_far(status: dict[str, Any]) -> int:
    return int((status.get("metrics") or {}).get("admitted_total", 0))


# --- holders ------------------------------------------------------------------------------


class Fleet:
    """One fleet.py process (and its workers, in a session of their own), ended by a stop file."""

    def __init__(self, name: str, daemons: list[Daemon], out: str, workers: int, hold_ms: str,
                 idle_ms: str = "0:0", wait_ms: int = 2000, ttl_ms: int = 3000, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.out = out
        self.stop_file = os.path.join(out, f".stop-{name}")
        self.command = [sys.executable, str(HERE / "fleet.py"), "--out", out, "--name", name,
                        "--workers", str(workers), "--model", MODEL, "--hold-ms", hold_ms, "--idle-ms", idle_ms,
                        "--wait-ms", str(wait_ms), "--ttl-ms", str(ttl_ms), "--stop-file", self.stop_file, *extra]
        for daemon in daemons:
            self.command += ["--socket", f"{daemon.host}={daemon.socket}"]
        self.process: subprocess.Popen[str] | None = None
        self.result: dict[str, Any] | None = None
        self.ended_ns: int | None = None

    def start(self) -> None:
        os.makedirs(self.out, exist_ok=True)
        self.stderr = open(os.path.join(self.out, f".{self.name}.stderr"), "w")
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, start_new_session=True)

    def stop(self, timeout: float) -> dict[str, Any] | None:
        """Asks the workers to stop after their cycle, waits for them, kills them if need be.
        Returns fleet.py's counts (None if it had to be killed)."""
        if self.process is None:
            return None
        Path(self.stop_file).touch()
        try:
            stdout, _ = self.process.communicate(timeout=timeout)
            self.result = json.loads(stdout) if stdout.strip() else None
        except subprocess.TimeoutExpired:
            self.kill()
        except json.JSONDecodeError:
            self.result = None
        self.ended_ns = now_ns()
        self.stderr.close()
        return self.result

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.ended_ns = now_ns()


# --- the harness --------------------------------------------------------------------------


@dataclass
class Result:
    faults: dict[str, int] = field(default_factory=dict)
    grants_checked: int = 0
    violations: int = 0
    violations_by_rule: dict[str, int] = field(default_factory=dict)
    valid_until_stops: int = 0
    paused_with_long_holder: int = 0
    stalled: list[str] = field(default_factory=list)
    losses_by_why: dict[str, int] = field(default_factory=dict)
    valid_until: dict[str, Any] = field(default_factory=dict)
    fleet: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    directory: str = ""
    report: str = ""

    @property
    def ok(self) -> bool:
        return (self.violations == 0 and self.grants_checked > 0 and not self.stalled
                and all(self.faults.get(kind, 0) > 0 for kind in FAULT_KINDS))

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "faults": self.faults, "grants_checked": self.grants_checked,
                "violations": self.violations, "violations_by_rule": self.violations_by_rule,
                "valid_until_stops": self.valid_until_stops, "paused_with_long_holder": self.paused_with_long_holder,
                "losses_by_why": self.losses_by_why, "valid_until": self.valid_until,
                "stalls": len(self.stalled), "stalled": self.stalled,
                "duration_s": round(self.duration_s, 1), "directory": self.directory}


class Harness:
    """Owns every process of a run; ``close()`` (also registered with atexit) stops them all."""

    def __init__(self, directory: str | None = None, lease_ttl_ms: int = 2000, turnstiled: str | None = None,
                 seed: int | None = None, cluster: bool = True, keeping: tuple[str, ...] = ()) -> None:
        self.dir = directory or tempfile.mkdtemp(prefix="tsff-", dir="/tmp")
        os.makedirs(self.dir, exist_ok=True)
        self.lease_ttl_ms = lease_ttl_ms
        self.turnstiled = turnstiled or find_turnstiled()
        self.random = random.Random(seed)
        self.cluster = cluster
        self.keeping = keeping  # hosts configured with on_loss = "keep"
        self.prefix = f"/turnstile/fleet-{uuid.uuid4().hex[:12]}/"
        self.etcd = Etcd(os.path.join(self.dir, "etcd"))
        self.daemons: list[Daemon] = []
        self.fleets: list[Fleet] = []
        self.runs = os.path.join(self.dir, "runs")
        self.faults: Counter[str] = Counter()
        self.stalled: list[str] = []  # each stall the harness saw, described
        self.stalled_now: set[str] = set()  # hosts stalled and not restarted since: not waited for
        self.paused_with_long_holder = 0  # daemon_pause faults that froze a fresh long holder
        self.timeline = open(os.path.join(self.dir, "faults.jsonl"), "a")
        self.closed = False
        atexit.register(self.close)

    # Setup and teardown.

    def start(self, hosts: tuple[str, ...] = HOSTS) -> None:
        if not os.access(self.turnstiled, os.X_OK):
            raise HarnessError(f"no turnstiled at {self.turnstiled} (swift build, or set TURNSTILED)")
        if self.cluster:
            log(f"starting etcd in {self.etcd.dir}")
            self.etcd.start()
        for host in hosts:
            config = daemon_config(host, self.etcd.endpoints if self.cluster else None, self.prefix,
                                   self.lease_ttl_ms, on_loss="keep" if host in self.keeping else "revoke")
            self.daemons.append(Daemon(host, os.path.join(self.dir, host), config, self.turnstiled))
        for daemon in self.daemons:
            daemon.start()
        log(f"daemons {', '.join(d.host for d in self.daemons)} ready" + (f" (prefix {self.prefix})" if self.cluster else ""))
        if self.cluster:
            for daemon in self.daemons:
                self.wait_reachable(daemon, 30)

    def close(self) -> None:
        """Stops everything this harness started; safe to call twice, from anywhere."""
        if self.closed:
            return
        self.closed = True
        for fleet in self.fleets:
            fleet.kill()
        for daemon in self.daemons:
            try:
                daemon.stop()
            except Exception:  # noqa: BLE001 - go on stopping the rest
                daemon.kill()
        try:
            self.etcd.stop()
        except HarnessError as error:
            log(f"etcd stop: {error}")
            for member in (1, 2, 3):  # last resort: the members' pids, only ours
                pid = self.etcd.pid(member)
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.timeline.close()
        atexit.unregister(self.close)

    def daemon(self, host: str) -> Daemon:
        return next(d for d in self.daemons if d.host == host)

    # Conditions.

    def wait_reachable(self, daemon: Daemon, timeout: float) -> None:
        """Until the daemon's status says it reaches etcd (if its status says so at all)."""
        wait_until(f"{daemon.host} to reach etcd", lambda: cluster_state(daemon.status()) in (True, None), timeout)

    def wait_granting(self, timeout: float, grants: int = 3, daemons: list[Daemon] | None = None) -> list[Daemon]:
        """Until every daemon (of ``daemons``) has granted ``grants`` more leases since now: the
        fleet works again on every host (a restarted daemon counts from its restart). Returns
        the daemons that had not when ``timeout`` ran out (none: all did)."""
        daemons = self.daemons if daemons is None else daemons
        base = {d.host: grants_so_far(d.status()) for d in daemons}
        behind: list[Daemon] = list(daemons)

        def progressed() -> bool:
            late = []
            for daemon in behind:
                now = grants_so_far(daemon.status())
                if now < base[daemon.host]:  # restarted meanwhile
                    base[daemon.host] = 0
                if now - base[daemon.host] < grants:
                    late.append(daemon)
            behind[:] = late
            return not late

        try:
            wait_until(f"every daemon to grant {grants} more", progressed, timeout, interval=0.1)
        except HarnessError:
            return behind
        return []

    def probe(self) -> None:
        """One acquire and release of the shared model on each daemon in turn, before the
        holders start: every daemon can grant it."""
        for daemon in self.daemons:
            answer = daemon.request("acquire", timeout=20, model=MODEL, wait_ms=10000, ttl_ms=5000, holder="probe")
            if not answer.get("ok"):
                raise HarnessError(f"{daemon.host}: the probe's acquire of {MODEL} was refused: {answer}")
            daemon.request("release", lease=answer["lease"])

    def recover(self, kind: str) -> None:
        """After a fault is undone: etcd healthy, every daemon alive, reachable and granting. A
        daemon that grants nothing for 30 s while the others do is noted as stalled (a
        liveness failure: the run goes on without waiting for it, and fails at the end)."""
        if self.cluster:
            self.etcd.wait_healthy()
        for daemon in self.daemons:
            if not daemon.alive:
                raise HarnessError(f"{daemon.host} died (exit {daemon.process.returncode if daemon.process else '?'}); "
                                   f"log tail:\n{daemon.log_tail()}")
            self.wait_reachable(daemon, 30)
        stalled = self.wait_granting(30, daemons=[d for d in self.daemons if d.host not in self.stalled_now])
        if stalled and self.cluster:
            Path(self.dir, f"stalled-etcd-after-{kind}-{self.faults[kind]}.txt").write_text(self.etcd.dump(self.prefix))
        for daemon in stalled:
            status = daemon.status()
            name = f"stalled-{daemon.host}-after-{kind}-{self.faults[kind]}.json"
            Path(self.dir, name).write_text(json.dumps(status, indent=1))
            reasons = Counter(w.get("reason") for w in status.get("waiting", []))
            cluster = status.get("cluster") or {}
            self.stalled.append(
                f"{daemon.host} granted nothing for 30 s after {kind} #{self.faults[kind]} while the others did: "
                f"{dict(reasons)} waiting, {MODEL} in use {model_in_use(status)}, cluster state {cluster.get('state')}, "
                f"exhausted {cluster.get('exhausted')}, use {cluster.get('use')} (status in {name}; etcd's keys in "
                f"stalled-etcd-after-{kind}-{self.faults[kind]}.txt)")
            log(f"STALLED: {self.stalled[-1]}")
            self.note(kind, "stalled", host=daemon.host)
            self.stalled_now.add(daemon.host)
        if len(self.stalled_now) == len(self.daemons):
            raise HarnessError("every daemon has stalled: " + "; ".join(self.stalled))

    # Faults.

    def note(self, kind: str, phase: str, **details: Any) -> None:
        self.timeline.write(json.dumps({"t": now_ns(), "kind": kind, "phase": phase, **details}) + "\n")
        self.timeline.flush()

    def inject(self, kind: str) -> None:
        getattr(self, f"fault_{kind}")()
        self.faults[kind] += 1
        self.recover(kind)
        self.note(kind, "recovered")

    def fault_etcd_leader_kill(self) -> None:
        leader = self.etcd.leader()
        self._kill_member(leader, "etcd_leader_kill")

    def fault_etcd_follower_kill(self) -> None:
        leader = self.etcd.leader()
        follower = self.random.choice([m for m in (1, 2, 3) if m != leader])
        self._kill_member(follower, "etcd_follower_kill")

    def _kill_member(self, member: int, kind: str) -> None:
        self.note(kind, "begin", member=member)
        log(f"{kind}: SIGKILL etcd member {member}")
        self.etcd.kill(member)
        time.sleep(self.random.uniform(0.5, 2.0))  # down for a while (the schedule, not a sync)
        self.etcd.restart(member)
        self.note(kind, "end", member=member)

    def fault_etcd_quorum_loss(self) -> None:
        leader = self.etcd.leader()
        other = self.random.choice([m for m in (1, 2, 3) if m != leader])
        self.note("etcd_quorum_loss", "begin", members=[leader, other])
        log(f"etcd_quorum_loss: SIGSTOP etcd members {leader} (leader) and {other}")
        self.etcd.pause(leader)
        self.etcd.pause(other)
        try:
            # Longer than the host lease: every daemon's keepalive and txns time out.
            time.sleep(self.lease_ttl_ms / 1000 + self.random.uniform(0.5, 1.5))
        finally:
            self.etcd.resume(other)
            self.etcd.resume(leader)
        self.note("etcd_quorum_loss", "end", members=[leader, other])

    def fault_daemon_pause(self) -> None:
        daemon = self.daemons[self.faults["daemon_pause"] % len(self.daemons)]
        # Freeze it while one of its long holders has just been granted, so that the holder is
        # still holding when its valid_until passes (best effort: freeze anyway after a while).
        try:
            wait_until(f"a fresh long holder on {daemon.host}", lambda: any(
                (lease.get("holder") or "").startswith("long") and lease.get("model") == MODEL
                and lease.get("age_ms", 10**9) < 300 for lease in daemon.status().get("leases", [])), 15)
            holder = True
            self.paused_with_long_holder += 1
        except HarnessError:
            holder = False
        frozen = self.lease_ttl_ms / 1000 + self.random.uniform(1.0, 2.0)
        self.note("daemon_pause", "begin", host=daemon.host, seconds=frozen, long_holder=holder)
        log(f"daemon_pause: SIGSTOP {daemon.host} for {frozen:.1f} s (a long holder holding: {holder})")
        daemon.pause()
        try:
            time.sleep(frozen)
        finally:
            daemon.resume()
        self.note("daemon_pause", "end", host=daemon.host)

    def fault_daemon_kill(self) -> None:
        daemon = self.daemons[(self.faults["daemon_kill"] + 1) % len(self.daemons)]
        self.note("daemon_kill", "begin", host=daemon.host)
        log(f"daemon_kill: SIGKILL {daemon.host}, start it again on its state directory")
        daemon.kill()
        time.sleep(self.random.uniform(0.2, 1.0))
        daemon.start()
        self.stalled_now.discard(daemon.host)  # a new process: waited for again
        self.note("daemon_kill", "end", host=daemon.host)

    # The run.

    def start_fleets(self, short_workers: int = 4, long_workers: int = 1, short_hold: str = "5:50",
                     long_hold: str = "2500:4000", long_idle: str = "2000:5000") -> None:
        self.fleets = [Fleet("short", self.daemons, self.runs, short_workers * len(self.daemons), short_hold),
                       Fleet("web", self.daemons, self.runs, len(self.daemons), short_hold, extra=("--project", PROJECT))]
        if long_workers:
            self.fleets.append(Fleet("long", self.daemons, self.runs, long_workers * len(self.daemons),
                                     long_hold, idle_ms=long_idle))
        for fleet in self.fleets:
            fleet.start()

    def stop_fleets(self) -> int:
        """Stops the holders; returns the instant the last of them was gone."""
        for fleet in self.fleets:
            Path(fleet.stop_file).touch()
        for fleet in self.fleets:
            fleet.stop(timeout=60)
        return max(fleet.ended_ns or now_ns() for fleet in self.fleets)

    def final_statuses(self, timeout: float) -> dict[str, Any]:
        """Every daemon's status once it holds nothing (restored leases released or expired),
        and etcd's count of slots; the last ones seen if that never happens (the checker's
        `slots` rule reports them)."""
        from checker import in_use

        seen: dict[str, Any] = {}

        def clean() -> bool:
            for daemon in self.daemons:
                seen[daemon.host] = daemon.status()
            if self.cluster:
                seen["etcd"] = {f"{self.prefix}slots/": self.etcd.count(self.prefix + "slots/")}
            return not any(in_use(status) for status in seen.values())

        try:
            wait_until("every daemon and etcd to hold nothing", clean, timeout, interval=0.2)
        except HarnessError as error:
            held = {name: in_use(status) for name, status in seen.items() if in_use(status)}
            log(f"{error}: the checker judges what was seen last, holding {held}")
        for name, status in seen.items():  # for checker.py --final-status NAME=FILE, run by hand
            Path(self.dir, f"final-status-{name}.json").write_text(json.dumps(status, indent=1))
        return seen

    def check(self, final: dict[str, Any], open_until_ns: int, max_wait_ms: int | None) -> tuple[Report, int]:
        options = Options(limit=LIMIT, resources=[MODEL], open_until={"*": open_until_ns}, final_status=final,
                          max_wait_ms=max_wait_ms, lost_grace_ms=LOST_GRACE_MS, project_limits={PROJECT: PROJECT_CAP})
        report = check_files([self.runs], options)
        grants = sum(1 for name in os.listdir(self.runs) if name.endswith(".jsonl")
                     for record in read_history(os.path.join(self.runs, name)).records
                     if record.kind == "begin" and record.resource == MODEL)
        return report, grants

    def losses_by_why(self) -> dict[str, int]:
        found: Counter[str] = Counter()
        for name in os.listdir(self.runs):
            if name.endswith(".jsonl"):
                for record in read_history(os.path.join(self.runs, name)).records:
                    if record.kind == "end" and record.lost:
                        found[str(record.data.get("why"))] += 1
        return dict(found)

    def valid_until_facts(self) -> dict[str, Any]:
        """What the records say of ``valid_until_ms``: grants that carried it, the smallest
        given, grants given less than a holder's stop margin (50 ms: stopped at once), and
        holders that stopped at or past their deadline (late: a loaded machine)."""
        given: list[int] = []
        late = 0
        for name in os.listdir(self.runs):
            if name.endswith(".jsonl"):
                for record in read_history(os.path.join(self.runs, name)).records:
                    if record.kind == "begin" and record.data.get("valid_until_ms") is not None:
                        given.append(record.data["valid_until_ms"])
                    if record.kind == "end" and record.data.get("deadline") is not None and record.t >= record.data["deadline"]:
                        late += 1
        return {"grants_with_valid_until": len(given), "min_valid_until_ms": min(given, default=None),
                "under_50_ms": sum(1 for v in given if v < 50), "stops_at_or_past_deadline": late}

    def timeline_near(self, t: float, origin: int) -> list[str]:
        """The fault timeline around ``t`` (ns), for a violation's report."""
        lines = []
        for line in Path(self.dir, "faults.jsonl").read_text().splitlines():
            entry = json.loads(line)
            if abs(entry["t"] - t) < 10e9:
                lines.append(f"  +{(entry['t'] - origin) / 1e9:.3f} s {entry['kind']} {entry['phase']} "
                             + json.dumps({k: v for k, v in entry.items() if k not in ('t', 'kind', 'phase')}))
        return lines


def run(duration: float, directory: str | None = None, lease_ttl_ms: int = 2000, seed: int | None = None,
        keep: bool = False, warmup: float = 3.0, kinds: tuple[str, ...] = FAULT_KINDS) -> Result:
    """One whole run: start, faults until ``duration`` seconds have passed (at least one of each
    kind), stop the holders, judge. Everything is stopped before it returns or raises."""
    started = time.monotonic()
    seed = seed if seed is not None else random.randrange(1 << 30)
    harness = Harness(directory, lease_ttl_ms=lease_ttl_ms, seed=seed)
    result = Result(directory=harness.dir)
    log(f"run directory {harness.dir}, seed {seed}")
    ok = False
    try:
        harness.start()
        harness.probe()
        harness.start_fleets()
        if late := harness.wait_granting(30):
            raise HarnessError(f"{', '.join(d.host for d in late)} granted nothing in 30 s after the holders started")
        time.sleep(warmup)  # the fleet at work before the first fault (the schedule)
        pending: list[str] = []
        done_once: set[str] = set()
        while time.monotonic() - started < duration or not done_once >= set(kinds):
            if not pending:
                pending = list(kinds)
                harness.random.shuffle(pending)
            kind = pending.pop(0)
            harness.inject(kind)
            done_once.add(kind)
            time.sleep(harness.random.uniform(0.5, 2.0))  # the fleet at work between faults
        log("faults done; stopping the holders")
        holders_gone = harness.stop_fleets()
        for fleet in harness.fleets:
            result.fleet[fleet.name] = (fleet.result or {}).get("total")
            if fleet.result is None or fleet.result.get("missing"):
                log(f"fleet {fleet.name}: workers missing or killed: {fleet.result and fleet.result.get('missing')}")
        final = harness.final_statuses(timeout=30)
        longest_pause_ms = lease_ttl_ms + 2000 + 1500
        report, grants = harness.check(final, holders_gone, max_wait_ms=2000 + longest_pause_ms + 5000)
        result.faults = {kind: harness.faults[kind] for kind in FAULT_KINDS}
        result.stalled = list(harness.stalled)
        result.paused_with_long_holder = harness.paused_with_long_holder
        result.grants_checked = grants
        result.violations = len(report.violations)
        result.violations_by_rule = dict(Counter(v.rule for v in report.violations))
        result.losses_by_why = harness.losses_by_why()
        result.valid_until_stops = result.losses_by_why.get("valid_until", 0)
        result.valid_until = harness.valid_until_facts()
        text = report.text()
        if report.violations:
            context = ["fault timeline near the first violations:"]
            for violation in sorted((v for v in report.violations if v.t is not None), key=lambda v: v.t)[:3]:
                context.append(f" violation {violation.rule} at +{(violation.t - report.origin) / 1e9:.3f} s:")
                context.extend(harness.timeline_near(violation.t, report.origin))
            text += "\n" + "\n".join(context)
        result.report = text
        ok = result.ok
    finally:
        harness.close()
        result.duration_s = time.monotonic() - started
        if ok and not keep:
            shutil.rmtree(harness.dir, ignore_errors=True)
    return result


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through run()'s finally: everything is stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60,
                        help="seconds of faults (default 60); at least one of each kind is injected")
    parser.add_argument("--lease-ttl-ms", type=int, default=2000, help="the daemons' host lease (default 2000)")
    parser.add_argument("--seed", type=int, help="the fault schedule's seed (default random, printed)")
    parser.add_argument("--dir", help="run directory (default a new /tmp/tsff-*)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory even when clean")
    parser.add_argument("--kinds", default=",".join(FAULT_KINDS),
                        help="the fault kinds to inject, comma-separated (default all; a run without some fails)")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    if not have_etcd():
        print("fleet_faults: etcd and etcdctl are needed (make test-deps installs them)", file=sys.stderr)
        return 2
    try:
        kinds = tuple(kind for kind in args.kinds.split(",") if kind)
        if not kinds or set(kinds) - set(FAULT_KINDS):
            parser.error(f"--kinds: each of {', '.join(FAULT_KINDS)}")
        result = run(args.duration, directory=args.dir, lease_ttl_ms=args.lease_ttl_ms, seed=args.seed, keep=args.keep,
                     kinds=kinds)
    except HarnessError as error:
        print(f"fleet_faults: the harness failed: {error}", file=sys.stderr)
        return 2
    print(result.report)
    print("faults injected: " + ", ".join(f"{kind} {n}" for kind, n in result.faults.items())
          + f" (total {sum(result.faults.values())})")
    print(f"holders: {json.dumps(result.fleet)}")
    print(f"losses by why: {json.dumps(result.losses_by_why)}")
    print(f"valid_until: {json.dumps(result.valid_until)}")
    for line in result.stalled:
        print(f"STALLED (liveness): {line}")
    print(f"grants checked: {result.grants_checked}; violations: {result.violations} "
          f"{json.dumps(result.violations_by_rule) if result.violations else ''}; "
          f"duration {result.duration_s:.1f} s" + ("" if result.ok else f"; run directory kept: {result.directory}"))
    print(json.dumps(result.summary()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
