"""On PostgreSQL the outbox, audit and ledger inserts, the drain's mirror updates and the outbox
state moves are one statement each (``syncd.pg_bulk``): they store exactly what SQLAlchemy's
row-by-row statements store (compared as the server's text of every column), in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, bindparam, update

from syncd.state import (
    _DUE_AFTER_UPDATE,
    AuditRow,
    LeadRow,
    OutboxRow,
    OutboxState,
    StateStore,
    StatusHistoryRow,
)
from tests.pgdb import empty_database

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    store = StateStore(empty_database(postgres_url, "syncd_bulk_writes"), auto_upgrade=True)
    yield store
    store.close()


def _as_text(store: StateStore, table: Table, crm: str) -> list[dict[str, str | None]]:
    """Every column but the serial id and the crm, as the server's text, in id order."""
    names = [c.name for c in table.c if c.name not in ("id", "crm")]
    order = "id" if "id" in table.c else "lead_id"
    columns = ", ".join(f'CAST("{n}" AS TEXT)' for n in names)
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {columns} FROM {table.name} WHERE crm = %(crm)s ORDER BY {order}",
            {"crm": crm},
        ).all()
    return [dict(zip(names, row, strict=True)) for row in rows]


def _outbox(crm: str, i: int) -> dict[str, Any]:
    return {
        "crm": crm,
        "lead_id": f"L{i % 3}",  # not in id order: the rows' own order numbers them
        "kind": "field" if i % 2 else "membership",
        "field": "status" if i % 2 else "weekly",
        "value": None if i == 4 else {"nested": ["ü", 1.5, None], "q": 'a "b" \\ c'},
        "before": None if i % 3 else "Open",
        "rule_id": None if i == 2 else f"rule-{i}",
        "ruleset_version": "v1",
        "run_id": "run1",
        "intent_id": f"run1.L{i % 3}",
        "state": OutboxState.PLANNED,
        "attempts": 0,
        "created_at": T0 + timedelta(microseconds=i),
        "updated_at": T0,
    }


def _audit(crm: str, i: int) -> dict[str, Any]:
    return {
        "crm": crm,
        "lead_id": f"L{(7 - i) % 5}",
        "field": "status",
        "before": None if i == 1 else {"v": i},
        "after": "Nurture" if i % 2 else None,
        "rule_id": "r",
        "ruleset_version": "v1",
        "run_id": "run1",
        "intent_id": f"run1.L{i}",
        "at": T0,
        "outcome": "applied",
        "error_code": None,
        "message": None if i % 2 else "kept ✓",
    }


def _history(crm: str, i: int) -> dict[str, Any]:  # no "field": its default applies
    return {
        "crm": crm,
        "lead_id": f"L{(5 - i) % 4}",
        "from_value": None if i == 0 else "MQL",
        "to_value": "SAL",
        "at": T0 - timedelta(days=i),
        "actor": "person" if i % 2 else "syncd",
        "actor_id": None,
        "rule_id": None,
        "run_id": None if i % 2 else "run1",
        "source": "backfill",
    }


@pytest.mark.parametrize(
    ("table", "make", "insert"),
    [
        (OutboxRow.__table__, _outbox, StateStore.add_changes),
        (AuditRow.__table__, _audit, StateStore.add_audit),
        (StatusHistoryRow.__table__, _history, StateStore.add_history),
    ],
    ids=["outbox", "audit", "ledger"],
)
def test_rows_inserted_in_one_statement_are_the_row_by_row_inserts_in_the_same_order(
    pg_store: StateStore,
    table: Table,
    make: Callable[[str, int], dict[str, Any]],
    insert: Callable[[StateStore, Any, list[dict[str, Any]]], None],
) -> None:
    with pg_store.begin() as conn:
        insert(pg_store, conn, [make("bulk", i) for i in range(8)])
        conn.execute(table.insert(), [make("rows", i) for i in range(8)])
    bulk, rows = _as_text(pg_store, table, "bulk"), _as_text(pg_store, table, "rows")
    assert len(bulk) == 8
    assert bulk == rows


def test_outbox_rows_moved_in_one_statement_are_those_moved_row_by_row(
    pg_store: StateStore,
) -> None:
    table = OutboxRow.__table__
    with pg_store.begin() as conn:
        pg_store.add_changes(conn, [_outbox(crm, i) for crm in ("bulk", "rows") for i in range(6)])
    with pg_store.reading() as conn:
        ids = {
            crm: [
                i
                for (i,) in conn.exec_driver_sql(
                    "SELECT id FROM outbox WHERE crm = %(crm)s ORDER BY id", {"crm": crm}
                )
            ]
            for crm in ("bulk", "rows")
        }
    later = T0 + timedelta(hours=1)
    moved = {"attempts": 2, "next_attempt_at": later, "error_code": "E", "error_message": "m"}
    with pg_store.begin() as conn:
        pg_store.set_change_state(conn, ids["bulk"][1:4], OutboxState.PENDING, later, **moved)
        for i in ids["rows"][1:4]:
            conn.execute(
                update(table)
                .where(table.c.id == i)
                .values(state=OutboxState.PENDING, updated_at=later, **moved)
            )
        pg_store.set_change_state(conn, [], OutboxState.DONE, later)  # nothing to move
    assert _as_text(pg_store, table, "bulk") == _as_text(pg_store, table, "rows")


def _lead(crm: str, i: int) -> dict[str, Any]:
    return {
        "crm": crm,
        "lead_id": f"L{i}",
        "modified_at": T0,
        "fields": {"email": f"l{i}@x.io", "status": "Open"},
        "enrichment": {"domain": "x.io"},
        "reasons": {},
        "status": "Open",
        "deleted": i == 1,
        "converted": i == 2,
        "first_seen_at": T0,
        "pulled_at": T0,
        "newsletters": [],
    }


def test_mirror_rows_updated_in_one_statement_are_those_updated_row_by_row(
    pg_store: StateStore,
) -> None:
    table = LeadRow.__table__
    with pg_store.begin() as conn:
        pg_store.upsert_leads(conn, [_lead(crm, i) for crm in ("bulk", "rows") for i in range(4)])
        # Due times set by a plan, which the update must replace.
        for crm in ("bulk", "rows"):
            pg_store.set_due(
                conn, crm, [(f"L{i}", T0 + timedelta(days=i), False) for i in range(4)]
            )
    changes = [
        {
            "lead_id": f"L{i}",
            "fields": {"email": f"l{i}@x.io", "status": "Nurture", "n": None},
            "status": "Nurture",
            "written_status": "Nurture",
            "written_at": T0 + timedelta(minutes=i),
            "newsletters": ["weekly"] if i % 2 else [],
            "error_code": None,
        }
        for i in (3, 0, 1, 2)
    ]
    with pg_store.begin() as conn:
        pg_store.update_leads(conn, "bulk", changes)
        keys = [k for k in changes[0] if k != "lead_id"]
        conn.execute(
            update(table)
            .where(table.c.crm == "rows", table.c.lead_id == bindparam("_id"))
            .values({**{k: bindparam(k) for k in keys}, "due_at": _DUE_AFTER_UPDATE}),
            [{**{k: c[k] for k in keys}, "_id": c["lead_id"]} for c in changes],
        )
    bulk = _as_text(pg_store, table, "bulk")
    assert bulk == _as_text(pg_store, table, "rows")
    # Live leads are due at the next cycle; the deleted and the converted one never.
    assert [row["due_at"] is None for row in bulk] == [True, False, False, True]
