#!/usr/bin/env python3
"""A fleet of fake coding agents sharing two model slots through turnstiled.

Every agent wants the premium model ``zai/glm-5`` and is willing to fall back to
``anthropic/claude-opus-4``. With the config below each model has one slot, so two agents work
at once (one on each model) and the rest wait for whichever slot frees first. Each agent:

1. connects to the daemon (its own connection, as separate agent processes would),
2. takes a permit with ``model`` and a ``fallback`` chain, waiting for it,
3. prints which model it got and why (``route``: ``primary`` or ``chain``),
4. "works" for a moment (sleeps; a real wrapper would call the model here), checking that the
   lease is still alive,
5. releases the permit (the ``with`` block does it, also on errors).

At the end it prints a summary and checks, against the limits ``status`` reports, that no
model ever had more holders than its limit. It exits 0 when every agent got a model and
the limits held, 1 otherwise.

The daemon's config (e.g. ``~/.config/turnstile/turnstile.toml``)::

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

Run it (the socket comes from ``TURNSTILE_SOCKET``, else the daemon's default)::

    python3 examples/python/agent_wrapper.py --agents 6 --work 0.5

Output (the order and the split between models vary from run to run)::

    agent-1 model=zai/glm-5 route=primary fence=1 waited_ms=0
    agent-2 model=anthropic/claude-opus-4 route=chain fence=2 waited_ms=0
    agent-3 model=zai/glm-5 route=primary fence=3 waited_ms=502
    ...
    max held at once: anthropic/claude-opus-4=1 zai/glm-5=1
    done: 6 agents, models used: anthropic/claude-opus-4=3, zai/glm-5=3
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import threading
import time

# Runs from the source tree without installing: the package is the directory next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from turnstile_client import PermitUnavailable, TurnstileClient, TurnstileError, connect  # noqa: E402


class Fleet:
    """Shared bookkeeping of the agents: what each got, and how many held each model at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.holding: collections.Counter[str] = collections.Counter()
        self.max_holding: collections.Counter[str] = collections.Counter()

    def say(self, line: str) -> None:
        """Prints one whole line (agents print from several threads)."""
        with self.lock:
            print(line, flush=True)

    def started(self, model: str) -> None:
        """An agent started working on `model`."""
        with self.lock:
            self.holding[model] += 1
            self.max_holding[model] = max(self.max_holding[model], self.holding[model])

    def finished(self, model: str) -> None:
        """An agent stopped working on `model` (before it releases the permit)."""
        with self.lock:
            self.holding[model] -= 1


def agent(name: str, args: argparse.Namespace, fleet: Fleet, start: threading.Barrier) -> None:
    """One fake agent: wait for a model permit, work under it, release it."""
    try:
        try:
            client = TurnstileClient(args.socket)
        except TurnstileError:
            start.abort()  # do not leave the others waiting for this agent
            raise
        with client:
            start.wait(timeout=30)  # all agents ask at about the same time
            with client.permit(project=args.project, mode=args.mode, model=args.model, fallback=args.fallback,
                               wait_ms=args.wait_ms, ttl_ms=args.ttl_ms, holder=name) as permit:
                fleet.say(f"{name} model={permit.model} route={permit.route} fence={permit.fence} "
                          f"waited_ms={permit.waited_ms}")
                fleet.started(permit.model or "none")
                try:
                    deadline = time.monotonic() + args.work
                    while time.monotonic() < deadline:
                        permit.check()  # stop at once if the lease was lost
                        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                finally:
                    fleet.finished(permit.model or "none")
                with fleet.lock:
                    fleet.results[name] = permit.model or "none"
    except PermitUnavailable as refusal:
        with fleet.lock:
            fleet.errors[name] = str(refusal)
        fleet.say(f"{name} no permit: {refusal.reason}")
    except (TurnstileError, threading.BrokenBarrierError) as error:
        with fleet.lock:
            fleet.errors[name] = str(error) or type(error).__name__
        fleet.say(f"{name} error: {fleet.errors[name]}")


async def async_agent(name: str, args: argparse.Namespace, fleet: Fleet) -> None:
    """The same agent as :func:`agent`, as a task on the asyncio client (``--asyncio``)."""
    try:
        async with await connect(args.socket) as client:
            async with client.permit(project=args.project, mode=args.mode, model=args.model,
                                     fallback=args.fallback, wait_ms=args.wait_ms, ttl_ms=args.ttl_ms,
                                     holder=name, cancel_on_lost=True) as permit:
                fleet.say(f"{name} model={permit.model} route={permit.route} fence={permit.fence} "
                          f"waited_ms={permit.waited_ms}")
                fleet.started(permit.model or "none")
                try:
                    await asyncio.sleep(args.work)  # a lost lease cancels this (LeaseLost)
                finally:
                    fleet.finished(permit.model or "none")
                fleet.results[name] = permit.model or "none"
    except PermitUnavailable as refusal:
        fleet.errors[name] = str(refusal)
        fleet.say(f"{name} no permit: {refusal.reason}")
    except TurnstileError as error:
        fleet.errors[name] = str(error) or type(error).__name__
        fleet.say(f"{name} error: {fleet.errors[name]}")


async def async_fleet(args: argparse.Namespace, fleet: Fleet) -> None:
    """Runs every agent as a task of one event loop."""
    await asyncio.gather(*(async_agent(f"agent-{number}", args, fleet)
                           for number in range(1, args.agents + 1)))


def model_limits(socket_path: str | None) -> dict[str, int]:
    """The daemon's model pools and their limits, from ``status``."""
    with TurnstileClient(socket_path) as client:
        models = client.status().get("models", {})
    return {pool: info["limit"] for pool, info in models.items() if isinstance(info.get("limit"), int)}


def main() -> int:
    """Runs the fleet; returns the exit code."""
    parser = argparse.ArgumentParser(description="A fleet of fake agents sharing model slots through turnstiled.")
    parser.add_argument("--agents", type=int, default=4, help="how many agents (default 4)")
    parser.add_argument("--work", type=float, default=0.5, help="seconds each agent works (default 0.5)")
    parser.add_argument("--model", default="zai/glm-5", help="the model every agent wants")
    parser.add_argument("--fallback", default="anthropic/claude-opus-4",
                        help="comma-separated fallback models, in order")
    parser.add_argument("--project", default="demo", help="the agents' project")
    parser.add_argument("--mode", default="issue", help="the agents' mode (time, issue, mention, any)")
    parser.add_argument("--wait-ms", type=int, default=60_000, help="how long an agent waits for a permit")
    parser.add_argument("--ttl-ms", type=int, default=3_000, help="the leases' ttl (heartbeats at a third)")
    parser.add_argument("--socket", default=None, help="the daemon's socket (default: $TURNSTILE_SOCKET, ...)")
    parser.add_argument("--asyncio", action="store_true", help="run the agents as asyncio tasks")
    args = parser.parse_args()
    args.fallback = [entry.strip() for entry in args.fallback.split(",") if entry.strip()]

    try:
        limits = model_limits(args.socket)
    except TurnstileError as error:
        print(f"agent_wrapper: {error}", file=sys.stderr)
        return 69

    fleet = Fleet()
    if args.asyncio:
        asyncio.run(async_fleet(args, fleet))
    else:
        start = threading.Barrier(args.agents)
        threads = [threading.Thread(target=agent, args=(f"agent-{number}", args, fleet, start),
                                    name=f"agent-{number}") for number in range(1, args.agents + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    used = collections.Counter(fleet.results.values())
    peak = " ".join(f"{model}={count}" for model, count in sorted(fleet.max_holding.items()))
    print(f"max held at once: {peak}")
    over = [model for model, count in fleet.max_holding.items() if model in limits and count > limits[model]]
    for model in over:
        print(f"LIMIT EXCEEDED: {model} had {fleet.max_holding[model]} holders, limit {limits[model]}")
    summary = ", ".join(f"{model}={count}" for model, count in sorted(used.items()))
    print(f"done: {len(fleet.results)} agents, models used: {summary}")
    return 0 if not fleet.errors and not over and len(fleet.results) == args.agents else 1


if __name__ == "__main__":
    sys.exit(main())
