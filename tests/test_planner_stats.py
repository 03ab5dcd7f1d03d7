"""Planner statistics after bulk loads (syncd.planner_stats): the mirror's chunk query walks the
primary key on PostgreSQL even when the table had no statistics before the load.

Plans are asserted (EXPLAIN), nothing is timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from syncd import planner_stats
from syncd.state import StateStore
from tests.pgdb import empty_database

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    """A store on a database of its own, created empty for the test (no statistics, no autovacuum)."""
    store = StateStore(empty_database(postgres_url, "planner_stats"), auto_upgrade=True)
    # The tests count what syncd's own ANALYZEs do; an autovacuum worker that analyses a table
    # mid-test (it may, once the writes pass its threshold) would move pg_class under them.
    with store.engine.begin() as conn:
        for table in planner_stats.ANALYZED_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    yield store
    store.close()


def _pull_pages(store: StateStore, n: int, page: int = 2000, *, start: int = 0) -> None:
    """Store ``n`` leads (numbered from ``start``) the way a pull does: one upsert per page."""
    for first in range(start, start + n, page):
        rows = [
            {
                "crm": "salesforce",
                "lead_id": f"00Q{i:012d}",
                "modified_at": NOW,
                "fields": {"email": f"lead{i}@example{i % 97}.com", "company": f"Company {i}"},
                "enrichment": {"domain": f"example{i % 97}.com"},
                "reasons": {"status": "a reason long enough to make the rows wide " * 3},
                "status": "New",
                "newsletters": [],
                "first_seen_at": NOW,
                "pulled_at": NOW,
            }
            for i in range(first, min(start + n, first + page))
        ]
        with store.begin() as conn:
            store.upsert_leads(conn, rows)


def _first_chunk_query(store: StateStore) -> tuple[str, Any]:
    """The SQL and parameters ``iter_live_leads`` sends for its second chunk (keyset > last)."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM lead" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        for _ in zip(range(2), store.iter_live_leads("salesforce", chunk=2000), strict=False):
            pass
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    return seen[-1]


def _plan(store: StateStore, statement: str, params: Any) -> str:
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute("EXPLAIN " + statement, params)
            return "\n".join(row[0] for row in cur.fetchall())
        finally:
            cur.close()


def test_mirror_chunk_query_walks_the_primary_key_after_a_bulk_load_into_a_table_without_statistics(
    pg_store: StateStore,
) -> None:
    with pg_store.engine.connect() as conn:
        before = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = 'lead'")
        ).scalar_one()
    assert before <= 0, "the fresh table must start without statistics"

    _pull_pages(pg_store, 20_000)
    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]

    plan = _plan(pg_store, *_first_chunk_query(pg_store))
    assert "lead_pkey" in plan, plan
    assert "Sort" not in plan, plan


def test_a_small_load_and_a_second_call_analyse_nothing(pg_store: StateStore) -> None:
    _pull_pages(pg_store, 500)
    assert planner_stats.analyze_if_grown(pg_store) == []
    _pull_pages(pg_store, 5000)
    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]
    assert planner_stats.analyze_if_grown(pg_store) == []


def test_sqlite_store_is_never_analysed(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        _pull_pages(store, 3000)
        assert planner_stats.analyze_if_grown(store) == []
        assert store.rows_written["lead"] == 0
    finally:
        store.close()


def test_first_sync_on_postgres_leaves_the_mirror_with_statistics_before_planning(
    tmp_path: Path, postgres_url: str
) -> None:
    from tests.daemon.harness import running_app, sf_lead, write_config

    url = empty_database(postgres_url, "planner_stats_cycle")
    config = write_config(tmp_path, crms=("salesforce",), state_url=url)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i % 7}.com", title="Analyst")
            for i in range(planner_stats.MIN_ROWS + 200)
        )
        seen: list[float] = []

        def before_planning(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            # The plan's first chunk query: statistics must exist by then.
            if "FROM lead" in statement and "ORDER BY lead.lead_id" in statement and not seen:
                with app.store.engine.connect() as probe:
                    seen.append(
                        probe.execute(
                            text("SELECT reltuples FROM pg_class WHERE relname = 'lead'")
                        ).scalar_one()
                    )

        event.listen(app.store.engine, "before_cursor_execute", before_planning)
        report = app.pipelines["salesforce"].run_cycle()
    assert report.outcome == "ok" and report.pulled == planner_stats.MIN_ROWS + 200
    assert seen and seen[0] >= planner_stats.MIN_ROWS, seen


def test_pull_lookups_by_id_use_the_primary_key_while_a_first_sync_fills_the_table(
    pg_store: StateStore,
) -> None:
    pages = 15
    for k in range(pages):  # as the pull does: store a page, let the statistics catch up
        _pull_pages(pg_store, 2000, start=k * 2000)
        planner_stats.analyze_if_grown(pg_store)
    ids = [f"00Q{i:012d}" for i in range(pages * 2000 - 500, pages * 2000)]
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(pg_store.engine, "before_cursor_execute", capture)
    try:
        with pg_store.begin() as conn:
            assert len(pg_store.leads_by_id(conn, "salesforce", ids)) == 500
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", capture)
    plan = _plan(pg_store, *seen[-1])
    index_conds = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "lead_pkey" in plan, plan
    assert any("lead_id" in line for line in index_conds), plan


def _never_evaluated_query(store: StateStore) -> tuple[str, Any]:
    """The SQL and parameters of a plan's read of the leads never evaluated since a write."""
    from syncd import due

    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM lead" in statement and "due_at IS NULL" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        for _ in due.iter_plan_rows(store, "salesforce", NOW, every=False):
            pass
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    return seen[0]


def test_a_plan_that_sets_every_due_time_refreshes_the_statistics_of_the_due_read(
    pg_store: StateStore,
) -> None:
    _pull_pages(pg_store, 20_000)
    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]  # every lead due: due_at NULL
    ids = [f"00Q{i:012d}" for i in range(20_000)]
    later = datetime(2027, 1, 1, tzinfo=UTC)
    with pg_store.begin() as conn:  # as planning does: each evaluated lead gets its due time
        pg_store.set_due(conn, "salesforce", [(i, later, False) for i in ids])

    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]
    plan = _plan(pg_store, *_never_evaluated_query(pg_store))
    # Statistics still saying "every lead due" walked the primary key over all 20,000 rows.
    assert "ix_lead_due" in plan, plan


def test_outbox_state_changes_count_towards_its_statistics(pg_store: StateStore) -> None:
    rows = [
        {
            "crm": "salesforce",
            "lead_id": f"00Q{i:012d}",
            "kind": "field",
            "field": "status",
            "value": "Nurture",
            "rule_id": "r1",
            "ruleset_version": "v1",
            "run_id": "run1",
            "intent_id": f"run1.{i}",
            "state": "planned",
            "attempts": 0,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(3000)
    ]
    with pg_store.begin() as conn:
        pg_store.add_changes(conn, rows)
    assert planner_stats.analyze_if_grown(pg_store) == ["outbox"]
    with pg_store.begin() as conn:
        assert pg_store.promote_planned(conn, "salesforce", "run1", "pending", NOW) == 3000
    assert planner_stats.analyze_if_grown(pg_store) == ["outbox"]


def test_an_idle_call_sends_nothing_to_the_catalogue(pg_store: StateStore) -> None:
    _pull_pages(pg_store, 20_000)
    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]
    _pull_pages(pg_store, 2000, start=20_000)  # above MIN_ROWS, below half the table
    assert planner_stats.analyze_if_grown(pg_store) == []
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(pg_store.engine, "before_cursor_execute", capture)
    try:
        assert planner_stats.analyze_if_grown(pg_store) == []  # nothing written since
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", capture)
    assert sent == []
    _pull_pages(pg_store, 9000, start=22_000)  # now half the counted rows: due again
    assert planner_stats.analyze_if_grown(pg_store) == ["lead"]
