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
own default scale factor) since syncd last vacuumed it is vacuumed there and then, with
``SKIP_LOCKED`` (an autovacuum already at work on it is left to finish). An idle cycle updated
nothing and costs no round trip here. SQLite updates rows in place: nothing to do.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["MIN_ROWS", "SHARE", "VACUUMED_TABLES", "vacuum_if_churned"]

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


#: Per store and table, the updated rows at which the table is next due (from pg_class).
_thresholds: WeakKeyDictionary[_Store, dict[str, float]] = WeakKeyDictionary()


def vacuum_if_churned(store: _Store) -> list[str]:
    """VACUUM each table of ``VACUUMED_TABLES`` updated enough since syncd last vacuumed it.

    Returns the tables vacuumed (none on SQLite). A failure is logged, never raised: the
    cycle's work is committed, and autovacuum does the same later.
    """
    if store.engine.dialect.name != "postgresql":
        store.rows_churned.clear()
        return []
    known = _thresholds.setdefault(store, {})
    churned = [
        t for t in VACUUMED_TABLES if store.rows_churned[t] >= max(MIN_ROWS, known.get(t, 0.0))
    ]
    if not churned:
        return []
    started = time.perf_counter()
    due: list[str] = []
    try:
        # VACUUM cannot run inside a transaction block.
        autocommit = store.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as conn:
            rows = conn.execute(
                text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
                {"names": churned},
            )
            for name, tuples in rows:
                # reltuples is -1 for a table never analysed (PostgreSQL 14+).
                known[str(name)] = SHARE * max(float(tuples), 0.0)
            due = [t for t in churned if store.rows_churned[t] >= known.get(t, 0.0)]
            for table in due:
                # INDEX_CLEANUP ON: the dead index entries are the point; the default (AUTO)
                # may skip the indexes when few heap pages hold dead rows.
                conn.exec_driver_sql(f"VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) {table}")
    except SQLAlchemyError as exc:
        log.warning(
            "could not vacuum %s after a cycle's updates (%s); autovacuum will",
            ", ".join(churned),
            (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0],
        )
        return []
    for table in due:
        store.rows_churned[table] = 0
        known.pop(table, None)
    if due:
        log.debug(
            "vacuumed %s after a cycle's updates in %.0f ms",
            ", ".join(due),
            (time.perf_counter() - started) * 1000,
        )
    return due
