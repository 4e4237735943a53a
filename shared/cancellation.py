"""Loops that retry failures must still stop when they are cancelled.

Cleanup that runs while a cancellation unwinds can fail with an error of its own, which
then replaces the `CancelledError`: asyncpg, asked to roll back a transaction whose
statement was just cancelled, raises "another operation is in progress". A loop that
retries database errors would take that for one and go on forever after it was told to
stop; a service's shutdown (or a test's teardown) would then hang.

The request is not lost, though: `Task.cancelling()` still counts it (`asyncio.timeout`
takes back only the cancellations it made itself). Each retrying loop calls
`raise_if_cancelled` where it catches a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


def raise_if_cancelled() -> None:
    """Raise `CancelledError` if the current task was asked to stop and an exception
    took the cancellation's place."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], again_s: float = 1.0) -> None:
    """Cancel `tasks` and wait until all are done. A task that has gone on after its
    cancellation (in code that does not check, as `raise_if_cancelled` does) is
    cancelled again every `again_s` seconds instead of being waited for forever."""
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=again_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a task that failed while stopping is not logged again
