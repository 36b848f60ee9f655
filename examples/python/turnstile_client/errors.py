"""Typed errors: one class per error code of the protocol (PROTOCOL.md §5)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "TurnstileError", "BadJson", "BadRequest", "UnknownOp", "LineTooLong", "NotFound",
    "Forbidden", "PermitUnavailable", "Unavailable", "Timeout", "Cancelled", "ShuttingDown",
    "TooMany", "BadConfig", "ConnectionLost", "LeaseLost", "error_for",
]


class TurnstileError(Exception):
    """The daemon answered ``ok: false`` (or the client lost its connection or a lease).

    Attributes:
        code: the error code (``bad_request``, ``not_found``, ``unavailable``, ...).
        message: the daemon's human-readable text (not for parsing).
        field: the request member to blame (``bad_request``, some ``too_many``), else None.
        reason: the blocking reason of ``unavailable``/``timeout`` (PROTOCOL.md §6), else None.
        limit, in_use: the blocking limit and its use, where the reason has one, else None.
        retry_after_ms: when the block is expected to lift, where known, else None.
        answer: the whole answer, as a dict.
    """

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer: dict[str, Any] = answer
        self.code: str = str(answer.get("error", "error"))
        self.message: str = str(answer.get("message", ""))
        self.field: str | None = answer.get("field")
        self.reason: str | None = answer.get("reason")
        self.limit: int | None = answer.get("limit")
        self.in_use: int | None = answer.get("in_use")
        self.retry_after_ms: int | None = answer.get("retry_after_ms")
        super().__init__(f"{self.code}: {self.message}")


class BadJson(TurnstileError):
    """``bad_json``: the line sent was not valid JSON."""


class BadRequest(TurnstileError):
    """``bad_request``: a field has the wrong type or value; :attr:`field` names it."""


class UnknownOp(TurnstileError):
    """``unknown_op``: the op names no operation of this daemon."""


class LineTooLong(TurnstileError):
    """``line_too_long``: a request line exceeded 64 KiB; the daemon closes the connection."""


class NotFound(TurnstileError):
    """``not_found``: no live lease has that token/fence, or no waiting request that id."""


class Forbidden(TurnstileError):
    """``forbidden``: this peer may not connect, or may not use an admin op."""


class PermitUnavailable(TurnstileError):
    """No permit: refused at once (:class:`Unavailable`) or not within ``wait_ms``
    (:class:`Timeout`). Catch this to handle both.

    Attributes:
        timed_out: True for ``timeout`` (it waited), False for ``unavailable``.
    """

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer)
        self.timed_out: bool = self.code == "timeout"

    def __str__(self) -> str:
        detail = f"no permit ({self.code}): {self.reason}"
        if self.limit is not None:
            detail += f" (limit {self.limit}, in use {self.in_use})"
        if self.retry_after_ms is not None:
            detail += f", retry after {self.retry_after_ms} ms"
        return detail


class Unavailable(PermitUnavailable):
    """``unavailable``: the acquire/unpark cannot be granted now (``reason`` says why), or a
    grant could not be saved (``reason == "storage"``)."""


class Timeout(PermitUnavailable):
    """``timeout``: a waiting acquire/unpark reached its ``wait_ms`` without a grant."""


class Cancelled(TurnstileError):
    """``cancelled``: a waiting acquire/unpark was cancelled (by ``cancel``)."""


class ShuttingDown(TurnstileError):
    """``shutting_down``: the daemon is stopping."""


class TooMany(TurnstileError):
    """``too_many``: a resource bound of the daemon is reached (PROTOCOL.md §12)."""


class BadConfig(TurnstileError):
    """``bad_config``: ``reload`` found the config file invalid; the old one is kept."""


class ConnectionLost(TurnstileError):
    """The connection to the daemon closed, could not be opened, or an answer did not come in
    time (code ``connection_lost``). Every bound lease of the connection is gone with it."""

    def __init__(self, message: str) -> None:
        super().__init__({"ok": False, "error": "connection_lost", "message": message})


class LeaseLost(TurnstileError):
    """A held lease ended without being released (code ``lease_lost``): it expired, an admin
    revoked it, or the connection closed. Whatever it protected must stop.

    Attributes:
        why: ``expired``, ``revoked`` or a sentence about the connection.
        fence: the lost lease's fence.
    """

    def __init__(self, why: str, fence: int | None) -> None:
        super().__init__({"ok": False, "error": "lease_lost", "message": f"lease lost ({why})"})
        self.why: str = why
        self.fence: int | None = fence


_BY_CODE: dict[str, type[TurnstileError]] = {
    "bad_json": BadJson, "bad_request": BadRequest, "unknown_op": UnknownOp,
    "line_too_long": LineTooLong, "not_found": NotFound, "forbidden": Forbidden,
    "unavailable": Unavailable, "timeout": Timeout, "cancelled": Cancelled,
    "shutting_down": ShuttingDown, "too_many": TooMany, "bad_config": BadConfig,
}


def error_for(answer: dict[str, Any]) -> TurnstileError:
    """Returns the typed error for an ``ok: false`` answer (plain :class:`TurnstileError` for an
    unknown code)."""
    return _BY_CODE.get(str(answer.get("error")), TurnstileError)(answer)
