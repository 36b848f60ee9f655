"""The asyncio client against a real turnstiled (each test runs its own event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from conftest import Daemon
from turnstile_client import (AsyncTurnstileClient, BadRequest, Cancelled, ConnectionLost, Lease,
                              LeaseLost, NotFound, ShuttingDown, Timeout, Unavailable, connect)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Runs a test coroutine with an overall deadline."""
    asyncio.run(asyncio.wait_for(coroutine, 60))


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    """Polls an async predicate until it is true; fails the test at the deadline."""
    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


async def waiters(client: AsyncTurnstileClient) -> int:
    """How many requests wait in the daemon."""
    return len((await client.status())["waiting"])


async def lease_holders(client: AsyncTurnstileClient) -> list[str]:
    """The holders of the daemon's leases."""
    return [entry["holder"] for entry in (await client.status())["leases"]]


def test_async_acquire_heartbeat_release(daemon: Daemon) -> None:
    async def body() -> None:
        async with await connect(daemon.socket) as client:
            assert (await client.hello())["server"] == "turnstiled"
            lease = await client.acquire(project="alpha", holder="py", ttl_ms=5000)
            assert isinstance(lease, Lease) and lease.project == "alpha"
            assert await lease_holders(client) == ["py"]
            assert (await client.heartbeat(lease))["ttl_ms"] == 5000
            assert (await client.release(lease))["held_ms"] >= 0
            assert await lease_holders(client) == []
            with pytest.raises(NotFound):
                await client.heartbeat(lease)
    run(body())


def test_async_permit_releases_on_exception_and_heartbeats(daemon: Daemon) -> None:
    async def body() -> None:
        async with await connect(daemon.socket) as client:
            with pytest.raises(RuntimeError, match="boom"):
                async with client.permit(holder="crashing"):
                    assert await lease_holders(client) == ["crashing"]
                    raise RuntimeError("boom")
            assert await lease_holders(client) == []
            async with client.permit(ttl_ms=300, holder="beating") as lease:
                # Five ttls: without heartbeats the lease would be lost well before the deadline.
                assert not await client.wait_lost(lease, timeout=1.5)
                assert await lease_holders(client) == ["beating"]
            assert (await client.status())["metrics"]["expired_total"] == 0
    run(body())


def test_async_waiting_acquire_granted_and_cancelled(daemon: Daemon) -> None:
    async def body() -> None:
        async with await connect(daemon.socket) as holder, await connect(daemon.socket) as waiter:
            held = await holder.acquire(holder="first")
            later = asyncio.create_task(waiter.acquire(holder="second", wait_ms=20_000))
            await until(lambda: _is(waiters(holder), 1), what="the second acquire to wait")
            await holder.release(held)
            granted = await asyncio.wait_for(later, 10)
            assert granted.fence > held.fence

            # Cancelling the awaiting task cancels the waiting acquire in the daemon.
            doomed = asyncio.create_task(holder.acquire(holder="third", wait_ms=60_000))
            await until(lambda: _is(waiters(waiter), 1), what="the third acquire to wait")
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            await until(lambda: _is(waiters(waiter), 0), what="the waiter to go")
            assert await lease_holders(waiter) == ["second"]

            # A client-side timeout cancels too.
            with pytest.raises(Cancelled):
                await holder.acquire(holder="fourth", wait_ms=60_000, timeout=0.3)
            assert await waiters(holder) == 0
    run(body())


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


def test_async_typed_errors(daemon: Daemon) -> None:
    async def body() -> None:
        async with await connect(daemon.socket) as client:
            with pytest.raises(BadRequest) as bad:
                await client.acquire(mode="sometimes")
            assert bad.value.field == "mode"
            async with client.permit(holder="first"):
                with pytest.raises(Unavailable) as refused:
                    await client.acquire(holder="second")
                assert refused.value.reason == "global" and refused.value.limit == 1
                with pytest.raises(Timeout):
                    await client.acquire(holder="second", wait_ms=100)
        with pytest.raises(ConnectionLost):
            await connect(daemon.dir + "/nothing-here")
    run(body())


def test_async_watch_and_lost_lease(daemon: Daemon) -> None:
    async def full() -> None:
        async with await connect(daemon.socket) as watcher, await connect(daemon.socket) as client:
            await watcher.request("watch")
            lease = await client.acquire(holder="watched")
            await client.release(lease)
            seen = []
            async for event in watcher.events(timeout=10):
                if event.get("fence") == lease.fence:
                    seen.append(event["event"])
                if "released" in seen:
                    break
            assert seen == ["granted", "released"]

            told: list[str] = []
            with pytest.raises(LeaseLost) as lost:
                async with client.permit(holder="victim", ttl_ms=10_000, cancel_on_lost=True,
                                         on_lost=lambda _, why: told.append(why)) as held:
                    await watcher.revoke(fence=held.fence)
                    await asyncio.sleep(30)  # cancelled when the lease is lost
            assert lost.value.why == "revoked" and lost.value.fence == held.fence
            assert told == ["revoked"]
            assert await lease_holders(watcher) == []
    run(full())


def test_async_daemon_stopping_loses_the_connection(daemon: Daemon) -> None:
    async def body() -> None:
        async with await connect(daemon.socket) as holder, await connect(daemon.socket) as waiter:
            async with holder.permit(holder="first") as lease:
                later = asyncio.create_task(waiter.acquire(holder="second", wait_ms=60_000))
                await until(lambda: _is(waiters(holder), 1), what="the second acquire to wait")
                await asyncio.to_thread(daemon.stop)
                with pytest.raises((ShuttingDown, ConnectionLost)):
                    await asyncio.wait_for(later, 10)
                assert await holder.wait_lost(lease, timeout=10)
                with pytest.raises(ConnectionLost):
                    await holder.hello()
    run(body())
