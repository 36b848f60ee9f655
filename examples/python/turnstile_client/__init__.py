"""A dependency-free Python client for turnstiled (standard library only, Python 3.11+).

Blocking::

    from turnstile_client import TurnstileClient, PermitUnavailable

    with TurnstileClient() as client:
        with client.permit(project="alpha", mode="issue", wait_ms=60_000) as lease:
            run_the_agent(model=lease.model)

asyncio::

    from turnstile_client import connect

    async with await connect() as client:
        async with client.permit(project="alpha", wait_ms=60_000) as lease:
            await run_the_agent(model=lease.model)

See the README next to this package and protocol/PROTOCOL.md for the wire protocol.
"""

from ._common import WAIT_FOREVER, Lease, LostCallback, Permit, default_socket_path
from .aio import AsyncTurnstileClient, connect
from .client import TurnstileClient
from .errors import (BadConfig, BadJson, BadRequest, Cancelled, ConnectionLost, Forbidden, LeaseLost,
                     LineTooLong, NotFound, PermitUnavailable, ShuttingDown, Timeout, TooMany,
                     TurnstileError, Unavailable, UnknownOp, error_for)

__version__ = "0.1.0"

__all__ = [
    "TurnstileClient", "AsyncTurnstileClient", "connect", "Lease", "Permit", "LostCallback",
    "WAIT_FOREVER", "default_socket_path", "error_for",
    "TurnstileError", "BadJson", "BadRequest", "UnknownOp", "LineTooLong", "NotFound",
    "Forbidden", "PermitUnavailable", "Unavailable", "Timeout", "Cancelled", "ShuttingDown",
    "TooMany", "BadConfig", "ConnectionLost", "LeaseLost",
]
