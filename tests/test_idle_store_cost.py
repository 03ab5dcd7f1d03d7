"""What an idle cycle asks the state store costs O(open work), not O(history).

A cycle looks up the leads with open outbox rows twice (stale plans, then the plan's open
leads). Finished rows (done, superseded, withdrawn) pile up for as long as retention keeps
them; the look-up must not walk them. SQLite's progress handler counts the virtual-machine
steps a statement takes: a deterministic measure of the work, unlike a timer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from syncd.due import open_lead_ids
from syncd.state import OutboxState, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _change(lead_id: str, state: OutboxState) -> dict[str, Any]:
    return {
        "crm": "salesforce",
        "lead_id": lead_id,
        "kind": "field",
        "field": "status",
        "value": "Nurture",
        "before": "Open",
        "rule_id": "r1",
        "ruleset_version": "v1",
        "run_id": "run1",
        "intent_id": f"run1.{lead_id}",
        "state": state,
        "attempts": 0,
        "created_at": T0,
        "updated_at": T0,
    }


def _store_with(path: Path, finished: int) -> StateStore:
    store = StateStore(f"sqlite:///{path}")
    rows = [_change(f"done{i:06d}", OutboxState.DONE) for i in range(finished)]
    rows += [
        _change("open-pending", OutboxState.PENDING),
        _change("open-planned", OutboxState.PLANNED),
        _change("open-sending", OutboxState.SENDING),
        _change("other-crm", OutboxState.PENDING) | {"crm": "hubspot"},
    ]
    with store.begin() as conn:
        for start in range(0, len(rows), 500):
            store.add_changes(conn, rows[start : start + 500])
    return store


def _vm_steps(store: StateStore, work: Callable[[], object]) -> int:
    """SQLite virtual-machine steps ``work`` takes on every connection it checks out."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    def checkout(dbapi: sqlite3.Connection, *_: object) -> None:
        dbapi.set_progress_handler(tick, 1)

    def checkin(dbapi: sqlite3.Connection, *_: object) -> None:
        dbapi.set_progress_handler(None, 1)

    event.listen(store.engine, "checkout", checkout)
    event.listen(store.engine, "checkin", checkin)
    try:
        work()
    finally:
        event.remove(store.engine, "checkout", checkout)
        event.remove(store.engine, "checkin", checkin)
    return steps


def test_open_lead_lookup_lists_exactly_the_leads_with_open_rows(tmp_path: Path) -> None:
    store = _store_with(tmp_path / "state.db", finished=50)
    assert open_lead_ids(store, "salesforce") == ["open-pending", "open-planned", "open-sending"]
    with store.begin() as conn:
        planned = store.lead_ids_in_states(conn, "salesforce", [OutboxState.PLANNED])
    assert planned == {"open-planned"}


def test_open_lead_lookup_does_not_walk_finished_outbox_rows(tmp_path: Path) -> None:
    small = _store_with(tmp_path / "small.db", finished=100)
    large = _store_with(tmp_path / "large.db", finished=20_000)
    small_steps = _vm_steps(small, lambda: open_lead_ids(small, "salesforce"))
    large_steps = _vm_steps(large, lambda: open_lead_ids(large, "salesforce"))
    assert small_steps > 0
    # 200 x the finished rows: the work may grow with the index depth, never with the rows.
    assert large_steps < 2 * small_steps, (small_steps, large_steps)


def test_stale_plan_discard_does_not_walk_finished_outbox_rows(tmp_path: Path) -> None:
    small = _store_with(tmp_path / "small.db", finished=100)
    large = _store_with(tmp_path / "large.db", finished=20_000)
    small_steps = _vm_steps(small, lambda: small.discard_stale_plans("salesforce", T0))
    large_steps = _vm_steps(large, lambda: large.discard_stale_plans("salesforce", T0))
    assert small_steps > 0
    assert large_steps < 2 * small_steps, (small_steps, large_steps)


def test_held_and_blocked_counted_in_one_round_trip_match_their_own_counts(
    store_url: str,
) -> None:
    from tests.test_state_store import _lead

    store = StateStore(store_url, auto_upgrade=True)
    since = T0 - timedelta(days=1)
    rows = [
        _lead("held1", rep_edit_at=T0),
        _lead("held2", rep_edit_at=T0),
        _lead("held-old", rep_edit_at=since - timedelta(hours=1)),  # the hold is over
        _lead("held-deleted", rep_edit_at=T0, deleted=True),
        _lead("held-converted", rep_edit_at=T0, converted=True),
        _lead("plain"),
        _lead("other-crm", rep_edit_at=T0) | {"crm": "hubspot"},
    ]
    try:
        with store.begin() as conn:
            store.upsert_leads(conn, rows)
            store.set_due(
                conn,
                "salesforce",
                [("held1", T0, True), ("plain", T0, True), ("held-deleted", T0, True)],
            )
        held, blocked = store.count_held_and_blocked("salesforce", since)
        assert (held, blocked) == (2, 2)
        assert held == store.count_held("salesforce", since)
        assert blocked == store.count_blocked("salesforce")
        assert store.count_held_and_blocked("nobody", since) == (0, 0)
    finally:
        store.close()


def test_postgres_reads_open_no_transaction_and_writes_still_roll_back(
    postgres_url: str,
) -> None:
    import psycopg
    import pytest

    from tests.pgdb import empty_database

    store = StateStore(empty_database(postgres_url, "idle_reads"), auto_upgrade=True)
    try:
        with store.reading() as conn:
            assert store.lead_ids_in_states(conn, "salesforce", [OutboxState.PENDING]) == set()
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            # No BEGIN was sent, so the pool has no ROLLBACK to send: one round trip a read.
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

        def failing_write() -> None:
            with store.begin() as conn:
                store.add_changes(conn, [_change("lead1", OutboxState.PENDING)])
                raise RuntimeError("the transaction fails after its write")

        with pytest.raises(RuntimeError):
            failing_write()
        assert open_lead_ids(store, "salesforce") == []  # the write was rolled back
        with store.begin() as conn:
            store.add_changes(conn, [_change("lead1", OutboxState.PENDING)])
        assert open_lead_ids(store, "salesforce") == ["lead1"]
    finally:
        store.close()


def test_outbox_backlog_in_one_statement_counts_pending_failed_and_the_oldest_pending(
    store_url: str,
) -> None:
    from syncd.store_stats import outbox_backlog

    store = StateStore(store_url, auto_upgrade=True)
    rows = [
        _change("a", OutboxState.PENDING) | {"created_at": T0 - timedelta(hours=2)},
        _change("b", OutboxState.PENDING),
        _change("c", OutboxState.FAILED) | {"created_at": T0 - timedelta(days=3)},
        _change("d", OutboxState.DONE) | {"created_at": T0 - timedelta(days=9)},
        _change("e", OutboxState.PENDING)
        | {"crm": "hubspot", "created_at": T0 - timedelta(days=9)},
    ]
    try:
        with store.begin() as conn:
            store.add_changes(conn, rows)
        backlog = outbox_backlog(store.engine, "salesforce")
        assert (backlog.pending, backlog.failed) == (2, 1)
        assert backlog.oldest_pending_at == T0 - timedelta(hours=2)
        empty = outbox_backlog(store.engine, "nobody")
        assert (empty.pending, empty.failed, empty.oldest_pending_at) == (0, 0, None)
    finally:
        store.close()
