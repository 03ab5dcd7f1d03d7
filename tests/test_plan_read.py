"""Planning's light records hold exactly what SQLAlchemy's typed rows hold, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from syncd import due
from syncd.plan_read import PLAN_COLUMNS, PlanLead
from syncd.state import LeadRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _lead(lead_id: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "crm": "salesforce",
        "lead_id": lead_id,
        "modified_at": T0,
        "fields": {"email": f"{lead_id}@x.io", "name": 'Raúl "R" Ñandú', "employees": 12},
        "enrichment": {"icp_score": 65, "free_mail": False, "role": None},
        "reasons": {"icp_score": "why"},
        "status": "Open",
        "status_changed_at": T0,
        "deleted": False,
        "converted": False,
        "written_status": None,
        "written_at": None,
        "rep_edit_at": None,
        "rep_edit_status": None,
        "newsletters": [],
        "error_code": None,
        "error_message": None,
        "error_at": None,
        "first_seen_at": T0,
        "pulled_at": T0,
    }
    row.update(over)
    return row


def _typed_rows(store: StateStore) -> dict[str, dict[str, object]]:
    """What SQLAlchemy's typed columns decode, per lead."""
    t = LeadRow.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(*(t.c[name] for name in PLAN_COLUMNS))).all()
    return {r.lead_id: r._asdict() for r in rows}


def test_light_plan_records_equal_sqlalchemy_rows_on_every_column(store_url: str) -> None:
    store = StateStore(store_url)
    later = T0 + timedelta(days=2, microseconds=1)
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [
                _lead("A"),
                _lead(
                    "B",
                    status=None,
                    status_changed_at=None,
                    newsletters=["news", "events"],
                    rep_edit_at=later,
                    rep_edit_status="Working",
                    written_status="Working",
                    error_code="FIELD_INVALID",
                    error_message="bad value",
                    error_at=later,
                    fields={},
                    enrichment={"nested": {"a": [1, 2.5, None, True]}},
                ),
                _lead("C", modified_at=datetime(2026, 3, 1, tzinfo=UTC)),
            ],
        )
        t = LeadRow.__table__
        conn.execute(update(t).where(t.c.lead_id == "C").values(due_at=later, guard_blocked=True))
        conn.execute(update(t).where(t.c.lead_id == "A").values(guard_blocked=False))
    typed = _typed_rows(store)
    light = [
        lead
        for chunk in due.iter_plan_rows(store, "salesforce", later, every=True, chunk=2)
        for lead in chunk
    ]
    assert [lead.lead_id for lead in light] == ["A", "B", "C"]
    for lead in light:
        assert isinstance(lead, PlanLead)
        got = lead._asdict()
        want = typed[lead.lead_id]
        assert got == want
        # Same types too: a datetime stays naive or aware as SQLAlchemy returns it.
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
        for name in ("modified_at", "status_changed_at", "rep_edit_at", "error_at", "due_at"):
            assert getattr(getattr(lead, name), "tzinfo", None) == getattr(
                want[name], "tzinfo", None
            )
    store.close()


def test_plan_rows_page_through_due_leads_by_due_time(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(f"L{i}") for i in range(5)])
        t = LeadRow.__table__
        for i in range(5):
            conn.execute(
                update(t).where(t.c.lead_id == f"L{i}").values(due_at=T0 + timedelta(hours=4 - i))
            )
    now = T0 + timedelta(hours=3, minutes=30)
    chunks = list(due.iter_plan_rows(store, "salesforce", now, every=False, chunk=2))
    # L0 is due at T0+4h, after now; the rest by due time, paged two at a time.
    assert [[lead.lead_id for lead in c] for c in chunks] == [["L4", "L3"], ["L2", "L1"]]
    store.close()


def test_json_written_by_another_writer_decodes_as_sqlalchemy_does(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("A")])
        # Whitespace json.dumps never writes (a hand edit, another tool): still the same values.
        conn.exec_driver_sql(
            'UPDATE lead SET fields = \' {"email" : "a@x.io"} \', newsletters = \'[ "n" ]\''
        )
    typed = _typed_rows(store)
    (light,) = next(due.iter_plan_rows(store, "salesforce", T0, every=True))
    assert light.fields == typed["A"]["fields"] == {"email": "a@x.io"}
    assert light.newsletters == typed["A"]["newsletters"] == ["n"]
    store.close()


def test_sqlite_datetime_text_of_any_form_decodes_to_the_same_utc_instant(tmp_path: Path) -> None:
    # SQLAlchemy writes naive UTC text with microseconds; another writer may leave them out or
    # write an offset of its own. Each decodes as SQLAlchemy's typed column does, in UTC.
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("A"), _lead("B"), _lead("C")])
        for lead_id, text in (
            ("A", "2026-03-01 12:00:00"),
            ("B", "2026-03-01 13:00:00.5+01:00"),
            ("C", "2026-03-01T07:00:00-05:00"),
        ):
            conn.exec_driver_sql(
                "UPDATE lead SET modified_at = ?, status_changed_at = ?, due_at = ? "
                "WHERE lead_id = ?",
                (text, text, text, lead_id),
            )
    typed = _typed_rows(store)
    light = next(due.iter_plan_rows(store, "salesforce", T0, every=True))
    assert [lead.lead_id for lead in light] == ["A", "B", "C"]
    for lead in light:
        for name in ("modified_at", "status_changed_at", "due_at"):
            got = getattr(lead, name)
            assert got == typed[lead.lead_id][name]
            assert got.tzinfo is UTC  # what the rule input's fast paths test for
    assert light[1].modified_at == datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    store.close()
