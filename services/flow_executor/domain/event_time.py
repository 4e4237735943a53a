"""When an event counts as having happened (F2). Pure.

A producer's clock, or a bug, can date an event in the future. The executor keeps the
newest profile data by event time (F3), so one event dated 2099 would pin the profile's
address and properties against every newer event. As X3 does for consent, an event's
`time` later than its arrival (5 minutes of clock skew allowed) counts as its arrival.
"""

from __future__ import annotations

from datetime import datetime, timedelta

SKEW = timedelta(minutes=5)


def effective_time(claimed: datetime, arrived: datetime) -> datetime:
    """`claimed` if it is no later than `arrived` plus the allowed skew, else `arrived`."""
    return claimed if claimed <= arrived + SKEW else arrived
