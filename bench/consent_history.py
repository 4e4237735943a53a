"""`python -m bench.consent_history`: what one consent act costs as a profile's history
grows.

Every act loads its profile's state with the whole act log (X3 refolds it for a late
act), decides, and saves it back. This times exactly that in one process, without
PostgreSQL or Kafka: the state as stored JSON is loaded (`ProfileConsent.from_json` of
`json.loads`), one in-order act decided, and the new state serialised (`json.dumps` of
`to_json`), for profiles with 0, 10, 100 and 1,000 acts logged before. CPU microseconds
per act (best of three), and the stored state's size.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from services.consent.domain.model import Act, Policy, ProfileConsent
from services.consent.domain.rules import decide

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _act(i: int) -> Act:
    return Act(
        act_id=f"act-{i}",
        action="subscribe" if i % 2 else "unsubscribe",
        channel="email",
        act_at=T0 + timedelta(minutes=i),
        method="api",
        list_id="newsletter",
    )


def per_act(logged: int, acts: int) -> tuple[float, int]:
    """CPU µs per act on a profile with `logged` acts before, and the stored size."""
    state = ProfileConsent()
    for i in range(logged):
        state = decide(state, _act(i), Policy(), T0 + timedelta(minutes=i)).state
    stored = json.dumps(state.to_json())
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for j in range(acts):
            loaded = ProfileConsent.from_json(json.loads(stored))
            out = decide(loaded, _act(logged + 1 + j), Policy(), T0 + timedelta(minutes=logged))
            json.dumps(out.state.to_json())
        best = min(best, (time.process_time() - started) / acts)
    return best * 1e6, len(stored)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consent_history", description=__doc__)
    parser.add_argument("--logged", type=int, nargs="*", default=[0, 10, 100, 1000])
    args = parser.parse_args()
    for logged in args.logged:
        us, size = per_act(logged, 200 if logged < 1000 else 20)
        print(f"{logged:>5} acts logged: {us:8,.0f} µs per act, state {size:,} bytes")


if __name__ == "__main__":
    main()
