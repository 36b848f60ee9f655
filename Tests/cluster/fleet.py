#!/usr/bin/env python3
"""The recording client: N worker processes loop acquire / hold / release against one or more
turnstiled sockets and write what they saw in the format of history.py, for checker.py.

    python3 fleet.py --socket /tmp/a.sock --workers 8 --duration 5 --out runs/ --project p

It speaks PROTOCOL.md directly (socket + json) rather than through examples/python's client,
because the records need the instant each answer was read, and that client's reader thread
reads it some time before the caller sees it. Each worker is a process of its own, so that a
harness may kill one, and so that no lock shared by workers delays a time stamp.

Each worker survives what fault tests do to daemons: an ``expired``/``revoked`` event ends its
hold at once (``"lost": true``); a daemon that disappears ends the hold or the wait and the
worker reconnects with backoff, then releases the lease it lost contact with (a restarted
daemon restores it unbound, PROTOCOL.md §13.4, and would keep its slot until its ttl runs
out); ``unavailable`` answers are counted and retried.

A lease holding capacity shared through etcd (protocol/CLUSTER.md §5, §6) may carry
``valid_until_ms`` in its acquire answer and heartbeat answers: milliseconds from the answer
until which the grant is surely valid, even if the daemon is frozen and can tell nothing. A
holder keeps the latest deadline (the instant it read the answer + ``valid_until_ms``),
heartbeats at a third of min(ttl, valid_until), and stops its work by itself shortly before
that deadline if no fresher one came: its ``end`` is then ``"lost": true, "why": "valid_until"``,
stamped before the deadline. ``--ignore-valid-until`` makes a broken client that does not
(heartbeats at a third of the ttl and holds on), for the test that the checker catches it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from history import HistoryWriter, now_ns  # noqa: E402

__all__ = ["Settings", "Counts", "run_fleet", "main"]


class Disconnected(Exception):
    """The daemon closed the connection, reset it, refused it, or stopped answering."""


@dataclass
class Settings:
    """What every worker does. ``sockets`` are (host, path) pairs; worker i uses i mod len."""

    sockets: list[tuple[str, str]]
    out: str
    workers: int = 8
    duration: float | None = 5.0
    count: int | None = None
    project: str | None = None
    model: str | None = None
    resource: str | None = None
    wait_ms: int = 2000
    ttl_ms: int = 3000
    hold_ms: tuple[int, int] = (5, 50)
    name: str = "fleet"
    ignore_valid_until: bool = False
    #: How long before its valid_until deadline a holder stops (scheduling slack on a loaded machine).
    stop_margin_ms: int = 50
    #: A pause between a release (or a wait given up) and the next acquire, random in MIN:MAX ms.
    idle_ms: tuple[int, int] = (0, 0)
    #: Stop (after the current acquire or hold) once this file exists: a harness's way to end
    #: a run on an event rather than after a fixed duration.
    stop_file: str | None = None

    @property
    def label(self) -> str:
        """The resource the records name: --resource, else the model asked for, else global."""
        return self.resource or self.model or "global"


@dataclass
class Counts:
    """What one worker (or the fleet, summed) saw."""

    grants: int = 0
    waits: int = 0
    gave_up: int = 0
    losses: int = 0
    unavailable: int = 0
    errors: int = 0
    disconnects: int = 0
    #: losses that were the holder's own stop at its valid_until deadline (among ``losses``)
    valid_until_stops: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        for name in ("grants", "waits", "gave_up", "losses", "unavailable", "errors", "disconnects",
                     "valid_until_stops"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, n in other.error_codes.items():
            self.error_codes[code] = self.error_codes.get(code, 0) + n


class Connection:
    """One connection: newline-delimited JSON requests out, answers and events in, each with
    the CLOCK_MONOTONIC instant its bytes were read."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(2)
            self.sock.connect(path)
        except OSError as error:
            self.sock.close()
            raise Disconnected(str(error)) from error
        self.sock.setblocking(False)
        self.buffer = b""
        self.read_at = 0
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def send(self, op: str, **fields: Any) -> int:
        request_id, self.next_id = self.next_id, self.next_id + 1
        line = json.dumps({"op": op, "id": request_id, **{k: v for k, v in fields.items() if v is not None}})
        try:
            self.sock.settimeout(10)  # a stopped daemon that never reads is a lost connection
            self.sock.sendall(line.encode() + b"\n")
            self.sock.setblocking(False)
        except OSError as error:
            raise Disconnected(f"send: {error}") from error
        return request_id

    def read(self, timeout: float) -> tuple[dict[str, Any], int] | None:
        """The next message and when it was read, or None if none came within ``timeout``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            try:
                data = self.sock.recv(65536)
                read_at = now_ns()
            except BlockingIOError:
                continue
            except OSError as error:
                raise Disconnected(f"recv: {error}") from error
            if not data:
                raise Disconnected("the daemon closed the connection")
            self.buffer += data
            self.read_at = read_at
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line), self.read_at


class Worker:
    """One holder: its connection, its record file, its counts, and the lease it holds."""

    def __init__(self, settings: Settings, index: int, deadline_ns: int) -> None:
        self.settings = settings
        self.host, self.path = settings.sockets[index % len(settings.sockets)]
        self.client = f"{settings.name}-w{index}"
        self.deadline_ns = deadline_ns
        self.writer = HistoryWriter(os.path.join(settings.out, f"{self.client}.jsonl"), self.host, self.client)
        self.counts = Counts()
        self.random = random.Random(f"{settings.name}-{index}")
        self.conn: Connection | None = None
        self.orphans: list[str] = []  # tokens of leases whose connection broke while held

    def finished(self) -> bool:
        if self.settings.count is not None and self.counts.grants >= self.settings.count:
            return True
        if self.settings.stop_file is not None and os.path.exists(self.settings.stop_file):
            return True
        return self.settings.duration is not None and now_ns() >= self.deadline_ns

    def run(self) -> Counts:
        try:
            while not self.finished():
                if self.conn is None and not self.connect():
                    break
                try:
                    self.cycle()
                except Disconnected:
                    self.drop()
                low, high = self.settings.idle_ms
                if high > 0 and not self.finished():
                    time.sleep(self.random.uniform(low, high) / 1000)
        finally:
            if self.conn is not None:
                self.conn.close()
            self.writer.close()
        return self.counts

    def connect(self) -> bool:
        """Connects, retrying with exponential backoff until the run ends; then releases the
        leases left behind by a broken connection (best effort: not_found is fine)."""
        delay = 0.02
        while not self.finished():
            try:
                self.conn = Connection(self.path)
                for token in self.orphans:
                    self.call("release", 5.0, lease=token)
                self.orphans.clear()
                return True
            except Disconnected:
                self.drop()
                time.sleep(delay * (0.5 + self.random.random()))
                delay = min(delay * 2, 1.0)
        return False

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self.counts.disconnects += 1

    def call(self, op: str, timeout: float, lease: str | None = None, **fields: Any) -> tuple[dict[str, Any], int]:
        """Sends a request and returns its answer and when it was read. Events that come
        meanwhile are of no lease (this worker sends requests only while it holds nothing or
        to end its lease), except a loss of ``lease``, which ends nothing more: the answer
        that follows tells. A line without ``id`` that is a failure is about the connection."""
        assert self.conn is not None
        request_id = self.conn.send(op, lease=lease, **fields)
        deadline = time.monotonic() + timeout
        while True:
            got = self.conn.read(deadline - time.monotonic())
            if got is None:
                raise Disconnected(f"no answer to {op} within {timeout} s")
            message, read_at = got
            if "ok" in message and message.get("id") == request_id:
                return message, read_at
            if message.get("ok") is False and "id" not in message:
                self.count_error(message.get("error", "?"))
                raise Disconnected(f"the daemon refused the connection: {message.get('error')}")

    def count_error(self, code: str) -> None:
        self.counts.errors += 1
        self.counts.error_codes[code] = self.counts.error_codes.get(code, 0) + 1

    def cycle(self) -> None:
        """One acquire, and if granted one hold and one release."""
        settings = self.settings
        self.writer.wait(now_ns(), settings.label)
        self.counts.waits += 1
        try:
            answer, read_at = self.call("acquire", settings.wait_ms / 1000 + 10, project=settings.project,
                                        model=settings.model, wait_ms=settings.wait_ms, ttl_ms=settings.ttl_ms,
                                        holder=self.client)
        except Disconnected:
            self.writer.gave_up(now_ns(), settings.label, "disconnected")
            self.counts.gave_up += 1
            raise
        if not answer["ok"]:
            code = answer.get("error", "?")
            self.writer.gave_up(read_at, settings.label, code)
            self.counts.gave_up += 1
            if code == "unavailable":
                self.counts.unavailable += 1
            elif code != "timeout":
                self.count_error(code)
            if code not in ("timeout", "shutting_down"):
                time.sleep(self.random.uniform(0.01, 0.05))  # backoff before asking again
            return
        resource = answer.get("model") or settings.label
        fence, cluster_fence, token = answer["fence"], answer.get("cluster_fence"), answer["lease"]
        valid_until_ms = answer.get("valid_until_ms")
        extra: dict[str, Any] = {}
        if valid_until_ms is not None:
            extra["valid_until_ms"] = valid_until_ms
        if settings.project is not None:
            extra["project"] = settings.project
        self.writer.begin(read_at, resource, fence, cluster_fence, **extra)
        self.counts.grants += 1
        deadline = None if valid_until_ms is None else read_at + int(valid_until_ms * 1_000_000)
        why = self.hold(token, resource, fence, cluster_fence, answer.get("ttl_ms") or settings.ttl_ms,
                        deadline, valid_until_ms)
        if why is not None:
            self.counts.losses += 1
            if why == "valid_until":
                # The daemon said nothing in time (frozen, or cut off): the lease may still be
                # counted there. Release it; a daemon that comes back answers then.
                self.counts.valid_until_stops += 1
                try:
                    self.call("release", 10.0, lease=token)
                except Disconnected:
                    self.orphans.append(token)
                    raise
            return
        self.writer.end(now_ns(), resource, fence, cluster_fence, lost=False)
        try:
            answer, _ = self.call("release", 10.0, lease=token)
        except Disconnected:
            self.orphans.append(token)
            raise
        if not answer["ok"]:
            # Gone before the release arrived (expired meanwhile): the record above says the
            # holder worked until then, and the checker judges that.
            self.counts.losses += 1

    def hold(self, token: str, resource: str, fence: int, cluster_fence: int | None, ttl_ms: int,
             deadline: int | None, valid_until_ms: float | None) -> str | None:
        """Holds the lease for a random time, heartbeating at a third of min(ttl, valid_until);
        returns None when the hold ran its course, else why it was lost, after writing its end
        (``lost``) at once. ``deadline`` (CLOCK_MONOTONIC ns) is when the lease stops being
        surely valid, from the answer that granted it and then from each heartbeat answer that
        carries ``valid_until_ms``: the holder stops ``stop_margin_ms`` before it, so that it is
        never recorded holding past it. Under ``ignore_valid_until`` neither is looked at."""
        assert self.conn is not None
        settings = self.settings
        ignore = settings.ignore_valid_until
        margin = settings.stop_margin_ms * 1_000_000
        low, high = settings.hold_ms
        hold_until = now_ns() + int(self.random.uniform(low, high) * 1_000_000)
        last_beat = now_ns()
        beats: set[int] = set()
        while True:
            period = ttl_ms if ignore or valid_until_ms is None else min(ttl_ms, valid_until_ms)
            next_beat = last_beat + int(period * 1_000_000 / 3)
            stop_at = None if ignore or deadline is None else deadline - margin
            now = now_ns()
            if stop_at is not None and now >= stop_at:
                return self.lose(token, resource, fence, cluster_fence, "valid_until", deadline=deadline)
            if now >= hold_until:
                return None
            if now >= next_beat:
                try:
                    beats.add(self.conn.send("heartbeat", lease=token))
                except Disconnected:
                    return self.lose(token, resource, fence, cluster_fence, "disconnected")
                last_beat = now
                continue
            wake = min(hold_until, next_beat) if stop_at is None else min(hold_until, next_beat, stop_at)
            try:
                got = self.conn.read((wake - now) / 1e9)
            except Disconnected:
                return self.lose(token, resource, fence, cluster_fence, "disconnected")
            if got is None:
                continue
            message, read_at = got
            if message.get("event") in ("expired", "revoked") and message.get("lease") == token:
                return self.lose(token, resource, fence, cluster_fence, message["event"])
            if message.get("id") in beats:
                beats.discard(message["id"])
                if message.get("ok") is False:
                    return self.lose(token, resource, fence, cluster_fence, f"heartbeat {message.get('error')}")
                if message.get("valid_until_ms") is not None:
                    valid_until_ms = message["valid_until_ms"]
                    deadline = read_at + int(valid_until_ms * 1_000_000)

    def lose(self, token: str, resource: str, fence: int, cluster_fence: int | None, why: str,
             deadline: int | None = None) -> str:
        """The holder stops its work now: records it (with the deadline it stopped before, for a
        ``valid_until`` stop), and remembers the token to release if the connection broke (a
        restarted daemon restored the lease)."""
        if deadline is None:
            self.writer.end(now_ns(), resource, fence, cluster_fence, lost=True, why=why)
        else:
            self.writer.end(now_ns(), resource, fence, cluster_fence, lost=True, why=why, deadline=deadline)
        if why == "disconnected":
            self.orphans.append(token)
            self.drop()
        return why


def _work(settings: Settings, index: int, deadline_ns: int, results: Any) -> None:
    """A worker process's body: its counts go back to the parent through ``results``."""
    counts = Worker(settings, index, deadline_ns).run()
    results.put((index, asdict(counts)))


def run_fleet(settings: Settings) -> dict[str, Any]:
    """Runs the workers to the end and returns the summed counts, per-worker counts and the
    workers that never reported (killed by the harness, or crashed)."""
    os.makedirs(settings.out, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # no fork of a possibly threaded parent
    results = context.Queue()
    deadline_ns = now_ns() + int((settings.duration or 0) * 1e9)
    processes = [context.Process(target=_work, args=(settings, i, deadline_ns, results), name=f"w{i}")
                 for i in range(settings.workers)]
    for process in processes:
        process.start()
    per_worker: dict[int, dict[str, Any]] = {}
    # A worker killed by the harness never reports: give up on it after the run's end plus
    # its last cycle; with only a stop file to end the run, the harness decides.
    if settings.duration is None and settings.count is None and settings.stop_file is not None:
        limit = float("inf")
    else:
        limit = time.monotonic() + (settings.duration or 600) + settings.wait_ms / 1000 + 60
    while len(per_worker) < len(processes):
        try:
            index, counts = results.get(timeout=0.5)
        except queue.Empty:  # a worker killed by the harness never reports
            if time.monotonic() > limit or (not any(p.is_alive() for p in processes) and results.empty()):
                break
            continue
        per_worker[index] = counts
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
    total = Counts()
    for counts in per_worker.values():
        total.add(Counts(**counts))
    missing = sorted(set(range(settings.workers)) - set(per_worker))
    return {"total": asdict(total), "workers": per_worker, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", action="append", required=True, metavar="[HOST=]PATH",
                        help="a daemon's socket, with the host name its records carry (default: the path)")
    parser.add_argument("--out", required=True, help="directory for the workers' <name>-w<i>.jsonl files")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--duration", type=float, help="seconds to run (default 5 unless --count or --stop-file)")
    parser.add_argument("--count", type=int, help="stop each worker after this many grants")
    parser.add_argument("--project")
    parser.add_argument("--model")
    parser.add_argument("--resource", help="the name records give the resource (default: --model, else global)")
    parser.add_argument("--wait-ms", type=int, default=2000)
    parser.add_argument("--ttl-ms", type=int, default=3000)
    parser.add_argument("--hold-ms", default="5:50", metavar="MIN:MAX")
    parser.add_argument("--name", default="fleet", help="prefix of the client names (one per host)")
    parser.add_argument("--ignore-valid-until", action="store_true",
                        help="a broken client: hold on past valid_until_ms (for the test that the checker catches it)")
    parser.add_argument("--stop-margin-ms", type=int, default=50,
                        help="stop this long before the valid_until deadline (default 50)")
    parser.add_argument("--idle-ms", default="0:0", metavar="MIN:MAX",
                        help="pause between a cycle and the next (default none)")
    parser.add_argument("--stop-file", help="stop (after the current cycle) once this file exists")
    args = parser.parse_args(argv)
    sockets = [(host, path) if sep else (spec, spec) for spec in args.socket for host, sep, path in [spec.partition("=")]]
    low, _, high = args.hold_ms.partition(":")
    idle_low, _, idle_high = args.idle_ms.partition(":")
    settings = Settings(sockets=sockets, out=args.out, workers=args.workers,
                        duration=args.duration if args.duration is not None or args.count or args.stop_file else 5.0,
                        count=args.count, project=args.project, model=args.model, resource=args.resource,
                        wait_ms=args.wait_ms, ttl_ms=args.ttl_ms, hold_ms=(int(low), int(high or low)), name=args.name,
                        ignore_valid_until=args.ignore_valid_until, stop_margin_ms=args.stop_margin_ms,
                        idle_ms=(int(idle_low), int(idle_high or idle_low)), stop_file=args.stop_file)
    result = run_fleet(settings)
    print(json.dumps(result, indent=1))
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
