"""Pulling leads: keyset paging over ties, overlap, deletes, conversions, reconcile."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from connectors.base import Cursor
from connectors.testing.salesforce import synthetic_leads

from .support import T0, lead


def _add_tied(emu, counts):
    """Add leads in groups, each group sharing one SystemModstamp second."""
    ids = []
    for n in counts:
        ids += emu.add_leads(synthetic_leads(n, seed=len(ids)))
        emu.clock.advance(1)
    return ids


def test_ten_thousand_leads_sharing_three_modstamps_are_each_read_once(emu, make_connector):
    ids = _add_tied(emu, [3333, 3333, 3334])
    # The query stream's keyset paging, not a Bulk job (which would read 10,000 cheaper).
    connector = make_connector(page_size=1000, bulk_read_threshold=None)
    until = emu.clock.now()

    # One fresh pass: every lead exactly once, in cursor order.
    fresh = [lead for page in connector.iter_pages(None, until=until) for lead in page.leads]
    assert Counter(lead.id for lead in fresh) == Counter(ids)
    assert [lead.cursor for lead in fresh] == sorted(lead.cursor for lead in fresh)

    # The same stream split over several calls, each resuming from the last page's cursor
    # (pages of 1000 end inside the ties of 3333).
    seen: list[str] = []
    since = None
    for _ in range(20):
        pages = connector.iter_pages(since, until=until)
        taken = [next(pages, None) for _ in range(3)]
        pages.close()
        taken = [p for p in taken if p is not None]
        if not taken:
            break
        seen += [lead.id for p in taken for lead in p.leads]
        since = taken[-1].cursor
    assert len(seen) == 10_000
    assert Counter(seen) == Counter(ids)

    # Resume from a cursor inside the first tie: exactly the rest comes back.
    middle = fresh[1234].cursor
    assert middle.modified_at == fresh[0].modified_at == fresh[3332].modified_at
    rest = [lead.id for p in connector.iter_pages(middle, until=until) for lead in p.leads]
    assert rest == [lead.id for lead in fresh[1235:]]


def test_lead_committed_late_with_earlier_timestamp_is_read_by_next_pull(emu, make_connector):
    emu.add_leads([lead(1)])
    emu.clock.advance(60)
    emu.add_leads([lead(2)])
    connector = make_connector(overlap_seconds=300)
    first = [p for p in connector.iter_pages(None, until=emu.clock.now())]
    cursor = first[-1].cursor
    # A long transaction commits a row stamped 30 s before the cursor we already passed.
    late = emu.commit_late([lead(3)], seconds_ago=30)[0]
    emu.clock.advance(10)

    again = [lead for p in connector.iter_pages(cursor, until=emu.clock.now()) for lead in p.leads]

    assert late in {lead.id for lead in again}
    # The page cursor never moves behind the one we resumed from.
    assert all(p.cursor >= cursor for p in connector.iter_pages(cursor, until=emu.clock.now()))


def test_without_overlap_a_late_commit_is_missed(emu, make_connector):
    """Pins down why the overlap window exists."""
    emu.add_leads([lead(1)])
    emu.clock.advance(60)
    emu.add_leads([lead(2)])
    connector = make_connector(overlap_seconds=0)
    cursor = [p for p in connector.iter_pages(None, until=emu.clock.now())][-1].cursor
    late = emu.commit_late([lead(3)], seconds_ago=30)[0]
    again = [
        lead.id for p in connector.iter_pages(cursor, until=emu.clock.now()) for lead in p.leads
    ]
    assert late not in again


def test_soft_deleted_and_merged_leads_are_yielded_as_deleted(emu, connector):
    keep, gone, master, victim = emu.add_leads([lead(i) for i in range(4)])
    emu.clock.advance(1)
    cursor = Cursor(T0, victim)  # all four were read before
    emu.delete_lead(gone)
    emu.merge_leads(master, victim)
    emu.clock.advance(1)

    leads = {
        lead.id: lead
        for p in connector.iter_pages(cursor, until=emu.clock.now())
        for lead in p.leads
    }

    assert leads[gone].deleted and leads[victim].deleted
    assert not leads[master].deleted
    assert keep not in leads  # unchanged since the cursor


def test_purged_leads_vanish_from_the_stream(emu, make_connector):
    gone = emu.add_leads([lead(1)])[0]
    emu.delete_lead(gone)
    emu.clock.advance(16 * 86400)
    emu.purge_recycle_bin()
    connector = make_connector()
    assert [p for p in connector.iter_pages(None, until=emu.clock.now())] == []


def test_converted_leads_are_yielded_as_converted(emu, connector):
    plain, converted = emu.add_leads([lead(1), lead(2)])
    emu.convert_lead(converted)
    emu.clock.advance(1)

    leads = {
        lead.id: lead for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads
    }

    assert leads[converted].converted and not leads[plain].converted
    assert leads[converted].fields["status"] == "Closed - Converted"


def test_stale_cursor_triggers_full_reconcile(emu, make_connector):
    old = emu.add_leads([lead(1), lead(2)])
    emu.clock.advance(20 * 86400)
    new = emu.add_leads([lead(3)])
    emu.clock.advance(1)
    connector = make_connector(delete_log_days=15)
    stale = Cursor(emu.clock.now() - timedelta(days=16), "00Q")
    fresh = Cursor(emu.clock.now() - timedelta(days=1), "00Q")

    assert connector.reconcile_required(stale) and not connector.reconcile_required(fresh)
    ids = [lead.id for p in connector.iter_pages(stale, until=emu.clock.now()) for lead in p.leads]
    assert connector.last_pull_was_full_reconcile
    assert ids == old + new  # every live lead, so the daemon can mark the rest deleted

    ids = [lead.id for p in connector.iter_pages(fresh, until=emu.clock.now()) for lead in p.leads]
    assert not connector.last_pull_was_full_reconcile
    assert ids == new


def test_rep_edit_is_reported_as_not_by_integration(emu, connector):
    lid = emu.add_leads([lead(1)])[0]
    emu.clock.advance(1)
    assert connector.write_batch([_change(lid, status="MQL")])[0].outcome.value == "ok"
    emu.clock.advance(1)
    mine = [lead for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads]
    assert mine[0].modified_by_integration is True

    emu.update_lead(lid, {"Title": "VP Sales"}, by=emu.rep_user_id)
    emu.clock.advance(1)
    theirs = [lead for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads]
    assert theirs[0].modified_by_integration is False
    assert theirs[0].fields["title"] == "VP Sales"


def test_fields_are_parsed_to_canonical_python_types(emu, connector):
    lid = emu.add_leads(
        [
            lead(
                1,
                NumberOfEmployees=250,
                AnnualRevenue=1.5e6,
                LastActivityDate="2024-02-20",
                Budget__c="Yes",
            )
        ]
    )[0]
    emu.clock.advance(1)
    (got,) = [lead for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads]
    assert got.id == lid
    assert got.modified_at == T0 and got.modified_at.tzinfo is not None
    assert got.fields["created_at"] == T0
    assert got.fields["last_activity_at"] == T0.replace(month=2, day=20, hour=0)
    assert got.fields["employees"] == 250 and got.fields["annual_revenue"] == 1.5e6
    assert got.fields["budget"] == "Yes" and got.fields["timeline"] is None


def test_until_and_lag_bound_the_read(emu, make_connector):
    emu.add_leads([lead(1)])
    emu.clock.advance(3)
    late = emu.add_leads([lead(2)])[0]
    connector = make_connector(lag_seconds=2)
    ids = [lead.id for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads]
    assert late not in ids and len(ids) == 1


def test_pages_are_fetched_lazily_one_call_of_five_chained_pages_at_a_time(emu, make_connector):
    emu.add_leads(synthetic_leads(3000))
    emu.clock.advance(1)
    connector = make_connector(page_size=200, bulk_read_threshold=None)  # the query stream
    emu.journal.clear()
    pages = connector.iter_pages(None, until=emu.clock.now())
    for _ in range(6):  # the first call's 5 pages, and the first of the second call's
        next(pages)
    pages.close()
    calls = [e for e in emu.journal if "/services/data/" in e.path]
    assert [e.path.rsplit("/", 1)[-1] for e in calls] == ["composite", "composite"]
    queries = [s for e in calls for s in e.subrequests]
    assert len(queries) == 10
    assert all(s.headers.get("sforce-query-options") == "batchSize=200" for s in queries)


def _change(lead_id, **fields):
    from connectors.base import LeadChange

    return LeadChange(lead_id, fields)


@pytest.mark.slow
def test_hundred_thousand_leads_stream_in_order_with_flat_pages(emu, make_connector):
    ids = emu.add_leads(synthetic_leads(100_000))
    emu.clock.advance(1)
    connector = make_connector(bulk_read_threshold=None)  # the query stream, not a Bulk job
    count, last, biggest = 0, None, 0
    for page in connector.iter_pages(None, until=emu.clock.now()):
        count += len(page.leads)
        biggest = max(biggest, len(page.leads))
        assert last is None or page.leads[0].cursor > last
        last = page.cursor
    assert count == len(ids) and biggest == 2000
    assert last == Cursor(T0, ids[-1])


def test_quiet_org_idle_cycles_are_one_query_each_and_never_a_full_reconcile(emu, make_connector):
    """No lead changed for 30 days, longer than the recycle bin: the cursor's newest lead is old,
    but it was read every cycle, so nothing can have been purged unseen."""
    ids = emu.add_leads([lead(1), lead(2)])
    connector = make_connector(delete_log_days=15)
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    cursor = pages[-1].cursor
    assert [lead.id for p in pages for lead in p.leads] == ids

    for _day in range(30):
        emu.clock.advance(86400)
        before = connector.stats.calls
        pages = list(connector.iter_pages(cursor, until=emu.clock.now()))
        assert connector.stats.calls - before == 1  # one query, not the whole Lead table
        assert not connector.last_pull_was_full_reconcile
        assert [p.leads for p in pages] == [[]]
        cursor = pages[-1].cursor
    assert cursor.modified_at < emu.clock.now() - timedelta(days=29)
    assert cursor.read_at == emu.clock.now()


def test_cursor_not_read_for_longer_than_the_recycle_bin_still_triggers_the_reconcile(
    emu, make_connector
):
    ids = emu.add_leads([lead(1), lead(2)])
    emu.clock.advance(30 * 86400)
    connector = make_connector(delete_log_days=15)
    now = emu.clock.now()
    old_position = T0 + timedelta(seconds=1)
    recently_read = Cursor(old_position, ids[-1], read_at=now - timedelta(minutes=5))
    long_unread = Cursor(old_position, ids[-1], read_at=now - timedelta(days=16))

    assert not connector.reconcile_required(recently_read)
    assert connector.reconcile_required(long_unread)
    read = [lead.id for p in connector.iter_pages(long_unread, until=now) for lead in p.leads]
    assert connector.last_pull_was_full_reconcile and read == ids
