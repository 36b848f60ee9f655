"""The blocking client against a real turnstiled."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from conftest import Daemon, wait_until
from turnstile_client import (BadRequest, Cancelled, ConnectionLost, Lease, LeaseLost, NotFound,
                              PermitUnavailable, ShuttingDown, Timeout, TurnstileClient, TurnstileError,
                              Unavailable, UnknownOp)


def waiting(client: TurnstileClient) -> list[dict[str, Any]]:
    """The daemon's waiters."""
    result: list[dict[str, Any]] = client.status()["waiting"]
    return result


def leases(client: TurnstileClient) -> list[dict[str, Any]]:
    """The daemon's leases."""
    result: list[dict[str, Any]] = client.status()["leases"]
    return result


class Background:
    """Runs a call in a thread and keeps its result or exception."""

    def __init__(self, call: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Any) -> None:
        try:
            self.result = call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            self.error = error

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background call did not end"


def test_hello_acquire_heartbeat_release(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        hello = client.hello()
        assert hello["server"] == "turnstiled" and hello["protocol"] == 1
        lease = client.acquire(project="alpha", mode="issue", holder="py", ttl_ms=5000)
        assert isinstance(lease, Lease) and len(lease.lease) == 32
        assert (lease.project, lease.mode, lease.ttl_ms) == ("alpha", "issue", 5000)
        assert [entry["fence"] for entry in leases(client)] == [lease.fence]
        assert client.heartbeat(lease)["ttl_ms"] == 5000
        assert client.release(lease)["held_ms"] >= 0
        assert leases(client) == []
        with pytest.raises(NotFound):
            client.heartbeat(lease)


def test_permit_releases_on_exception(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        with pytest.raises(RuntimeError, match="boom"):
            with client.permit(holder="crashing") as lease:
                assert [entry["holder"] for entry in leases(client)] == ["crashing"]
                raise RuntimeError("boom")
        assert leases(client) == []
        assert not lease.lost
        # The permit is free again: a second acquire is granted at once.
        client.release(client.acquire())


def test_heartbeats_keep_a_short_ttl_lease_alive(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        with client.permit(ttl_ms=300, holder="beating") as lease:
            # Five ttls: without heartbeats the lease would expire and wait_lost would return True.
            assert not lease.wait_lost(timeout=1.5)
            assert [entry["fence"] for entry in leases(client)] == [lease.fence]
            client.heartbeat(lease)
        assert client.status()["metrics"]["expired_total"] == 0


def test_a_waiting_acquire_is_granted_when_another_releases(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as holder, TurnstileClient(daemon.socket) as waiter:
        held = holder.acquire(holder="first")
        later = Background(lambda: waiter.acquire(holder="second", wait_ms=20_000))
        wait_until(lambda: len(waiting(holder)) == 1, what="the second acquire to wait")
        holder.release(held)
        later.join()
        assert later.error is None, later.error
        assert isinstance(later.result, Lease) and later.result.fence > held.fence
        assert [entry["holder"] for entry in leases(holder)] == ["second"]


def test_cancelling_a_waiting_acquire_with_an_event(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as holder, TurnstileClient(daemon.socket) as waiter:
        holder.acquire(holder="first")
        stop = threading.Event()
        later = Background(lambda: waiter.acquire(holder="second", wait_ms=60_000, cancel=stop))
        wait_until(lambda: len(waiting(holder)) == 1, what="the second acquire to wait")
        stop.set()
        later.join()
        assert isinstance(later.error, Cancelled), later.error
        assert waiting(holder) == []
        assert [entry["holder"] for entry in leases(holder)] == ["first"]


def test_a_client_timeout_cancels_a_waiting_acquire(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as holder, TurnstileClient(daemon.socket) as waiter:
        holder.acquire(holder="first")
        with pytest.raises(Cancelled):
            waiter.acquire(holder="second", wait_ms=60_000, timeout=0.3)
        assert waiting(holder) == []
        # The connection is still usable.
        assert waiter.hello()["server"] == "turnstiled"


def test_typed_errors(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        with pytest.raises(BadRequest) as bad:
            client.acquire(mode="sometimes")
        assert bad.value.code == "bad_request" and bad.value.field == "mode"
        with pytest.raises(NotFound):
            client.release("0" * 32)
        with pytest.raises(UnknownOp):
            client.request("frobnicate")
        with client.permit(holder="first"):
            with pytest.raises(Unavailable) as refused:
                client.acquire(holder="second")
            assert refused.value.reason == "global"
            assert (refused.value.limit, refused.value.in_use) == (1, 1)
            assert isinstance(refused.value, PermitUnavailable) and not refused.value.timed_out
            with pytest.raises(Timeout) as timed_out:
                client.acquire(holder="second", wait_ms=100)
            assert timed_out.value.reason == "global" and timed_out.value.timed_out
            assert isinstance(timed_out.value, PermitUnavailable)
    with pytest.raises(ConnectionLost) as unreachable:
        TurnstileClient(daemon.dir + "/nothing-here")
    assert unreachable.value.code == "connection_lost"


def test_watch_sees_granted_and_released(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as watcher, TurnstileClient(daemon.socket) as client:
        events = watcher.watch(timeout=10)
        lease = client.acquire(holder="watched", project="alpha")
        client.release(lease)
        seen = []
        for event in events:
            if event.get("fence") == lease.fence:
                seen.append(event["event"])
            if "released" in seen:
                break
        assert seen == ["granted", "released"]


def test_a_revoked_lease_is_lost(daemon: Daemon) -> None:
    told: list[str] = []
    with TurnstileClient(daemon.socket) as client, TurnstileClient(daemon.socket) as admin:
        with client.permit(holder="victim", ttl_ms=10_000,
                           on_lost=lambda lease, why: told.append(why)) as lease:
            admin.revoke(fence=lease.fence)
            assert lease.wait_lost(timeout=10)
            assert lease.lost_why == "revoked" and told == ["revoked"]
            with pytest.raises(LeaseLost) as lost:
                lease.check()
            assert lost.value.fence == lease.fence
        assert leases(admin) == []


def test_an_expired_lease_is_lost(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        lease = client.acquire(holder="silent", ttl_ms=200)  # nobody heartbeats it
        assert lease.wait_lost(timeout=10)
        assert lease.lost_why == "expired"
        event = client.next_event(timeout=5)
        assert event is not None and event["event"] == "expired" and event["lease"] == lease.lease


def test_the_daemon_stopping_loses_the_connection(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as holder, TurnstileClient(daemon.socket) as waiter:
        with holder.permit(holder="first") as lease:
            later = Background(lambda: waiter.acquire(holder="second", wait_ms=60_000))
            wait_until(lambda: len(waiting(holder)) == 1, what="the second acquire to wait")
            daemon.stop()
            later.join()
            assert isinstance(later.error, (ShuttingDown, ConnectionLost)), later.error
            assert lease.wait_lost(timeout=10)
            with pytest.raises(ConnectionLost):
                holder.hello()
            assert holder.closed


def test_park_unpark_attach_record_usage_performance(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client, TurnstileClient(daemon.socket) as other:
        lease = client.acquire(holder="parker", detach=True, ttl_ms=10_000)
        assert client.park(lease)["fence"] == lease.fence
        assert other.acquire(holder="meanwhile").fence > lease.fence  # the permit was freed
        with pytest.raises(Unavailable):
            client.unpark(lease)
        other.close()
        unparked = client.unpark(lease, wait_ms=10_000)
        assert unparked.fence == lease.fence
        attached = client.attach(lease.lease)
        assert attached.fence == lease.fence and attached.lease == lease.lease
        client.release(lease)
        answer = client.record("zai/glm-5", latency_ms=12, success=True, session_id="s1",
                               tokens={"input": 10, "output": 5, "total": 15}, cost_usd=0.5)
        assert answer["subscription_limited"] is False
        assert client.usage("s1")["totals"]["total_tokens"] == 15
        [snapshot] = client.performance("zai/glm-5")
        assert snapshot["successful_completions"] == 1
        with pytest.raises(TurnstileError):
            client.usage("")


def test_a_permit_block_says_how_it_finished_and_pools_go_through(daemon: Daemon) -> None:
    with TurnstileClient(daemon.socket) as client:
        with client.permit(holder="fine", pools=["build"], pool_limits={"build": 1}):
            assert client.status()["pools"] == {"build": {"limit": 1, "in_use": 1, "waiting": 0, "ad_hoc": True}}
        with pytest.raises(RuntimeError):
            with client.permit(holder="failing"):
                raise RuntimeError("boom")
        metrics = client.status()["metrics"]
        assert metrics["finished_success_total"] == 1 and metrics["finished_failure_total"] == 1
        assert metrics["reclaimed_total"] == 0
        lease = client.acquire()
        assert "draining" not in client.release(lease, exit_code=3)
        with pytest.raises(BadRequest):
            client.acquire(projct="typo")
