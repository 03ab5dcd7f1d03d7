"""The daemon's start-up heap, moved out of the garbage collector's sight once built.

After start-up (imports, settings, connectors, the rule book) a daemon holds some 140,000
container objects that live as long as the process. CPython's full collections traverse every
tracked object, and a cycle's plan step triggers several of them (survivors of each chunk
accumulate): measured on this machine over 20,000 realistic leads, garbage collection took
about a third of the plan step's CPU with that heap tracked and about a tenth with it frozen
(plan step 54-60 µs a lead before, 40-44 µs after). ``gc.freeze`` moves the objects alive at
that moment to a permanent generation no collection visits; start-up garbage is collected
first so none of it is kept. Objects created later (a reloaded rule book, a cycle's leads) are
collected as before.

The same moment sets how often the collector looks at young objects: every 10,000 net
allocations of container objects instead of CPython's 700. A changing cycle allocates millions
of short-lived containers (rows, dictionaries, records) that reference counting frees at once;
at 700 the collector ran some 1,200 young and 10 full passes in a cycle writing 10,000 leads,
each full pass traversing the cycle's live pages and plans: about a tenth of the cycle thread's
CPU (measured on this machine through ``gc.callbacks``: 0.63 s of 6.4 s), against 0.16 s at
10,000. Garbage in reference cycles is still collected, a little later; the young generation
it waits in holds at most 10,000 objects.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "freeze_startup_heap"]

#: Net container allocations between two collections of the youngest generation.
YOUNG_THRESHOLD = 10_000


def freeze_startup_heap() -> int:
    """Collect start-up garbage, then freeze what is left, and collect young objects every
    ``YOUNG_THRESHOLD`` allocations; returns how many objects froze."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    return gc.get_freeze_count()
