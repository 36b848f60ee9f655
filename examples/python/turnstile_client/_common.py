"""What the blocking and the asyncio clients share: the socket path, leases, encoding."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import LeaseLost

__all__ = ["WAIT_FOREVER", "default_socket_path", "Lease", "LostCallback"]

#: What the daemon's ``wait_ms`` understands as "wait forever" (2^53-1, as the CLI sends).
WAIT_FOREVER = 9_007_199_254_740_991

#: The ops whose answer may wait (and that ``cancel`` can cancel).
WAITING_OPS = frozenset({"acquire", "unpark"})


def default_socket_path(environ: Mapping[str, str] | None = None) -> str:
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


def encode(message: dict[str, Any]) -> bytes:
    """One request as a compact JSON line."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def request_fields(op: str, request_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request object: ``op``, ``id`` and the fields that are not None."""
    message: dict[str, Any] = {"op": op, "id": request_id}
    message.update({key: value for key, value in fields.items() if value is not None})
    return message


#: A callback told that a lease was lost: ``callback(lease, why)``.
LostCallback = Callable[["Lease", str], None]


@dataclass
class Lease:
    """A granted permit (the answer to ``acquire``, ``unpark`` or ``attach``).

    Attributes:
        lease: the token (32 hex digits); the capability to heartbeat or release the lease.
            Keep it secret: whoever has it may release your permit.
        fence: a number that rises with every grant; give it to resources that reject stale
            holders.
        ttl_ms: the lease's ttl; :meth:`permit` heartbeats at a third of it.
        model: the granted model pool as ``provider/model``, or None if no model was asked for.
        route: why that model: ``primary``, ``chain``, ``capability`` or ``cli`` (or None).
        waited_ms: how long the acquire waited.
        project, mode: the lease's project and mode.
        answer: the daemon's whole answer.

    Lease loss: when the daemon sends ``expired`` or ``revoked`` for this lease to the
    connection that holds it, or that connection closes, :attr:`lost` becomes True,
    :attr:`lost_why` says why, every callback given to :meth:`on_lost` runs (in the client's
    reader thread, or in the event loop for the asyncio client), and :meth:`check` raises
    :class:`LeaseLost`.
    """

    lease: str
    fence: int
    ttl_ms: int
    model: str | None = None
    route: str | None = None
    waited_ms: int = 0
    project: str = "__global__"
    mode: str = "any"
    answer: dict[str, Any] = field(default_factory=dict, repr=False)
    _lost: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _lost_why: str | None = field(default=None, repr=False, compare=False)
    _callbacks: list[LostCallback] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_answer(cls, answer: dict[str, Any], lease: str | None = None) -> Lease:
        """Builds a lease from an ``acquire``/``unpark``/``attach`` answer."""
        return cls(lease=str(answer.get("lease", lease or "")), fence=int(answer["fence"]),
                   ttl_ms=int(answer.get("ttl_ms", 0)), model=answer.get("model"),
                   route=answer.get("route"), waited_ms=int(answer.get("waited_ms", 0)),
                   project=str(answer.get("project", "__global__")),
                   mode=str(answer.get("mode", "any")), answer=answer)

    @property
    def provider(self) -> str | None:
        """The granted model's provider (the part before the first ``/``), or None."""
        return self.model.split("/", 1)[0] if self.model else None

    @property
    def lost(self) -> bool:
        """True once the lease has expired, been revoked, or lost its connection."""
        return self._lost.is_set()

    @property
    def lost_why(self) -> str | None:
        """Why the lease was lost (``expired``, ``revoked``, or about the connection), or None."""
        return self._lost_why

    def on_lost(self, callback: LostCallback) -> None:
        """Registers ``callback(lease, why)`` to run once when the lease is lost (at once if it
        already is)."""
        if self._lost.is_set():
            callback(self, self._lost_why or "lost")
        else:
            self._callbacks.append(callback)

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Blocks the calling thread until the lease is lost or ``timeout`` seconds pass;
        returns :attr:`lost`. (In asyncio code use :meth:`AsyncTurnstileClient.wait_lost`,
        which does not block the event loop.)"""
        return self._lost.wait(timeout)

    def check(self) -> None:
        """Raises :class:`LeaseLost` if the lease is gone; call it between steps of long work."""
        if self._lost.is_set():
            raise LeaseLost(self._lost_why or "lost", self.fence)

    def _mark_lost(self, why: str) -> None:
        """Marks the lease lost (once) and runs the callbacks."""
        if self._lost.is_set():
            return
        self._lost_why = why
        self._lost.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self, why)
            except Exception:  # noqa: BLE001 - a callback must not break the reader
                pass


#: The old name of :class:`Lease`, kept for existing users.
Permit = Lease
