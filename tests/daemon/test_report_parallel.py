"""`syncd report` in parts: lead ranges summed by worker processes and merged give the very
report one pass gives, on SQLite and PostgreSQL.

The fixture is generated (seeded): 2,000 leads over two CRMs with random walks through the
stages, rejections, regressions and skips, random owners and sources (some missing), last
activities as dates, times or none, ledger rows whose lead the mirror no longer has, and more
than a thousand open SLA breaches, many of the same age, so that which ones a report keeps
depends on the order the parts are merged in.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import Session

from rules.calendar import Calendar
from syncd.report import ReportOptions, compute
from syncd.report_parallel import compute_from_store, split_leads
from syncd.report_read import read_inputs
from syncd.report_render import json_text
from syncd.state import LeadRow, StateStore, StatusHistoryRow

NOW = datetime(2026, 10, 12, 12, tzinfo=UTC)
STATUSES = ["New", "MQL", "SAL", "SQL", "Converted", "Unqualified", "Nurture"]
#: A few SAL instants shared by many untouched leads: open breaches of equal age.
SAL_TIES = [datetime(2026, 9, d, 10, tzinfo=UTC) for d in (8, 15, 22)]
MAPS = {"salesforce": {"Closed - Not Converted": "Unqualified"}, "hubspot": {}}


def _history(rng: random.Random) -> list[tuple[str, datetime]]:
    if rng.random() < 0.6:  # straight to an untouched SAL at a shared instant
        sal = rng.choice(SAL_TIES)
        return [("New", sal - timedelta(hours=rng.choice((1, 5, 30)))), ("SAL", sal)]
    at = NOW - timedelta(days=rng.uniform(5, 70))
    steps: list[tuple[str, datetime]] = []
    for _ in range(rng.randint(1, 7)):
        steps.append((rng.choice(STATUSES), at))
        at += timedelta(minutes=rng.choice((0, 1, 45, 600, 2880, rng.randint(1, 20000))))
    return steps


def _seed(url: str, leads: int = 2_000) -> None:
    rng = random.Random(20261130)
    store = StateStore(url)
    with Session(store.engine) as session:
        for i in range(leads):
            crm = "salesforce" if i % 3 else "hubspot"
            lead_id = f"L{rng.randrange(10**9):09d}-{i}"  # random order of keys and CRMs
            steps = _history(rng)
            fields: dict[str, object] = {}
            if rng.random() < 0.9:
                fields["owner"] = f"rep{rng.randrange(12)}"
            if rng.random() < 0.8:
                fields["lead_source"] = rng.choice(("web", "event", "partner"))
            kind = rng.random() if steps[-1][1] not in SAL_TIES else 1.0  # ties: untouched
            last = steps[-1][1]
            if kind < 0.3:
                fields["last_activity_at"] = (
                    last + timedelta(hours=rng.randint(-40, 40))
                ).isoformat()
            elif kind < 0.5:
                fields["last_activity_at"] = (
                    last.date() + timedelta(days=rng.randint(-1, 2))
                ).isoformat()
            if rng.random() < 0.97:  # the rest: the mirror no longer has the lead
                session.add(
                    LeadRow(
                        crm=crm, lead_id=lead_id, modified_at=NOW, fields=fields,
                        status=steps[-1][0], first_seen_at=NOW, pulled_at=NOW,
                    )
                )  # fmt: skip
            previous: str | None = None
            for status, at in steps:
                value = (
                    "Closed - Not Converted"
                    if crm == "salesforce" and status == "Unqualified"
                    else status
                )
                session.add(
                    StatusHistoryRow(
                        crm=crm, lead_id=lead_id, from_value=previous, to_value=value, at=at,
                        actor="person", source="pulled",
                    )
                )  # fmt: skip
                previous = value
        session.commit()
    store.close()


def _options(**overrides: object) -> ReportOptions:
    calendar = Calendar.build(
        "Europe/Berlin", ["mon", "tue", "wed", "thu", "fri"], (time(9), time(17)),
        holidays=[date(2026, 10, 3)],
    )  # fmt: skip
    base: dict[str, object] = {
        "since": NOW - timedelta(days=45),
        "until": NOW - timedelta(days=3),
        "now": NOW,
        "calendar": calendar,
    }
    return ReportOptions(**{**base, **overrides})  # type: ignore[arg-type]


def test_a_report_in_parts_equals_the_single_pass_number_for_number(store_url: str) -> None:
    _seed(store_url)
    store = StateStore(store_url)
    try:
        ranges = split_leads(store.engine, 3)
        assert len(ranges) == 3 and ranges[0][0] is None and ranges[-1][1] is None
        cases = [
            (_options(), None),
            (_options(), "owner"),
            (_options(acceptance="within_sla_over_mqls", cohort=True), "crm"),
        ]
        for options, by in cases:
            single = compute(read_inputs(store.engine, MAPS), options, by)  # type: ignore[arg-type]
            parts = compute_from_store(store.engine, MAPS, options, by, workers=3)  # type: ignore[arg-type]
            total = single[0]
            assert total.open_breach_count > 1_000  # past the list's cap: ties decide
            assert [b.lead_id for b in parts[0].open_breaches] == [
                b.lead_id for b in total.open_breaches
            ]
            assert json_text(parts, {}) == json_text(single, {})
    finally:
        store.close()
