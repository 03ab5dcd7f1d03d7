"""Every fault kind of the Salesforce emulator, as simple-salesforce sees it over TLS."""

from __future__ import annotations

import time

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from connectors.testing.kit import FaultPlan
from connectors.testing.salesforce import SalesforceEmulator

from .support import lead, simple_client

COLLECTIONS = "composite/sobjects"


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return simple_client(emu)


def _update(
    sf: Salesforce, ids: list[str], status: str, timeout: float | None = None
) -> list[dict[str, object]]:
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Lead"}, "id": i, "Status": status} for i in ids],
    }
    kwargs = {"timeout": timeout} if timeout is not None else {}
    return sf.restful(COLLECTIONS, method="PATCH", json=body, **kwargs)  # type: ignore[return-value]


def test_429_fault_is_the_concurrent_request_limit_403_as_salesforce_refuses(emu, sf):
    emu.faults.script("429", path="/query")
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM Lead")
    assert err.value.status == 403
    assert err.value.content == [
        {
            "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    [entry] = emu.journal.entries(path_contains="/query")
    assert (entry.fault, entry.applied) == ("429", False)


def test_503_fault_is_an_html_page_the_client_cannot_parse_as_json(emu, sf):
    emu.faults.script("503")
    with pytest.raises(SalesforceGeneralError) as err:
        sf.query("SELECT Id FROM Lead")
    assert err.value.status == 503
    assert isinstance(err.value.content, str) and "Service Unavailable" in err.value.content


def test_401_fault_ends_the_session_for_real(emu, sf):
    emu.faults.script("401")
    with pytest.raises(SalesforceExpiredSession) as err:
        sf.query("SELECT Id FROM Lead")
    assert err.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    with pytest.raises(SalesforceExpiredSession):  # not faulted: the token is gone
        sf.query("SELECT Id FROM Lead")
    assert simple_client(emu).query("SELECT Id FROM Lead")["totalSize"] == 0


def test_lock_fault_refuses_some_records_with_unable_to_lock_row_and_applies_the_rest(emu, sf):
    ids = emu.add_leads([lead(i) for i in range(6)])
    emu.faults.script("lock", path=COLLECTIONS)
    results = _update(sf, ids, "MQL")
    locked = [r for r in results if not r["success"]]
    assert 0 < len(locked) < len(ids)
    assert all(r["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW" for r in locked)
    applied = {i for i, r in zip(ids, results, strict=True) if r["success"]}
    assert {i for i in ids if emu.lead(i)["Status"] == "MQL"} == applied
    [entry] = emu.journal.writes()
    assert set(entry.written) == applied and entry.fault == "lock"
    assert all(r["success"] for r in _update(sf, ids, "MQL"))  # a lock passes


def test_drop_before_leaves_nothing_applied(emu, sf):
    [lid] = emu.add_leads([lead(1)])
    emu.faults.script("drop-before", path=COLLECTIONS)
    with pytest.raises(requests.ConnectionError):
        _update(sf, [lid], "MQL")
    assert emu.lead(lid)["Status"] == "Open - Not Contacted"
    [entry] = emu.journal.writes()
    assert (entry.status, entry.applied, entry.written) == (0, False, ())


def test_drop_after_applies_the_write_and_journals_it_as_applied(emu, sf):
    [lid] = emu.add_leads([lead(1)])
    emu.faults.drop_next(path=COLLECTIONS, after_applied=True)
    with pytest.raises(requests.ConnectionError):
        _update(sf, [lid], "MQL")
    assert emu.lead(lid)["Status"] == "MQL"
    assert emu.lead(lid)["LastModifiedById"] == emu.integration_user_id
    [entry] = emu.journal.writes()
    assert (entry.status, entry.applied, entry.written) == (0, True, (lid,))


def test_slow_fault_answers_late_but_answers(emu, sf):
    emu.faults.slow_next(delay=0.3, path="/query")
    started = time.monotonic()
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    assert time.monotonic() - started >= 0.3


def test_timeout_fault_applies_the_write_then_outlasts_the_client(emu, sf):
    [lid] = emu.add_leads([lead(1)])
    emu.faults.script("timeout", path=COLLECTIONS, delay=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _update(sf, [lid], "MQL", timeout=0.5)
    assert emu.lead(lid)["Status"] == "MQL"
    [entry] = emu.journal.writes()
    assert entry.applied and entry.fault == "timeout"


def test_random_faults_follow_the_route_rate_and_only_kinds_the_route_can_produce(emu, sf):
    emu.faults.configure(rate=0.0, routes={"/query": 1.0}, kinds=["lock", "503"])
    for _ in range(3):
        with pytest.raises(SalesforceGeneralError):
            sf.query("SELECT Id FROM Lead")
    assert sf.restful("limits")["DailyApiRequests"]["Max"] > 0  # rate 0 elsewhere
    assert {e.fault for e in emu.journal.entries(path_contains="/query")} == {"503"}


def test_same_fault_seed_gives_the_same_faults() -> None:
    def decisions(seed: int) -> list[str | None]:
        plan = FaultPlan(rate=0.5, seed=seed)
        kinds = frozenset({"429", "503", "slow"})
        return [f.kind if (f := plan.decide("GET", "/x", kinds)) else None for _ in range(50)]

    assert decisions(3) == decisions(3)
    assert decisions(3) != decisions(4)
    assert set(decisions(3)) == {None, "429", "503", "slow"}


def test_unknown_fault_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown fault kind.*drop-after"):
        FaultPlan(kinds=["429", "explode"])
