"""The emulator speaks Salesforce's shapes to the real simple-salesforce client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.testing.salesforce import EmulatorConfig, synthetic_leads

from .support import lead

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def sf(connector):
    return connector._sf or connector._login()


def test_emulator_pages_with_next_records_url_and_batch_size_header(emu, sf):
    emu.add_leads(synthetic_leads(2500))
    soql = "SELECT Id FROM Lead ORDER BY SystemModstamp, Id"

    first = sf.query(soql)
    assert (first["totalSize"], len(first["records"]), first["done"]) == (2500, 2000, False)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert (len(second["records"]), second["done"]) == (500, True)
    assert "nextRecordsUrl" not in second

    small = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert len(small["records"]) == 200 and small["nextRecordsUrl"].endswith("-200")
    tiny = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(tiny["records"]) == 200  # clamped to the documented minimum


def test_query_all_next_page_keeps_deleted_records(emu, sf):
    ids = emu.add_leads(synthetic_leads(2100))
    emu.delete_lead(ids[-1])
    first = sf.query("SELECT Id, IsDeleted FROM Lead", include_deleted=True)
    assert "/query/" in first["nextRecordsUrl"]
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert first["totalSize"] == 2100 and rest["records"][-1]["IsDeleted"] is True
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 2099


def test_expired_query_locator_is_invalid_query_locator(emu, sf):
    emu.add_leads(synthetic_leads(2100))
    first = sf.query("SELECT Id FROM Lead")
    emu.expire_query_locators()
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert err.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Nope FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT Id Lead", "MALFORMED_QUERY"),
        ("SELECT Id FROM Leed", "INVALID_TYPE"),
    ],
)
def test_bad_soql_gets_salesforce_error_codes(sf, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(soql)
    assert err.value.status == 400 and err.value.content[0]["errorCode"] == code


def test_where_clause_semantics(emu, sf):
    a, b, c = emu.add_leads(
        [
            lead(1, Status="MQL", NumberOfEmployees=10),
            lead(2, Status="SQL", NumberOfEmployees=500),
            lead(3, Status="MQL"),
        ]
    )
    emu.clock.advance(5)
    emu.update_lead(c, {"Title": "CTO"})

    def ids(where):
        return [r["Id"] for r in sf.query(f"SELECT Id FROM Lead WHERE {where}")["records"]]

    assert ids("Status = 'mql'") == [a, c]  # string equality ignores case
    assert ids("Status IN ('SQL', 'Nurture')") == [b]
    assert ids("NOT (Status = 'MQL') OR NumberOfEmployees >= 100") == [b]
    assert ids("NumberOfEmployees = null") == [c]
    assert ids("SystemModstamp > 2024-03-01T12:00:00Z") == [c]
    assert ids(f"SystemModstamp = 2024-03-01T12:00:00.000+0000 AND Id > '{a}'") == [b]
    assert ids("IsConverted = false AND Title != null") == [c]
    ordered = sf.query("SELECT Id FROM Lead ORDER BY NumberOfEmployees DESC NULLS LAST LIMIT 2")
    assert [r["Id"] for r in ordered["records"]] == [b, a]


def test_standard_lead_status_is_unrestricted_by_default_and_saves_any_value(emu_config):
    from connectors.testing.salesforce import SalesforceEmulator

    with SalesforceEmulator(EmulatorConfig()) as org:
        lid = org.add_leads([lead(1)])[0]
        results = org.org.update_via_api(
            [{"attributes": {"type": "Lead"}, "id": lid, "Status": "Whatever"}],
            all_or_none=False,
            user_id=org.integration_user_id,
            locks=org.faults,
        )
        assert results[0]["success"] and org.lead(lid)["Status"] == "Whatever"


def test_every_rest_response_carries_limit_info(emu, sf):
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == emu.config.daily_api_limit


def test_token_endpoint_rejects_bad_client_with_oauth_error(emu):
    with requests.Session() as s:
        s.verify, s.trust_env = emu.ca_pem_path, False
        r = s.post(
            emu.token_url,
            data={"grant_type": "client_credentials"},
            auth=(emu.client_id, "wrong"),
            timeout=5,
        )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"


def test_expired_session_gets_401_array_body(emu, sf):
    emu.expire_sessions()
    r = sf.session.get(sf.base_url + "limits", headers=sf.headers, timeout=5)
    assert r.status_code == 401
    assert r.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_cli_runs_standalone_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.testing.salesforce",
            "--port",
            "0",
            "--leads",
            "50",
            "--seed",
            "3",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["leads"] == 50 and info["base_url"].startswith("https://127.0.0.1:")
        with requests.Session() as s:
            s.verify, s.trust_env = info["ca_pem_path"], False
            r = s.post(
                info["token_url"],
                data={"grant_type": "client_credentials"},
                auth=(info["client_id"], info["client_secret"]),
                timeout=5,
            )
            assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
