"""Rate limits: pacing under the real limits, Retry-After, the daily limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hubspot_support import T0, contacts

from connectors.base import ApiQuota, LeadChange, Outcome
from connectors.errors import BudgetExhausted

_TEN_SECONDLY = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee",
    "policyName": "TEN_SECONDLY_ROLLING",
    "requestId": "r1",
}


def test_backfill_against_real_rate_limits_has_no_429_at_steady_state(emu, make_connector):
    """Default emulator limits (search 5/s, 100 per 10 s) on the shared simulated clock."""
    ids = emu.add_contacts(contacts(1_500))
    connector = make_connector(page_size=20)  # 75 searches: 15 s of search budget at 5/s

    leads = [
        lead for page in connector.iter_pages(None, until=emu.clock.now()) for lead in page.leads
    ]
    for start in range(0, len(ids), 10):  # 150 updates: > one ten-second window's worth
        results = connector.write_batch(
            [LeadChange(i, {"status": "OPEN"}) for i in ids[start : start + 10]]
        )
        assert all(r.outcome is Outcome.OK for r in results)

    assert len(leads) == len(ids)
    assert not emu.journal.entries(status=429)
    assert connector.stats.rate_limited == {}
    assert connector.stats.paced_seconds > 0  # the limits were actually binding


def test_ten_second_429_honours_retry_after(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    emu.faults.fail_next(
        1, status=429, body=_TEN_SECONDLY, headers={"Retry-After": "7"}, path="batch/update"
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        emu.clock.advance(seconds)

    connector = make_connector(sleep=sleep)
    results = connector.write_batch([LeadChange(ids[0], {"status": "OPEN"})])

    assert results[0].outcome is Outcome.OK
    assert waits == [7.0]
    assert connector.stats.rate_limited["TEN_SECONDLY_ROLLING"] == 1
    assert [e.status for e in emu.journal.entries("POST", "batch/update")] == [429, 200]


def test_ten_second_429_without_retry_after_waits_out_the_window(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    emu.faults.fail_next(1, status=429, body=_TEN_SECONDLY, path="batch/update")
    start = emu.clock.now()
    connector = make_connector()
    assert connector.write_batch([LeadChange(ids[0], {"status": "OPEN"})])[0].outcome is Outcome.OK
    assert emu.clock.now() - start >= timedelta(seconds=10)


def test_search_429_is_retried_after_the_secondly_window(emu, make_connector):
    emu.add_contacts(contacts(2))
    emu.config.search_per_second = 1
    connector = make_connector(search_per_second=1000, archived_scan_interval_seconds=10**6)
    for _ in range(2):  # the second cycle's search arrives within the same emulator second
        list(connector.iter_pages(None, until=emu.clock.now()))
    assert connector.stats.rate_limited["SECONDLY"] == 1
    assert [e.status for e in emu.journal.entries("POST", "/search")] == [200, 429, 200]


def test_daily_429_stops_hubspot_until_reset(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    connector = make_connector()
    emu.exhaust_daily_limit()
    change = [LeadChange(ids[0], {"status": "OPEN"})]

    with pytest.raises(BudgetExhausted) as first:
        connector.write_batch(change)
    midnight = datetime(2025, 3, 5, tzinfo=UTC)
    assert first.value.resume_at == midnight
    assert connector.stats.rate_limited["DAILY"] == 1
    calls = len(emu.journal)

    emu.clock.advance(3600)
    with pytest.raises(BudgetExhausted):
        connector.write_batch(change)
    with pytest.raises(BudgetExhausted):
        list(connector.iter_pages(None, until=emu.clock.now()))
    assert len(emu.journal) == calls  # no call made while exhausted

    emu.clock.freeze(midnight + timedelta(seconds=1))
    assert connector.write_batch(change)[0].outcome is Outcome.OK


def test_the_daily_count_reads_zero_once_midnight_passed_before_the_days_first_call(
    emu, make_connector
):
    connector = make_connector()
    list(connector.iter_pages(None, until=emu.clock.now()))
    assert emu.limits.daily_used >= 1
    emu.clock.freeze(datetime(2025, 3, 5, 0, 0, 1, tzinfo=UTC))  # the next day (UTC)

    assert emu.limits.daily_used == 0  # not yesterday's count until a call comes
    assert emu.limits.headers(False, True)["X-HubSpot-RateLimit-Daily-Remaining"] == str(
        emu.config.daily_limit
    )


def test_configured_daily_share_stops_the_connector_before_hubspot_does(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    connector = make_connector(daily_limit=2)
    change = [LeadChange(ids[0], {"status": "OPEN"})]
    connector.write_batch(change)
    connector.write_batch(change)
    with pytest.raises(BudgetExhausted, match="daily_limit") as err:
        connector.write_batch(change)
    assert err.value.resume_at == T0.replace(hour=0) + timedelta(days=1)
    assert len(emu.journal) == 2
    assert connector.stats.budget_stops == 1


def test_api_quota_is_the_accounts_daily_use_from_hubspots_headers(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    connector = make_connector()
    assert connector.api_quota() is None  # nothing reported yet, no daily_limit configured
    connector.write_batch([LeadChange(ids[0], {"status": "OPEN"})])
    quota = connector.api_quota()
    assert quota is not None and quota.limit == emu.config.daily_limit and quota.used >= 1
    own = make_connector(daily_limit=50)
    assert own.api_quota() == ApiQuota(used=0, limit=50)


def test_stop_request_interrupts_a_pacing_wait(emu, make_connector):
    import threading
    import time

    from connectors.errors import Interrupted

    emu.add_contacts(contacts(1))
    connector = make_connector(
        simulated_time=False, search_per_second=0.05, archived_scan_interval_seconds=10**6
    )
    stop = threading.Event()
    connector.bind_stop(stop)
    list(connector.iter_pages(None, until=emu.clock.now()))  # the first search is not paced
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        list(connector.iter_pages(None, until=emu.clock.now()))  # would wait 20 s
    assert time.monotonic() - started < 10
    assert len(emu.journal.entries("POST", "/search")) == 1
    assert connector.stats.paced_seconds > 0
