"""After a cycle that updated much of a table, syncd vacuums it (``syncd.store_vacuum``): the
idle cycles after a first sync must not walk the dead index entries its plan left behind.

A first sync inserts every lead with ``due_at`` NULL and its plan sets every ``due_at``; each
lead then leaves a dead entry in ``ix_lead_due``'s NULL range, which the idle cycle's "never
evaluated" probe walks until a VACUUM removes it. The pages a statement reads
(``EXPLAIN (ANALYZE, BUFFERS)``) are a deterministic measure of that walk, unlike a timer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, exists, select

from syncd.state import LeadRow, StateStore
from syncd.store_vacuum import MIN_ROWS, vacuum_if_churned, wait_for_vacuum
from tests.pgdb import empty_database
from tests.test_state_store import _lead

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEADS = 3000


def _first_sync(store: StateStore) -> None:
    """What a first sync does to the mirror: every lead inserted unevaluated, then evaluated."""
    ids = [f"L{i:05d}" for i in range(LEADS)]
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(i) for i in ids])
    with store.begin() as conn:
        store.set_due(conn, "salesforce", [(i, T0 + timedelta(days=30), False) for i in ids])


def _never_evaluated_probe_pages(store: StateStore) -> int:
    """Pages the idle cycle's "is any live lead unevaluated?" probe reads (syncd.plan_probe)."""
    lead = LeadRow.__table__
    probe = select(
        exists().where(
            lead.c.crm == "salesforce",
            lead.c.deleted.is_(False),
            lead.c.converted.is_(False),
            lead.c.due_at.is_(None),
        )
    )
    sql = str(probe.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.reading() as conn:
        plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
        assert conn.execute(probe).scalar() is False
    # The top node's count covers the whole execution (planning's is on a line of its own).
    return int(re.findall(r"shared hit=(\d+)", "\n".join(plan))[0])


def test_a_first_syncs_churn_is_vacuumed_so_the_idle_probe_reads_a_few_pages(
    postgres_url: str,
) -> None:
    store = StateStore(empty_database(postgres_url, "vacuum_churn"), auto_upgrade=True)
    try:
        _first_sync(store)
        with store.reading() as conn:  # statistics as the pull's planner_stats leaves them
            conn.exec_driver_sql("ANALYZE lead")
        before = _never_evaluated_probe_pages(store)
        assert vacuum_if_churned(store) == ["lead"]
        wait_for_vacuum(store)  # it runs beside the cycles, as autovacuum would
        after = _never_evaluated_probe_pages(store)
        assert store.rows_churned["lead"] == 0
    finally:
        store.close()
    # Before: every page of dead entries (91 measured); after: the root and a leaf.
    assert before >= 40, before
    assert after <= 5, after


def test_an_idle_cycle_asks_nothing_of_the_vacuum_and_small_churn_waits(
    postgres_url: str,
) -> None:
    store = StateStore(empty_database(postgres_url, "vacuum_idle"), auto_upgrade=True)
    sent: list[str] = []

    def capture(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    try:
        with store.begin() as conn:
            store.upsert_leads(conn, [_lead(f"L{i}") for i in range(10)])
        event.listen(store.engine, "before_cursor_execute", capture)
        assert vacuum_if_churned(store) == []  # 10 rows: below MIN_ROWS, not a statement
        assert sent == []
        store.rows_churned["lead"] = MIN_ROWS  # past the floor, but not a fifth of the table?
        assert vacuum_if_churned(store) == ["lead"]  # 10 rows in the table: it is
        wait_for_vacuum(store)
        sent.clear()
        assert vacuum_if_churned(store) == []  # nothing updated since
        assert sent == []
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
        store.close()


def test_sqlite_updates_in_place_and_is_never_vacuumed(tmp_path: Any) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        _first_sync(store)
        assert store.rows_churned["lead"] >= 2 * LEADS
        assert vacuum_if_churned(store) == []
        assert store.rows_churned["lead"] == 0
    finally:
        store.close()
