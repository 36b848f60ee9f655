"""The fleet example, agent_wrapper.py, threaded and on asyncio, against a real turnstiled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Daemon

WRAPPER = Path(__file__).resolve().parents[1] / "agent_wrapper.py"

TWO_MODELS = """
[[providers]]
name = "zai"
models = ["glm-5"]

[[providers]]
name = "anthropic"
models = ["claude-opus-4"]

[[models]]
name = "zai/glm-5"
concurrency_limit = 1

[[models]]
name = "anthropic/claude-opus-4"
concurrency_limit = 1
"""


@pytest.mark.parametrize("flavour", [[], ["--asyncio"]], ids=["threads", "asyncio"])
def test_the_fleet_shares_two_model_slots(start_daemon: Callable[..., Daemon], flavour: list[str]) -> None:
    daemon = start_daemon(TWO_MODELS)
    run = subprocess.run([sys.executable, "-u", str(WRAPPER), "--agents", "4", "--work", "0.3", *flavour],
                         env={**os.environ, "TURNSTILE_SOCKET": daemon.socket}, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    agents = [line for line in run.stdout.splitlines() if line.startswith("agent-")]
    assert len(agents) == 4, run.stdout
    assert any("route=chain" in line for line in agents), run.stdout
    assert "max held at once: anthropic/claude-opus-4=1 zai/glm-5=1" in run.stdout
    assert "done: 4 agents" in run.stdout
