"""The asyncio client: the same surface as :class:`TurnstileClient`, with coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from ._common import WAITING_OPS, Lease, LostCallback, default_socket_path, encode, request_fields
from .errors import ConnectionLost, LeaseLost, NotFound, TurnstileError, error_for

__all__ = ["AsyncTurnstileClient", "connect"]

_LIMIT = 1 << 24  # the reader's line limit: status answers can be large


class AsyncTurnstileClient:
    """One asyncio connection to turnstiled. Create it with :func:`connect` (or
    ``await AsyncTurnstileClient.connect(...)``) and use it as ``async with``.

    A task of its own reads every line: answers go to the request awaiting them (matched by
    ``id``), events to :meth:`events`, and ``expired``/``revoked`` mark the held lease lost.

    Cancelling the task that awaits a waiting :meth:`acquire` or :meth:`unpark` sends
    ``cancel`` for that request before the ``CancelledError`` propagates, so the daemon
    drops the waiter (and a grant that crossed the cancel is released).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 socket_path: str, client_name: str) -> None:
        """Wraps an open stream pair; prefer :func:`connect`."""
        self.socket_path: str = socket_path
        self.client_name: str = client_name
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._leases: dict[str, Lease] = {}
        self._closed: str | None = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, socket_path: str | None = None, connect_timeout: float = 5.0,
                      client_name: str = "turnstile_client") -> AsyncTurnstileClient:
        """Connects to the daemon (default socket: :func:`default_socket_path`).

        Raises:
            ConnectionLost: the daemon is not reachable on that socket.
        """
        path = socket_path or default_socket_path()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=_LIMIT), connect_timeout)
        except (OSError, asyncio.TimeoutError) as error:
            raise ConnectionLost(f"cannot connect to turnstiled at {path}: {error} "
                                 "(is it running? set TURNSTILE_SOCKET)") from error
        return cls(reader, writer, path, client_name)

    async def __aenter__(self) -> AsyncTurnstileClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection. The daemon releases every lease bound to it at once."""
        if self._closed is None:
            self._closed = "closed by the client"
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed is not None

    async def _read_loop(self) -> None:
        """Reads lines until EOF: answers to their futures, events to the queue."""
        reason = "the daemon closed the connection"
        try:
            while True:
                raw = await self._reader.readline()
                if not raw:
                    break
                if not raw.strip():
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except (OSError, ValueError) as error:
            reason = f"connection error: {error}"
        if self._closed is None:
            self._closed = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(self._closed))
        self._pending.clear()
        self._events.put_nowait(None)
        for lease in list(self._leases.values()):
            lease._mark_lost("the connection to the daemon closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Hands an answer to its request, or queues an event (marking a lost lease)."""
        if "ok" in message:
            future = self._pending.pop(message.get("id"), None) if "id" in message else None
            if future is not None:
                if not future.done():
                    future.set_result(message)
            elif message.get("ok") is False and "id" not in message:
                self._events.put_nowait(message)
            return
        event = message.get("event")
        if event in ("expired", "revoked") and "lease" in message:
            lease = self._leases.get(message["lease"])
            if lease is not None:
                lease._mark_lost(str(event))
        self._events.put_nowait(message)

    def _send(self, op: str, fields: dict[str, Any]) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Writes one request and registers the future of its answer."""
        if self._closed is not None:
            raise ConnectionLost(self._closed)
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(encode(request_fields(op, request_id, fields)))
        except (OSError, RuntimeError) as error:
            self._pending.pop(request_id, None)
            raise ConnectionLost(f"cannot send {op}: {error}") from error
        return request_id, future

    async def request(self, op: str, /, *, timeout: float | None = 30.0, check: bool = True,
                      **fields: Any) -> dict[str, Any]:
        """Sends one request and returns its answer (as :meth:`TurnstileClient.request`).

        ``timeout``: seconds to wait; for ``acquire``/``unpark`` reaching it cancels the
        request (``cancel`` is sent) and raises :class:`Cancelled`; otherwise
        :class:`ConnectionLost`. Cancelling the awaiting task sends ``cancel`` for a waiting op.

        Raises:
            TurnstileError: the subclass for the answer's error code.
            ConnectionLost: the connection closed, or no answer within ``timeout``.
        """
        request_id, future = self._send(op, fields)
        waiting = op in WAITING_OPS
        try:
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.drain()
            # asyncio.timeout, not wait_for: before 3.12 wait_for can swallow a cancellation
            # that crosses the answer, and a cancelled permit block must see it.
            async with asyncio.timeout(timeout):
                answer = await asyncio.shield(future)
        except TimeoutError:
            if not waiting:
                self._pending.pop(request_id, None)
                raise ConnectionLost(f"no answer to {op} within {timeout} s") from None
            await self._cancel_waiting(request_id)
            answer = await future
        except asyncio.CancelledError:
            if waiting and not future.done():
                self._cancel_in_background(request_id, future)
            raise
        if check and not answer.get("ok"):
            raise error_for(answer)
        return answer

    async def _cancel_waiting(self, request_id: int) -> None:
        """Sends ``cancel`` for a waiting request (a ``not_found`` means it was answered)."""
        with contextlib.suppress(NotFound):
            await self.request("cancel", target=request_id)

    def _cancel_in_background(self, request_id: int, future: asyncio.Future[dict[str, Any]]) -> None:
        """After the awaiting task was cancelled: sends ``cancel`` at once (the daemon handles
        a connection's lines in order, so any later request sees the waiter gone) and releases
        a grant that crossed it."""
        with contextlib.suppress(ConnectionLost):
            self._send("cancel", {"target": request_id})

        def crossed(done: asyncio.Future[dict[str, Any]]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            answer = done.result()
            if answer.get("ok") and "lease" in answer:
                with contextlib.suppress(ConnectionLost):
                    self._send("release", {"lease": answer["lease"]})

        future.add_done_callback(crossed)

    async def cancel(self, request_id: int) -> None:
        """Sends ``cancel`` for a waiting request of this connection.

        Raises:
            NotFound: no waiting request of this connection has that id.
        """
        await self.request("cancel", target=request_id)

    async def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None if none came within ``timeout`` seconds or the connection
        closed."""
        if self._closed is not None and self._events.empty():
            return None
        try:
            async with asyncio.timeout(timeout):
                event = await self._events.get()
        except TimeoutError:
            return None
        if event is None:
            self._events.put_nowait(None)  # stays closed for later readers
        return event

    async def events(self, timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Iterates over this connection's events; ends when the connection closes or no event
        came for ``timeout`` seconds (None: never)."""
        while True:
            event = await self.next_event(timeout)
            if event is None:
                return
            yield event

    async def watch(self, timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Sends ``watch`` and iterates over the watch events, as :meth:`events`."""
        await self.request("watch")
        async for event in self.events(timeout):
            yield event

    async def wait_lost(self, lease: Lease, timeout: float | None = None) -> bool:
        """Waits, without blocking the event loop, until ``lease`` is lost or ``timeout``
        seconds pass; returns ``lease.lost``."""
        if lease.lost:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def lost(_: Lease, __: str) -> None:
            if not future.done():
                future.set_result(None)

        lease.on_lost(lost)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                lease._callbacks.remove(lost)
        return lease.lost

    # -- operations -----------------------------------------------------------------------

    async def hello(self) -> dict[str, Any]:
        """Who answers: ``server``, ``version``, ``protocol``, ``pid``."""
        return await self.request("hello", client=self.client_name)

    async def status(self) -> dict[str, Any]:
        """The daemon's status: limits, use, leases (without tokens), waiters, metrics."""
        return await self.request("status")

    async def acquire(self, *, project: str | None = None, mode: str | None = None,
                      model: str | None = None, fallback: list[str] | str | None = None,
                      ttl_ms: int | None = None, wait_ms: int = 0, holder: str | None = None,
                      timeout: float | None = None, **extra: Any) -> Lease:
        """Takes a lease (as :meth:`TurnstileClient.acquire`). Cancel the awaiting task, or
        give ``timeout``, to cancel a waiting acquire.

        Raises:
            Unavailable, Timeout, Cancelled, BadRequest: as the blocking client.
        """
        answer = await self.request("acquire", timeout=timeout, project=project, mode=mode,
                                    model=model, fallback=fallback, ttl_ms=ttl_ms, wait_ms=wait_ms,
                                    holder=holder, **extra)
        lease = Lease.from_answer(answer)
        if not extra.get("detach"):
            self._leases[lease.lease] = lease
        return lease

    async def heartbeat(self, lease: str | Lease) -> dict[str, Any]:
        """Extends a lease by its ttl. Raises :class:`NotFound` if it is gone."""
        return await self.request("heartbeat", lease=_token(lease))

    async def release(self, lease: str | Lease, *, exit_code: int | None = None,
                      signal: int | None = None) -> dict[str, Any]:
        """Gives a lease back (answer: ``held_ms``); ``exit_code``/``signal`` say how the work
        finished, as in the blocking client."""
        token = _token(lease)
        self._leases.pop(token, None)
        return await self.request("release", lease=token, exit_code=exit_code, signal=signal)

    async def attach(self, lease: str, pid: int | None = None) -> Lease:
        """Binds an existing lease to this connection (its events come here from now on)."""
        answer = await self.request("attach", lease=lease, pid=pid)
        attached = Lease.from_answer(answer, lease=lease)
        self._leases[lease] = attached
        return attached

    async def park(self, lease: str | Lease) -> dict[str, Any]:
        """Parks a lease: permit freed, workspace lock kept (answer: ``fence``)."""
        return await self.request("park", lease=_token(lease))

    async def unpark(self, lease: str | Lease, *, wait_ms: int = 0, notify: bool | None = None,
                     timeout: float | None = None) -> Lease:
        """Takes a permit again for a parked lease, waiting up to ``wait_ms``."""
        answer = await self.request("unpark", timeout=timeout, lease=_token(lease),
                                    wait_ms=wait_ms, notify=notify)
        unparked = Lease.from_answer(answer, lease=_token(lease))
        self._leases[unparked.lease] = unparked
        return unparked

    async def revoke(self, *, fence: int | None = None, lease: str | None = None) -> dict[str, Any]:
        """Admin: ends a lease by fence or token; its holder gets ``revoked``."""
        return await self.request("revoke", fence=fence, lease=lease)

    async def record(self, model: str, *, latency_ms: int, success: bool,
                     session_id: str | None = None, tokens: dict[str, int] | None = None,
                     cost_usd: float | None = None, error: str | None = None,
                     status: int | None = None) -> dict[str, Any]:
        """Records one model call's outcome (answer: ``subscription_limited``)."""
        return await self.request("record", model=model, latency_ms=latency_ms, success=success,
                                  session_id=session_id, tokens=tokens, cost_usd=cost_usd,
                                  error=error, status=status)

    async def usage(self, session_id: str) -> dict[str, Any]:
        """A session's token use and cost by model (the answer's ``usage``)."""
        result: dict[str, Any] = (await self.request("usage", session_id=session_id))["usage"]
        return result

    async def performance(self, model: str | None = None) -> list[dict[str, Any]]:
        """Per-model telemetry snapshots (the answer's ``models``)."""
        result: list[dict[str, Any]] = (await self.request("performance", model=model))["models"]
        return result

    @contextlib.asynccontextmanager
    async def permit(self, *, project: str | None = None, mode: str | None = None,
                     model: str | None = None, fallback: list[str] | str | None = None,
                     ttl_ms: int | None = None, wait_ms: int = 0, holder: str | None = None,
                     timeout: float | None = None, on_lost: LostCallback | None = None,
                     cancel_on_lost: bool = False, **extra: Any) -> AsyncIterator[Lease]:
        """Holds a permit for the duration of an ``async with`` block: acquires a bound lease,
        heartbeats it from a task at a third of its ttl, and releases it at the end (also on an
        exception or cancellation).

        Lease loss: as the blocking client (``lease.lost``, ``lease.check()``, ``on_lost``).
        With ``cancel_on_lost=True`` the task running the block is cancelled when the lease is
        lost, and the block ends with :class:`LeaseLost` instead of ``CancelledError``.

        Raises:
            Unavailable, Timeout, Cancelled: no permit.
            LeaseLost: with ``cancel_on_lost``, when the lease was lost.
        """
        if extra.get("detach"):
            raise ValueError("permit() holds a bound lease; use acquire(detach=True) for a detached one")
        lease = await self.acquire(project=project, mode=mode, model=model, fallback=fallback,
                                   ttl_ms=ttl_ms, wait_ms=wait_ms, holder=holder, timeout=timeout,
                                   **extra)
        if on_lost is not None:
            lease.on_lost(on_lost)
        cancelled_by_loss = False
        task = asyncio.current_task()
        if cancel_on_lost and task is not None:
            def interrupt(_: Lease, __: str) -> None:
                nonlocal cancelled_by_loss
                cancelled_by_loss = True
                task.cancel()
            lease.on_lost(interrupt)
        beats = asyncio.get_running_loop().create_task(self._heartbeat_loop(lease))
        failed = True
        try:
            yield lease
            failed = False
        except asyncio.CancelledError:
            if cancelled_by_loss:
                if task is not None:
                    task.uncancel()
                raise LeaseLost(lease.lost_why or "lost", lease.fence) from None
            raise
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            self._leases.pop(lease.lease, None)
            if not lease.lost and not self.closed:
                with contextlib.suppress(TurnstileError):
                    await self.release(lease.lease, exit_code=1 if failed else 0)

    async def _heartbeat_loop(self, lease: Lease) -> None:
        """Heartbeats ``lease`` every third of its ttl until cancelled or the lease is lost."""
        interval = max(lease.ttl_ms / 3000, 0.05)
        while not lease.lost:
            await asyncio.sleep(interval)
            try:
                await self.request("heartbeat", lease=lease.lease, timeout=max(lease.ttl_ms / 1000, 1.0))
            except ConnectionLost:
                lease._mark_lost("the connection to the daemon closed")
                return
            except NotFound:
                lease._mark_lost("expired")
                return
            except TurnstileError:
                continue


async def connect(socket_path: str | None = None, connect_timeout: float = 5.0,
                  client_name: str = "turnstile_client") -> AsyncTurnstileClient:
    """Connects an :class:`AsyncTurnstileClient` (``async with await connect() as client``)."""
    return await AsyncTurnstileClient.connect(socket_path, connect_timeout, client_name)


def _token(lease: str | Lease) -> str:
    """The token of a lease given as a token or a :class:`Lease`."""
    return lease.lease if isinstance(lease, Lease) else lease
