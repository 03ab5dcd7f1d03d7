"""Taking contacts out of a list (revert) and reading contacts back by id."""

from __future__ import annotations

import pytest
from hubspot_support import contacts

from connectors.base import Outcome
from connectors.errors import ConfigurationError


def test_removal_takes_only_these_contacts_out_and_ignores_non_members(emu, make_connector):
    ids = emu.add_contacts(contacts(4))
    list_id = emu.add_list("Newsletter")
    connector = make_connector(newsletters={"news": list_id})
    connector.add_to_newsletter("news", ids[:3])
    start = len(emu.journal.entries())

    results = connector.remove_from_newsletter("news", ids[1:])  # ids[3] was never a member

    assert [(r.lead_id, r.outcome) for r in results] == [(i, Outcome.OK) for i in ids[1:]]
    assert emu.list_members(list_id) == {ids[0]}
    calls = [(e.method, e.path) for e in emu.journal.entries()[start:]]
    assert calls == [("PUT", f"/crm/v3/lists/{list_id}/memberships/remove")]


def test_removal_from_a_dynamic_list_is_a_configuration_error(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    connector = make_connector(newsletters={"news": emu.add_list("Active", "DYNAMIC")})
    with pytest.raises(ConfigurationError, match="MANUAL or SNAPSHOT"):
        connector.remove_from_newsletter("news", ids)
    with pytest.raises(ConfigurationError, match="not configured"):
        connector.remove_from_newsletter("other", ids)


def test_read_leads_is_one_batch_read_per_100_contacts(emu, make_connector):
    ids = emu.add_contacts(contacts(150))
    connector = make_connector()
    start = len(emu.journal.entries())
    found = connector.read_leads([*ids, "999999"])
    assert sorted(r.id for r in found) == sorted(ids)
    reads = [e for e in emu.journal.entries()[start:] if e.path.endswith("/batch/read")]
    assert len(reads) == 2
