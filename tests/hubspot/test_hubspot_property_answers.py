"""What a read answers for each requested property, through hubspot-api-client: one the account
has comes back null when the contact has no value; one it lacks (archived) is left out
(docs/crm-api.md, C11). syncd tells an archived property from an empty one by this."""

from __future__ import annotations

from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest

from connectors.testing.hubspot import HubSpotEmulator

ASKED = ["email", "jobtitle", "bant_budget"]


def _client(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=emu.access_token, host=emu.base_url, retry=False)


def _search(emu: HubSpotEmulator, _id: str) -> dict[str, Any]:
    request = PublicObjectSearchRequest(properties=ASKED, limit=10)
    [found] = (
        _client(emu).crm.contacts.search_api.do_search(public_object_search_request=request).results
    )
    return dict(found.properties)


def _batch_read(emu: HubSpotEmulator, contact_id: str) -> dict[str, Any]:
    body = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": contact_id}], properties=ASKED, properties_with_history=[]
    )
    [found] = (
        _client(emu)
        .crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=body)
        .results
    )
    return dict(found.properties)


def _read(emu: HubSpotEmulator, contact_id: str) -> dict[str, Any]:
    found = _client(emu).crm.contacts.basic_api.get_by_id(contact_id, properties=ASKED)
    return dict(found.properties)


def _listing(emu: HubSpotEmulator, _id: str) -> dict[str, Any]:
    [found] = _client(emu).crm.contacts.basic_api.get_page(properties=ASKED).results
    return dict(found.properties)


READS = pytest.mark.parametrize(
    "read", [_search, _batch_read, _read, _listing], ids=["search", "batch", "by-id", "listing"]
)


@READS
def test_a_requested_property_the_contact_has_no_value_for_is_answered_null(
    emu: HubSpotEmulator, read: Any
) -> None:
    [contact] = emu.add_contacts([{"email": "ann@acme.com", "hs_lead_status": "NEW"}])
    emu.clock.advance(60)

    props = read(emu, contact)

    assert props["email"] == "ann@acme.com"
    assert "jobtitle" in props and props["jobtitle"] is None
    assert "bant_budget" in props and props["bant_budget"] is None


@READS
def test_a_requested_property_the_account_archived_is_left_out_of_the_answer(
    emu: HubSpotEmulator, read: Any
) -> None:
    [contact] = emu.add_contacts([{"email": "ann@acme.com", "bant_budget": "50000"}])
    emu.clock.advance(60)
    emu.archive_property("bant_budget")

    props = read(emu, contact)

    assert "bant_budget" not in props
    assert "jobtitle" in props and props["jobtitle"] is None
