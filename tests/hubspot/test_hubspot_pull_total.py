"""A pull says how many contacts it will yield (Page.total from the first search's total)."""

from __future__ import annotations

from hubspot_support import contacts


def test_every_search_page_of_a_pull_carries_the_first_searchs_total(emu, make_connector):
    emu.add_contacts(contacts(450))
    emu.clock.advance(10)
    connector = make_connector(archived_scan_interval_seconds=10**6)
    pages = [p for p in connector.iter_pages(None, until=emu.clock.now()) if p.leads]
    assert sum(len(p.leads) for p in pages) == 450 and len(pages) == 3
    assert {p.total for p in pages} == {450}
