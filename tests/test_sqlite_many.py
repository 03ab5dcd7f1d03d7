"""SQLite executemany without SQLAlchemy's per-row work (``syncd.sqlite_many``) stores the very
text ``conn.execute(statement, rows)`` stores: JSON, datetimes in and out of UTC, NULLs,
values bound into the statement; and refuses what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, update
from sqlalchemy.exc import StatementError

from syncd.sqlite_many import ManyStatements
from syncd.state import AuditRow, LeadRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def _audit(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "crm": "salesforce",
        "lead_id": f"L{i}",
        "field": "status",
        "before": None if i % 2 else {"status": "New", "n": 1.5, "tags": ["a", None]},
        "after": "Nurture" if i % 3 else True,
        "rule_id": None,
        "ruleset_version": "v1",
        "run_id": "r1",
        "intent_id": f"r1.L{i}",
        "at": T0 + timedelta(seconds=i),
        "outcome": "applied",
        "error_code": None,
        "message": 'quote " ünïcode',
    }
    row.update(over)
    return row


def _raw(conn: Connection, table: str) -> list[tuple[Any, ...]]:
    return list(conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").all())


def _two_stores(tmp_path: Path) -> tuple[StateStore, StateStore]:
    return (
        StateStore(f"sqlite:///{tmp_path / 'many.db'}"),
        StateStore(f"sqlite:///{tmp_path / 'sqlalchemy.db'}"),
    )


def test_inserted_rows_are_stored_as_sqlalchemys_executemany_stores_them(tmp_path: Path) -> None:
    ours, theirs = _two_stores(tmp_path)
    rows = [_audit(i) for i in range(6)]
    rows += [_audit(6, at=datetime(2026, 3, 1, 13, 0, tzinfo=CET))]  # not UTC: converted
    rows += [_audit(7, at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))]  # no microseconds
    with ours.begin() as conn:
        ManyStatements().run(conn, "audit", AuditRow.__table__.insert, rows)
    with theirs.begin() as conn:
        conn.execute(AuditRow.__table__.insert(), rows)
    with ours.reading() as a, theirs.reading() as b:
        assert _raw(a, "audit") == _raw(b, "audit")
        times = a.exec_driver_sql("SELECT at FROM audit ORDER BY id").scalars().all()
    assert times[6] == "2026-03-01 12:00:00.000000"  # 13:00+01:00, in UTC
    assert times[7] == "2026-03-01 12:00:00.000000" and times[1] == "2026-03-01 12:00:01.123456"
    ours.close()
    theirs.close()


def test_an_update_binding_a_constant_and_a_case_updates_as_sqlalchemy_does(
    tmp_path: Path,
) -> None:
    ours, theirs = _two_stores(tmp_path)
    lead = {
        "crm": "salesforce",
        "modified_at": T0,
        "fields": {},
        "enrichment": {},
        "reasons": {},
        "newsletters": [],
        "first_seen_at": T0,
        "pulled_at": T0,
    }
    table = LeadRow.__table__

    def stmt() -> Any:
        return (
            update(table)
            .where(table.c.crm == "salesforce", table.c.lead_id == bindparam("_id"))
            .values(fields=bindparam("fields"), written_at=bindparam("written_at"))
        )

    changes = [
        {"_id": "a", "fields": {"status": "Nurture"}, "written_at": T0},
        {"_id": "b", "fields": {"status": None}, "written_at": None},
    ]
    for store in (ours, theirs):
        with store.begin() as conn:
            conn.execute(table.insert(), [{**lead, "lead_id": "a"}, {**lead, "lead_id": "b"}])
    with ours.begin() as conn:
        ManyStatements().run(conn, "update", stmt, changes)
    with theirs.begin() as conn:
        conn.execute(stmt(), changes)
    query = "SELECT lead_id, fields, written_at FROM lead ORDER BY lead_id"
    with ours.reading() as a, theirs.reading() as b:
        stored = list(a.exec_driver_sql(query).all())
        assert stored == list(b.exec_driver_sql(query).all())
    assert stored[0][1] == '{"status": "Nurture"}' and stored[1][2] is None
    ours.close()
    theirs.close()


def test_a_value_the_column_refuses_fails_the_statement_as_sqlalchemy_does(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    naive = [_audit(1), _audit(2, at=datetime(2026, 3, 1, 12, 0))]  # a time without its zone
    with pytest.raises(StatementError, match="timezone"), store.begin() as conn:
        ManyStatements().run(conn, "audit", AuditRow.__table__.insert, naive)
    with store.reading() as conn:
        assert _raw(conn, "audit") == []  # nothing of the failed statement stays
    store.close()


def test_a_statement_is_compiled_once_for_rows_of_the_same_keys(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    many = ManyStatements()
    built: list[int] = []

    def build() -> Any:
        built.append(1)
        return AuditRow.__table__.insert()

    with store.begin() as conn:
        many.run(conn, "audit", build, [_audit(1)])
        many.run(conn, "audit", build, [_audit(2), _audit(3)])
        many.run(conn, "audit", build, [{k: v for k, v in _audit(4).items() if k != "message"}])
    assert len(built) == 2  # a second set of keys is a second statement
    with store.reading() as conn:
        ids = conn.exec_driver_sql("SELECT lead_id FROM audit ORDER BY id").scalars().all()
    assert ids == ["L1", "L2", "L3", "L4"]
    store.close()
