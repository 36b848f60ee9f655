"""The holders' records: how fleet.py writes them and how checker.py reads them.

Each holder (one worker of fleet.py, or any other client the harness runs) appends JSON lines
to a file of its own. The format is described in README.md beside this file; in short:

    {"kind":"wait","t":..,"host":..,"client":..,"resource":..}      a request is about to be sent
    {"kind":"begin","t":..,"host":..,"client":..,"resource":..,"fence":N,"cluster_fence":N|null}
    {"kind":"end","t":..,...,"lost":false}                          just before the release is sent
    {"kind":"gave_up","t":..,...,"reason":"timeout"}                the wait ended without a grant

`t` is CLOCK_MONOTONIC in nanoseconds. That clock is one per machine, shared by every process,
which is why every daemon of a fault test runs on this machine (on loopback) and why the
times of different files can be compared at all.

Each record is written with a single ``write(2)`` on a file opened with O_APPEND: a holder
killed at any moment leaves whole lines behind it, and at worst a torn last line, which the
reader skips and reports.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "Record", "HistoryFile", "HistoryWriter", "now_ns", "read_history"]

#: The record kinds, and the members each must have besides ``kind``, ``t``, ``host``,
#: ``client`` and ``resource``.
KINDS: dict[str, tuple[str, ...]] = {
    "wait": (),
    "begin": ("fence",),
    "end": (),
    "gave_up": (),
}


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds: the one clock every record uses."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Record:
    """One line of a history file, with where it came from (for the checker's report)."""

    kind: str
    t: int
    host: str
    client: str
    resource: str
    data: dict[str, Any]
    path: str
    line: int

    @property
    def fence(self) -> int | None:
        return self.data.get("fence")

    @property
    def cluster_fence(self) -> int | None:
        return self.data.get("cluster_fence")

    @property
    def lost(self) -> bool:
        return bool(self.data.get("lost"))

    def where(self) -> str:
        """``file:line``, to find the record again."""
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        """One line for a report: time, kind, who, fences, and where the record is."""
        parts = [f"t={self.t}", self.kind, f"client={self.client}", f"host={self.host}"]
        if self.fence is not None:
            parts.append(f"fence={self.fence}")
        if self.cluster_fence is not None:
            parts.append(f"cluster_fence={self.cluster_fence}")
        if self.lost:
            parts.append("lost")
        if "reason" in self.data:
            parts.append(f"reason={self.data['reason']}")
        return " ".join(parts) + f" ({self.where()})"


@dataclass
class HistoryFile:
    """A file's records in file order, and what could not be read in it.

    ``torn`` is the last line when it has no newline and is not JSON (its writer was killed
    while writing it): skipped, and only mentioned. ``errors`` are lines that are not records
    anywhere else: the checker cannot vouch for a history it cannot read, so they fail it.
    """

    path: str
    records: list[Record] = field(default_factory=list)
    torn: str | None = None
    errors: list[str] = field(default_factory=list)


def _parse(text: str, path: str, number: int) -> Record:
    """One line as a Record; ValueError saying what is wrong with it."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    for name in ("t", *KINDS[kind]):
        if not isinstance(data.get(name), int) or isinstance(data.get(name), bool):
            raise ValueError(f"{kind}: {name} must be an integer")
    for name in ("host", "client", "resource"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"{kind}: {name} must be a string")
    cluster_fence = data.get("cluster_fence")
    if cluster_fence is not None and (not isinstance(cluster_fence, int) or isinstance(cluster_fence, bool)):
        raise ValueError(f"{kind}: cluster_fence must be an integer or null")
    return Record(kind=kind, t=data["t"], host=data["host"], client=data["client"],
                  resource=data["resource"], data=data, path=path, line=number)


def read_history(path: str) -> HistoryFile:
    """Reads one holder's file. An empty file is an empty history (the holder never got as
    far as asking)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    history = HistoryFile(path=path)
    lines = raw.split(b"\n")
    # Text after the last newline is a line still being written when the writer died.
    unfinished = lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            history.records.append(_parse(line.decode(), path, number))
        except (ValueError, UnicodeDecodeError) as error:
            history.errors.append(f"{path}:{number}: {error}: {line[:200]!r}")
    if unfinished.strip():
        number = len(lines) + 1
        try:
            history.records.append(_parse(unfinished.decode(), path, number))
        except (ValueError, UnicodeDecodeError):
            history.torn = f"{path}:{number}: {unfinished[:200]!r}"
    return history


class HistoryWriter:
    """Appends one holder's records to its file, one ``write(2)`` per record (see the module
    docstring for why)."""

    def __init__(self, path: str, host: str, client: str) -> None:
        self.path = path
        self.host = host
        self.client = client
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        os.close(self._fd)

    def write(self, kind: str, t: int, resource: str, **extra: Any) -> None:
        """Appends one record. ``t`` is taken by the caller at the moment the record is about
        (see README.md), not here."""
        record = {"kind": kind, "t": t, "host": self.host, "client": self.client, "resource": resource}
        record.update(extra)
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def wait(self, t: int, resource: str) -> None:
        self.write("wait", t, resource)

    def begin(self, t: int, resource: str, fence: int, cluster_fence: int | None, **extra: Any) -> None:
        """``extra``: members for a reader (fleet.py adds ``valid_until_ms`` when the answer had
        it, and ``project`` when it asked for one)."""
        self.write("begin", t, resource, fence=fence, cluster_fence=cluster_fence, **extra)

    def end(self, t: int, resource: str, fence: int, cluster_fence: int | None, lost: bool,
            why: str | None = None, **more: Any) -> None:
        extra: dict[str, Any] = {"fence": fence, "cluster_fence": cluster_fence, "lost": lost}
        if why is not None:
            extra["why"] = why
        extra.update(more)
        self.write("end", t, resource, **extra)

    def gave_up(self, t: int, resource: str, reason: str) -> None:
        self.write("gave_up", t, resource, reason=reason)
