"""The account's sending limit for alert mails (A8). Pure.

The limit counts mails (one per recipient) in fixed windows of `window_s` seconds
aligned to the epoch (an hour in production: 10:00–11:00, 11:00–12:00, ...). Mails over
the limit wait for the next window; none is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window_at(now: datetime, window_s: int) -> Window:
    """The window that `now` falls in."""
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % window_s, UTC)
    return Window(start, start + timedelta(seconds=window_s))


def admissible(used: int, limit: int, wanted: int) -> int:
    """How many of `wanted` new mails may go in a window where `used` went already."""
    return max(0, min(wanted, limit - used))
