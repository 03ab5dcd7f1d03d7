"""A pulled page's upsert on PostgreSQL goes through COPY (``syncd.pg_copy``): it stores exactly
what the JSON-document upsert it replaced (``pg_bulk.upsert_rows``) and SQLAlchemy's row-by-row
upsert store, compared as the server's text of every column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import StatementError

from syncd import pg_bulk, pg_copy
from syncd.state import LeadRow, StateStore
from tests.pgdb import empty_database

T0 = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
KEYS = ("crm", "lead_id")


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    store = StateStore(empty_database(postgres_url, "syncd_copy_upsert"), auto_upgrade=True)
    yield store
    store.close()


def _lead(crm: str, lead_id: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "crm": crm,
        "lead_id": lead_id,
        "modified_at": T0,
        "fields": {
            "email": f"{lead_id}@x.io",
            "note": 'tab\there, newline\nthere, quote " backslash \\ ünïcode → ✓',
            "employees": 972,
            "revenue": 886560000.0,
            "tags": ["a", None, {"deep": [1.5, True]}],
            "empty": "",
        },
        "enrichment": {"domain": "x.io", "icp_score": 55, "free_mail": False},
        "reasons": {"icp_score": "icp_score 55 ≥ medium_at 40"},
        "status": "Open",
        "status_changed_at": None,
        "deleted": False,
        "converted": False,
        "written_status": None,
        "written_at": None,
        "rep_edit_at": None,
        "rep_edit_status": None,
        "newsletters": [],
        "error_code": None,
        "error_message": None,
        "first_seen_at": T0,
        "pulled_at": T0,
        "quarantine": None,
        "due_at": None,
    }
    row.update(over)
    return row


def _page(crm: str, pulled: datetime) -> list[dict[str, Any]]:
    return [
        _lead(crm, "a", pulled_at=pulled, first_seen_at=pulled),
        _lead(
            crm,
            "b",
            deleted=True,
            quarantine=[{"field": "title", "excerpt": "x\ty", "reason": "too long"}],
            rep_edit_at=datetime(2026, 3, 1, 14, 0, tzinfo=CEST),  # the same instant in UTC
            status=None,
            fields={},
            newsletters=["weekly", "ü"],
            pulled_at=pulled,
            first_seen_at=pulled,
        ),
        _lead(crm, "c", status="First", pulled_at=pulled, first_seen_at=pulled),
        _lead(crm, "c", status="Later wins", pulled_at=pulled, first_seen_at=pulled),
    ]


def _row_by_row(conn: Any, rows: list[dict[str, Any]]) -> None:
    """SQLAlchemy's upsert, one statement a row (the store's upsert on SQLite, in form)."""
    table = LeadRow.__table__
    for row in rows:
        insert = postgresql.insert(table).values(row)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=list(KEYS),
                set_={c: insert.excluded[c] for c in row if c not in (*KEYS, "first_seen_at")},
            )
        )


def _as_text(store: StateStore, crm: str) -> list[dict[str, str | None]]:
    table = LeadRow.__table__
    names = [c.name for c in table.c if c.name != "crm"]
    columns = ", ".join(f'CAST("{n}" AS TEXT)' for n in names)
    with store.reading() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {columns} FROM lead WHERE crm = %(crm)s ORDER BY lead_id", {"crm": crm}
        ).all()
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_a_page_upserted_through_copy_stores_what_the_json_document_and_row_upserts_store(
    pg_store: StateStore,
) -> None:
    table = LeadRow.__table__
    later = T0 + timedelta(minutes=5)
    for pulled in (T0, later):  # inserted, then every row updated (first sighting kept)
        with pg_store.begin() as conn:
            pg_copy.upsert_copied(conn, table, _page("copy", pulled), KEYS, keep=["first_seen_at"])
            pg_bulk.upsert_rows(conn, table, _page("doc", pulled), KEYS, keep=["first_seen_at"])
            _row_by_row(conn, _page("rows", pulled))
    copied = _as_text(pg_store, "copy")
    assert copied == _as_text(pg_store, "doc") == _as_text(pg_store, "rows")
    a, b, c = copied
    assert a["quarantine"] is None and a["newsletters"] == "[]"  # SQL NULL; JSON text
    assert b["fields"] == "{}" and b["status"] is None
    assert c["status"] == "Later wins"
    assert a["first_seen_at"] != a["pulled_at"]  # kept from the first page


def test_a_row_the_copy_cannot_encode_fails_the_statement_and_stores_nothing(
    pg_store: StateStore,
) -> None:
    table = LeadRow.__table__
    naive = _lead("copy", "n", modified_at=datetime(2026, 3, 1, 13, 0))
    not_json = _lead("copy", "j", fields={"when": T0})  # SQLAlchemy's JSON refuses it too
    for bad in (naive, not_json):
        with pytest.raises(StatementError), pg_store.begin() as conn:
            pg_copy.upsert_copied(conn, table, [_lead("copy", "ok"), bad], KEYS)
    assert _as_text(pg_store, "copy") == []


def test_two_page_upserts_in_one_transaction_each_stage_their_own_rows(
    pg_store: StateStore,
) -> None:
    table = LeadRow.__table__
    with pg_store.begin() as conn:
        pg_copy.upsert_copied(conn, table, [_lead("copy", "a")], KEYS)
        partial = {k: v for k, v in _lead("copy", "b").items() if k not in ("deleted", "converted")}
        pg_copy.upsert_copied(conn, table, [partial], KEYS)
    stored = _as_text(pg_store, "copy")
    assert [r["lead_id"] for r in stored] == ["a", "b"]
    assert stored[1]["deleted"] == "false"  # the column's default
