"""The emulator's Bulk API 2.0 query jobs, driven by simple-salesforce's own Bulk 2.0 client."""

from __future__ import annotations

import csv
import io

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

from .support import lead


@pytest.fixture
def emu_config() -> EmulatorConfig:
    """Jobs over a handful of rows done by the first look: simple-salesforce's own polling
    waits in wall time, while these tests' emulator clock stands still."""
    return EmulatorConfig(bulk_query_run_seconds=0)


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    grant = requests.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        verify=emu.ca_pem_path,
        timeout=5,
    ).json()
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = emu.ca_pem_path
    return Salesforce(
        instance_url=emu.base_url, session_id=grant["access_token"], session=session, version="59.0"
    )


def _rows(pages: list[str]) -> list[dict[str, str]]:
    return [row for page in pages for row in csv.DictReader(io.StringIO(page))]


def test_query_excludes_deleted_leads_and_query_all_includes_them_through_the_real_client(emu, sf):
    ids = emu.add_leads(lead(i) for i in range(25))
    emu.delete_lead(ids[3])
    soql = "SELECT Id, LastName, IsDeleted FROM Lead"
    live = _rows(list(sf.bulk2.Lead.query(soql, max_records=10, wait=0)))
    every = _rows(list(sf.bulk2.Lead.query_all(soql, max_records=10, wait=0)))
    assert sorted(r["Id"] for r in live) == sorted(set(ids) - {ids[3]})
    assert sorted(r["Id"] for r in every) == sorted(ids)
    assert [r["IsDeleted"] for r in every if r["Id"] == ids[3]] == ["true"]
    # 25 rows in pages of 10 for each job: three results requests each.
    assert len(emu.journal.entries("GET", "/results")) == 6


@pytest.mark.parametrize("emu_config", [EmulatorConfig(bulk_query_run_seconds=5)])
def test_a_job_moves_from_upload_complete_to_in_progress_to_job_complete_after_its_run_time_and_pages_by_locator(
    emu, sf
):
    ids = emu.add_leads(lead(i, Title=f'T, "{i}"\nü') for i in range(5))
    client = sf.bulk2.Lead._client
    job = client.create_job("queryAll", "SELECT Id, Title FROM Lead", "SEMICOLON", "CRLF")
    assert job["state"] == "UploadComplete" and job["operation"] == "queryAll"
    assert (job["columnDelimiter"], job["lineEnding"], job["contentType"]) == (
        "SEMICOLON",
        "CRLF",
        "CSV",
    )
    running = client.get_job(job["id"], True)
    assert running["state"] == "InProgress"
    emu.update_lead(ids[0], {"Title": "changed after the job ran"})
    emu.add_leads([lead(99)])
    emu.clock.advance(4.5)
    # Looks do not move it along: its 5 s of processing do.
    assert client.get_job(job["id"], True)["state"] == "InProgress"
    assert client.get_job(job["id"], True)["state"] == "InProgress"
    emu.clock.advance(0.5)
    done = client.get_job(job["id"], True)
    assert done["state"] == "JobComplete" and done["numberRecordsProcessed"] == 5

    url = f"{sf.bulk2_url}query/{job['id']}/results"
    headers = {"Authorization": f"Bearer {sf.session_id}", "Accept": "text/csv"}
    first = sf.session.get(url, params={"maxRecords": 2}, headers=headers, timeout=5)
    assert first.headers["Sforce-NumberOfRecords"] == "2"
    locator = first.headers["Sforce-Locator"]
    assert locator not in ("", "null")
    again = sf.session.get(
        url, params={"maxRecords": 2, "locator": locator}, headers=headers, timeout=5
    )
    same = sf.session.get(
        url, params={"maxRecords": 2, "locator": locator}, headers=headers, timeout=5
    )
    assert again.content == same.content  # a locator always names the same rows
    last = sf.session.get(
        url,
        params={"maxRecords": 10, "locator": again.headers["Sforce-Locator"]},
        headers=headers,
        timeout=5,
    )
    assert last.headers["Sforce-Locator"] == "null"
    assert last.headers["Sforce-NumberOfRecords"] == "1"
    assert first.content.startswith(b'"Id";"Title"\r\n')
    rows = [
        r
        for page in (first, again, last)
        for r in csv.DictReader(io.StringIO(page.content.decode()), delimiter=";")
    ]
    # The snapshot: the rows as the job ran, not the edit or the lead added after it.
    assert sorted(r["Id"] for r in rows) == sorted(ids)
    assert {r["Title"] for r in rows} == {f'T, "{i}"\nü' for i in range(5)}


def test_every_bulk_request_is_journaled_and_counted_against_the_daily_limit(emu, sf):
    emu.add_leads(lead(i) for i in range(3))
    before, seq = emu.api_usage, emu.journal.last_seq
    list(sf.bulk2.Lead.query_all("SELECT Id FROM Lead", wait=0))
    calls = emu.journal.entries(since=seq)
    kinds = [(e.method, e.path.rsplit("/", 1)[-1]) for e in calls]
    job_id = kinds[1][1]
    # create, one look at the job (already JobComplete), one results page: three calls.
    assert kinds == [("POST", "query"), ("GET", job_id), ("GET", "results")]
    assert emu.api_usage - before == 3
    assert calls[-1].records == 3 and calls[0].soql == "SELECT Id FROM Lead"


def test_a_failed_job_reports_its_error_message(emu, sf):
    emu.add_leads([lead(1)])
    emu.bulk_jobs.fail_jobs("Query timeout")
    with pytest.raises(SalesforceOperationError, match="Query timeout"):
        list(sf.bulk2.Lead.query("SELECT Id FROM Lead", wait=0))


@pytest.mark.parametrize("emu_config", [EmulatorConfig(bulk_query_run_seconds=5)])
def test_a_running_job_can_be_aborted_and_a_finished_one_deleted(emu, sf):
    emu.add_leads([lead(1)])
    client = sf.bulk2.Lead._client
    running = client.create_job("query", "SELECT Id FROM Lead")
    client.get_job(running["id"], True)
    assert client.abort_job(running["id"], True)["state"] == "Aborted"
    with pytest.raises(SalesforceError) as refused:
        client.get_query_results(running["id"])
    assert refused.value.status == 400
    assert sf.restful(f"jobs/query/{running['id']}", method="DELETE") is None  # 204
    with pytest.raises(SalesforceError) as gone:
        client.get_job(running["id"], True)
    assert gone.value.status == 404


def test_results_need_the_api_version_the_job_was_created_with(emu, sf):
    emu.config.api_versions = ("59.0", "60.0")
    emu.add_leads([lead(1)])
    client = sf.bulk2.Lead._client
    job = client.create_job("query", "SELECT Id FROM Lead")
    other = sf.bulk2_url.replace("v59.0", "v60.0")
    answer = sf.session.get(
        f"{other}query/{job['id']}",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=5,
    )
    assert answer.status_code == 409


def test_a_malformed_query_is_refused_when_the_job_is_created(emu, sf):
    with pytest.raises(SalesforceError) as refused:
        sf.bulk2.Lead._client.create_job("query", "SELECT Nope__c FROM Lead")
    assert refused.value.status == 400
    assert emu.bulk_jobs.list()["records"] == []
