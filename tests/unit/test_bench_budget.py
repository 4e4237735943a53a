"""The bench's budget: what a throughput target leaves a service per message on the
machine's cores, given what every other process spent per message (`bench.costs.budget`).
"""

from __future__ import annotations

import pytest

from bench.costs import budget


def test_the_other_processes_share_comes_off_the_cores_and_one_thread_caps_the_rest() -> None:
    # 10,000/s on 2 cores: the rest take 50 µs a message (0.5 cores), leaving 150 µs of
    # the cores, but one thread has only 100 µs per message at that rate.
    found = budget(
        10_000, 5_000, {"svc": 0.080, "postgres": 0.030, "broker": 0.015, "bench": 0.005}, "svc", 2
    )
    assert found.others_us == pytest.approx({"postgres": 30, "broker": 15, "bench": 5})
    assert found.service_us == pytest.approx(80)
    assert found.left_us == pytest.approx(150)
    assert found.thread_us == pytest.approx(100)
    assert found.allowed_us == pytest.approx(100)
    # At the 5,000/s it reached, 80 µs a message kept it on a core 40 % of the time.
    assert found.busy == pytest.approx(0.4)
    line = found.line("(x)", "svc")
    assert "leaving svc 100.0 µs per message" in line and "a core 40% of the time" in line


def test_a_target_the_other_processes_alone_exceed_says_no_service_can_meet_it() -> None:
    found = budget(
        30_000, 6_000, {"svc": 0.097, "postgres": 0.049, "bench": 0.032, "broker": 0.009}, "svc", 2
    )
    assert found.left_us < 0
    line = found.line("(c)", "svc")
    assert "2.70 cores at that rate: more than the machine has" in line
    assert "postgres 49.0" in line and "it uses 97.0" in line


def test_processes_idle_in_the_phase_are_left_out() -> None:
    found = budget(1_000, 1_000, {"svc": 0.1, "suppression": -0.001, "smtp": 0.0}, "svc", 2)
    assert found.others_us == {}
