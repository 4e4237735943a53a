"""The bench's clocks: a drain is timed over its steady middle, and a drain too short to
have one says so instead of an infinite rate (`bench.product.steady_rate`); event →
alert request is split where the executor stamped the request (`request_steps`)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from bench.product import Follower, request_steps, steady_rate


def test_a_drain_is_timed_from_a_tenth_to_nine_tenths_done() -> None:
    # 100 messages: the first 30 were under way before the clock (done at t=0), then
    # 10 per second; timed from the first commit they would look faster than they are.
    samples = [(0.0, 30), *((float(t), 30 + 10 * t) for t in range(1, 8))]
    assert steady_rate(samples, 0, 100) == 10.0


def test_a_drain_done_in_one_batch_has_no_rate(capsys) -> None:
    assert math.isnan(steady_rate([(0.0, 0), (1.0, 3000)], 0, 3000))
    assert "too few batches" in capsys.readouterr().err


def test_event_to_request_is_split_at_the_time_the_executor_stamped() -> None:
    seen = time.perf_counter()
    stamped = datetime.fromtimestamp(time.time() - 0.050, UTC).isoformat()
    arrivals = [
        (seen, {"alert_id": "a1", "requested_at": stamped}),
        (seen, {"alert_id": "other", "requested_at": stamped}),  # not this load's
    ]
    steps = request_steps(arrivals, {"a1": "e1"}, {"e1": seen - 0.080})
    (decided, _), (on_topic, _) = steps["decided"], steps["on_topic"]
    assert abs(decided - 30) < 5 and abs(on_topic - 50) < 5


def test_the_topic_reader_counts_what_arrived_and_what_a_predicate_holds_for() -> None:
    follower = Follower("127.0.0.1:1", ["a", "b"], timed_only=["b"])
    follower.arrivals["a"] += [(0.0, {"ok": True}), (0.1, {"ok": False})]
    follower.arrivals["b"] += [(0.2, None)] * 3
    assert follower.count("a") == 2
    assert follower.count("a", lambda v: v["ok"]) == 1
    assert follower.count("b") == 3
