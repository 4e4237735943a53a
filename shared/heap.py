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

It also spaces the young collections out (`YOUNG_THRESHOLD`). CPython collects the
youngest generation every 700 net allocations; a batch of a thousand records keeps
tens of thousands of objects alive until its transaction commits, so every batch set
off dozens of young collections and several older ones that walked the batch's live
objects again and again, collecting almost nothing: in the consent service 2,541
young, 230 middle and 20 full collections per 30,000 commands, 24-35 µs of a command's
CPU. Nearly everything a batch makes is freed by reference counting once the batch is
done, before a collection at the higher threshold comes. What cycles do form (an
exception's traceback, say) wait longer to be collected, bounded by the threshold.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net allocations between young collections (CPython's default: 700)."""
OLDER_THRESHOLD = 20
"""Young collections per middle one, and middle ones per full one (default: 10)."""


def settle() -> int:
    """Collect, freeze every object still alive, and space the young collections out;
    returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    return gc.get_freeze_count()
