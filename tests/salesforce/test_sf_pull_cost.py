"""What a pull of many changed leads costs in counted calls: the first query page (which tells
the size), then the cheaper of the remaining query pages and one Bulk API 2.0 job, with the
default settings (``bulk_read_threshold`` 0: the cost alone decides)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from connectors.base import Cursor
from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import SalesforceEmulator, synthetic_leads

from .support import T0

SEEDED = T0 - timedelta(hours=2)  # last modified long before the cursor and its overlap


def _pull_of_changed(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector], changed: int
) -> tuple[Counter[str], list[str]]:
    """Another user changes ``changed`` of ``changed + 1000`` leads; the pull from a cursor
    after the seeding, with the default page size, overlap and lag: (read calls by kind,
    changed ids)."""
    ids = emu.add_leads(synthetic_leads(changed + 1000, seed=changed), modstamp=SEEDED)
    touched = ids[500 : 500 + changed]
    for lead_id in touched:
        emu.update_lead(lead_id, {"Status": "Working - Contacted"})
    emu.clock.advance(60)  # past the lag
    connector = make_connector(overlap_seconds=300, lag_seconds=5)
    connector.check(statuses=set(), fields=set(), newsletters=set())  # as at start-up
    since = Cursor(T0 - timedelta(hours=1), "", read_at=T0 - timedelta(minutes=5))
    emu.journal.clear()
    seen = Counter(
        lead.id
        for page in connector.iter_pages(since, until=emu.clock.now())
        for lead in page.leads
    )
    assert seen == Counter(touched), "every changed lead exactly once, and no other"
    calls = Counter(_kind(e.method, e.path) for e in emu.journal.entries() if "oauth" not in e.path)
    return calls, touched


def _kind(method: str, path: str) -> str:
    if "/jobs/query" in path:
        if method == "POST":
            return "job create"
        return "job results" if path.endswith("/results") else "job look"
    return "query page" if "/query" in path else f"{method} {path}"


def test_a_pull_of_10000_changed_leads_costs_its_first_page_and_one_query_job_not_four_more_pages(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    calls, _ = _pull_of_changed(emu, make_connector, 10_000)
    # 4 calls where query pages would take 5: the first page tells the size (the only way to
    # learn it), a job reads the other 8,000 in 3.
    assert calls == {"query page": 1, "job create": 1, "job look": 1, "job results": 1}


def test_a_pull_of_6000_changed_leads_stays_on_query_pages_where_a_job_costs_as_much(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    calls, _ = _pull_of_changed(emu, make_connector, 6_000)
    # 2 more pages or a job of 3 calls: the pages, which also stream without waiting.
    assert calls == {"query page": 3}
