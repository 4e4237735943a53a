"""Cutting a batch into set-based rounds (X2: a batch applies as its messages would, one
by one, in order)."""

from __future__ import annotations

from shared.db.batches import columns, rounds


def test_x2_rounds_hold_each_key_once_and_keep_the_batchs_order_per_key() -> None:
    rows = [("b", 1), ("a", 1), ("b", 2), ("b", 3), ("a", 2), ("c", 1)]
    got = rounds(rows, key=lambda r: r[0])
    assert got == [[("a", 1), ("b", 1), ("c", 1)], [("a", 2), ("b", 2)], [("b", 3)]]
    assert rounds([], key=lambda r: r) == []


def test_x2_columns_turn_rows_into_unnest_arguments() -> None:
    assert columns([("a", 1), ("b", 2)], 2) == [["a", "b"], [1, 2]]
    assert columns([], 3) == [[], [], []]
