"""A small, dependency-free Python client for turnstiled (standard library only, Python 3.11+).

Turnstile's daemon speaks newline-delimited JSON on a Unix socket (see protocol/PROTOCOL.md).
This module wraps one connection:

    from turnstile_client import TurnstileClient, PermitUnavailable

    with TurnstileClient() as client:
        try:
            with client.permit(project="alpha", mode="issue", model="zai/glm-5",
                               fallback=["anthropic/claude-opus-4"], wait_ms=60_000) as permit:
                print(permit.model, permit.route, permit.fence)
                run_the_agent(model=permit.model)
        except PermitUnavailable as refusal:
            print("no permit:", refusal.reason)

A permit taken with `permit()` is *bound* to the client's connection: if this process dies or
the connection closes, the daemon releases it at once. While the `with` block runs, a
background thread heartbeats the lease at a third of its ttl; the lease is released when the
block ends, also when it ends with an exception.

Threads: one connection is shared by every thread that uses the client. Writes are serialised
by a lock and a single reader thread reads every line the daemon sends, handing each answer to
the request that waits for it (matched by `id`) and keeping events aside. So the heartbeat
thread and the main thread never interleave bytes on the socket, and a waiting `acquire` in one
thread does not hold up another thread's heartbeats.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = [
    "TurnstileClient",
    "Permit",
    "TurnstileError",
    "PermitUnavailable",
    "ConnectionLost",
    "LeaseLost",
    "default_socket_path",
]

#: What the daemon's `wait_ms` understands as "wait forever" (2^53-1, as the CLI sends).
WAIT_FOREVER = 9_007_199_254_740_991


def default_socket_path(environ: dict[str, str] | None = None) -> str:
    """Returns the socket path the daemon uses by default.

    In order: ``$TURNSTILE_SOCKET``, ``$XDG_RUNTIME_DIR/turnstile.sock``, else
    ``/tmp/turnstile-<uid>/turnstile.sock`` (empty variables count as unset), exactly as
    ``turnstiled`` and ``turnstile`` resolve it.
    """
    env = os.environ if environ is None else environ
    named = env.get("TURNSTILE_SOCKET")
    if named:
        return named
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return runtime + "/turnstile.sock"
    return f"/tmp/turnstile-{os.getuid()}/turnstile.sock"


class TurnstileError(Exception):
    """The daemon answered ``ok: false``.

    Attributes:
        code: the error code (``bad_request``, ``not_found``, ``unavailable``, ...).
        message: the daemon's human-readable text (not for parsing).
        answer: the whole answer, as a dict.
    """

    def __init__(self, answer: dict[str, Any]):
        self.answer = answer
        self.code: str = answer.get("error", "error")
        self.message: str = answer.get("message", "")
        super().__init__(f"{self.code}: {self.message}")


class PermitUnavailable(TurnstileError):
    """An ``acquire`` was not granted: refused at once (``unavailable``) or not within its
    ``wait_ms`` (``timeout``).

    Attributes:
        reason: the limit that blocked it: ``paused``, ``rate_limit``, ``workspace_lock``,
            ``mode``, ``project``, ``mention``, ``proportional``, ``model`` or ``global``.
        limit, in_use: the blocking limit and its use, where the reason has one (else None).
        retry_after_ms: when the block is expected to lift, where known (else None).
        timed_out: True for ``timeout`` (it waited), False for ``unavailable``.
    """

    def __init__(self, answer: dict[str, Any]):
        super().__init__(answer)
        self.reason: str | None = answer.get("reason")
        self.limit: int | None = answer.get("limit")
        self.in_use: int | None = answer.get("in_use")
        self.retry_after_ms: int | None = answer.get("retry_after_ms")
        self.timed_out: bool = self.code == "timeout"

    def __str__(self) -> str:
        detail = f"no permit ({self.code}): {self.reason}"
        if self.limit is not None:
            detail += f" (limit {self.limit}, in use {self.in_use})"
        if self.retry_after_ms is not None:
            detail += f", retry after {self.retry_after_ms} ms"
        return detail


class ConnectionLost(TurnstileError):
    """The connection to the daemon closed (or could not be opened, or an answer did not come
    in time). Every bound lease of the connection is gone with it."""

    def __init__(self, message: str):
        super().__init__({"ok": False, "error": "connection_lost", "message": message})


class LeaseLost(TurnstileError):
    """A held lease ended without being released: it expired or an admin revoked it.
    Whatever it protected must stop (another holder may already have the slot)."""

    def __init__(self, why: str, fence: int | None):
        super().__init__({"ok": False, "error": "lease_lost", "message": f"lease lost ({why})"})
        self.why = why
        self.fence = fence


@dataclass
class Permit:
    """A granted permit, as yielded by :meth:`TurnstileClient.permit`.

    Attributes:
        lease: the token (32 hex digits); the capability to heartbeat or release the lease.
            Keep it secret: whoever has it may release your permit.
        fence: a number that rises with every grant; give it to resources that reject stale
            holders.
        ttl_ms: the lease's ttl; the client heartbeats at a third of it.
        model: the granted model pool as ``provider/model``, or None if no model was asked for.
        route: why that model: ``primary``, ``chain``, ``capability`` or ``cli`` (None without a
            model).
        waited_ms: how long the acquire waited.
        project, mode: the lease's project and mode.
        answer: the daemon's whole answer.
    """

    lease: str
    fence: int
    ttl_ms: int
    model: str | None
    route: str | None
    waited_ms: int
    project: str
    mode: str
    answer: dict[str, Any]
    _lost: threading.Event = field(default_factory=threading.Event, repr=False)
    _lost_why: str | None = field(default=None, repr=False)

    @property
    def provider(self) -> str | None:
        """The granted model's provider (the part before the first ``/``), or None."""
        return self.model.split("/", 1)[0] if self.model else None

    @property
    def lost(self) -> bool:
        """True once the lease has expired or been revoked (the block should stop its work)."""
        return self._lost.is_set()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Blocks until the lease is lost or ``timeout`` seconds pass; returns :attr:`lost`.
        Useful in a watchdog thread that must stop the work when the permit goes."""
        return self._lost.wait(timeout)

    def check(self) -> None:
        """Raises :class:`LeaseLost` if the lease is gone; call it between steps of long work."""
        if self._lost.is_set():
            raise LeaseLost(self._lost_why or "lost", self.fence)

    def _mark_lost(self, why: str) -> None:
        if not self._lost.is_set():
            self._lost_why = why
            self._lost.set()


class _Pending:
    """One request waiting for its answer (filled by the reader thread)."""

    __slots__ = ("done", "answer")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None


class TurnstileClient:
    """One connection to turnstiled.

    Args:
        socket_path: the daemon's socket; default: :func:`default_socket_path`.
        connect_timeout: seconds to wait for the connection.
        client_name: sent with ``hello`` by :meth:`hello`.

    Raises:
        ConnectionLost: the daemon is not reachable on that socket.

    Use it as a context manager (or call :meth:`close`): closing the connection releases
    every lease bound to it.
    """

    def __init__(self, socket_path: str | None = None, connect_timeout: float = 5.0,
                 client_name: str = "turnstile_client.py"):
        self.socket_path = socket_path or default_socket_path()
        self.client_name = client_name
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
        self._permits: dict[str, Permit] = {}
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
            self._state.notify_all()
            for permit in self._permits.values():
                permit._mark_lost("the connection to the daemon closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Hands an answer to its request, or files an event."""
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
                permit = self._permits.get(message["lease"])
                if permit is not None:
                    permit._mark_lost(event)
            self._events.append(message)
            self._state.notify_all()

    # -- requests -------------------------------------------------------------------------

    def request(self, op: str, /, *, timeout: float | None = 30.0, check: bool = True,
                **fields: Any) -> dict[str, Any]:
        """Sends one request and returns its answer.

        Args:
            op: the op name (``hello``, ``acquire``, ``status``, ...).
            timeout: seconds to wait for the answer; None waits for as long as it takes
                (a waiting ``acquire`` answers only when granted or timed out).
            check: raise on an ``ok: false`` answer (default); False returns it as is.
            **fields: the request's members; those that are None are left out.

        Returns:
            The answer as a dict (``ok`` is true unless ``check`` is False).

        Raises:
            PermitUnavailable: an ``acquire``/``unpark`` answered ``unavailable`` or ``timeout``.
            TurnstileError: any other ``ok: false`` answer.
            ConnectionLost: the connection closed, or no answer within ``timeout``.
        """
        request_id = next(self._ids)
        message = {"op": op, "id": request_id}
        message.update({key: value for key, value in fields.items() if value is not None})
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
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
        if not pending.done.wait(timeout):
            with self._state:
                self._pending.pop(request_id, None)
            raise ConnectionLost(f"no answer to {op} within {timeout} s")
        answer = pending.answer
        if answer is None:
            raise ConnectionLost(self._closed or "the connection closed")
        if check and not answer.get("ok"):
            if answer.get("error") in ("unavailable", "timeout") and "reason" in answer:
                raise PermitUnavailable(answer)
            raise TurnstileError(answer)
        return answer

    def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Returns the next event the daemon sent (``queued``, ``expired``, ``revoked``, or a
        watch event after :meth:`request` ``("watch")``), or None if none came within
        ``timeout`` seconds or the connection closed."""
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

    # -- conveniences ---------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Who answers: ``server``, ``version``, ``protocol``, ``pid``."""
        return self.request("hello", client=self.client_name)

    def status(self) -> dict[str, Any]:
        """The daemon's status: limits, use, leases (without tokens), waiters, metrics."""
        return self.request("status")

    def acquire(self, *, project: str | None = None, mode: str | None = None, model: str | None = None,
                fallback: list[str] | str | None = None, ttl_ms: int | None = None, wait_ms: int = 0,
                holder: str | None = None, **extra: Any) -> dict[str, Any]:
        """Takes a lease and returns the daemon's answer (``lease``, ``fence``, ``model``, ...).

        The lease is bound to this connection (unless ``detach=True`` is passed in ``extra``)
        and nobody heartbeats it: prefer :meth:`permit`, which does. ``wait_ms`` 0 answers at
        once; :data:`WAIT_FOREVER` waits until granted. Other acquire fields (``providers``,
        ``workspace``, ``tenant``, ``priority``, ``pid``, ``detach``, ``notify``) go in
        ``extra``.

        Raises:
            PermitUnavailable: refused at once, or not granted within ``wait_ms``.
        """
        timeout = None if wait_ms >= WAIT_FOREVER else wait_ms / 1000 + 30
        return self.request("acquire", timeout=timeout, project=project, mode=mode, model=model,
                            fallback=fallback, ttl_ms=ttl_ms, wait_ms=wait_ms, holder=holder, **extra)

    def heartbeat(self, lease: str) -> dict[str, Any]:
        """Extends a lease by its ttl. Raises TurnstileError (``not_found``) if it is gone."""
        return self.request("heartbeat", lease=lease)

    def release(self, lease: str) -> dict[str, Any]:
        """Gives a lease back; the answer has ``held_ms``."""
        return self.request("release", lease=lease)

    @contextlib.contextmanager
    def permit(self, *, project: str | None = None, mode: str | None = None, model: str | None = None,
               fallback: list[str] | str | None = None, ttl_ms: int | None = None, wait_ms: int = 0,
               holder: str | None = None, **extra: Any) -> Iterator[Permit]:
        """Holds a permit for the duration of a ``with`` block.

        Acquires a lease bound to this connection (waiting up to ``wait_ms``), heartbeats it
        from a background thread at a third of its ttl, yields a :class:`Permit`, and releases
        the lease when the block ends, whether normally or by an exception. If the lease is
        lost meanwhile (expired, revoked, connection closed), ``permit.lost`` becomes True and
        ``permit.check()`` raises :class:`LeaseLost`; the block is not interrupted.

        Args:
            project: the project (default ``__global__``).
            mode: ``time``, ``issue``, ``mention`` or ``any`` (default).
            model: the model as ``provider/model``.
            fallback: models to fall back to, in order (a list or a comma-separated string).
            ttl_ms: the lease's ttl (default: the daemon's ``default_ttl_ms``).
            wait_ms: how long to wait for a permit (0: not at all; :data:`WAIT_FOREVER`).
            holder: a label shown by ``status`` and ``watch``.
            **extra: other acquire fields (``providers``, ``workspace``, ``tenant``,
                ``priority``, ``pid``, ``notify``).

        Raises:
            PermitUnavailable: no permit (``reason`` says which limit blocked).
        """
        if extra.get("detach"):
            raise ValueError("permit() holds a bound lease; use acquire(detach=True) for a detached one")
        answer = self.acquire(project=project, mode=mode, model=model, fallback=fallback, ttl_ms=ttl_ms,
                              wait_ms=wait_ms, holder=holder, **extra)
        permit = Permit(lease=answer["lease"], fence=answer["fence"], ttl_ms=answer["ttl_ms"],
                        model=answer.get("model"), route=answer.get("route"),
                        waited_ms=answer.get("waited_ms", 0), project=answer.get("project", project or "__global__"),
                        mode=answer.get("mode", mode or "any"), answer=answer)
        with self._state:
            self._permits[permit.lease] = permit
        stop = threading.Event()
        beats = threading.Thread(target=self._heartbeat_loop, args=(permit, stop),
                                 name=f"turnstile-heartbeat-{permit.fence}", daemon=True)
        beats.start()
        try:
            yield permit
        finally:
            stop.set()
            beats.join()
            with self._state:
                self._permits.pop(permit.lease, None)
            if not permit.lost and not self.closed:
                # Best effort: if it is already gone (or the connection with it), nothing is held.
                with contextlib.suppress(TurnstileError):
                    self.release(permit.lease)

    def _heartbeat_loop(self, permit: Permit, stop: threading.Event) -> None:
        """Heartbeats ``permit`` every third of its ttl until ``stop`` is set or it is lost."""
        interval = max(permit.ttl_ms / 3000, 0.05)
        while not stop.wait(interval):
            try:
                # No answer within a whole ttl means the lease cannot be alive any more.
                self.request("heartbeat", lease=permit.lease, timeout=max(permit.ttl_ms / 1000, 1.0))
            except ConnectionLost:
                permit._mark_lost("the connection to the daemon closed")
                return
            except TurnstileError as error:
                if error.code == "not_found":
                    permit._mark_lost("expired")
                    return
