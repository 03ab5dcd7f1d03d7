"""Incremental reads: search windows past the 10k cap, ties, index lag, archived contacts."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

import pytest
from hubspot_support import T0, contacts

from connectors.base import Cursor
from connectors.hubspot.reader import RawContact, SearchPage, iter_search_windows
from connectors.testing.hubspot import EmulatorConfig


@pytest.mark.slow
@pytest.mark.parametrize("emu_config", [EmulatorConfig(search_per_second=10_000)])
def test_twenty_five_thousand_contacts_with_twelve_thousand_sharing_one_timestamp_are_read_once(
    emu, make_connector
):
    base = T0 - timedelta(hours=3)
    shared = base + timedelta(seconds=5)
    before = [
        {**c, "lastmodifieddate": base + timedelta(milliseconds=i)}
        for i, c in enumerate(contacts(6_000))
    ]
    tie = [{**c, "lastmodifieddate": shared} for c in contacts(12_000)]
    after = [
        {**c, "lastmodifieddate": shared + timedelta(milliseconds=1 + i // 3)}
        for i, c in enumerate(contacts(7_000))
    ]
    ids = emu.add_contacts(before + tie + after)
    connector = make_connector(search_per_second=10_000)

    pages = list(connector.iter_pages(None, until=T0))

    seen = Counter(lead.id for page in pages for lead in page.leads)
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    cursors = [lead.cursor for page in pages for lead in page.leads]
    assert all(a.modified_at <= b.modified_at for a, b in itertools.pairwise(cursors))
    assert pages[-1].cursor == max(cursors)
    searches = emu.journal.entries("POST", "/search")
    assert not [e for e in searches if e.status != 200]  # never paged past 10,000
    assert any(b'"hs_object_id"' in e.body and b'"EQ"' in e.body for e in searches)


def test_contact_invisible_to_search_for_five_seconds_is_read_by_a_later_cycle(emu, make_connector):
    emu.config.index_lag_seconds = 5
    emu.add_contacts(contacts(3))
    emu.clock.advance(10)  # the seed is indexed
    connector = make_connector(archived_scan_interval_seconds=10**6)
    first = list(connector.iter_pages(None, until=emu.clock.now()))
    cursor = first[-1].cursor
    late_id = emu.add_contacts(contacts(1))[0]
    emu.clock.advance(1)

    second = list(connector.iter_pages(cursor, until=emu.clock.now()))
    assert late_id not in {lead.id for page in second for lead in page.leads}
    cursor = max([cursor] + [p.cursor for p in second if p.cursor])

    emu.clock.advance(5)
    third = list(connector.iter_pages(cursor, until=emu.clock.now()))
    assert late_id in {lead.id for page in third for lead in page.leads}


def test_canonical_fields_are_parsed_to_python_types(emu, make_connector):
    [cid] = emu.add_contacts(
        [
            {
                "email": "ada@example.com",
                "numemployees": "250",
                "annualrevenue": "1250000.5",
                "jobtitle": "CTO",
                "notes_last_updated": "2025-01-02T03:04:05.678Z",
                "hs_lead_status": "OPEN",
                "bant_budget": "",
            }
        ]
    )
    connector = make_connector()
    [lead] = [lead for page in connector.iter_pages(None, until=T0) for lead in page.leads]
    assert lead.id == cid
    assert lead.fields["employees"] == 250
    assert lead.fields["annual_revenue"] == 1250000.5
    assert lead.fields["title"] == "CTO" and lead.fields["status"] == "OPEN"
    assert lead.fields["last_activity_at"].isoformat() == "2025-01-02T03:04:05.678000+00:00"
    assert lead.fields["created_at"] == T0 and lead.modified_at == T0
    assert lead.fields["budget"] is None and lead.fields["owner"] is None
    assert not lead.deleted


def test_overlap_re_reads_recent_contacts_but_never_moves_the_cursor_back(emu, make_connector):
    emu.add_contacts(contacts(2))
    emu.clock.advance(30)
    connector = make_connector(overlap_seconds=60)
    since = Cursor(emu.clock.now() - timedelta(seconds=10), "0")
    pages = list(connector.iter_pages(since, until=emu.clock.now()))
    assert len([lead for page in pages for lead in page.leads]) == 2
    assert all(page.cursor >= since for page in pages)


def test_archived_contacts_are_yielded_as_deleted(emu, make_connector):
    live, gone = emu.add_contacts(contacts(2))
    connector = make_connector(archived_scan_interval_seconds=3600)
    list(connector.iter_pages(None, until=emu.clock.now()))
    emu.clock.advance(10)
    emu.archive_contact(gone)
    emu.clock.advance(3600)

    pages = list(connector.iter_pages(Cursor(T0, live), until=emu.clock.now()))

    deleted = [lead for page in pages for lead in page.leads if lead.deleted]
    assert [lead.id for lead in deleted] == [gone]
    assert deleted[0].modified_at == T0 + timedelta(seconds=10)
    assert deleted[0].fields["email"] == "c1@example.com"


def test_a_merged_contact_is_read_with_the_ids_merged_into_it_and_the_originals_are_not_read(
    emu, make_connector
):
    first, second, bystander = emu.add_contacts(contacts(3))
    connector = make_connector(archived_scan_interval_seconds=3600)
    list(connector.iter_pages(None, until=emu.clock.now()))
    emu.clock.advance(10)
    merged = emu.merge_contacts(first, second)
    emu.clock.advance(10)

    pages = list(connector.iter_pages(Cursor(T0, bystander), until=emu.clock.now()))

    by_id = {lead.id: lead for page in pages for lead in page.leads}
    assert first not in by_id and second not in by_id  # not archived either: gone from search
    assert not by_id[merged].deleted
    assert sorted(by_id[merged].merged_ids) == sorted([first, second])
    assert by_id[bystander].merged_ids == ()  # the overlap re-read it: nothing merged into it
    (read,) = connector.read_leads([first])  # an original id answers the merged contact
    assert (read.id, sorted(read.merged_ids)) == (merged, sorted([first, second]))


def test_archived_listing_runs_at_most_once_per_interval_so_an_idle_cycle_costs_one_call(
    emu, make_connector
):
    emu.add_contacts(contacts(2))
    connector = make_connector(archived_scan_interval_seconds=3600)
    list(connector.iter_pages(None, until=emu.clock.now()))
    emu.journal.clear()
    emu.clock.advance(60)

    list(connector.iter_pages(Cursor(T0, "0"), until=emu.clock.now()))

    assert [(e.method, e.path) for e in emu.journal.entries()] == [
        ("POST", "/crm/v3/objects/contacts/search")
    ]


def test_window_restarts_at_last_timestamp_and_pages_ties_by_id():
    """The reader alone, against a list-backed search that enforces a small result cap."""
    data = [RawContact(str(i), t, {}) for i, t in enumerate([1] * 3 + [2] * 7 + [3] * 2)]

    def search(groups, sort, after):
        (filters,) = groups  # the reader uses one filter group when it is not resuming

        def ok(c):
            for f in filters:
                v = c.modified_ms if f["propertyName"] == "lastmodifieddate" else int(c.id)
                w = int(f["value"])
                if not {"GTE": v >= w, "GT": v > w, "LTE": v <= w, "EQ": v == w}[f["operator"]]:
                    return False
            return True

        key = (
            (lambda c: (c.modified_ms, int(c.id)))
            if sort["propertyName"] == "lastmodifieddate"
            else (lambda c: int(c.id))
        )
        hits = sorted(filter(ok, data), key=key)
        start = int(after or 0)
        assert start + 2 <= 4, "paged past the cap"
        page = hits[start : start + 2]
        return SearchPage(page, str(start + 2) if start + 2 < len(hits) else None)

    batches = list(iter_search_windows(search, lo_ms=0, hi_ms=10, page_size=2, max_results=4))
    got = [c.id for batch in batches for c in batch]
    assert sorted(got, key=int) == [c.id for c in data]
    assert len(got) == len(set(got))


def test_a_burst_is_not_reread_once_a_later_read_saw_past_the_index_lag(emu, make_connector):
    connector = make_connector(overlap_seconds=60, archived_scan_interval_seconds=3600)
    for _ in range(450):  # a burst of writes, one contact per millisecond
        emu.add_contacts(contacts(1))
        emu.clock.advance(0.001)

    def pull(cursor):
        emu.journal.clear()
        started = emu.clock.now()
        pages = list(connector.iter_pages(cursor, until=started))
        assert pages[-1].cursor.read_at == started, "every read is recorded, even an idle one"
        return pages[-1].cursor, sum(len(p.leads) for p in pages), len(emu.journal.entries())

    cursor, read, _ = pull(None)
    assert read == 450
    emu.clock.advance(5)  # the next read is 5 s after the burst: inside the index lag
    cursor, read, _ = pull(cursor)
    assert read == 450, "re-read: the burst may have been invisible to the first read"
    emu.clock.advance(300)
    cursor, read, _ = pull(cursor)
    assert read == 450, "re-read: the burst may have been invisible to the second read"
    emu.clock.advance(300)  # that read came 305 s after the burst: nothing can be missing
    cursor, read, calls = pull(cursor)
    assert (read <= 1, calls) == (True, 1)  # at most the contact at the cursor itself
    emu.clock.advance(300)
    assert pull(cursor)[2] == 1, "an idle portal costs one call per cycle"


def test_resuming_inside_a_millisecond_shared_by_a_batch_write_rereads_nothing(emu, make_connector):
    connector = make_connector(overlap_seconds=60, archived_scan_interval_seconds=3600)
    emu.add_contacts(contacts(250))  # one batch: every contact has the same lastmodifieddate
    emu.clock.advance(120)  # read after the index-lag window
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    cursor = pages[-1].cursor
    assert sum(len(p.leads) for p in pages) == 250

    emu.clock.advance(300)
    emu.journal.clear()
    idle = list(connector.iter_pages(cursor, until=emu.clock.now()))
    assert sum(len(p.leads) for p in idle) == 0
    assert len(emu.journal.entries()) == 1

    (late,) = emu.add_contacts(contacts(1))
    emu.clock.advance(120)
    emu.journal.clear()
    fresh = [
        lead.id for p in connector.iter_pages(cursor, until=emu.clock.now()) for lead in p.leads
    ]
    assert fresh == [late] and len(emu.journal.entries()) == 1
