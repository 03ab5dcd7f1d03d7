"""Planner statistics after bulk loads: ``ANALYZE`` the tables a cycle just filled (PostgreSQL).

A table PostgreSQL has never analysed has no statistics; the planner then guesses that
``crm = ?`` matches 0.5 % of the rows, prices a bitmap scan plus a sort of those few rows below
walking the primary key, and picks it. For a keyset chunk (``... AND lead_id > ? ORDER BY lead_id
LIMIT 2000``) that plan reads and sorts every remaining row for each chunk: a first sync of 100k
leads reads the mirror quadratically (527 ms per chunk instead of 3.5 ms). Autovacuum would
analyse the table, but only when its launcher next wakes (every minute by default), long after
the first cycle needed the statistics.

The pull's lookups by id (``leads_by_id``: ``crm = ? AND lead_id IN (500 ids)``) suffer the same
way while a first sync fills the table: without statistics the planner scans every row of the
CRM and filters by the list, so each page costs more than the one before.

Updates count as writes: the first plan sets every lead's ``due_at`` and the drain moves every
outbox row from pending to done, and statistics taken before them say most leads are due and
most rows pending; the planner then walks the primary key for the "never evaluated" keyset read
and scans the outbox for the drain, O(N) on every idle cycle.

So the store counts the rows it writes to the tables the cycle's queries walk, and the pipeline
calls :func:`analyze_if_grown` after each pulled page, after the pull and after planning: a
table that received at least ``MIN_ROWS`` rows, and at least ``GROWTH`` of the rows the
statistics last counted, is analysed there and then. ``ANALYZE`` samples about 30,000 rows
whatever the table's size (hundreds of milliseconds on 100k leads; these take a tenth of that
sample: :data:`SAMPLE_TARGET`), and growth by half each time means about ten
of them while a first sync fills a table with a million leads; between them the planner scales
the counted rows to the table's current size, so the plans stay right. SQLite needs nothing:
without ``sqlite_stat1`` its planner prefers the index that delivers the requested order.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Protocol

from sqlalchemy.engine import Engine

from syncd.table_growth import GrowthTrigger

__all__ = ["ANALYZED_TABLES", "GROWTH", "MIN_ROWS", "SAMPLE_TARGET", "analyze_if_grown"]

log = logging.getLogger(__name__)

#: Tables walked in keyset chunks by a cycle: the mirror, the outbox drain, the ledger.
ANALYZED_TABLES = ("lead", "outbox", "status_history")
#: Fewer rows than this never change a plan enough to matter.
MIN_ROWS = 1000
#: Rows written since the last ANALYZE, as a share of the rows the statistics counted.
GROWTH = 0.5
#: ``default_statistics_target`` of these ANALYZEs (PostgreSQL's default: 100).
SAMPLE_TARGET = 10


class _Store(Protocol):
    """What this module needs of :class:`syncd.state.StateStore`."""

    engine: Engine
    rows_written: Counter[str]


_trigger = GrowthTrigger(ANALYZED_TABLES, MIN_ROWS, GROWTH)


def analyze_if_grown(store: _Store) -> list[str]:
    """ANALYZE each table of ``ANALYZED_TABLES`` that grew enough since it was last analysed.

    Returns the tables analysed (none on SQLite). Counts of the analysed tables restart at 0.
    """
    if store.engine.dialect.name != "postgresql":
        store.rows_written.clear()
        return []
    # Not due before the writes reach the growth the last look at pg_class asked for: an idle
    # cycle (nothing written) then costs no round trip here.
    grown = _trigger.candidates(store, store.rows_written)
    if not grown:
        return []
    started = time.perf_counter()
    with store.engine.begin() as conn:
        due = _trigger.due(store, store.rows_written, conn, grown)
        if due:
            # A sample of 3,000 rows (300 x the target) instead of 30,000: what these plans need
            # is the table's size and the rough share of NULL and due rows, which a small sample
            # gives in a tenth of the time (30 ms instead of 300-400 ms on 100k leads). The
            # autovacuum daemon's own ANALYZE later takes the full sample.
            conn.exec_driver_sql(f"SET LOCAL default_statistics_target = {SAMPLE_TARGET}")
        for table in due:
            conn.exec_driver_sql(f"ANALYZE {table}")  # names from ANALYZED_TABLES only
    _trigger.reset(store, store.rows_written, due)
    if due:
        log.debug(
            "analysed %s after a bulk load in %.0f ms",
            ", ".join(due),
            (time.perf_counter() - started) * 1000,
        )
    return due
