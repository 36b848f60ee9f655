"""Fixtures: a real turnstiled on a socket in a temporary directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TURNSTILED = os.environ.get("TURNSTILED") or str(REPO / ".build/debug/turnstiled")

#: One permit in all, so that a second acquire waits or is refused.
ONE_PERMIT = "[limits]\nglobal = 1\n"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Polls ``predicate`` until it returns something truthy; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """A running turnstiled: ``socket`` to connect to, ``stop()`` to end it."""

    def __init__(self, config: str) -> None:
        # A short directory: Unix socket paths are limited to about 100 bytes.
        self.dir = tempfile.mkdtemp(prefix="ts-py-", dir="/tmp")
        self.socket = os.path.join(self.dir, "s")
        self.config = os.path.join(self.dir, "turnstile.toml")
        Path(self.config).write_text(config)
        self.log_path = os.path.join(self.dir, "log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [TURNSTILED, "--socket", self.socket, "--state-dir", os.path.join(self.dir, "state"),
             "--config", self.config, "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"turnstiled exited with {self.process.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"turnstiled not ready within 20 s: {self.output()}")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def output(self) -> str:
        """The daemon's log so far."""
        return Path(self.log_path).read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    """A factory: ``start_daemon(config)`` starts a daemon, stopped after the test."""
    if not os.access(TURNSTILED, os.X_OK):
        pytest.fail(f"no turnstiled at {TURNSTILED} (build it, or set TURNSTILED)")
    daemons: list[Daemon] = []

    def start(config: str = ONE_PERMIT) -> Daemon:
        daemon = Daemon(config)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.cleanup()


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """A daemon with one permit in all."""
    return start_daemon()
