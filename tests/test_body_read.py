"""What the drain reads back of a written lead holds exactly what SQLAlchemy's rows hold."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from syncd.body_read import BODY_COLUMNS
from syncd.state import LeadRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lead(lead_id: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "crm": "salesforce",
        "lead_id": lead_id,
        "modified_at": T0,
        "fields": {"email": f"{lead_id}@x.io", "name": 'Raúl "R" Ñandú', "employees": 12},
        "enrichment": {},
        "reasons": {},
        "status": "Open",
        "status_changed_at": T0,
        "deleted": False,
        "converted": False,
        "newsletters": [],
        "first_seen_at": T0,
        "pulled_at": T0,
    }
    row.update(over)
    return row


def _seed(store: StateStore) -> None:
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [
                _lead("A"),
                _lead("B", status=None, fields={}, newsletters=["news", "events"]),
                _lead("C", fields={"nested": {"a": [1, 2.5, None, True]}, "note": "[]"}),
                _lead("D"),
                _lead("other-crm", crm="hubspot"),
            ],
        )
        t = LeadRow.__table__
        # Text another writer left (whitespace json.dumps never writes): the same values.
        conn.execute(
            update(t).where(t.c.lead_id == "D").values(newsletters=None)  # SQL NULL stays None
        )
        conn.exec_driver_sql(
            "UPDATE lead SET fields = ' { \"email\" : \"d@x.io\" } ' WHERE lead_id = 'D'"
        )


def test_written_leads_read_back_as_sqlalchemy_decodes_them(store_url: str) -> None:
    store = StateStore(store_url)
    _seed(store)
    t = LeadRow.__table__
    ids = ["A", "B", "C", "D", "missing", "other-crm"]
    with store.engine.connect() as conn:
        want = {
            r.lead_id: r._asdict()
            for r in conn.execute(
                select(*(t.c[n] for n in BODY_COLUMNS)).where(
                    t.c.crm == "salesforce", t.c.lead_id.in_(ids)
                )
            )
        }
        got = {k: v._asdict() for k, v in store.lead_bodies(conn, "salesforce", ids).items()}
        newsletters = store.lead_newsletters(conn, "salesforce", ids)
    assert sorted(got) == ["A", "B", "C", "D"]
    assert got == want
    for lead_id, row in got.items():
        assert [type(v) for v in row.values()] == [type(v) for v in want[lead_id].values()]
    assert newsletters == {k: v["newsletters"] for k, v in want.items()}
    assert newsletters["B"] == ["news", "events"] and newsletters["D"] is None
    store.close()


def test_lead_bodies_read_more_leads_than_one_statement_binds(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(f"L{i:04d}") for i in range(1200)])
    with store.engine.connect() as conn:
        bodies = store.lead_bodies(conn, "salesforce", [f"L{i:04d}" for i in range(1200)])
    assert len(bodies) == 1200
    assert bodies["L1199"].fields["email"] == "L1199@x.io"
    store.close()
