"""LISTEN that survives a database restart, for the loops that sleep until notified (the
outbox relay, the mail worker). Without it they would still find new work, but only at
their idle poll, for as long as the process lives after a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg

from shared.cancellation import raise_if_cancelled
from shared.db.errors import DB_ERRORS
from shared.health import HEALTH
from shared.logging import get_logger

log = get_logger(__name__)


async def listen_forever(
    pool: asyncpg.Pool, channel: str, wake: Callable[..., None], retry_s: float = 1.0
) -> None:
    """Hold a pool connection listening on `channel` and calling `wake`; when the server
    drops it, open another. `wake` is also called on each (re)connect, since what was
    notified while nobody listened is lost. Runs until cancelled."""
    health = HEALTH.register(f"listen.{channel}", stall_s=float("inf"))
    while True:
        lost = asyncio.Event()
        try:
            async with pool.acquire() as conn:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(channel, wake)
                health.ok()
                wake()
                try:
                    await lost.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(channel, wake)
        except DB_ERRORS as exc:
            raise_if_cancelled()
            health.failed(f"LISTEN {channel} lost: {exc!r}")
            log.warning("listener lost; reconnecting", channel=channel, error=str(exc))
        except Exception as exc:
            raise_if_cancelled()
            # The loops it wakes still poll; a listener that died would only make them
            # slow, silently. Log and listen again.
            log.exception("listener failed; reconnecting", channel=channel, error=repr(exc))
        await asyncio.sleep(retry_s)
