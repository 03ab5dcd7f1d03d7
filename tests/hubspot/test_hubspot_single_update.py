"""The emulator's single-record ``PATCH /crm/v3/objects/contacts/{id}``, driven by
hubspot-api-client's ``basic_api.update`` (the benchmark's naive one-call-per-contact baseline)."""

from __future__ import annotations

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import ApiException, SimplePublicObjectInput
from hubspot_support import contacts


def _client(emu) -> HubSpot:
    return HubSpot(access_token=emu.access_token, host=emu.base_url, retry=False)


def test_single_update_changes_the_contact_as_integration_and_is_journaled(emu):
    [cid] = emu.add_contacts(contacts(1))

    result = _client(emu).crm.contacts.basic_api.update(
        cid, SimplePublicObjectInput(properties={"hs_lead_status": "IN_PROGRESS"})
    )

    assert result.id == cid
    assert result.properties["hs_lead_status"] == "IN_PROGRESS"
    assert emu.contact(cid)["hs_lead_status"] == "IN_PROGRESS"
    assert emu.status_history(cid)[-1] == ("IN_PROGRESS", "INTEGRATION")
    [entry] = emu.journal.entries("PATCH", f"/crm/v3/objects/contacts/{cid}")
    assert (entry.status, entry.records) == (200, 1)


def test_single_update_with_an_invalid_option_is_a_400_and_changes_nothing(emu):
    [cid] = emu.add_contacts(contacts(1))
    before = emu.contact(cid)["hs_lead_status"]

    with pytest.raises(ApiException) as caught:
        _client(emu).crm.contacts.basic_api.update(
            cid, SimplePublicObjectInput(properties={"hs_lead_status": "BOGUS"})
        )

    assert caught.value.status == 400
    assert "was not one of the allowed options" in caught.value.body
    assert emu.contact(cid)["hs_lead_status"] == before


def test_single_update_of_an_archived_contact_is_404(emu):
    [cid] = emu.add_contacts(contacts(1))
    emu.archive_contact(cid)

    with pytest.raises(ApiException) as caught:
        _client(emu).crm.contacts.basic_api.update(
            cid, SimplePublicObjectInput(properties={"hs_lead_status": "OPEN"})
        )

    assert caught.value.status == 404
