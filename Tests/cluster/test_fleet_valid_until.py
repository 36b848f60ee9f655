"""fleet.py's holders and ``valid_until_ms`` (protocol/CLUSTER.md §5, §6), against a scripted
daemon on a socket of this test's own: a holder whose daemon goes silent stops by itself before
the deadline the last answer gave it, and records the loss as ``why: valid_until``; heartbeat
answers that carry a fresh deadline keep it holding; ``--ignore-valid-until`` holds on."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fleet import Settings, run_fleet  # noqa: E402

MS = 1_000_000


class ScriptedDaemon:
    """Answers acquire with a lease carrying ``valid_until_ms``; heartbeats are answered with a
    fresh ``valid_until_ms`` while ``answering`` is set, else never (a frozen daemon). Every
    heartbeat it reads is counted."""

    def __init__(self, valid_until_ms: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="ts-vu-", dir="/tmp")
        self.path = os.path.join(self.dir, "s")
        self.valid_until_ms = valid_until_ms
        self.answering = threading.Event()
        self.heartbeats = 0
        self.fence = 0
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while True:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    answer = self._answer(json.loads(line))
                    if answer is not None:
                        connection.sendall(json.dumps(answer).encode() + b"\n")

    def _answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op, request_id = request["op"], request["id"]
        if op == "acquire":
            with self.lock:
                self.fence += 1
                fence = self.fence
            return {"id": request_id, "ok": True, "lease": f"lease-{fence}", "fence": fence, "ttl_ms": 3000,
                    "model": request.get("model"), "route": "primary", "waited_ms": 0,
                    "cluster_fence": fence * 1024, "valid_until_ms": self.valid_until_ms}
        if op == "heartbeat":
            with self.lock:
                self.heartbeats += 1
            if not self.answering.is_set():
                return None
            return {"id": request_id, "ok": True, "ttl_ms": 3000, "valid_until_ms": self.valid_until_ms}
        return {"id": request_id, "ok": True}

    def close(self) -> None:
        self.server.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def scripted() -> Iterator[ScriptedDaemon]:
    daemon = ScriptedDaemon(valid_until_ms=300)
    yield daemon
    daemon.close()


def one_hold(daemon: ScriptedDaemon, out: Path, hold_ms: int, ignore: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    settings = Settings(sockets=[("h1", daemon.path)], out=str(out), workers=1, count=1, duration=None,
                        model="fake/opus", hold_ms=(hold_ms, hold_ms), ttl_ms=3000, ignore_valid_until=ignore)
    result = run_fleet(settings)
    records = [json.loads(line) for line in (out / "fleet-w0.jsonl").read_text().splitlines()]
    return result, records


def test_a_holder_whose_daemon_goes_silent_stops_before_its_valid_until(scripted: ScriptedDaemon, tmp_path: Path) -> None:
    result, records = one_hold(scripted, tmp_path, hold_ms=2000)
    kinds = [r["kind"] for r in records]
    assert kinds == ["wait", "begin", "end"], records
    begin, end = records[1], records[2]
    assert begin["cluster_fence"] == 1024
    assert end["lost"] is True and end["why"] == "valid_until", end
    assert begin["valid_until_ms"] == 300 and end["deadline"] == begin["t"] + 300 * MS and end["t"] < end["deadline"]
    held_ms = (end["t"] - begin["t"]) / MS
    # Stopped before the deadline (300 ms after the answer was read), not long before it.
    assert 300 - 50 - 30 <= held_ms < 300, held_ms
    # Heartbeats at a third of min(ttl, valid_until): 100 ms, unanswered.
    assert scripted.heartbeats >= 2
    total = result["total"]
    assert total["losses"] == 1 and total["valid_until_stops"] == 1 and result["missing"] == [], result


def test_heartbeat_answers_with_a_fresh_valid_until_keep_the_holder_holding(scripted: ScriptedDaemon,
                                                                            tmp_path: Path) -> None:
    scripted.answering.set()
    result, records = one_hold(scripted, tmp_path, hold_ms=1000)
    begin, end = records[1], records[2]
    assert end["lost"] is False, end
    assert (end["t"] - begin["t"]) / MS >= 1000
    assert scripted.heartbeats >= 7, scripted.heartbeats  # every 100 ms for a second
    assert result["total"]["losses"] == 0


def test_ignore_valid_until_holds_on_past_the_deadline(scripted: ScriptedDaemon, tmp_path: Path) -> None:
    result, records = one_hold(scripted, tmp_path, hold_ms=800, ignore=True)
    begin, end = records[1], records[2]
    assert end["lost"] is False
    assert (end["t"] - begin["t"]) / MS >= 800  # well past the 300 ms it was given
    assert scripted.heartbeats == 0  # a third of the ttl (1 s) never came
    assert result["total"]["valid_until_stops"] == 0
