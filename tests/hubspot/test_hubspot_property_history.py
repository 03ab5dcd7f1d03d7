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
