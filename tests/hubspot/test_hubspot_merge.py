"""HubSpot contact merges in the emulator, through hubspot-api-client: a new record with a new
id, both old ids routed to it (docs/crm-api.md, C12)."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot_support import T0

from connectors.testing.hubspot import EmulatorClock, HubSpotEmulator


def _client(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=emu.access_token, host=emu.base_url, retry=False)


def _merge_over_api(emu: HubSpotEmulator, primary: str, other: str) -> Any:
    """``POST /crm/v3/objects/contacts/merge``: hubspot-api-client 12 has no merge API for
    contacts, so it goes through the client's generic ``api_request`` (which ignores ``host``:
    the base URL is given per request)."""
    return _client(emu).api_request(
        {
            "method": "POST",
            "base_url": emu.base_url,
            "path": "/crm/v3/objects/contacts/merge",
            "body": {"primaryObjectId": primary, "objectIdToMerge": other},
        }
    )


def _two(emu: HubSpotEmulator) -> list[str]:
    """A primary (newer status, no job title) and a secondary (job title set)."""
    ids = emu.add_contacts(
        [
            {"email": "ann@example.com", "firstname": "Ann", "hs_lead_status": "NEW"},
            {
                "email": "ann.old@example.com",
                "firstname": "Annie",
                "jobtitle": "CTO",
                "hs_lead_status": "OPEN",
                "createdate": T0 - timedelta(days=30),
                "lastmodifieddate": T0 - timedelta(days=30),
            },
        ]
    )
    emu.clock.advance(60)
    return ids


def _search_all(emu: HubSpotEmulator) -> dict[str, dict[str, str | None]]:
    page = _client(emu).crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            properties=["email", "jobtitle", "hs_merged_object_ids"], limit=100
        )
    )
    return {r.id: r.properties for r in page.results}


def test_merge_endpoint_answers_a_new_record_with_the_primarys_values_when_two_contacts_merge(
    emu,
):
    primary, other = _two(emu)
    answer = _merge_over_api(emu, primary, other)
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] not in (primary, other)
    assert int(body["id"]) > max(int(primary), int(other))
    assert body["archived"] is False
    assert body["properties"]["email"] == "ann@example.com"
    assert body["properties"]["firstname"] == "Ann"
    assert body["properties"]["hs_merged_object_ids"] == f"{primary};{other}"
    # createdAt is the earlier of the two; updatedAt is now
    assert body["createdAt"] == (T0 - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert body["updatedAt"] == emu.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    entry = emu.journal.entries("POST", "contacts/merge")[-1]
    assert entry.record_ids == (primary, other)
    assert entry.written == (body["id"],)


def test_search_returns_only_the_merged_record_with_merged_ids_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    bystander = emu.add_contacts([{"email": "bob@example.com"}])[0]
    new = emu.merge_contacts(primary, other)
    found = _search_all(emu)
    assert set(found) == {bystander, new}
    assert found[new]["hs_merged_object_ids"] == f"{primary};{other}"
    # the secondary's value fills a property the primary has no value for
    assert found[new]["jobtitle"] == "CTO"
    assert found[new]["email"] == "ann@example.com"


def test_merged_ids_list_earlier_merges_when_a_merged_record_is_merged_again(emu):
    a, b = _two(emu)
    c, d = emu.add_contacts([{"email": "c@example.com"}, {"email": "d@example.com"}])
    first = emu.merge_contacts(a, b)
    second = emu.merge_contacts(c, d)
    last = emu.merge_contacts(second, first)
    expected = ";".join(sorted([a, b, c, d, first, second], key=int))
    assert _search_all(emu)[last]["hs_merged_object_ids"] == expected
    # an id merged twice over still reaches the newest record
    got = _client(emu).crm.contacts.basic_api.get_by_id(a, properties=["email"])
    assert got.id == last
    assert emu.admin_state()["leads"][0]["merged_into"] == last


def test_reads_by_an_original_id_answer_the_merged_record_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    client = _client(emu)
    got = client.crm.contacts.basic_api.get_by_id(other, properties=["email", "jobtitle"])
    assert (got.id, got.properties["email"], got.properties["jobtitle"]) == (
        new,
        "ann@example.com",
        "CTO",
    )
    batch = client.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": primary}, {"id": other}], properties=["email"]
        )
    )
    assert [r.id for r in batch.results] == [new, new]
    assert not hasattr(batch, "errors")  # a 200, not a 207 with errors


def test_batch_update_of_an_original_id_changes_the_merged_record_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    answer = _client(emu).crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": other, "properties": {"hs_lead_status": "CONNECTED"}}]
        )
    )
    assert [r.id for r in answer.results] == [new]
    assert emu.contact(new)["hs_lead_status"] == "CONNECTED"
    assert emu.status_history(new)[-1] == ("CONNECTED", "INTEGRATION")
    # the original keeps its last value: the write did not touch it
    assert emu.contact(other)["hs_lead_status"] == "OPEN"
    entry = emu.journal.entries("POST", "batch/update")[-1]
    assert (entry.record_ids, entry.written) == ((other,), (new,))


def test_single_update_of_an_original_id_changes_the_merged_record_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    got = _client(emu).crm.contacts.basic_api.update(
        primary, simple_public_object_input={"properties": {"jobtitle": "CEO"}}
    )
    assert got.id == new
    assert emu.contact(new)["jobtitle"] == "CEO"


def test_status_history_holds_both_records_values_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    emu.update_contact(other, {"hs_lead_status": "IN_PROGRESS"})  # the other changes later
    emu.clock.advance(60)
    new = emu.merge_contacts(primary, other)
    got = _client(emu).crm.contacts.basic_api.get_by_id(
        new, properties=["hs_lead_status"], properties_with_history=["hs_lead_status"]
    )
    history = [(h.value, h.source_type) for h in got.properties_with_history["hs_lead_status"]]
    # newest first, as HubSpot answers; the primary's value wins and is set again by the merge
    assert history == [
        ("NEW", "MERGE"),
        ("IN_PROGRESS", "CRM_UI"),
        ("NEW", "IMPORT"),
        ("OPEN", "IMPORT"),
    ]
    assert got.properties["hs_lead_status"] == "NEW"


def test_status_history_ends_with_the_primarys_entry_when_the_primarys_value_is_newest(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    assert emu.status_history(new) == [("OPEN", "IMPORT"), ("NEW", "IMPORT")]


@pytest.mark.parametrize("case", ["archived", "unknown", "merged away", "itself"])
def test_merge_is_a_400_validation_error_naming_the_id_when_an_id_is_not_a_live_contact(emu, case):
    primary, other = _two(emu)
    if case == "archived":
        emu.archive_contact(other)
        bad = other
    elif case == "unknown":
        bad = "999999"
    elif case == "merged away":
        emu.merge_contacts(other, emu.add_contacts([{"email": "x@example.com"}])[0])
        bad = other
    else:
        bad = primary
    answer = _merge_over_api(emu, primary, bad)
    assert answer.status_code == 400
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert bad in body["message"]
    assert not emu.journal.entries("POST", "contacts/merge")[-1].applied


def test_archived_listing_and_live_listing_leave_out_the_originals_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    pages = _client(emu).crm.contacts.basic_api
    assert [c.id for c in pages.get_page(archived=True).results] == []
    assert [c.id for c in pages.get_page(archived=False).results] == [new]
    with pytest.raises(ApiException) as err:
        pages.get_by_id(other, archived=True)
    assert err.value.status == 404
    state = {lead["id"]: lead for lead in emu.admin_state()["leads"]}
    assert (state[other]["deleted"], state[other]["merged_into"]) == (False, new)
    assert state[new]["merged_into"] is None


def _memberships(emu: HubSpotEmulator, list_id: str, change: str, ids: list[str]) -> Any:
    return (
        _client(emu)
        .api_request(
            {
                "method": "PUT",
                "base_url": emu.base_url,
                "path": f"/crm/v3/lists/{list_id}/memberships/{change}",
                "body": ids,
            }
        )
        .json()
    )


def test_list_memberships_move_to_the_merged_record_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    news, vip = emu.add_list("news"), emu.add_list("vip")
    _memberships(emu, news, "add", [primary])
    _memberships(emu, vip, "add", [other])
    new = emu.merge_contacts(primary, other)
    assert (emu.list_members(news), emu.list_members(vip)) == ({new}, {new})
    # an add naming an original id adds the merged record: still one member
    assert _memberships(emu, vip, "add", [primary])["recordsIdsAdded"] == []
    assert emu.list_members(vip) == {new}
    assert _memberships(emu, news, "remove", [other])["recordIdsRemoved"] == [new]
    assert emu.list_members(news) == set()


def test_snapshot_restore_keeps_the_routing_when_contacts_were_merged(emu):
    primary, other = _two(emu)
    new = emu.merge_contacts(primary, other)
    doc = json.loads(json.dumps(emu.snapshot()))
    again = HubSpotEmulator(clock=EmulatorClock(frozen_at=T0))
    again.restore(doc)
    with again:
        assert again.store.routed(int(other)).id == int(new)  # type: ignore[union-attr]
        assert set(_search_all(again)) == {new}
        got = _client(again).crm.contacts.basic_api.get_by_id(primary, properties=["email"])
        assert got.id == new
        assert again.add_contacts([{"email": "z@example.com"}]) == [str(int(new) + 1)]


def _admin(emu: HubSpotEmulator, name: str, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{emu.base_url}/__emulator__/{name}",
        data=json.dumps(doc).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_admin_merge_answers_the_new_id_and_edit_refuses_an_original_when_contacts_were_merged(
    emu,
):
    primary, other = _two(emu)
    status, body = _admin(emu, "merge", {"primary": primary, "merge": other})
    assert status == 200
    new = body["id"]
    assert set(_search_all(emu)) == {new}
    assert _admin(emu, "edit", {"id": other, "status": "OPEN"})[0] == 404
    assert _admin(emu, "merge", {"primary": new, "merge": other})[0] == 400
    assert emu.admin_info()["leads"] == 1  # the two merged ones are the merged record now
