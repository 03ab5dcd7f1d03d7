"""Large pulls through Bulk API 2.0 query jobs, through the real client against the emulator."""

from __future__ import annotations

import math
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from connectors.errors import ConnectorError, Interrupted, RetriableError
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator, synthetic_leads

from .support import T0, config_for, lead

# 200-lead query pages, one a call (no Composite chaining): a job is then cheaper than REST
# pages from a few hundred leads on, so the job's own behaviour is seen with small orgs. Jobs
# after chained pages: tests/salesforce/test_sf_chained_reads.py.
BULK = {
    "bulk_read_threshold": 1000,
    "bulk_poll_seconds": 0,
    "page_size": 200,
    "composite": False,
}


def _jobs(emu: SalesforceEmulator, method: str | None = None, part: str = "/jobs/query"):
    return emu.journal.entries(method, part)


def _first_sync(n: int) -> tuple[int, int, int]:
    """A first sync of ``n`` leads (1 % deleted) through a query job, in a fresh org: (traced
    peak bytes, leads read, results requests). Each lead id must come exactly once."""
    from connectors.salesforce import SalesforceConnector

    with SalesforceEmulator(EmulatorConfig()) as emu:
        emu.clock.freeze(T0)
        ids = emu.add_leads(synthetic_leads(n, seed=n, now=T0))
        for lid in ids[::100]:
            emu.delete_lead(lid)
        connector = SalesforceConnector(
            config_for(emu, **BULK, bulk_results_page_size=2000),
            clock=emu.clock.now,
            sleep=emu.clock.advance,  # waits pass on the emulator clock
        )
        connector.check(statuses=set(), fields=set(), newsletters=set())  # types, as at start
        # The bookkeeping exists before tracing starts: counting allocates nothing.
        seen = dict.fromkeys(ids, 0)
        deleted = 0
        tracemalloc.start()
        try:
            for page in connector.iter_pages(None, until=T0):
                assert len(page.leads) <= 2000
                for got in page.leads:
                    seen[got.id] += 1
                    deleted += got.deleted
                page = None  # noqa: PLW2901 - drop the page before the next one is read
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            connector.close()
        assert set(seen.values()) == {1}, "every lead exactly once"
        assert deleted == len(ids[::100])
        assert len(_jobs(emu, "POST")) == 1
        assert len(emu.journal.entries("GET", "queryAll")) == 1  # the size probe only
        return peak, len(seen), len(_jobs(emu, "GET", "/results"))


def test_a_first_sync_above_the_bulk_threshold_reads_every_lead_exactly_once_through_a_query_job_deleted_leads_included_in_flat_memory():
    small_peak, small, small_pages = _first_sync(5_000)
    large_peak, large, large_pages = _first_sync(20_000)
    assert (small_pages, large_pages) == (math.ceil(small / 2000), math.ceil(large / 2000))
    # Four times the leads, about the same peak: one results page and one Page at a time (the
    # emulator's snapshot of row references, in this process too, grows by 8 bytes a lead).
    assert large_peak / small_peak < 1.3, (small_peak, large_peak)


def test_below_the_bulk_threshold_the_rest_query_path_is_used(emu, make_connector):
    ids = emu.add_leads(lead(i) for i in range(500))
    connector = make_connector(**{**BULK, "page_size": 200})
    got = [x.id for p in connector.iter_pages(None, until=T0) for x in p.leads]
    assert sorted(got) == sorted(ids)
    assert _jobs(emu) == []
    assert len(emu.journal.entries("GET", "/query")) == 3  # 500 leads in pages of 200


def test_bulk_is_off_when_the_threshold_is_null(emu, make_connector):
    emu.add_leads(synthetic_leads(3000, now=T0))
    connector = make_connector(**{**BULK, "bulk_read_threshold": None})
    assert sum(len(p.leads) for p in connector.iter_pages(None, until=T0)) == 3000
    assert _jobs(emu) == []


def test_a_failed_query_job_surfaces_a_connector_error_naming_the_job(emu, make_connector):
    emu.add_leads(synthetic_leads(3000, now=T0))
    emu.bulk_jobs.fail_jobs("Query timeout: apply a filter and try again")
    connector = make_connector(**BULK)
    with pytest.raises(ConnectorError) as caught:
        list(connector.iter_pages(None, until=T0))
    assert len(_jobs(emu, "POST")) == 1
    job_id = emu.bulk_jobs.list()["records"][0]["id"]
    message = str(caught.value)
    assert isinstance(caught.value, RetriableError)
    assert f"Bulk API 2.0 query job {job_id} ended Failed" in message
    assert "Query timeout: apply a filter" in message
    assert "salesforce.bulk_read_threshold" in message
    assert _jobs(emu, "GET", "/results") == []


def test_a_503_on_a_results_page_is_asked_again_with_the_same_locator_and_every_lead_arrives_once(
    emu, make_connector
):
    ids = emu.add_leads(synthetic_leads(5000, now=T0))
    emu.faults.script("503", 1, path=r"/results$")
    emu.faults.script("drop-before", 1, path=r"/results$")
    connector = make_connector(**BULK, bulk_results_page_size=1500)
    got = [x.id for p in connector.iter_pages(None, until=T0) for x in p.leads]
    assert sorted(got) == sorted(ids)
    pages = _jobs(emu, "GET", "/results")
    assert [e.status for e in pages[:3]] == [503, 0, 200]
    assert len({e.query for e in pages[:3]}) == 1  # the first page, asked three times
    assert [e.status for e in pages[3:]] == [200, 200, 200]
    assert connector.stats.retries >= 2


def test_a_stop_between_bulk_pages_sends_no_further_request(emu, make_connector):
    emu.add_leads(synthetic_leads(5000, now=T0))
    connector = make_connector(**BULK, bulk_results_page_size=2000)
    stop = threading.Event()
    connector.bind_stop(stop)
    pages = connector.iter_pages(None, until=T0)
    probe = next(pages)  # the first REST page, kept: a cursor after it
    assert len(probe.leads) == 200 and probe.cursor == probe.leads[-1].cursor
    first = next(pages)
    assert len(first.leads) == 200 and first.cursor is None  # no cursor before the job's end
    stop.set()
    before = emu.journal.last_seq
    with pytest.raises(Interrupted):
        list(pages)
    assert emu.journal.last_seq == before


def test_the_cursor_after_a_bulk_read_lets_the_next_rest_pull_continue_without_gaps(
    emu, make_connector
):
    emu.add_leads(synthetic_leads(3000, now=T0))
    emu.clock.advance(600)
    connector = make_connector(**BULK, overlap_seconds=300, lag_seconds=5)
    started = emu.clock.now()
    pages = list(connector.iter_pages(None, until=started))
    cursor = pages[-1].cursor
    assert len(_jobs(emu, "POST")) == 1
    newest = max(x.cursor for p in pages for x in p.leads)
    assert cursor == newest and cursor.read_at == started  # when the pull began
    # After the job: a new lead, an edit, and a late commit stamped inside the lag window the
    # job could not see.
    emu.clock.advance(60)
    late = emu.commit_late([lead(90_001)], seconds_ago=63)[0]
    new = emu.add_leads([lead(90_002)])[0]
    edited = pages[0].leads[0].id
    emu.update_lead(edited, {"Title": "VP Marketing"})
    emu.clock.advance(10)
    nxt = [x.id for p in connector.iter_pages(cursor, until=emu.clock.now()) for x in p.leads]
    assert {late, new, edited} <= set(nxt)
    assert len(_jobs(emu, "POST")) == 1  # the small follow-up read is a REST query


def test_a_lead_read_through_bulk_equals_the_same_lead_read_through_rest(emu, make_connector):
    mapping = {
        "score": "Lead_Score__c",
        "mql_at": "MQL_Date__c",
        "tier": "Tier__c",
        "converted_on": "ConvertedDate",
        "is_converted": "IsConverted",
    }
    varied = [
        lead(1, Title='VP, "Growth"\nEMEA', Company="Müller & Söhne GmbH", Lead_Score__c=12.5),
        lead(2, Title="日本語の肩書き", NumberOfEmployees=0, AnnualRevenue=1234567.89),
        lead(3, Title="a;b|c\tq`^", Tier__c="Gold", MQL_Date__c="2024-02-01T08:30:00.000+0000"),
        lead(4, FirstName=None, LastActivityDate="2024-02-20", Lead_Score__c=0.0),
        lead(5, Title="line1\r\nline2", Budget__c="Yes", NumberOfEmployees=250),
        *(lead(i) for i in range(6, 1000)),
    ]
    # 200 plain leads first: the pull's first REST page (kept, not read again) holds them, the
    # job reads the varied ones after it.
    plain = emu.add_leads(lead(i) for i in range(1000, 1200))
    ids = emu.add_leads(varied)
    emu.convert_lead(ids[5])
    emu.delete_lead(ids[6])
    rest = make_connector(fields=mapping, bulk_read_threshold=None)
    bulk = make_connector(fields=mapping, **BULK)
    for connector in (rest, bulk):  # describe types the fields, as at every start
        connector.check(statuses=set(), fields=set(), newsletters=set())
    by_rest = {x.id: x for p in rest.iter_pages(None, until=T0) for x in p.leads}
    by_bulk = {x.id: x for p in bulk.iter_pages(None, until=T0) for x in p.leads}
    assert len(_jobs(emu, "POST")) == 1
    assert by_bulk.keys() == by_rest.keys() == set(ids) | set(plain)
    first_page = next(bulk.iter_pages(None, until=T0)).leads
    assert {x.id for x in first_page} == set(plain)
    for lid in ids:
        assert by_bulk[lid].fields == by_rest[lid].fields, lid
        assert by_bulk[lid] == by_rest[lid], lid
    assert by_bulk[ids[0]].fields["title"] == 'VP, "Growth"\nEMEA'
    assert by_bulk[ids[4]].fields["title"] == "line1\r\nline2"
    assert by_bulk[ids[5]].converted and by_bulk[ids[6]].deleted
    assert by_bulk[ids[3]].fields["first_name"] is None


def _waits_on_emulator_time(emu: Any, waits: list[float]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        waits.append(seconds)
        emu.clock.advance(seconds)

    return sleep


@pytest.mark.parametrize("emu_config", [EmulatorConfig(bulk_query_run_seconds=20)])
def test_a_running_job_is_looked_at_after_doubling_waits_until_its_run_time_has_passed(emu):
    from connectors.salesforce import SalesforceConnector

    emu.add_leads(synthetic_leads(3000, now=T0))
    waits: list[float] = []
    cfg = {**BULK, "bulk_poll_seconds": 2, "bulk_poll_max_seconds": 10}
    connector = SalesforceConnector(
        config_for(emu, **cfg), clock=emu.clock.now, sleep=_waits_on_emulator_time(emu, waits)
    )
    try:
        assert sum(len(p.leads) for p in connector.iter_pages(None, until=T0)) == 3000
    finally:
        connector.close()
    looks = [e for e in _jobs(emu, "GET") if not e.path.endswith("/results")]
    # 2, 6 and 14 s after creation it is InProgress; at 24 s (past its 20 s) JobComplete.
    assert len(looks) == 4
    assert waits == [2, 4, 8, 10]


def test_a_small_job_is_complete_at_the_first_look_after_the_poll_interval_however_few_looks(emu):
    from connectors.salesforce import SalesforceConnector

    emu.add_leads(synthetic_leads(3000, now=T0))
    waits: list[float] = []
    cfg = {**BULK, "bulk_poll_seconds": 2}
    connector = SalesforceConnector(
        config_for(emu, **cfg), clock=emu.clock.now, sleep=_waits_on_emulator_time(emu, waits)
    )
    try:
        assert sum(len(p.leads) for p in connector.iter_pages(None, until=T0)) == 3000
    finally:
        connector.close()
    looks = [e for e in _jobs(emu, "GET") if not e.path.endswith("/results")]
    assert (len(looks), waits) == (1, [2])  # its 1 s run was over by the first look


def test_the_job_runs_while_the_first_page_is_stored_and_its_first_look_waits_only_the_rest(emu):
    from connectors.salesforce import SalesforceConnector

    emu.add_leads(synthetic_leads(3000, now=T0))
    waits: list[float] = []
    cfg = {**BULK, "bulk_poll_seconds": 2}
    connector = SalesforceConnector(
        config_for(emu, **cfg), clock=emu.clock.now, sleep=_waits_on_emulator_time(emu, waits)
    )
    try:
        pages = connector.iter_pages(None, until=T0)
        first = next(pages)
        assert len(_jobs(emu, "POST")) == 1  # created before the first page was handed over
        emu.clock.advance(1.5)  # the caller stores the first page meanwhile
        rest = sum(len(p.leads) for p in pages)
    finally:
        connector.close()
    assert len(first.leads) + rest == 3000
    looks = [e for e in _jobs(emu, "GET") if not e.path.endswith("/results")]
    assert len(looks) == 1 and waits == [pytest.approx(0.5)]


def test_a_pull_over_the_threshold_stays_on_rest_while_its_rest_costs_no_more_calls_than_a_job(
    emu, make_connector
):
    # 1,500 leads, pages of 200: after the first page 1,300 remain, 7 REST pages against a job's
    # 3 calls (create, one look, one results page): the job. 500 leads: 2 pages against 3: REST.
    for n, by_job in ((500, False), (1500, True)):
        emu.add_leads(synthetic_leads(n, seed=n, now=T0))
        jobs = len(_jobs(emu, "POST"))
        seen = emu.journal.last_seq
        # The first look after the default 2 s finds the job's 1 s run over.
        connector = make_connector(**{**BULK, "bulk_read_threshold": 100, "bulk_poll_seconds": 2})
        pages = list(connector.iter_pages(None, until=T0))
        ids = [x.id for p in pages for x in p.leads]
        # Reads only: not the token, not the describe a start-up check would have made.
        calls = [
            e
            for e in emu.journal.entries()
            if e.seq > seen and "oauth" not in e.path and not e.path.endswith("/describe")
        ]
        assert len(ids) == len(set(ids)) == len(emu.org.leads)  # each lead once
        assert len(_jobs(emu, "POST")) - jobs == (1 if by_job else 0)
        rest_pages = -(-(len(ids) - 200) // 200)
        assert len(calls) == (1 + 3 if by_job else 1 + rest_pages)
