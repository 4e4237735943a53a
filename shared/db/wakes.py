"""Waking this process's outbox relay without a round trip to PostgreSQL.

A unit of work that commits outbox rows wakes the relay of its schema. Across processes
that takes `pg_notify`: a statement in the transaction, then the server signals every
connection that listens, each a wake-up of its own. When a relay on the same pool runs in
this process it will publish the rows, so a call wakes it instead, after the commit: on
the embedded stack's machine a round trip to another process costs 17–46 µs of CPU in
the caller alone, and a batch of the flow executor made about 24 of them at low load. A
unit of work on any other pool (another replica, a tool) still notifies, so every relay
is woken as before. A loop's kept connection (the mail worker's) counts as the pool it
came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_local: dict[tuple[Any, str], list[Callable[[], None]]] = {}


def register(pool: Any, schema: str, wake: Callable[[], None]) -> None:
    """`wake` publishes what units of work on `pool` commit for `schema`'s outbox."""
    _local.setdefault((pool, schema), []).append(wake)


def unregister(pool: Any, schema: str, wake: Callable[[], None]) -> None:
    wakes = _local.get((pool, schema), [])
    if wake in wakes:
        wakes.remove(wake)
    if not wakes:
        _local.pop((pool, schema), None)


def local(pool: Any, schema: str) -> tuple[Callable[[], None], ...]:
    """The relays in this process to wake for rows committed on `pool` (none: notify)."""
    return tuple(_local.get((pool, schema), ()))
