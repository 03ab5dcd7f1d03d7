"""A pulled page's upsert, the due times of a plan and the lookups by id store and read the same
rows on SQLite (row by row) and PostgreSQL (one statement a page, ``syncd.pg_bulk``); the
plan probe (``syncd.plan_probe``) sees what the plan's separate reads would see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from syncd.plan_probe import probe
from syncd.state import NEVER_DUE, LeadRow, OutboxState, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lead(lead_id: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "crm": "salesforce",
        "lead_id": lead_id,
        "modified_at": T0,
        "fields": {"email": f"{lead_id}@x.io", "note": 'quote " and \\ and ünïcode', "n": 1.5},
        "enrichment": {"domain": "x.io", "tags": ["a", None]},
        "reasons": {},
        "status": "Open",
        "status_changed_at": None,
        "deleted": False,
        "converted": False,
        "written_status": None,
        "written_at": None,
        "rep_edit_at": None,
        "rep_edit_status": None,
        "newsletters": ["weekly"],
        "error_code": None,
        "error_message": None,
        "first_seen_at": T0,
        "pulled_at": T0,
        "quarantine": None,
    }
    row.update(over)
    return row


def _stored(store: StateStore, lead_id: str) -> dict[str, Any]:
    table = LeadRow.__table__
    with store.reading() as conn:
        row = conn.execute(
            select(table).where(table.c.crm == "salesforce", table.c.lead_id == lead_id)
        ).one()
    return dict(row._mapping)


def test_an_upserted_page_stores_json_nulls_and_times_as_the_row_by_row_upsert_does(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    quarantined = [{"field": "title", "excerpt": "x", "reason": "too long"}]
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [
                _lead("a"),
                _lead("b", deleted=True, quarantine=quarantined, rep_edit_at=T0),
            ],
        )
    a, b = _stored(store, "a"), _stored(store, "b")
    assert a["fields"] == _lead("a")["fields"] and a["enrichment"] == _lead("a")["enrichment"]
    assert a["newsletters"] == ["weekly"] and a["quarantine"] is None
    assert a["due_at"] is None  # content written: due at the next cycle
    assert b["quarantine"] == quarantined and b["deleted"] is True
    assert b["due_at"].replace(tzinfo=UTC) == NEVER_DUE  # deleted: never evaluated
    assert b["rep_edit_at"].replace(tzinfo=UTC) == T0
    with pytest.raises(StatementError), store.begin() as conn:  # a time without its zone
        store.upsert_leads(conn, [_lead("c", modified_at=datetime(2026, 3, 1, 13, 0))])
    with store.reading() as conn:
        assert store.existing_lead_ids(conn, "salesforce", ["c"]) == set()
    store.close()


def test_a_page_that_repeats_a_lead_keeps_its_last_row_and_the_first_sighting(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a")])
    later = T0 + timedelta(hours=1)
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [
                _lead("a", status="Working", first_seen_at=later, pulled_at=later),
                _lead("a", status="Nurture", first_seen_at=later, pulled_at=later),
            ],
        )
    row = _stored(store, "a")
    assert row["status"] == "Nurture"
    assert row["first_seen_at"].replace(tzinfo=UTC) == T0
    assert row["pulled_at"].replace(tzinfo=UTC) == later
    store.close()


def test_due_times_of_a_plan_land_on_their_leads_only(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(i) for i in ("a", "b", "c")])
        store.upsert_leads(conn, [_lead("a", crm="hubspot")])
    soon = T0 + timedelta(days=3)
    with store.begin() as conn:
        store.set_due(conn, "salesforce", [("a", soon, True), ("b", NEVER_DUE, False)])
    a, b, c = (_stored(store, i) for i in ("a", "b", "c"))
    assert (a["due_at"].replace(tzinfo=UTC), a["guard_blocked"]) == (soon, True)
    assert (b["due_at"].replace(tzinfo=UTC), b["guard_blocked"]) == (NEVER_DUE, False)
    assert (c["due_at"], c["guard_blocked"]) == (None, None)
    with store.reading() as conn:
        other = conn.execute(
            select(LeadRow.__table__.c.due_at).where(LeadRow.__table__.c.crm == "hubspot")
        ).scalar_one()
    assert other is None  # another connector's lead of the same id is left alone
    store.close()


def test_lookups_by_id_find_exactly_the_stored_leads_of_the_connector(store_url: str) -> None:
    store = StateStore(store_url)
    ids = [f"L{i:04d}" for i in range(1200)]  # more than one SQLite chunk of 500
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(i) for i in ids[::2]])
        store.upsert_leads(conn, [_lead("L0001", crm="hubspot")])
    with store.reading() as conn:
        assert store.existing_lead_ids(conn, "salesforce", ids) == set(ids[::2])
        assert set(store.lead_states(conn, "salesforce", ids)) == set(ids[::2])
        assert store.lead_newsletters(conn, "salesforce", ["L0000", "L0001"]) == {
            "L0000": ["weekly"]
        }
        assert store.existing_lead_ids(conn, "salesforce", []) == set()
    store.close()


def test_the_plan_probe_sees_due_never_evaluated_and_open_work(store_url: str) -> None:
    store = StateStore(store_url)
    now = T0 + timedelta(days=1)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a"), _lead("b", rep_edit_at=now)])
    found = probe(store, "salesforce", now=now, held_since=now - timedelta(hours=1))
    assert found.never_evaluated and not found.come_due and not found.open_changes
    assert (found.held, found.blocked, found.fingerprint) == (1, 0, None)

    with store.begin() as conn:
        store.set_due(conn, "salesforce", [("a", now, True), ("b", NEVER_DUE, False)])
        store.put_meta(conn, "plan_fingerprint:salesforce", "f1")
    found = probe(store, "salesforce", now=now, held_since=now - timedelta(hours=1))
    assert found.come_due and not found.never_evaluated and found.blocked == 1
    assert not found.idle("f1")

    with store.begin() as conn:
        store.set_due(conn, "salesforce", [("a", now + timedelta(days=1), False)])
    found = probe(store, "salesforce", now=now, held_since=now - timedelta(hours=1))
    assert found.idle("f1") and not found.idle("f2")  # new rules: every lead is due

    with store.begin() as conn:
        store.add_changes(conn, [_change("a", OutboxState.PENDING)])
    found = probe(store, "salesforce", now=now, held_since=now - timedelta(hours=1))
    assert found.open_changes and not found.idle("f1")
    assert store.outbox_states_present(
        "salesforce", [OutboxState.PLANNED, OutboxState.PENDING]
    ) == {OutboxState.PENDING}
    store.close()


def _change(lead_id: str, state: OutboxState) -> dict[str, Any]:
    return {
        "crm": "salesforce",
        "lead_id": lead_id,
        "kind": "field",
        "field": "status",
        "value": "Nurture",
        "before": "Open",
        "rule_id": "r",
        "ruleset_version": "v",
        "run_id": "run1",
        "intent_id": "run1.x",
        "state": state,
        "attempts": 0,
        "created_at": T0,
        "updated_at": T0,
    }


def test_a_column_a_page_leaves_out_gets_its_default_on_insert_and_keeps_its_value_on_update(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a", deleted=True)])
    partial = {k: v for k, v in _lead("a").items() if k not in ("deleted", "converted")}
    with store.begin() as conn:
        store.upsert_leads(conn, [{**partial, "status": "Working"}, {**partial, "lead_id": "b"}])
    a, b = _stored(store, "a"), _stored(store, "b")
    assert (a["status"], a["deleted"]) == ("Working", True)  # left as it was
    assert (b["deleted"], b["converted"]) == (False, False)  # the columns' defaults
    store.close()


def test_a_postgresql_store_prepares_no_statement_however_often_it_repeats_one(
    postgres_url: str,
) -> None:
    # A prepared lookup by ids may get a generic plan that walks the wrong index, and a
    # transaction-pooling proxy cannot carry prepared statements (README "Deploying").
    store = StateStore(postgres_url)
    ids = [f"L{i}" for i in range(50)]
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(i) for i in ids])
    with store.reading() as conn:
        for _ in range(10):
            assert len(store.existing_lead_ids(conn, "salesforce", ids)) == 50
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
    assert prepared == 0
    store.close()
