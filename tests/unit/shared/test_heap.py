"""`shared.heap.settle`: the start-up heap leaves the collector's walks, and what is made
afterwards is still collected."""

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
    try:
        yield heap.settle()
    finally:
        gc.unfreeze()


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
