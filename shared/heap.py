"""Keeping the garbage collector off the objects a service holds for its whole life.

CPython's full (oldest-generation) collection walks every tracked object in the
process. After start-up that is mostly what imports made (pydantic's schemas, the
templates, the HTTP stack: about 70,000 objects in the flow executor), and none of it
ever becomes garbage. A service handling batches promotes the batch's objects
while it awaits the database, so full collections come every batch or two, and each
walked the whole start-up heap again: with a profile event's handling at about 40 µs,
the full collections alone took a fifth of the process's CPU in `bench.intake`.

`settle()` collects once and then freezes what is left (`gc.freeze`), which moves it to
a generation the collector never visits. Objects made later are collected as before;
only the start-up heap is left out, and it is not garbage. The one cost: a frozen
object that later drops out of use inside a reference cycle (a client replaced after a
reconnect, say) is never reclaimed; refcounting still frees the rest. That is bounded by
the start-up heap. Called once a service has started, when the imports and the first
allocations of its clients are done.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then freeze every object still alive; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
