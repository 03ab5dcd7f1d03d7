"""What a pull of changed leads costs in counted calls: up to 5 query pages (10,000 leads) a
Composite call, the first page and 4 chained next pages, then more chained calls or one Bulk
API 2.0 job for the rest, whichever costs fewer calls; with the default settings
(``bulk_read_threshold`` 0: the cost alone decides)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from connectors.base import Cursor
from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import SalesforceEmulator, synthetic_leads

from .support import T0

SEEDED = T0 - timedelta(hours=2)  # last modified long before the cursor and its overlap


def _pull_of_changed(
    emu: SalesforceEmulator,
    make_connector: Callable[..., SalesforceConnector],
    changed: int,
    **settings: object,
) -> list[str]:
    """Another user changes ``changed`` of ``changed + 1000`` leads; the pull from a cursor
    after the seeding, with the default page size, overlap and lag: the counted read calls by
    kind (a Composite call by its subrequests' count)."""
    ids = emu.add_leads(synthetic_leads(changed + 1000, seed=changed), modstamp=SEEDED)
    touched = ids[500 : 500 + changed]
    for lead_id in touched:
        emu.update_lead(lead_id, {"Status": "Working - Contacted"})
    emu.clock.advance(60)  # past the lag
    connector = make_connector(overlap_seconds=300, lag_seconds=5, **settings)
    connector.check(statuses=set(), fields=set(), newsletters=set())  # as at start-up
    since = Cursor(T0 - timedelta(hours=1), "", read_at=T0 - timedelta(minutes=5))
    emu.journal.clear()
    seen = Counter(
        lead.id
        for page in connector.iter_pages(since, until=emu.clock.now())
        for lead in page.leads
    )
    assert seen == Counter(touched), "every changed lead exactly once, and no other"
    return [_kind(e) for e in emu.journal.entries() if "oauth" not in e.path]


def _kind(entry: object) -> str:
    method, path = entry.method, entry.path  # type: ignore[attr-defined]
    if "/jobs/query" in path:
        if method == "POST":
            return "job create"
        return "job results" if path.endswith("/results") else "job look"
    if path.endswith("/composite"):
        return "composite"
    return "query page" if "/query" in path else f"{method} {path}"


@pytest.mark.parametrize(
    ("changed", "calls"),
    [(0, 1), (1_999, 1), (2_000, 1), (10_000, 1), (10_001, 2), (30_000, 3)],
)
def test_a_pull_costs_one_counted_call_per_10000_changed_leads_five_chained_pages_a_call(
    emu: SalesforceEmulator,
    make_connector: Callable[..., SalesforceConnector],
    changed: int,
    calls: int,
) -> None:
    # 30,000: after the first call's 10,000, 2 more chained calls against a job's 3 (create,
    # one look, one results page): the chained calls.
    assert _pull_of_changed(emu, make_connector, changed) == ["composite"] * calls


def test_a_pull_whose_rest_costs_fewer_calls_by_job_reads_the_first_five_pages_then_one_job(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    # 200-lead pages: the first call reads 1,000 of 6,000; the other 5,000 would be 5 chained
    # calls, a job reads them in 3.
    kinds = _pull_of_changed(emu, make_connector, 6_000, page_size=200)
    assert kinds == ["composite", "job create", "job look", "job results"]


def test_with_composite_off_a_pull_reads_one_query_page_a_call(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    kinds = _pull_of_changed(emu, make_connector, 6_000, composite=False)
    assert kinds == ["query page"] * 3
