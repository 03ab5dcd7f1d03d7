"""The emulator keeps every contact property's history, as HubSpot does (docs/crm-api.md#c10):
a batch read with ``propertiesWithHistory`` answers any property's past values, newest first,
with who made each; a contact nobody touched since its import keeps no list of its own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import requests
from hubspot_support import T0, contacts

from connectors.base import LeadChange, Outcome


def _read_with_history(emu: Any, contact_id: str, names: list[str]) -> dict[str, Any]:
    """One batch read naming ``names`` in ``propertiesWithHistory``, as plain HTTP answers it."""
    answer = requests.post(
        emu.base_url + "/crm/v3/objects/contacts/batch/read",
        json={"inputs": [{"id": contact_id}], "properties": [], "propertiesWithHistory": names},
        headers={"Authorization": f"Bearer {emu.access_token}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    history: dict[str, Any] = result["propertiesWithHistory"]
    return history


def test_a_custom_propertys_history_names_each_change_and_who_made_it_when_read_with_history(
    emu, make_connector
):
    [cid] = emu.add_contacts(contacts(1, bant_budget="Pending"))
    emu.clock.advance(60)
    emu.update_contact(cid, {"bant_budget": "Board review"})  # a rep, in the UI
    emu.clock.advance(60)
    emu.update_contact(cid, {"bant_budget": "Approved"}, source="AUTOMATION_PLATFORM")
    emu.clock.advance(60)
    connector = make_connector()
    [written] = connector.write_batch([LeadChange(cid, {"budget": "Signed"})])
    assert written.outcome is Outcome.OK

    raw = _read_with_history(emu, cid, ["bant_budget", "hs_lead_status"])
    entries = connector.status_history([cid], also=["budget"])

    # Newest first, each with its sourceType; the creation value is the oldest.
    assert [(h["value"], h["sourceType"]) for h in raw["bant_budget"]] == [
        ("Signed", "INTEGRATION"),
        ("Approved", "AUTOMATION_PLATFORM"),
        ("Board review", "CRM_UI"),
        ("Pending", "IMPORT"),
    ]
    assert [h["sourceType"] for h in raw["hs_lead_status"]] == ["IMPORT"]
    budget = [(e.from_value, e.to_value, e.actor) for e in entries if e.field == "budget"]
    assert budget == [
        (None, "Pending", "automation"),
        ("Pending", "Board review", "person"),
        ("Board review", "Approved", "automation"),  # a workflow's change is not a person's
        ("Approved", "Signed", "integration"),
    ]
    assert [e.at - T0 for e in entries if e.field == "budget"][1:] == [
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=180),
    ]


def test_an_untouched_contact_keeps_no_history_list_but_answers_its_creation_values_when_read(
    emu,
):
    [touched, untouched] = emu.add_contacts(contacts(2, bant_budget="Pending"))
    emu.update_contact(touched, {"jobtitle": "CTO"})

    kept = emu.store.contacts[int(untouched)].history
    raw = _read_with_history(emu, untouched, ["bant_budget", "hs_lead_status", "jobtitle"])
    exported = emu.store.export()
    emu.store.restore(exported)
    after_restore = _read_with_history(emu, untouched, ["bant_budget", "hs_lead_status"])

    assert kept == {}
    assert list(emu.store.contacts[int(touched)].history) == ["jobtitle"]
    stamp = emu.contact(untouched)["lastmodifieddate"]
    assert raw == {
        "bant_budget": [{"value": "Pending", "timestamp": stamp, "sourceType": "IMPORT"}],
        "hs_lead_status": [{"value": "NEW", "timestamp": stamp, "sourceType": "IMPORT"}],
        "jobtitle": [],  # never set: no past value
    }
    assert after_restore == {k: raw[k] for k in ("bant_budget", "hs_lead_status")}


def test_a_number_propertys_past_values_are_strings_and_a_write_back_of_one_typed_is_taken(
    emu, make_connector
):
    """HubSpot keeps every value as a string ("75"); syncd types a past value as a pull types
    the field, and HubSpot takes the write of it back (a string on the wire)."""
    [cid] = emu.add_contacts(contacts(1, numemployees="10"))
    emu.clock.advance(60)
    emu.update_contact(cid, {"numemployees": "75"})  # a rep, in the UI
    emu.clock.advance(60)
    connector = make_connector()
    [first] = connector.write_batch([LeadChange(cid, {"employees": 50})])

    raw = _read_with_history(emu, cid, ["numemployees"])
    [person] = [
        e for e in connector.status_history([cid], also=["employees"]) if e.actor == "person"
    ]
    value = connector.history_value("employees", person.to_value)
    [back] = connector.write_batch([LeadChange(cid, {"employees": value})])

    assert [h["value"] for h in raw["numemployees"]] == ["50", "75", "10"]
    assert (person.to_value, value) == ("75", 75)
    assert (first.outcome, back.outcome) == (Outcome.OK, Outcome.OK)
    assert emu.contact(cid)["numemployees"] == "75"
    assert connector.history_value("employees", None) is None


def test_a_history_read_of_an_original_id_gives_no_entries_when_contacts_were_merged(
    emu, make_connector
):
    first, second = emu.add_contacts(contacts(2))
    emu.clock.advance(60)
    merged = emu.merge_contacts(first, second)
    connector = make_connector()

    # HubSpot answers the merged contact for an original id (crm-api C12); its history is both
    # originals' and is read under its own id only.
    assert connector.status_history([first, second]) == []
    entries = connector.status_history([first, merged])
    assert entries and {e.lead_id for e in entries} == {merged}
