#!/usr/bin/env python3
"""Decides from the holders' own records (history.py) whether a run of turnstiled misbehaved.

    python3 checker.py --limit 3 --resource anthropic/claude-opus-4 runs/*.jsonl

Exits 0 when the history is clean, 1 with a report of the first violations otherwise, 2 on a
usage error. The rules, and why each is sound, are in README.md beside this file:

- limit:         never more than LIMIT holders of a resource at one instant;
- fence:         per host, no fence twice, and fences rise in grant order;
- cluster_fence: no cluster_fence twice, and they rise in grant order across all hosts;
- slots:         every daemon's final status has nothing in use;
- wait:          every wait ended (granted or given up) within --max-wait-ms;
- starved:       no client went without a grant while others were granted repeatedly, and
                 (with --min-fairness) Jain's index over grants per client is high enough;
- records:       the files are readable and consistent (an unreadable history proves nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from history import HistoryFile, Record, read_history  # noqa: E402

__all__ = ["Hold", "Wait", "Options", "Violation", "Report", "check", "check_files", "main"]

FOREVER = math.inf


@dataclass
class Hold:
    """One grant: its begin record, its end record (None if the file has none), the time it
    counts as held until, and when its request was sent (its wait record, if any)."""

    begin: Record
    end: Record | None
    until: float
    asked: int | None


@dataclass
class Wait:
    """One request: its wait record, what ended it (begin, gave_up, or None) and when."""

    wait: Record
    outcome: Record | None
    until: int | None


@dataclass
class Options:
    """What the harness tells the checker. ``open_until`` maps a client name, a host name or
    ``*`` to the time (ns) until which a holder without an ``end`` counts as holding: when its
    daemon could have reclaimed the lease at the latest. Unnamed: until the end of time.
    ``lost_grace_ms``: how much later than its daemon a holder may learn that its lease was
    revoked or expired; 0 (the default) takes every lost holder at its word."""

    limit: int
    resources: list[str] | None = None
    project_limits: dict[str, int] = field(default_factory=dict)
    open_until: dict[str, int] = field(default_factory=dict)
    final_status: dict[str, Any] = field(default_factory=dict)
    max_wait_ms: int | None = None
    min_fairness: float | None = None
    lost_grace_ms: int = 0


@dataclass
class Violation:
    rule: str
    t: float | None
    message: str
    records: list[Record] = field(default_factory=list)


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    origin: int = 0  # the first record's time: reports also give times as seconds after it

    @property
    def ok(self) -> bool:
        return not self.violations

    def text(self, shown: int = 10) -> str:
        """The summary, then the first ``shown`` violations of each rule in time order."""
        out = list(self.summary)
        by_rule: dict[str, list[Violation]] = defaultdict(list)
        for violation in self.violations:
            by_rule[violation.rule].append(violation)
        for rule, found in by_rule.items():
            found.sort(key=lambda v: -FOREVER if v.t is None else v.t)
            out.append(f"VIOLATION {rule}: {len(found)} found" + (f", first {shown}:" if len(found) > shown else ":"))
            for violation in found[:shown]:
                when = "" if violation.t is None else f"at t={violation.t} (+{(violation.t - self.origin) / 1e9:.3f} s): "
                out.append(f"  {when}{violation.message}")
                out.extend(f"    {record.describe()}" for record in violation.records)
        out.extend(f"note: {note}" for note in self.notes)
        out.append("FAILED" if self.violations else "OK")
        return "\n".join(out)


def _cutoff(options: Options, record: Record) -> float:
    """How long a holder without an end counts as holding (see Options)."""
    for key in (record.client, record.host, "*"):
        if key in options.open_until:
            return max(options.open_until[key], record.t)
    return FOREVER


def pair(files: list[HistoryFile], options: Options, report: Report) -> tuple[list[Hold], list[Wait]]:
    """Pairs, within each file, every begin with its end (by fence, else the oldest open) and
    every wait with the begin or gave_up that follows it; files never interleave."""
    holds: list[Hold] = []
    waits: list[Wait] = []
    for history in files:
        report.violations.extend(Violation("records", None, error) for error in history.errors)
        if history.torn:
            report.notes.append(f"torn last line skipped (its writer died while writing it): {history.torn}")
        open_holds: list[Hold] = []
        pending: Record | None = None
        previous: Record | None = None
        for record in history.records:
            if previous is not None and record.t < previous.t:
                report.violations.append(Violation("records", record.t, "time goes back within a file",
                                                   [previous, record]))
            previous = record
            if record.kind in ("wait", "begin", "gave_up") and pending is not None:
                if record.kind == "wait":  # the earlier request's outcome was never written
                    waits.append(Wait(pending, None, record.t))
                else:
                    waits.append(Wait(pending, record, record.t))
            if record.kind == "wait":
                pending = record
            elif record.kind == "begin":
                hold = Hold(record, None, FOREVER, pending.t if pending is not None else None)
                open_holds.append(hold)
                holds.append(hold)
                pending = None
            elif record.kind == "gave_up":
                if pending is None:
                    report.violations.append(Violation("records", record.t, "gave_up without a wait", [record]))
                pending = None
            else:
                matching = [h for h in open_holds if record.fence is None or h.begin.fence == record.fence]
                if not matching:
                    report.violations.append(Violation("records", record.t, "end without an open begin", [record]))
                    continue
                hold = matching[0]
                open_holds.remove(hold)
                hold.end, hold.until = record, record.t
                if record.lost:  # see Options: the loss may have reached the holder that late
                    hold.until = record.t - options.lost_grace_ms * 1_000_000
        for hold in open_holds:
            hold.until = _cutoff(options, hold.begin)
            report.notes.append(f"no end for {hold.begin.describe()}: counted as held until "
                                f"{'the end of the run' if hold.until == FOREVER else hold.until}")
        if pending is not None:
            waits.append(Wait(pending, None, None))
    return holds, waits


def check_limit(holds: list[Hold], options: Options, report: Report) -> None:
    """Sweeps each resource's intervals [begin.t, until] in time order, and those of each
    project in ``Options.project_limits`` (the holders' ``project``) against its cap. A lost
    lease that the grace (Options.lost_grace_ms) ends before its begin held nothing."""
    by_resource: dict[str, list[Hold]] = defaultdict(list)
    by_project: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        if hold.until < hold.begin.t:
            continue
        if options.resources is None or hold.begin.resource in options.resources:
            by_resource[hold.begin.resource].append(hold)
        project = hold.begin.data.get("project")
        if project in options.project_limits:
            by_project[project].append(hold)
    for resource in sorted(by_resource):
        _sweep(resource, by_resource[resource], options.limit, report)
    for project in sorted(options.project_limits):
        _sweep(f"project {project}", by_project[project], options.project_limits[project], report)


def _sweep(name: str, holds: list[Hold], limit: int, report: Report) -> None:
    """The intervals [begin.t, until] of ``holds`` in time order, never more than ``limit`` at
    once. Intervals are closed: at equal times a begin is counted before an end, so a begin at
    the very instant of another's end overlaps it (a correct daemon never gets that close: the
    end is stamped before the release is sent, the begin after the grant is read)."""
    events = sorted([(h.begin.t, 0, i) for i, h in enumerate(holds)] + [(h.until, 1, i) for i, h in enumerate(holds)])
    active: dict[int, Hold] = {}
    peak = 0
    for t, kind, index in events:
        if kind == 1:
            active.pop(index, None)
            continue
        active[index] = holds[index]
        peak = max(peak, len(active))
        if len(active) == limit + 1:
            involved = sorted(active.values(), key=lambda h: h.begin.t)
            records = [r for h in involved for r in (h.begin, h.end) if r is not None]
            lost = " (some of them had lost their lease: see 'lost')" if any(h.end and h.end.lost for h in involved) else ""
            report.violations.append(Violation("limit", t, f"{name}: {len(active)} holders at once, limit {limit}{lost}", records))
    report.summary.append(f"{name}: {len(holds)} grants, at most {peak} held at once (limit {limit})")


def _check_rising(rule: str, holds: list[Hold], number: Any, report: Report) -> None:
    """No number twice; and a grant whose answer was read (begin.t) no later than another's
    request was sent (its wait.t) was certainly granted first, so its number must be lower.
    Pairs whose order the records cannot prove are not judged."""
    by_number: dict[int, list[Hold]] = defaultdict(list)
    for hold in holds:
        by_number[number(hold)].append(hold)
    for value, same in sorted(by_number.items()):
        if len(same) > 1:
            report.violations.append(Violation(rule, same[1].begin.t, f"{rule} {value} granted {len(same)} times",
                                               [h.begin for h in same]))
    earlier = sorted(holds, key=lambda h: h.begin.t)
    later = sorted(((h.asked, h) for h in holds if h.asked is not None), key=lambda pair: pair[0])
    highest: Hold | None = None
    next_earlier = 0
    for asked, hold in later:
        while next_earlier < len(earlier) and earlier[next_earlier].begin.t <= asked:
            candidate = earlier[next_earlier]
            if highest is None or number(candidate) > number(highest):
                highest = candidate
            next_earlier += 1
        if highest is not None and number(hold) < number(highest):
            report.violations.append(Violation(
                rule, hold.begin.t, f"{rule} went back: {number(hold)} granted after {number(highest)} "
                f"(asked at t={asked}, after the other's grant was read)", [highest.begin, hold.begin]))


def check_fences(holds: list[Hold], report: Report) -> None:
    """Fences per host (PROTOCOL.md §10.2, §13.3: the next fence at each grant, never back,
    even across restarts); cluster fences across every host."""
    by_host: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        by_host[hold.begin.host].append(hold)
    for host in sorted(by_host):
        _check_rising("fence", by_host[host], lambda h: h.begin.fence, report)
    clustered = [h for h in holds if h.begin.cluster_fence is not None]
    _check_rising("cluster_fence", clustered, lambda h: h.begin.cluster_fence, report)


def in_use(status: Any) -> dict[str, int]:
    """What a final status holds: a ``status`` answer (PROTOCOL.md §8.7), or a plain mapping of
    names to in-use counts (e.g. what etcd says is held)."""
    if not isinstance(status, dict):
        return {"(not an object)": 1}
    if "global" not in status:
        return {name: count for name, count in status.items() if count != 0}
    held: dict[str, int] = {"global": status["global"].get("in_use", 0), "leases": len(status.get("leases", []))}
    for section in ("modes", "projects", "models", "pools"):
        for name, entry in (status.get(section) or {}).items():
            held[f"{section}.{name}"] = entry.get("in_use", 0)
            if entry.get("mention_in_use"):
                held[f"{section}.{name}.mention"] = entry["mention_in_use"]
    return {name: count for name, count in held.items() if count != 0}


def check_slots(options: Options, report: Report) -> None:
    for name, status in sorted(options.final_status.items()):
        held = in_use(status)
        if held:
            report.violations.append(Violation("slots", None, f"{name} still has slots in use at the end: "
                                               + ", ".join(f"{k}={v}" for k, v in sorted(held.items()))))


def check_waits(holds: list[Hold], waits: list[Wait], options: Options, report: Report) -> None:
    """Bounded waits, then the starvation rule of README.md: per resource, a client that
    waited and got no grant while another client got two or more between its first wait and
    its last record was starved; with --min-fairness, Jain's index (sum x)^2 / (n sum x^2)
    over the grants x of the n clients that waited must reach the threshold."""
    unresolved = 0
    for wait in waits:
        if wait.until is None:
            unresolved += 1
            continue
        waited_ms = (wait.until - wait.wait.t) / 1e6
        if options.max_wait_ms is not None and waited_ms > options.max_wait_ms:
            ended = "granted" if wait.outcome and wait.outcome.kind == "begin" else "gave up" if wait.outcome else "never answered"
            report.violations.append(Violation("wait", wait.wait.t, f"{wait.wait.client} waited {waited_ms:.0f} ms "
                                               f"(bound {options.max_wait_ms} ms) and {ended}",
                                               [r for r in (wait.wait, wait.outcome) if r is not None]))
    if unresolved:
        report.notes.append(f"{unresolved} waits have no outcome at the end of their file (the client stopped "
                            "or was killed while waiting): not judged")
    # Per resource and client: the times of its waits and of their outcomes.
    waiters: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for wait in waits:
        if options.resources is None or wait.wait.resource in options.resources:
            times = waiters[wait.wait.resource][wait.wait.client]
            times.append(wait.wait.t)
            if wait.until is not None:
                times.append(wait.until)
    grants: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for hold in holds:
        grants[hold.begin.resource][hold.begin.client].append(hold.begin.t)
    for resource in sorted(waiters):
        clients = waiters[resource]
        for client, seen in sorted(clients.items()):
            if grants[resource].get(client):
                continue
            first, last = min(seen), max(seen)
            others = {other: sum(first <= t <= last for t in times)
                      for other, times in grants[resource].items() if other != client}
            busy = {other: n for other, n in others.items() if n >= 2}
            if busy:
                report.violations.append(Violation("starved", first, f"{resource}: {client} waited from t={first} "
                                                   f"to t={last} and got nothing while others got "
                                                   + ", ".join(f"{o}: {n}" for o, n in sorted(busy.items()))))
        counts = [len(grants[resource].get(client, [])) for client in clients]
        total, squares = sum(counts), sum(n * n for n in counts)
        if total:
            jain = total * total / (len(counts) * squares)
            report.summary.append(f"{resource}: {len(counts)} clients waited; grants per client "
                                  f"min {min(counts)} max {max(counts)}; Jain's index {jain:.3f}")
            if options.min_fairness is not None and jain < options.min_fairness:
                report.violations.append(Violation("starved", None, f"{resource}: Jain's index {jain:.3f} "
                                                   f"below {options.min_fairness} (grants: {sorted(counts)})"))


def check(files: list[HistoryFile], options: Options) -> Report:
    """Every rule over the histories; the report says what was found."""
    report = Report(origin=min((r.t for f in files for r in f.records), default=0))
    holds, waits = pair(files, options, report)
    report.summary.append(f"{len(files)} files, {sum(len(f.records) for f in files)} records, "
                          f"{len(holds)} grants, {len(waits)} requests")
    check_limit(holds, options, report)
    check_fences(holds, report)
    check_slots(options, report)
    check_waits(holds, waits, options, report)
    return report


def check_files(paths: list[str], options: Options) -> Report:
    """As check(), from file names; a directory stands for the *.jsonl files in it."""
    names: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            names.extend(sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".jsonl")))
        else:
            names.append(path)
    return check([read_history(name) for name in names], options)


def _named(value: str) -> tuple[str, str]:
    """``KEY=VALUE`` as (KEY, VALUE); a bare VALUE as ("*", VALUE)."""
    key, sep, rest = value.partition("=")
    return (key, rest) if sep else ("*", value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="history files, or directories of *.jsonl files")
    parser.add_argument("--limit", type=int, required=True, help="at most this many holders of a resource at once")
    parser.add_argument("--resource", action="append", help="judge only this resource (repeatable; default: all)")
    parser.add_argument("--project-limit", action="append", default=[], metavar="PROJECT=N",
                        help="at most N holders at once whose records name PROJECT (repeatable)")
    parser.add_argument("--open-until", action="append", default=[], metavar="[CLIENT|HOST=]NS",
                        help="a holder without an end counts as holding until this CLOCK_MONOTONIC ns (default: forever)")
    parser.add_argument("--final-status", action="append", default=[], metavar="[NAME=]FILE",
                        help="a daemon's final status answer, or a JSON mapping of names to in-use counts")
    parser.add_argument("--max-wait-ms", type=int, help="every wait must end within this many ms")
    parser.add_argument("--min-fairness", type=float, help="lowest Jain's index of grants per waiting client")
    parser.add_argument("--lost-grace-ms", type=int, default=0,
                        help="a holder that lost its lease counts as holding until this long before its end")
    parser.add_argument("--show", type=int, default=10, help="violations shown per rule")
    args = parser.parse_args(argv)
    statuses: dict[str, Any] = {}
    for item in args.final_status:
        name, path = _named(item)
        with open(path) as handle:
            statuses[path if name == "*" else name] = json.load(handle)
    options = Options(limit=args.limit, resources=args.resource,
                      open_until={key: int(value) for key, value in map(_named, args.open_until)},
                      final_status=statuses, max_wait_ms=args.max_wait_ms, min_fairness=args.min_fairness,
                      lost_grace_ms=args.lost_grace_ms,
                      project_limits={key: int(value) for key, value in map(_named, args.project_limit)})
    report = check_files(args.files, options)
    print(report.text(args.show))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
