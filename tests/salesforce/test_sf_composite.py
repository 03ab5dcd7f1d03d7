"""Composite writes: several sObject Collections in one request, one counted API call.

Through the real simple-salesforce client against the TLS emulator
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.base import FieldWrites, LeadChange, NewsletterAdds, Outcome
from connectors.errors import RetriableError
from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

from .support import lead


def _api_calls(emu: SalesforceEmulator) -> list[Any]:
    """The requests the org counted against its API limit (token grants are not)."""
    return [e for e in emu.journal.entries() if e.path.startswith("/services/data/")]


def _sf(connector: SalesforceConnector) -> Any:
    connector.check(statuses=set(), fields=set(), newsletters=set())  # logs in
    return connector._sf


@pytest.mark.parametrize("emu_config", [EmulatorConfig(max_collection_records=4)])
def test_a_composite_request_with_3_update_collections_and_2_campaign_member_collections_maps_every_per_record_outcome_and_counts_as_one_call(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(13)])
    campaign = emu.add_campaign("Newsletter")
    connector = make_connector(newsletters={"news": campaign})
    connector.add_to_newsletter("news", [ids[11]])  # already a member before the composite
    emu.faults.validation_error([ids[1]], "Status needs a reason")
    emu.faults.lock_rows([ids[2]])
    emu.delete_lead(ids[3])
    # The first CampaignMember subrequest is refused whole with a 503: transient.
    emu.faults.fail_next(1, status=503, path="composite/sobjects", method="POST")
    usage, calls, seen = emu.api_usage, connector.stats.calls, emu.journal.last_seq

    results = connector.write_collections(
        [
            FieldWrites([LeadChange(i, {"status": "Nurture"}) for i in ids[0:4]]),
            FieldWrites([LeadChange(i, {"status": "Archived"}) for i in ids[4:7]]),
            # Five records where the org takes four: Salesforce refuses the whole subrequest.
            FieldWrites([LeadChange(i, {"status": "Nurture"}) for i in ids[7:12]]),
            NewsletterAdds("news", ids[0:2]),
            NewsletterAdds("news", [ids[10], ids[11], ids[12]]),
        ]
    )

    got = [[(r.lead_id, r.outcome, r.error_code) for r in batch] for batch in results]
    assert got[0] == [
        (ids[0], Outcome.OK, None),
        (ids[1], Outcome.FAILED, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        (ids[2], Outcome.RETRY, "UNABLE_TO_LOCK_ROW"),
        (ids[3], Outcome.FAILED, "ENTITY_IS_DELETED"),
    ]
    assert got[1] == [(i, Outcome.OK, None) for i in ids[4:7]]
    assert got[2] == [(i, Outcome.FAILED, "EXCEEDED_ID_LIMIT") for i in ids[7:12]]
    assert "Lead update subrequest (HTTP 400 EXCEEDED_ID_LIMIT" in (results[2][0].message or "")
    assert [(r.lead_id, r.outcome) for r in results[3]] == [
        (ids[0], Outcome.RETRY),
        (ids[1], Outcome.RETRY),
    ]
    assert got[4] == [
        (ids[10], Outcome.OK, None),
        (ids[11], Outcome.OK, "DUPLICATE_VALUE"),  # already a member: the add is in place
        (ids[12], Outcome.OK, None),
    ]
    # What the org holds agrees with the results.
    assert [emu.lead(i)["Status"] for i in ids[0:3]] == [
        "Nurture",
        "Open - Not Contacted",
        "Open - Not Contacted",
    ]
    assert all(emu.lead(i)["Status"] == "Archived" for i in ids[4:7])
    assert all(emu.lead(i)["Status"] == "Open - Not Contacted" for i in ids[7:12])
    assert emu.campaign_members(campaign) == {ids[10], ids[11], ids[12]}
    # One request, one call against the daily limit, five subrequests journaled inside it.
    assert emu.api_usage - usage == 1 and connector.stats.calls - calls == 1
    (call,) = [e for e in _api_calls(emu) if e.seq > seen]
    assert call.path.endswith("/composite") and call.method == "POST"
    assert [(s.method, s.status) for s in call.subrequests] == [
        ("PATCH", 200),
        ("PATCH", 200),
        ("PATCH", 400),
        ("POST", 503),
        ("POST", 200),
    ]
    assert connector.stats.record_errors["EXCEEDED_ID_LIMIT"] == 5


def _limits(n: int) -> list[dict[str, Any]]:
    return [
        {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": f"l{i}"}
        for i in range(n)
    ]


def _queries(n: int) -> list[dict[str, Any]]:
    return [
        {
            "method": "GET",
            "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+Lead",
            "referenceId": f"q{i}",
        }
        for i in range(n)
    ]


def test_the_emulator_answers_25_subrequests_and_refuses_a_26th_with_salesforces_error_shape(
    emu: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    sf = _sf(connector)
    ok = sf.restful("composite", method="POST", json={"compositeRequest": _limits(25)})
    assert [r["httpStatusCode"] for r in ok["compositeResponse"]] == [200] * 25
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.restful("composite", method="POST", json={"compositeRequest": _limits(26)})
    [error] = refused.value.content  # type: ignore[misc]
    assert error["errorCode"] == "LIMIT_EXCEEDED"
    assert "at most 25 subrequests" in error["message"]


def test_the_emulator_refuses_a_6th_collection_or_query_subrequest(
    emu: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    emu.add_leads([lead(0)])
    sf = _sf(connector)
    five = sf.restful("composite", method="POST", json={"compositeRequest": _queries(5)})
    assert [r["body"]["totalSize"] for r in five["compositeResponse"]] == [1] * 5
    collection = {
        "method": "PATCH",
        "url": "/services/data/v59.0/composite/sobjects",
        "referenceId": "c",
        "body": {"allOrNone": False, "records": []},
    }
    for six in (_queries(6), [*_queries(5), collection]):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            sf.restful("composite", method="POST", json={"compositeRequest": six})
        [error] = refused.value.content  # type: ignore[misc]
        assert error["errorCode"] == "LIMIT_EXCEEDED"
        assert "at most 5 sObject Collections or query subrequests" in error["message"]


@pytest.mark.parametrize("all_or_none", [False, True])
def test_a_failing_subrequest_rolls_back_the_others_only_with_all_or_none(
    emu: SalesforceEmulator, connector: SalesforceConnector, all_or_none: bool
) -> None:
    ids = emu.add_leads([lead(0), lead(1)])
    sf = _sf(connector)
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": all_or_none,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"/services/data/v59.0/sobjects/Lead/{ids[0]}",
                    "referenceId": "good",
                    "body": {"Status": "Nurture"},
                },
                {
                    "method": "PATCH",
                    "url": "/services/data/v59.0/sobjects/Lead/00Q000000000000AAA",
                    "referenceId": "missing",
                    "body": {"Status": "Nurture"},
                },
            ],
        },
    )
    statuses = [(r["referenceId"], r["httpStatusCode"]) for r in answer["compositeResponse"]]
    if all_or_none:
        assert statuses == [("good", 400), ("missing", 404)]
        assert answer["compositeResponse"][0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
        assert emu.lead(ids[0])["Status"] == "Open - Not Contacted"
    else:
        assert statuses == [("good", 204), ("missing", 404)]
        assert emu.lead(ids[0])["Status"] == "Nurture"


def test_a_later_subrequest_reads_an_earlier_ones_answer_by_reference(
    emu: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    (lead_id,) = emu.add_leads([lead(0)])
    sf = _sf(connector)
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "GET",
                    "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+Lead",
                    "referenceId": "found",
                },
                {
                    "method": "PATCH",
                    "url": "/services/data/v59.0/sobjects/Lead/@{found.records[0].Id}",
                    "referenceId": "update",
                    "body": {"Status": "Nurture"},
                },
            ]
        },
    )
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [200, 204]
    assert emu.lead(lead_id)["Status"] == "Nurture"


@pytest.mark.parametrize("company", ["Acme @ Home", "Müller @{not a reference GmbH"])
def test_collections_in_a_composite_without_references_write_their_values_as_sent(
    emu: SalesforceEmulator, connector: SalesforceConnector, company: str
) -> None:
    # "@" alone is no reference; non-ASCII text travels escaped (\u00fc), which the emulator
    # reads as it reads a reference's body.
    ids = emu.add_leads([lead(0), lead(1)])
    sf = _sf(connector)
    records = [
        {"attributes": {"type": "Lead"}, "id": i, "Company": company, "Status": "Nurture"}
        for i in ids
    ]
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": "/services/data/v59.0/composite/sobjects",
                    "referenceId": "update",
                    "body": {"allOrNone": False, "records": records},
                }
            ]
        },
    )
    (only,) = answer["compositeResponse"]
    assert only["httpStatusCode"] == 200 and all(r["success"] for r in only["body"])
    assert all(emu.lead(i)["Company"] == company for i in ids)
    (composite,) = _api_calls(emu)[-1:]
    assert json.loads(composite.subrequests[0].body)["records"] == records  # journaled as sent


def test_without_composite_each_collection_is_a_call_of_its_own(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(4)])
    campaign = emu.add_campaign("Newsletter")
    connector = make_connector(newsletters={"news": campaign}, composite=False)
    assert connector.max_collections_per_call == 1
    usage = emu.api_usage
    results = connector.write_collections(
        [
            FieldWrites([LeadChange(i, {"status": "Nurture"}) for i in ids]),
            NewsletterAdds("news", ids),
        ]
    )
    assert [[r.outcome for r in batch] for batch in results] == [[Outcome.OK] * 4] * 2
    assert emu.api_usage - usage == 2


def test_a_drop_scripted_for_a_collections_path_drops_the_composite_request_carrying_it(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(2)])
    campaign = emu.add_campaign("Newsletter")
    connector = make_connector(newsletters={"news": campaign}, retry={"attempts": 1})
    emu.faults.drop_next(path="composite/sobjects", method="PATCH", after_applied=True)
    with pytest.raises(RetriableError) as lost:
        connector.write_collections(
            [
                FieldWrites([LeadChange(i, {"status": "Nurture"}) for i in ids]),
                NewsletterAdds("news", ids),
            ]
        )
    assert lost.value.status is None  # no answer: the pipeline keeps the rows in doubt
    (call,) = [e for e in _api_calls(emu) if e.path.endswith("/composite")]
    assert (call.status, call.applied, call.fault) == (0, True, "drop-after")
    assert all(emu.lead(i)["Status"] == "Nurture" for i in ids)
    assert emu.campaign_members(campaign) == set(ids)


def test_the_query_of_peoples_edits_after_the_collections_reads_every_edit_before_them_in_the_same_call_and_pages_on_past_2000_rows(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(4)])
    since = emu.clock.now()
    # 2,100 transitions by a person before syncd writes: the edits outgrow one page.
    for n in range(525):
        for i in ids:
            emu.update_lead(i, {"Status": "Working - Contacted" if n % 2 == 0 else "Open"})
    connector = make_connector()
    _sf(connector)
    calls, seen = connector.stats.calls, emu.journal.last_seq

    answer = connector.write_collections_then_history(
        [FieldWrites([LeadChange(i, {"status": "Nurture"})]) for i in ids], since
    )

    assert [[r.outcome for r in batch] for batch in answer.results] == [[Outcome.OK]] * 4
    assert answer.history is not None and answer.refused is None
    # People's edits only: syncd's own 4 writes are left out by the query itself.
    assert len(answer.history) == 4 * 525
    assert {e.actor for e in answer.history} == {"person"}
    assert {e.lead_id for e in answer.history} == set(ids)
    # One Composite call (4 collections and the query, in that order) and one query-more.
    sent = [e for e in emu.journal.entries() if e.seq > seen]
    assert [s.method for s in sent[0].subrequests] == ["PATCH"] * 4 + ["GET"]
    assert [(e.method, "/query/" in e.path) for e in sent[1:]] == [("GET", True)]
    assert connector.stats.calls - calls == 2
    # Edits before ``since`` are not asked for.
    assert connector.edits_since(emu.clock.now() + timedelta(seconds=1)) == []


@pytest.mark.parametrize("emu_config", [EmulatorConfig(lead_history_visible=False)])
def test_a_refused_history_query_leaves_the_writes_of_its_call_standing(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(2)])
    connector = make_connector()

    answer = connector.write_collections_then_history(
        [FieldWrites([LeadChange(ids[0], {"status": "Nurture"})])], emu.clock.now()
    )

    assert [[r.outcome for r in batch] for batch in answer.results] == [[Outcome.OK]]
    assert emu.lead(ids[0])["Status"] == "Nurture"
    assert answer.history is None
    assert answer.refused is not None and "INVALID_TYPE" in answer.refused
    with pytest.raises(ValueError, match="1 to 4"):
        connector.write_collections_then_history(
            [FieldWrites([LeadChange(i, {"status": "Nurture"})]) for i in ids * 3],
            emu.clock.now(),
        )
