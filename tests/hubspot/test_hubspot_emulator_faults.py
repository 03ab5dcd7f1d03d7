"""Every fault kind of the HubSpot emulator, as hubspot-api-client sees it."""

from __future__ import annotations

import json
import time

import pytest
import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)
from hubspot.crm.properties import ApiException as PropertiesApiException

from connectors.testing.hubspot import HubSpotEmulator

UPDATE = "batch/update"


def _client(emu: HubSpotEmulator, token: str | None = None) -> HubSpot:
    return HubSpot(access_token=token or emu.access_token, host=emu.base_url, retry=False)


def _update(client: HubSpot, ids: list[str], status: str, **kw: object) -> tuple[object, int]:
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            SimplePublicObjectBatchInput(id=i, properties={"hs_lead_status": status}) for i in ids
        ]
    )
    data, status_code, _ = client.crm.contacts.batch_api.update_with_http_info(
        batch_input_simple_public_object_batch_input=batch, **kw
    )
    return data, status_code


def _seed(emu: HubSpotEmulator, n: int) -> list[str]:
    return emu.add_contacts(
        [{"email": f"c{i}@example.com", "hs_lead_status": "NEW"} for i in range(n)]
    )


def test_429_on_search_is_the_secondly_policy_with_retry_after(emu):
    emu.faults.script("429", path="/search")
    with pytest.raises(ApiException) as err:
        _client(emu).crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(limit=1)
        )
    body = json.loads(err.value.body)
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"
    assert (body["policyName"], body["errorType"]) == ("SECONDLY", "RATE_LIMIT")
    assert body["message"] == "You have reached your secondly limit."


def test_429_on_a_batch_is_ten_secondly_rolling_with_rate_limit_headers(emu):
    ids = _seed(emu, 1)
    emu.faults.script("429", path=UPDATE)
    with pytest.raises(ApiException) as err:
        _update(_client(emu), ids, "OPEN")
    body = json.loads(err.value.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert err.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    [entry] = emu.journal.entries("POST", UPDATE)
    assert (entry.policy, entry.applied, body["requestId"]) == (
        "TEN_SECONDLY_ROLLING",
        False,
        entry.request_id,
    )
    assert emu.contact(ids[0])["hs_lead_status"] == "NEW"


def test_503_is_an_html_page(emu):
    emu.faults.script("503")
    with pytest.raises(PropertiesApiException) as err:
        _client(emu).crm.properties.core_api.get_all(object_type="contacts")
    assert err.value.status == 503 and "Service Unavailable" in err.value.body


def test_401_expires_oauth_tokens_for_real_and_spares_private_app_tokens(emu):
    answer = requests.post(
        emu.base_url + "/oauth/v1/token",
        timeout=5,
        data={
            "grant_type": "refresh_token",
            "client_id": emu.oauth_client_id,
            "client_secret": emu.oauth_client_secret,
            "refresh_token": emu.refresh_token,
        },
    )
    oauth = _client(emu, answer.json()["access_token"])
    emu.faults.script("401", count=2)
    _client(emu).crm.properties.core_api.get_all(object_type="contacts")  # not applicable
    with pytest.raises(PropertiesApiException) as err:
        oauth.crm.properties.core_api.get_all(object_type="contacts")
    assert err.value.status == 401
    assert json.loads(err.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    emu.faults.clear()
    with pytest.raises(PropertiesApiException):  # not faulted: the token is expired
        oauth.crm.properties.core_api.get_all(object_type="contacts")


def test_partial_batch_is_207_and_applies_only_the_records_it_does_not_name(emu):
    ids = _seed(emu, 6)
    emu.faults.script("partial", path=UPDATE)
    data, status = _update(_client(emu), ids, "OPEN")
    assert status == 207
    failed = {i for e in data.errors for i in e.context["ids"]}  # type: ignore[attr-defined]
    assert 0 < len(failed) < len(ids)
    assert {r.id for r in data.results} == set(ids) - failed  # type: ignore[attr-defined]
    assert {i for i in ids if emu.contact(i)["hs_lead_status"] == "OPEN"} == set(ids) - failed
    [entry] = emu.journal.entries("POST", UPDATE)
    assert set(entry.written) == set(ids) - failed and entry.applied


def test_drop_before_applies_nothing(emu):
    ids = _seed(emu, 2)
    emu.faults.script("drop-before", path=UPDATE)
    with pytest.raises(urllib3.exceptions.HTTPError):
        _update(_client(emu), ids, "OPEN")
    assert all(emu.contact(i)["hs_lead_status"] == "NEW" for i in ids)
    [entry] = emu.journal.entries("POST", UPDATE)
    assert (entry.status, entry.applied) == (0, False)


def test_drop_after_applies_the_batch_and_journals_it_as_applied(emu):
    ids = _seed(emu, 2)
    emu.faults.drop_next(path=UPDATE, after_applied=True)
    with pytest.raises(urllib3.exceptions.HTTPError):
        _update(_client(emu), ids, "OPEN")
    assert all(emu.contact(i)["hs_lead_status"] == "OPEN" for i in ids)
    assert [s for s, _ in emu.status_history(ids[0])] == ["NEW", "OPEN"]
    [entry] = emu.journal.entries("POST", UPDATE)
    assert (entry.status, entry.applied, set(entry.written)) == (0, True, set(ids))


def test_slow_answers_late(emu):
    emu.faults.slow_next(delay=0.3)
    started = time.monotonic()
    _client(emu).crm.properties.core_api.get_all(object_type="contacts")
    assert time.monotonic() - started >= 0.3


def test_timeout_applies_the_batch_then_outlasts_the_client(emu):
    ids = _seed(emu, 1)
    emu.faults.script("timeout", path=UPDATE, delay=3)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        _update(_client(emu), ids, "OPEN", _request_timeout=0.5)
    assert emu.contact(ids[0])["hs_lead_status"] == "OPEN"
    [entry] = emu.journal.entries("POST", UPDATE)
    assert entry.applied and entry.fault == "timeout"
