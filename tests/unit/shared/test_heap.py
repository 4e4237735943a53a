"""`shared.heap.settle`: the start-up heap leaves the collector's walks, what is made
afterwards is still collected, and a batch's live objects set off no collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def start_up_object() -> _Node:
    return _Node()


@pytest.fixture
def settled(start_up_object: _Node) -> Iterator[int]:
    thresholds = gc.get_threshold()
    try:
        yield heap.settle()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_settle_takes_the_start_up_heap_out_of_the_collectors_walks(
    start_up_object: _Node, settled: int
) -> None:
    assert settled > 1000  # at least the imported modules' objects
    # `gc.get_objects` lists what a full collection walks; the frozen are not in it.
    assert not any(o is start_up_object for o in gc.get_objects())
    made_later = _Node()
    assert any(o is made_later for o in gc.get_objects())


def test_a_cycle_made_after_settling_is_still_collected(settled: int) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


def test_a_batchs_live_objects_set_off_no_collection(settled: int) -> None:
    # At CPython's default threshold (700) these would set off seven young collections,
    # each walking the batch made so far.
    collections = [g["collections"] for g in gc.get_stats()]
    batch = [_Node() for _ in range(5_000)]
    assert [g["collections"] for g in gc.get_stats()] == collections
    assert len(batch) == 5_000
