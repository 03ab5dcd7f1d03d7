"""Cheap figures about the state store for metrics: outbox backlog and table sizes.

Every query here is bounded by an index or by the catalogue, never a scan of a whole table, so
``/metrics`` can be scraped every few seconds against a store of millions of rows:

* pending (waiting to be sent, or sent and in doubt) and failed outbox rows per connector:
  ``COUNT(*)`` over ranges of the ``ix_outbox_crm_state`` index (crm, state, ...), so only
  those rows are touched;
* the oldest pending row: ``MIN(created_at)`` over the same index range;
* table rows: PostgreSQL's planner estimate (``pg_class.reltuples``, kept by autovacuum);
  SQLite's rowid span (``MAX(rowid) - MIN(rowid) + 1``, two index seeks), an upper bound
  that is exact until retention deletes rows out of id order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from syncd.state import OutboxRow, OutboxState, _utc

__all__ = ["TABLES", "OutboxBacklog", "outbox_backlog", "table_rows"]

#: The tables whose size is reported (``syncd_table_rows{table}``): the four retention prunes
#: by age, the status ledger (kept: the funnel report reads all of it) and `syncd retry`'s
#: requests.
TABLES = ("lead", "outbox", "audit", "run", "status_history", "retry_request")


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    pending: int
    failed: int
    oldest_pending_at: datetime | None


def outbox_backlog(engine: Engine, crm: str) -> OutboxBacklog:
    """The three figures in one statement (three index ranges), in autocommit on PostgreSQL:
    one round trip a scrape per connector, not three plus BEGIN and ROLLBACK."""
    table = OutboxRow.__table__
    mine = table.c.crm == crm
    # Rows ``sending`` were sent and their answer never came (in doubt until a later pull
    # settles them): not confirmed, so pending, as `syncd status` counts them. A CRM that
    # stays down keeps them there; leaving them out would show a stuck drain as an empty one.
    pending = table.c.state.in_((OutboxState.PENDING, OutboxState.SENDING))
    failed = table.c.state == OutboxState.FAILED
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        n_pending, n_failed, oldest = conn.execute(
            select(
                select(func.count()).where(mine, pending).scalar_subquery(),
                select(func.count()).where(mine, failed).scalar_subquery(),
                select(func.min(table.c.created_at)).where(mine, pending).scalar_subquery(),
            )
        ).one()
    return OutboxBacklog(int(n_pending), int(n_failed), _utc(oldest))


def table_rows(engine: Engine) -> dict[str, int]:
    """Estimated rows per table in :data:`TABLES` (a table with no estimate is left out)."""
    out: dict[str, int] = {}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            for name in TABLES:
                estimate = conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
                    {"name": name},
                ).scalar()
                # -1: never vacuumed or analysed yet; no estimate rather than a full count
                if estimate is not None and estimate >= 0:
                    out[name] = int(estimate)
        elif engine.dialect.name == "sqlite":
            for name in TABLES:  # names from TABLES, never from input
                span = conn.execute(
                    text(f'SELECT MAX(rowid) - MIN(rowid) + 1 FROM "{name}"')
                ).scalar()
                out[name] = int(span or 0)
    return out
