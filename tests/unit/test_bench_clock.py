"""The bench's drain clock (`bench.product.steady_rate`): a drain is timed over its
steady middle, and a drain too short to have one says so instead of an infinite rate."""

from __future__ import annotations

import math

from bench.product import steady_rate


def test_a_drain_is_timed_from_a_tenth_to_nine_tenths_done() -> None:
    # 100 messages: the first 30 were under way before the clock (done at t=0), then
    # 10 per second; timed from the first commit they would look faster than they are.
    samples = [(0.0, 30), *((float(t), 30 + 10 * t) for t in range(1, 8))]
    assert steady_rate(samples, 0, 100) == 10.0


def test_a_drain_done_in_one_batch_has_no_rate(capsys) -> None:
    assert math.isnan(steady_rate([(0.0, 0), (1.0, 3000)], 0, 3000))
    assert "too few batches" in capsys.readouterr().err
