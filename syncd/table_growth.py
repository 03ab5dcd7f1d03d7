"""When a table has changed by a share of its size: the trigger behind syncd's own ANALYZE
(``syncd.planner_stats``) and VACUUM (``syncd.store_vacuum``) on PostgreSQL.

The store counts the rows it writes per table as it goes (a ``Counter`` on the store). A table
is due once its count reaches ``min_rows`` and ``share`` of the rows PostgreSQL last counted
for it (``pg_class.reltuples``), the rule autovacuum applies with its own scale factors
(https://www.postgresql.org/docs/current/routine-vacuuming.html#AUTOVACUUM). ``pg_class`` is
read only once a count passes the bar the last reading set, so a cycle that wrote little (an
idle cycle: nothing) asks the server nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["GrowthTrigger"]

_RELTUPLES = text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)")


@dataclass
class GrowthTrigger:
    """Which of ``tables`` have changed by ``share`` of their rows (and at least ``min_rows``)
    since the count was last reset, per store."""

    tables: tuple[str, ...]
    min_rows: int
    share: float
    #: Per store and table, the count at which the table is next due (from pg_class).
    _bars: WeakKeyDictionary[object, dict[str, float]] = field(
        default_factory=WeakKeyDictionary, repr=False
    )

    def candidates(self, store: object, counts: Counter[str]) -> list[str]:
        """The tables whose count passed the bar the last reading of pg_class set (without a
        reading, ``min_rows``): only these can be due; no statement."""
        bars = self._bars.setdefault(store, {})
        return [t for t in self.tables if counts[t] >= max(self.min_rows, bars.get(t, 0.0))]

    def due(
        self, store: object, counts: Counter[str], conn: Connection, tables: Sequence[str]
    ) -> list[str]:
        """Of ``tables`` (:meth:`candidates`), those due by the table sizes pg_class gives now
        (one statement on ``conn``)."""
        bars = self._bars.setdefault(store, {})
        for name, tuples in conn.execute(_RELTUPLES, {"names": list(tables)}):
            # reltuples is -1 for a table never analysed (PostgreSQL 14+), 0 on older servers.
            bars[str(name)] = self.share * max(float(tuples), 0.0)
        return [t for t in tables if counts[t] >= bars.get(t, 0.0)]

    def reset(self, store: object, counts: Counter[str], tables: Sequence[str]) -> None:
        """The tables were dealt with: their counts restart at 0 and their bars are read anew."""
        bars = self._bars.setdefault(store, {})
        for table in tables:
            counts[table] = 0
            bars.pop(table, None)
