"""``VACUUM`` the tables a cycle just churned, so that the next idle cycle's probes stay cheap
(PostgreSQL).

An idle cycle asks the store whether any live lead was written since its last evaluation
(``due_at IS NULL``, ``syncd.plan_probe``): an index probe of ``ix_lead_due``'s NULL range. A
first sync inserts every lead with ``due_at`` NULL and its plan then sets every ``due_at``: an
update that changes an indexed column is never HOT, so each lead leaves a dead entry in that
NULL range (https://www.postgresql.org/docs/current/storage-hot.html). Until ``VACUUM`` removes
them the probe walks them all, on every idle cycle: measured at 100k leads, 1,431 index pages
and 1.5 ms of the 1.7 ms the cycle's first statement took on the server (0.15 ms after a
``VACUUM``). Index scans mark such entries dead as they pass, but still read their pages.
The outbox's state index fills the same way as rows move from pending to done.

Autovacuum would remove them, but only when its launcher next wakes (every minute by default,
https://www.postgresql.org/docs/current/routine-vacuuming.html#AUTOVACUUM), after a minute of
idle cycles paying for them. So the store counts the rows it updates per table
(``StateStore.rows_churned``) and the pipeline calls :func:`vacuum_if_churned` after a cycle's
writes: a table updated in at least ``MIN_ROWS`` rows and ``SHARE`` of its rows (autovacuum's
own default scale factor) since syncd last vacuumed it is vacuumed, with ``SKIP_LOCKED`` (an
autovacuum already at work on it is left to finish). An idle cycle updated nothing and costs no
round trip here. SQLite updates rows in place: nothing to do.

The VACUUM runs on a thread of its own, as autovacuum would in its own process: the cycle that
churned does not wait for it (about a second at 100k leads), and the server does it while the
daemon waits for its next cycle, minutes away. The next cycle waits for it to end before it
starts (:func:`wait_for_vacuum`), so that it neither walks the entries being removed nor
competes with their removal: where cycles follow each other at once (the bench's emulated
clock), that cycle carries the VACUUM's time. VACUUM blocks neither reads nor writes
(https://www.postgresql.org/docs/current/explicit-locking.html, SHARE UPDATE EXCLUSIVE). One
runs at a time per store; ``StateStore.close`` waits for it too (no connection outlives the
store).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Protocol
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.table_growth import GrowthTrigger

__all__ = ["MIN_ROWS", "SHARE", "VACUUMED_TABLES", "vacuum_if_churned", "wait_for_vacuum"]

log = logging.getLogger(__name__)

#: Tables an idle cycle probes through indexes on columns a cycle updates.
VACUUMED_TABLES = ("lead", "outbox")
#: Fewer updated rows than this leave too few dead entries to matter.
MIN_ROWS = 1000
#: Updated rows, as a share of the table's rows (autovacuum_vacuum_scale_factor's default).
SHARE = 0.2


class _Store(Protocol):
    """What this module needs of :class:`syncd.state.StateStore`."""

    engine: Engine
    rows_churned: Counter[str]


_trigger = GrowthTrigger(VACUUMED_TABLES, MIN_ROWS, SHARE)
#: Per store, the thread of the VACUUM under way (or done).
_vacuums: WeakKeyDictionary[_Store, threading.Thread] = WeakKeyDictionary()


def vacuum_if_churned(store: _Store) -> list[str]:
    """Start a VACUUM of each table of ``VACUUMED_TABLES`` updated enough since syncd last
    vacuumed it; return those tables (none on SQLite, none while a VACUUM is under way).

    Whether one is due is read from pg_class (one statement, only once ``MIN_ROWS`` rows were
    updated). A failure is logged, never raised: the cycle's work is committed, and autovacuum
    does the same later.
    """
    if store.engine.dialect.name != "postgresql":
        store.rows_churned.clear()
        return []
    churned = _trigger.candidates(store, store.rows_churned)
    running = _vacuums.get(store)
    if not churned or (running is not None and running.is_alive()):
        return []
    try:
        with store.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            due = _trigger.due(store, store.rows_churned, conn, churned)
    except SQLAlchemyError as exc:
        _warn(churned, exc)
        return []
    if not due:
        return []
    _trigger.reset(store, store.rows_churned, due)
    thread = threading.Thread(
        target=_vacuum, args=(store.engine, due), name="syncd-vacuum", daemon=True
    )
    _vacuums[store] = thread
    thread.start()
    return due


def wait_for_vacuum(store: _Store) -> None:
    """Return once the store's VACUUM, if one is under way, has ended."""
    running = _vacuums.get(store)
    if running is not None:
        running.join()


def _vacuum(engine: Engine, tables: list[str]) -> None:
    started = time.perf_counter()
    try:
        # VACUUM cannot run inside a transaction block.
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            for table in tables:
                # INDEX_CLEANUP ON: the dead index entries are the point; the default (AUTO)
                # may skip the indexes when few heap pages hold dead rows.
                conn.exec_driver_sql(f"VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) {table}")
    except SQLAlchemyError as exc:
        _warn(tables, exc)
        return
    log.debug(
        "vacuumed %s after a cycle's updates in %.0f ms",
        ", ".join(tables),
        (time.perf_counter() - started) * 1000,
    )


def _warn(tables: list[str], exc: SQLAlchemyError) -> None:
    lines = str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__]
    log.warning(
        "could not vacuum %s after a cycle's updates (%s); autovacuum will",
        ", ".join(tables),
        lines[0],
    )
