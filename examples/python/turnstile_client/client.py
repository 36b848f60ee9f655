"""The blocking client: one connection, a reader thread, heartbeats from a background thread."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ._common import WAIT_FOREVER, WAITING_OPS, Lease, LostCallback, default_socket_path, encode, request_fields
from .errors import ConnectionLost, NotFound, TurnstileError, error_for

__all__ = ["TurnstileClient"]


class _Pending:
    """One request waiting for its answer (filled by the reader thread)."""

    __slots__ = ("done", "answer")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None


class TurnstileClient:
    """One blocking connection to turnstiled.

    Args:
        socket_path: the daemon's socket; default: :func:`default_socket_path`.
        connect_timeout: seconds to wait for the connection.
        client_name: sent with ``hello`` by :meth:`hello`.

    Raises:
        ConnectionLost: the daemon is not reachable on that socket.

    Use it as a context manager (or call :meth:`close`): closing the connection releases
    every lease bound to it.

    Threads: every thread may use one client. Writes are serialised by a lock and a single
    reader thread hands each answer to the request that waits for it (matched by ``id``) and
    queues events for :meth:`events` / :meth:`next_event`. So heartbeats from the
    :meth:`permit` thread go on while another thread waits in :meth:`acquire`.
    """

    def __init__(self, socket_path: str | None = None, connect_timeout: float = 5.0,
                 client_name: str = "turnstile_client") -> None:
        self.socket_path: str = socket_path or default_socket_path()
        self.client_name: str = client_name
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as error:
            sock.close()
            raise ConnectionLost(f"cannot connect to turnstiled at {self.socket_path}: {error} "
                                 "(is it running? set TURNSTILE_SOCKET)") from error
        sock.settimeout(None)
        self._sock = sock
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._state = threading.Condition()
        self._pending: dict[Any, _Pending] = {}
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._leases: dict[str, Lease] = {}
        self._closed: str | None = None
        self._reader = threading.Thread(target=self._read_loop, name="turnstile-reader", daemon=True)
        self._reader.start()

    # -- the connection -------------------------------------------------------------------

    def __enter__(self) -> TurnstileClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection. The daemon releases every lease bound to it at once."""
        with self._state:
            if self._closed is None:
                self._closed = "closed by the client"
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed is not None

    def _read_loop(self) -> None:
        """The reader thread: one line at a time, answers to their waiters, events aside."""
        reason = "the daemon closed the connection"
        try:
            with self._sock.makefile("rb") as lines:
                for raw in lines:
                    if not raw.strip():
                        continue
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(message, dict):
                        self._dispatch(message)
        except OSError as error:
            reason = f"connection error: {error}"
        with self._state:
            if self._closed is None:
                self._closed = reason
            for pending in self._pending.values():
                pending.done.set()
            self._pending.clear()
            self._state.notify_all()
            leases = list(self._leases.values())
        for lease in leases:
            lease._mark_lost("the connection to the daemon closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Hands an answer to its request, or files an event (marking a lost lease)."""
        lost: Lease | None = None
        with self._state:
            if "ok" in message:
                pending = self._pending.pop(message.get("id"), None) if "id" in message else None
                if pending is not None:
                    pending.answer = message
                    pending.done.set()
                elif message.get("ok") is False and "id" not in message:
                    # A line about the connection itself (forbidden, too_many, line_too_long).
                    self._events.append(message)
                    self._state.notify_all()
                return
            event = message.get("event")
            if event in ("expired", "revoked") and "lease" in message:
                lost = self._leases.get(message["lease"])
            self._events.append(message)
            self._state.notify_all()
        if lost is not None:
            lost._mark_lost(str(event))

    # -- requests -------------------------------------------------------------------------

    def request(self, op: str, /, *, timeout: float | None = 30.0, check: bool = True,
                cancel: threading.Event | None = None, **fields: Any) -> dict[str, Any]:
        """Sends one request and returns its answer.

        Args:
            op: the op name (``hello``, ``acquire``, ``status``, ...).
            timeout: seconds to wait for the answer; None waits as long as it takes. For a
                waiting op (``acquire``, ``unpark``) reaching it sends ``cancel`` for the
                request and raises :class:`Cancelled`; for any other op it raises
                :class:`ConnectionLost`.
            check: raise on an ``ok: false`` answer (default); False returns it as is.
            cancel: for a waiting op, an event that, once set (by another thread), sends
                ``cancel`` for the request, which then raises :class:`Cancelled`.
            **fields: the request's members; those that are None are left out.

        Returns:
            The answer as a dict (``ok`` is true unless ``check`` is False).

        Raises:
            TurnstileError: the subclass for the answer's error code (:class:`BadRequest`,
                :class:`NotFound`, :class:`Unavailable`, :class:`Timeout`, ...).
            ConnectionLost: the connection closed, or no answer within ``timeout``.
        """
        request_id = next(self._ids)
        line = encode(request_fields(op, request_id, fields))
        pending = _Pending()
        with self._state:
            if self._closed is not None:
                raise ConnectionLost(self._closed)
            self._pending[request_id] = pending
        try:
            with self._write_lock:
                self._sock.sendall(line)
        except OSError as error:
            with self._state:
                self._pending.pop(request_id, None)
            raise ConnectionLost(f"cannot send {op}: {error}") from error
        cancellable = op in WAITING_OPS
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                step = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                if cancel is not None and cancellable:
                    step = 0.05 if step is None else min(step, 0.05)
                if pending.done.wait(step):
                    break
                expired = deadline is not None and time.monotonic() >= deadline
                if cancellable and (expired or (cancel is not None and cancel.is_set())):
                    self._cancel_waiting(request_id, pending)
                    break
                if expired:
                    with self._state:
                        self._pending.pop(request_id, None)
                    raise ConnectionLost(f"no answer to {op} within {timeout} s")
        except KeyboardInterrupt:
            if cancellable and not pending.done.is_set():
                with contextlib.suppress(TurnstileError):
                    self._cancel_waiting(request_id, pending)
            raise
        answer = pending.answer
        if answer is None:
            raise ConnectionLost(self._closed or "the connection closed")
        if check and not answer.get("ok"):
            raise error_for(answer)
        return answer

    def _cancel_waiting(self, request_id: int, pending: _Pending) -> None:
        """Sends ``cancel`` for a waiting request and waits for its final answer (``cancelled``,
        or the grant/refusal that crossed the cancel)."""
        try:
            self.request("cancel", target=request_id)
        except NotFound:
            pass  # answered meanwhile: its answer is on its way
        if not pending.done.wait(30):
            raise ConnectionLost("no answer to a cancelled request within 30 s")

    def cancel(self, request_id: int) -> None:
        """Sends ``cancel`` for the waiting request ``request_id`` of this connection (usually
        simpler: pass ``cancel=`` or ``timeout=`` to :meth:`acquire`).

        Raises:
            NotFound: no waiting request of this connection has that id.
        """
        self.request("cancel", target=request_id)

    def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Returns the next event the daemon sent (``queued``, ``expired``, ``revoked``, or a
        watch event after :meth:`watch`), or None if none came within ``timeout`` seconds or
        the connection closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state:
            while not self._events:
                if self._closed is not None:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._state.wait(left)
            return self._events.popleft()

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Iterates over the events of this connection as they come; ends when the connection
        closes, or when no event came for ``timeout`` seconds (None: never)."""
        while True:
            event = self.next_event(timeout)
            if event is None:
                return
            yield event

    def watch(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Sends ``watch`` and iterates over the events (``granted``, ``released``,
        ``expired``, ...), as :meth:`events`. Use a client of its own for watching."""
        self.request("watch")
        return self.events(timeout)

    # -- operations -----------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Who answers: ``server``, ``version``, ``protocol``, ``pid``."""
        return self.request("hello", client=self.client_name)

    def status(self) -> dict[str, Any]:
        """The daemon's status: limits, use, leases (without tokens), waiters, metrics."""
        return self.request("status")

    def acquire(self, *, project: str | None = None, mode: str | None = None, model: str | None = None,
                fallback: list[str] | str | None = None, ttl_ms: int | None = None, wait_ms: int = 0,
                holder: str | None = None, timeout: float | None = None,
                cancel: threading.Event | None = None, **extra: Any) -> Lease:
        """Takes a lease and returns it.

        The lease is bound to this connection (unless ``detach=True``) and nobody heartbeats it:
        prefer :meth:`permit`, which does. ``wait_ms`` 0 answers at once; :data:`WAIT_FOREVER`
        waits until granted. Other acquire fields (``providers``, ``workspace``, ``tenant``,
        ``priority``, ``pid``, ``detach``, ``notify``) go in ``extra``.

        Args:
            timeout: seconds after which the client gives up waiting: it sends ``cancel`` and
                raises :class:`Cancelled` (None: rely on ``wait_ms`` alone).
            cancel: an event another thread may set to cancel the wait (raises
                :class:`Cancelled`).

        Raises:
            Unavailable: refused at once (``reason`` says which limit blocked).
            Timeout: not granted within ``wait_ms``.
            Cancelled: cancelled through ``timeout`` or ``cancel``.
            BadRequest: a field is invalid (``field`` names it).
        """
        if timeout is None and wait_ms < WAIT_FOREVER:
            limit: float | None = None if cancel is not None else wait_ms / 1000 + 30
        else:
            limit = timeout
        answer = self.request("acquire", timeout=limit, cancel=cancel, project=project, mode=mode,
                              model=model, fallback=fallback, ttl_ms=ttl_ms, wait_ms=wait_ms,
                              holder=holder, **extra)
        lease = Lease.from_answer(answer)
        if not extra.get("detach"):
            self._track(lease)
        return lease

    def _track(self, lease: Lease) -> None:
        """Remembers a lease bound to this connection, so that its events mark it lost."""
        with self._state:
            self._leases[lease.lease] = lease

    def heartbeat(self, lease: str | Lease) -> dict[str, Any]:
        """Extends a lease by its ttl (answer: ``ttl_ms``). Raises :class:`NotFound` if gone."""
        return self.request("heartbeat", lease=_token(lease))

    def release(self, lease: str | Lease, *, exit_code: int | None = None,
                signal: int | None = None) -> dict[str, Any]:
        """Gives a lease back; the answer has ``held_ms`` (and ``draining`` while a process
        group bound to it still runs). ``exit_code`` or ``signal``: how the work finished, so
        that metrics and ``watch`` count a finish, not a reclaim. Raises :class:`NotFound` if
        gone."""
        token = _token(lease)
        with self._state:
            self._leases.pop(token, None)
        return self.request("release", lease=token, exit_code=exit_code, signal=signal)

    def attach(self, lease: str, pid: int | None = None) -> Lease:
        """Binds an existing (e.g. detached) lease to this connection; its ``expired`` and
        ``revoked`` events come here from now on. ``pid``: release it when that process exits."""
        answer = self.request("attach", lease=lease, pid=pid)
        attached = Lease.from_answer(answer, lease=lease)
        self._track(attached)
        return attached

    def park(self, lease: str | Lease) -> dict[str, Any]:
        """Parks a lease: its permit is freed but its workspace lock kept (answer: ``fence``)."""
        return self.request("park", lease=_token(lease))

    def unpark(self, lease: str | Lease, *, wait_ms: int = 0, notify: bool | None = None,
               timeout: float | None = None, cancel: threading.Event | None = None) -> Lease:
        """Takes a permit again for a parked lease (waiting up to ``wait_ms``); as
        :meth:`acquire` for ``timeout``, ``cancel`` and the errors."""
        if timeout is None and wait_ms < WAIT_FOREVER:
            limit: float | None = None if cancel is not None else wait_ms / 1000 + 30
        else:
            limit = timeout
        answer = self.request("unpark", timeout=limit, cancel=cancel, lease=_token(lease),
                              wait_ms=wait_ms, notify=notify)
        unparked = Lease.from_answer(answer, lease=_token(lease))
        self._track(unparked)
        return unparked

    def revoke(self, *, fence: int | None = None, lease: str | None = None) -> dict[str, Any]:
        """Admin: ends a lease by fence or token; its holder gets ``revoked``."""
        return self.request("revoke", fence=fence, lease=lease)

    def record(self, model: str, *, latency_ms: int, success: bool, session_id: str | None = None,
               tokens: dict[str, int] | None = None, cost_usd: float | None = None,
               error: str | None = None, status: int | None = None) -> dict[str, Any]:
        """Records one model call's outcome (answer: ``subscription_limited``)."""
        return self.request("record", model=model, latency_ms=latency_ms, success=success,
                            session_id=session_id, tokens=tokens, cost_usd=cost_usd, error=error,
                            status=status)

    def usage(self, session_id: str) -> dict[str, Any]:
        """A session's token use and cost by model (the answer's ``usage``)."""
        result: dict[str, Any] = self.request("usage", session_id=session_id)["usage"]
        return result

    def performance(self, model: str | None = None) -> list[dict[str, Any]]:
        """Per-model telemetry snapshots (the answer's ``models``)."""
        result: list[dict[str, Any]] = self.request("performance", model=model)["models"]
        return result

    @contextlib.contextmanager
    def permit(self, *, project: str | None = None, mode: str | None = None, model: str | None = None,
               fallback: list[str] | str | None = None, ttl_ms: int | None = None, wait_ms: int = 0,
               holder: str | None = None, timeout: float | None = None,
               cancel: threading.Event | None = None, on_lost: LostCallback | None = None,
               **extra: Any) -> Iterator[Lease]:
        """Holds a permit for the duration of a ``with`` block.

        Acquires a lease bound to this connection (as :meth:`acquire`), heartbeats it from a
        background thread at a third of its ttl, yields the :class:`Lease`, and releases it
        when the block ends, normally or by an exception.

        If the lease is lost meanwhile (``expired``/``revoked`` event, heartbeat answered
        ``not_found``, connection closed), ``lease.lost`` becomes True, ``on_lost(lease, why)``
        runs in the reader or heartbeat thread, ``lease.wait_lost()`` returns, and
        ``lease.check()`` raises :class:`LeaseLost`. A thread cannot be interrupted safely,
        so the block itself is not: call ``check()`` between steps, or use ``on_lost``.

        Raises:
            Unavailable, Timeout, Cancelled: no permit, as :meth:`acquire`.
        """
        if extra.get("detach"):
            raise ValueError("permit() holds a bound lease; use acquire(detach=True) for a detached one")
        lease = self.acquire(project=project, mode=mode, model=model, fallback=fallback, ttl_ms=ttl_ms,
                             wait_ms=wait_ms, holder=holder, timeout=timeout, cancel=cancel, **extra)
        if on_lost is not None:
            lease.on_lost(on_lost)
        stop = threading.Event()
        beats = threading.Thread(target=self._heartbeat_loop, args=(lease, stop),
                                 name=f"turnstile-heartbeat-{lease.fence}", daemon=True)
        beats.start()
        failed = True
        try:
            yield lease
            failed = False
        finally:
            stop.set()
            beats.join()
            with self._state:
                self._leases.pop(lease.lease, None)
            if not lease.lost and not self.closed:
                # Best effort: if it is already gone (or the connection with it), nothing is held.
                # The block's outcome is the work's: 0 when it ended normally, 1 on an exception.
                with contextlib.suppress(TurnstileError):
                    self.release(lease.lease, exit_code=1 if failed else 0)

    def _heartbeat_loop(self, lease: Lease, stop: threading.Event) -> None:
        """Heartbeats ``lease`` every third of its ttl until ``stop`` is set or it is lost."""
        interval = max(lease.ttl_ms / 3000, 0.05)
        while not stop.wait(interval):
            if lease.lost:
                return
            try:
                # No answer within a whole ttl means the lease cannot be alive any more.
                self.request("heartbeat", lease=lease.lease, timeout=max(lease.ttl_ms / 1000, 1.0))
            except ConnectionLost:
                lease._mark_lost("the connection to the daemon closed")
                return
            except NotFound:
                lease._mark_lost("expired")
                return
            except TurnstileError:
                continue  # e.g. shutting_down: the connection closing will tell


def _token(lease: str | Lease) -> str:
    """The token of a lease given as a token or a :class:`Lease`."""
    return lease.lease if isinstance(lease, Lease) else lease
