"""A pull says how many leads it will yield (Page.total from the query's totalSize)."""

from __future__ import annotations

from connectors.testing.salesforce import synthetic_leads


def test_every_page_of_a_pull_carries_the_querys_total_size(emu, make_connector):
    emu.add_leads(synthetic_leads(2500, seed=1))
    emu.clock.advance(1)
    connector = make_connector(page_size=1000)
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert len(pages) == 3
    assert [p.total for p in pages] == [2500, 2500, 2500]
