"""The drain's light outbox records hold exactly what SQLAlchemy's typed rows hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from syncd.outbox_read import OUTBOX_COLUMNS, OutboxLight
from syncd.state import OutboxRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _change(lead_id: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "crm": "salesforce",
        "lead_id": lead_id,
        "kind": "field",
        "field": "status",
        "value": "Nurture",
        "before": "New",
        "rule_id": "r1",
        "ruleset_version": "v1",
        "run_id": "run1",
        "intent_id": f"run1.{lead_id}",
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": None,
        "error_code": None,
        "error_message": None,
        "created_at": T0,
        "updated_at": T0,
        "may_have_landed": False,
    }
    row.update(over)
    return row


def _typed_rows(store: StateStore) -> dict[int, dict[str, object]]:
    t = OutboxRow.__table__
    with store.engine.connect() as conn:
        return {r.id: r._asdict() for r in conn.execute(select(t)).all()}


def test_due_changes_read_back_every_column_as_sqlalchemy_decodes_it(store_url: str) -> None:
    store = StateStore(store_url)
    later = T0 + timedelta(days=2, microseconds=1)
    with store.begin() as conn:
        store.add_changes(
            conn,
            [
                _change("A"),
                _change(
                    "B",
                    value={"nested": [1, 2.5, None, True, 'Raúl "R" Ñandú']},
                    before=None,  # SQLAlchemy stores the JSON text 'null'
                    rule_id=None,
                    ruleset_version=None,
                    attempts=3,
                    next_attempt_at=T0 - timedelta(minutes=1),
                    error_code="UNABLE_TO_LOCK_ROW",
                    error_message="busy",
                    updated_at=later,
                    may_have_landed=True,
                ),
                _change("C", kind="membership", field="newsletter", value=True, before=False),
                _change("D", value=12, before=[]),
                _change("E", value="", before="[]"),  # a string that reads as JSON text
            ],
        )
        t = OutboxRow.__table__
        # A SQL NULL in a JSON column (another writer): None, as SQLAlchemy reads it.
        conn.execute(update(t).where(t.c.lead_id == "D").values(before=None))
    typed = _typed_rows(store)
    light = [
        r
        for kind in ("field", "membership")
        for chunk in store.iter_due_changes("salesforce", kind, later, chunk=2)
        for r in chunk
    ]
    assert sorted(r.lead_id for r in light) == ["A", "B", "C", "D", "E"]
    for r in light:
        got, want = r._asdict(), typed[r.id]
        assert list(got) == list(OUTBOX_COLUMNS) == list(want)
        assert got == want
        # Same types too (True is not 1, an aware datetime stays aware).
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
        for name in ("next_attempt_at", "created_at", "updated_at"):
            assert getattr(got[name], "tzinfo", None) == getattr(want[name], "tzinfo", None)
    if store.engine.dialect.name == "sqlite":
        assert all(isinstance(r, OutboxLight) for r in light)
    store.close()


def test_json_text_of_another_writer_decodes_in_outbox_records(tmp_path: object) -> None:
    store = StateStore(f"sqlite:///{tmp_path}/s.db")
    with store.begin() as conn:
        store.add_changes(conn, [_change("A")])
        conn.exec_driver_sql("UPDATE outbox SET value = ' { \"a\" : [1, 2] } '")
    (chunk,) = store.iter_due_changes("salesforce", "field", T0)
    assert chunk[0].value == {"a": [1, 2]} == _typed_rows(store)[chunk[0].id]["value"]
    store.close()
