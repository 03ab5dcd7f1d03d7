"""The emulators' admin API (/__emulator__/) and their separate-process mode for soak tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.hubspot.values import parse_fields
from connectors.testing.hubspot import DEFAULT_STATUS_VALUES, HubSpotEmulator, hubspot_properties
from connectors.testing.leads import generate_leads
from connectors.testing.salesforce import SalesforceEmulator
from tests.salesforce.support import token_answer

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def sf() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as emu:
        yield emu


def _admin(
    emu: SalesforceEmulator | HubSpotEmulator,
    method: str,
    name: str,
    doc: dict[str, Any] | None = None,
) -> requests.Response:
    verify = emu.ca_pem_path if isinstance(emu, SalesforceEmulator) else True
    with requests.Session() as session:
        session.trust_env = False
        return session.request(
            method, f"{emu.url}/__emulator__/{name}", json=doc, verify=verify, timeout=5
        )


def _sf_token(emu: SalesforceEmulator) -> str:
    answer = token_answer(emu)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_journal_since_returns_only_newer_entries_and_admin_calls_are_not_journaled(sf):
    _sf_token(sf)
    first = _admin(sf, "GET", "journal").json()
    assert [e["path"] for e in first["entries"]] == ["/services/oauth2/token"]
    assert first["entries"][0]["applied"] is True and first["entries"][0]["request_id"]
    _sf_token(sf)
    newer = _admin(sf, "GET", "journal?since=" + str(first["last"])).json()
    assert [e["seq"] for e in newer["entries"]] == [first["last"] + 1]
    assert len(sf.journal) == 2  # the admin calls above are not there


def test_edit_is_a_person_and_state_shows_it(sf):
    [lid] = sf.add_leads([{"LastName": "Lovelace", "Company": "Analytical"}])
    answer = _admin(sf, "POST", "edit", {"id": lid, "status": "Working - Contacted"})
    assert answer.status_code == 200, answer.text
    [lead] = _admin(sf, "GET", "state").json()["leads"]
    assert (lead["id"], lead["status"]) == (lid, "Working - Contacted")
    assert lead["last_modified_by"] == sf.rep_user_id and not lead["modified_by_integration"]
    assert lead["fields"]["Company"] == "Analytical"


def test_edit_of_an_unknown_lead_says_which_and_what_to_do(sf):
    answer = _admin(sf, "POST", "edit", {"id": "00Q000000000000AAA", "status": "MQL"})
    assert answer.status_code == 404
    assert "00Q000000000000AAA" in answer.json()["error"] and "GET state" in answer.json()["error"]


def test_faults_set_at_run_time_hit_the_api_but_never_the_admin_api(sf):
    plan = _admin(sf, "POST", "faults", {"rate": 1.0, "kinds": ["503"]}).json()
    assert (plan["rate"], plan["kinds"]) == (1.0, ["503"])
    assert token_answer(sf).status_code == 503
    assert _admin(sf, "GET", "state").status_code == 200
    _admin(sf, "POST", "faults", {"clear": True})
    assert token_answer(sf).status_code == 200


def test_bad_fault_settings_are_refused_naming_the_value(sf):
    answer = _admin(sf, "POST", "faults", {"rate": 2})
    assert answer.status_code == 400 and "2" in answer.json()["error"]
    answer = _admin(sf, "POST", "faults", {"kinds": "429,bogus"})
    assert answer.status_code == 400 and "bogus" in answer.json()["error"]


def test_scripted_fault_through_the_admin_api(sf):
    _admin(sf, "POST", "faults", {"script": [{"kind": "drop-before", "path": "oauth2"}]})
    with pytest.raises(requests.ConnectionError):
        token_answer(sf)
    assert token_answer(sf).status_code == 200


def test_clock_advances_a_simulated_clock(sf):
    frozen = _admin(sf, "POST", "clock", {"freeze": True}).json()
    moved = _admin(sf, "POST", "clock", {"advance_seconds": 3600}).json()
    assert moved["frozen"] is True
    delta = datetime.fromisoformat(moved["now"]) - datetime.fromisoformat(frozen["now"])
    assert delta.total_seconds() == 3600


def test_hubspot_state_shows_list_membership_add_requests_and_duplicates():
    with HubSpotEmulator() as hs:
        ids = hs.add_contacts([{"email": "a@example.com"}])
        list_id = hs.add_list("Newsletter")
        for _ in range(2):
            answer = requests.put(
                f"{hs.base_url}/crm/v3/lists/{list_id}/memberships/add",
                json=ids,
                timeout=5,
                headers={"Authorization": f"Bearer {hs.access_token}"},
            )
            assert answer.status_code == 200
        state = _admin(hs, "GET", "state").json()
    assert state["memberships"] == [
        {"list_id": list_id, "list": "Newsletter", "contact_id": ids[0], "add_requests": 2}
    ]
    assert state["duplicate_memberships"] == [f"{list_id}/{ids[0]}"]


def test_hubspot_seeding_encodes_values_the_connector_parses_back():
    from connectors.hubspot.config import DEFAULT_FIELDS

    for lead in generate_leads(40, seed=3, now=NOW):
        props = hubspot_properties(lead)
        parsed = parse_fields(props, DEFAULT_FIELDS)
        for canonical, value in lead.items():
            if canonical.startswith("_") or canonical not in DEFAULT_FIELDS:
                continue
            expected = DEFAULT_STATUS_VALUES.get(value, value) if canonical == "status" else value
            if canonical == "employees" and value is not None:
                expected = int(value)
            assert parsed[canonical] == expected, canonical


def _without_now(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "now"}


def test_salesforce_snapshot_resumes_leads_members_and_credentials_in_a_new_emulator(sf):
    ids = sf.add_leads([{"LastName": f"L{i}", "Company": "Co"} for i in range(3)])
    sf.update_lead(ids[1], {"Status": "Working - Contacted"})
    sf.delete_lead(ids[2])
    campaign = sf.add_campaign("Newsletter")
    [member] = sf.org.insert_via_api(
        [{"attributes": {"type": "CampaignMember"}, "CampaignId": campaign, "LeadId": ids[0]}],
        all_or_none=True,
    )
    snapshot = json.loads(json.dumps(sf.snapshot()))
    resumed = SalesforceEmulator()
    resumed.restore(snapshot)
    assert _without_now(resumed.admin_state()) == _without_now(sf.admin_state())
    assert (resumed.client_id, resumed.client_secret) == (sf.client_id, sf.client_secret)
    assert resumed.campaign_members(campaign) == {ids[0]} and member["success"]
    [fresh] = resumed.add_leads([{"LastName": "New", "Company": "Co"}])
    assert fresh > max(ids)  # ids keep increasing: ORDER BY Id stays creation order


def test_hubspot_snapshot_resumes_contacts_history_lists_and_tokens():
    with HubSpotEmulator() as hs:
        ids = hs.add_contacts(
            [{"email": f"c{i}@example.com", "hs_lead_status": "NEW"} for i in range(3)]
        )
        hs.update_contact(ids[0], {"hs_lead_status": "OPEN"})
        hs.archive_contact(ids[2])
        list_id = hs.add_list("Newsletter")
        hs._members[list_id].add(ids[1])  # a membership without an HTTP call
        snapshot = json.loads(json.dumps(hs.snapshot()))
        before = _without_now(hs.admin_state())
    resumed = HubSpotEmulator()
    resumed.restore(snapshot)
    assert _without_now(resumed.admin_state()) == before
    assert resumed.access_token == hs.access_token
    assert resumed.status_history(ids[0]) == hs.status_history(ids[0])
    assert resumed.add_list("Webinar") != list_id
    assert int(resumed.add_contacts([{"email": "new@example.com"}])[0]) > int(ids[-1])


def _run(module: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"{module} printed nothing"
    return proc, json.loads(line)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def test_hubspot_process_seeds_serves_admin_and_writes_the_state_file(tmp_path: Path):
    state_file = tmp_path / "state.json"
    proc, ready = _run(
        "connectors.testing.hubspot",
        "--port",
        "0",
        "--leads",
        "25",
        "--seed",
        "4",
        "--state-file",
        str(state_file),
        "--fault-rate",
        "0.3",
        "--fault-kinds",
        "429,503",
        "--fault-seed",
        "9",
    )
    try:
        assert ready["url"].startswith("http://127.0.0.1:") and ready["access_token"]
        state = _get(ready["url"] + "/__emulator__/state")
        assert len(state["leads"]) == 25
        target = state["leads"][0]["id"]
        request = urllib.request.Request(
            ready["url"] + "/__emulator__/edit",
            method="POST",
            data=json.dumps({"id": target, "status": "CONNECTED"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        plan = _get(ready["url"] + "/__emulator__/faults")
        assert (plan["rate"], plan["kinds"], plan["seed"]) == (0.3, ["429", "503"], 9)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    saved = json.loads(state_file.read_text())
    edited = next(lead for lead in saved["leads"] if lead["id"] == target)
    assert edited["status"] == "CONNECTED" and edited["last_modified_by"] == "CRM_UI"

    proc, again = _run(
        "connectors.testing.hubspot",
        "--port",
        "0",
        "--leads",
        "99",
        "--state-file",
        str(state_file),
    )
    try:
        assert again["access_token"] == ready["access_token"] and again["leads"] == 25
        resumed = _get(again["url"] + "/__emulator__/state")
        assert (
            next(lead for lead in resumed["leads"] if lead["id"] == target)["status"] == "CONNECTED"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_state_file_that_is_not_an_emulator_state_is_refused_with_what_to_do(tmp_path):
    state_file = tmp_path / "state.json"
    state_file.write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.testing.salesforce", "--state-file", str(state_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert str(state_file) in proc.stderr and "delete it to start fresh" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_salesforce_process_prints_what_a_client_needs(tmp_path: Path):
    proc, ready = _run(
        "connectors.testing.salesforce", "--port", "0", "--leads", "10", "--seed", "1"
    )
    try:
        assert ready["url"].startswith("https://127.0.0.1:")
        assert Path(ready["ca_pem_path"]).is_file()
        assert {"token_url", "client_id", "client_secret", "campaigns"} <= set(ready)
        with requests.Session() as session:
            session.trust_env = False
            state = session.get(
                ready["url"] + "/__emulator__/state", verify=ready["ca_pem_path"], timeout=10
            ).json()
        assert len(state["leads"]) == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
