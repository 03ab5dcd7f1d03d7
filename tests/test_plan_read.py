"""Planning's light records hold exactly what SQLAlchemy's typed rows hold, on both backends."""

from __future__ import annotations

import json
import random
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


def _json_value(rng: random.Random, depth: int = 0) -> object:
    """A value json.dumps writes, weighted to the ones a fast decoder could get wrong: integers
    past 64 bits, floats at and past their range, NaN, -0.0, escapes, non-BMP text, lone
    surrogates, nesting."""
    kind = rng.randrange(12 if depth < 3 else 9)
    if kind == 0:
        return rng.choice((0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30))
    if kind == 1:
        return rng.choice((0.1, -0.0, 1e-320, 1.7976931348623157e308, 2.5, 1e22, 123456789.125))
    if kind == 2:
        return rng.choice((float("nan"), float("inf"), float("-inf")))
    if kind == 3:
        return rng.choice((True, False, None))
    if kind == 4:
        return rng.choice(("", 'Raúl "R" Ñandú', "tab\tnew\nline\\", "😀 ok", "\ud800 lone"))
    if kind in (5, 6, 7, 8):
        return "".join(rng.choice("abcxyz019 -_@.éü") for _ in range(rng.randrange(12)))
    if kind in (9, 10):
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _json_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_every_json_value_json_dumps_writes_decodes_as_json_loads_does(tmp_path: Path) -> None:
    # The plan read decodes with msgspec and hands what it refuses to json.loads; either way the
    # values, their types and the key order are json.loads' (repr tells 1 from 1.0 and True,
    # -0.0 from 0.0, and shows NaN).
    rng = random.Random(7)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    written = {
        f"L{i:03d}": (
            {f"f{j}": _json_value(rng) for j in range(rng.randrange(1, 8))},
            {f"e{j}": _json_value(rng) for j in range(rng.randrange(1, 4))},
        )
        for i in range(400)
    }
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [_lead(lead_id, fields=f, enrichment=e) for lead_id, (f, e) in written.items()],
        )
    light = [
        lead for chunk in due.iter_plan_rows(store, "salesforce", T0, every=True) for lead in chunk
    ]
    assert len(light) == len(written)
    for lead in light:
        fields, enrichment = written[lead.lead_id]
        assert repr(lead.fields) == repr(json.loads(json.dumps(fields)))
        assert repr(lead.enrichment) == repr(json.loads(json.dumps(enrichment)))
    store.close()
