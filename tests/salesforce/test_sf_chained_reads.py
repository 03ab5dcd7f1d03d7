"""Chained query pages (5 a Composite call): every changed lead once, whatever happens between
or inside the calls; the fallback to a page a call when the org refuses Composite."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from connectors.base import Page
from connectors.salesforce import SalesforceConnector
from connectors.testing.kit import Fault
from connectors.testing.salesforce import SalesforceEmulator, synthetic_leads

from .support import T0

# 200-lead pages: a call of 5 chained pages reads 1,000 leads; no job (the stream is tested).
STREAM = {"page_size": 200, "bulk_read_threshold": None}


def _seed(emu: SalesforceEmulator, n: int) -> list[str]:
    ids = emu.add_leads(synthetic_leads(n, seed=n))
    emu.clock.advance(1)
    return ids


def _ids(pages: list[Page]) -> Counter[str]:
    return Counter(lead.id for page in pages for lead in page.leads)


def _calls(emu: SalesforceEmulator) -> list[str]:
    paths = [e.path.rstrip("/") for e in emu.journal if "/services/data/" in e.path]
    return [p.rsplit("/v59.0/", 1)[-1] for p in paths]


def test_a_lead_changed_between_two_chained_calls_is_read_once_in_the_pull_and_again_in_the_next(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 2500)
    connector = make_connector(**STREAM)
    stream = connector.iter_pages(None, until=emu.clock.now())
    pages = [next(stream) for _ in range(5)]  # the first call's 1,000 leads
    read, unread = pages[0].leads[0].id, ids[-1]
    emu.clock.advance(1)
    emu.update_lead(read, {"Title": "changed after its page"})
    emu.update_lead(unread, {"Title": "changed before its page"})
    emu.delete_lead(ids[-2])
    pages += list(stream)
    assert _ids(pages) == Counter(ids), "each lead exactly once: the query's snapshot"
    assert _calls(emu) == ["composite"] * 3
    emu.clock.advance(1)
    after = list(connector.iter_pages(pages[-1].cursor, until=emu.clock.now()))
    assert _ids(after) == Counter([read, unread, ids[-2]])
    by_id = {lead.id: lead for page in after for lead in page.leads}
    assert by_id[ids[-2]].deleted and by_id[unread].fields["title"] == "changed before its page"


def test_deleted_leads_arrive_flagged_through_query_all_in_chained_pages(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 1800)
    gone = ids[::7]
    for lead_id in gone:
        emu.delete_lead(lead_id)
    emu.clock.advance(1)
    pages = list(make_connector(**STREAM).iter_pages(None, until=emu.clock.now()))
    assert _ids(pages) == Counter(ids)
    assert {x.id for p in pages for x in p.leads if x.deleted} == set(gone)
    assert [len(p.leads) for p in pages] == [200] * 9
    assert _calls(emu) == ["composite"] * 2


def test_a_503_on_a_chained_page_resumes_the_read_from_the_page_before_it_nothing_lost_or_doubled(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 1500)
    emu.faults.script("503", 1, path=r"/query/\w+-600$")  # the first call's 4th page
    pages = list(make_connector(**STREAM).iter_pages(None, until=emu.clock.now()))
    assert _ids(pages) == Counter(ids)
    first, second = (e for e in emu.journal if e.path.endswith("/composite"))
    assert [s.status for s in first.subrequests][:4] == [200, 200, 200, 503]
    # The next call starts at the failed page (offset 600) and reads to the end.
    assert second.subrequests[0].path.endswith("-600")
    assert [s.status for s in second.subrequests][:5] == [200] * 5


def test_a_chained_call_whose_answer_is_lost_is_sent_again_and_every_lead_arrives_once(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 2200)
    stream = make_connector(**STREAM).iter_pages(None, until=emu.clock.now())
    pages = [next(stream) for _ in range(5)]
    emu.faults.script("drop-after", 1, path=r"/composite$")  # served, the answer lost
    pages += list(stream)
    assert _ids(pages) == Counter(ids)
    statuses = [e.status for e in emu.journal if e.path.endswith("/composite")]
    # The second call was served, its answer lost (journaled 0), and sent again.
    assert statuses == [200, 0, 200, 200]
    assert [e.fault for e in emu.journal if e.path.endswith("/composite")][1] == "drop-after"


def test_a_refused_composite_falls_back_to_a_query_page_a_call_for_this_and_later_pulls(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 700)
    emu.faults.add(
        Fault(
            "respond",
            path=r"/composite$",
            status=404,
            body=[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
        )
    )
    connector = make_connector(**STREAM)
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert _ids(pages) == Counter(ids)
    calls = _calls(emu)
    # The refusal, then 4 pages of 200, a call each.
    assert calls[:2] == ["composite", "queryAll"] and len(calls) == 5
    assert all(c.startswith("query/") for c in calls[2:])
    emu.journal.clear()
    emu.clock.advance(1)
    again = list(connector.iter_pages(pages[-1].cursor, until=emu.clock.now()))
    assert _ids(again) == Counter()
    assert _calls(emu) == ["queryAll"]  # no Composite tried again


def test_the_edits_query_beside_a_pull_takes_one_of_the_five_query_slots_of_its_first_call(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 1000)
    emu.update_lead(ids[3], {"Status": "Working - Contacted"})
    emu.clock.advance(1)
    connector = make_connector(**STREAM)
    connector.read_edits_beside_pull(T0 - timedelta(hours=1))
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert _ids(pages) == Counter(ids)
    first, second = (e for e in emu.journal if e.path.endswith("/composite"))
    assert ["LeadHistory" in (s.soql or "") for s in first.subrequests] == [False] * 4 + [True]
    assert len(second.subrequests) == 5  # the fifth page, then the chain's unused slots
    read = connector.edits_beside_pull()
    assert read is not None and read.history is not None
    assert [e.lead_id for e in read.history] == [ids[3]]


def test_the_orgs_status_history_reads_its_pages_after_the_first_five_chained_a_call(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = _seed(emu, 5000)
    changed = [i for i in ids if emu.lead(i)["Status"] != "Working - Contacted"]
    assert len(changed) > 4000  # 3 pages of 2,000 rows
    for lead_id in changed:
        emu.update_lead(lead_id, {"Status": "Working - Contacted"})
    connector = make_connector()
    connector.check(statuses=set(), fields=set(), newsletters=set())  # as at start-up
    emu.journal.clear()
    stream = connector.org_status_history(leads=2000)  # by lead: 10 calls
    assert stream is not None
    rows = [entry for page in stream for entry in page]
    assert sorted(e.lead_id for e in rows) == sorted(changed)
    # The first page (its totalSize decides the way), then the other 2 pages in one call.
    assert _calls(emu) == ["query", "composite"]
