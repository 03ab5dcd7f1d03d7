"""Taking leads out of a campaign (revert) and reading leads back by Id."""

from __future__ import annotations

import pytest

from connectors.base import Outcome
from connectors.errors import ConfigurationError

from .support import lead


def test_removal_deletes_only_these_leads_members_in_one_query_and_one_delete(emu, make_connector):
    campaign = emu.add_campaign("Monthly newsletter")
    other = emu.add_campaign("Webinar")
    ids = emu.add_leads([lead(i) for i in range(5)])
    connector = make_connector(newsletters={"monthly": campaign, "webinar": other})
    connector.add_to_newsletter("monthly", ids)
    connector.add_to_newsletter("webinar", ids[:1])
    start = len(emu.journal.entries())

    results = connector.remove_from_newsletter("monthly", ids[:3])

    assert [(r.lead_id, r.outcome) for r in results] == [(i, Outcome.OK) for i in ids[:3]]
    assert emu.campaign_members(campaign) == set(ids[3:])
    assert emu.campaign_members(other) == {ids[0]}  # another campaign is left alone
    calls = [(e.method, e.path) for e in emu.journal.entries()[start:] if "token" not in e.path]
    assert [m for m, _ in calls] == ["GET", "DELETE"]


def test_removing_a_lead_that_is_no_member_is_ok_and_sends_no_delete(emu, make_connector):
    campaign = emu.add_campaign("Monthly newsletter")
    ids = emu.add_leads([lead(1)])
    connector = make_connector(newsletters={"monthly": campaign})
    start = len(emu.journal.entries())
    assert [r.outcome for r in connector.remove_from_newsletter("monthly", ids)] == [Outcome.OK]
    assert [e.method for e in emu.journal.entries()[start:] if "token" not in e.path] == ["GET"]
    with pytest.raises(ConfigurationError, match=r"salesforce\.newsletters"):
        connector.remove_from_newsletter("nope", ids)


def test_collections_delete_of_unknown_ids_answers_per_record_errors(emu, make_connector):
    campaign = emu.add_campaign("Monthly newsletter")
    ids = emu.add_leads([lead(1)])
    connector = make_connector(newsletters={"monthly": campaign})
    connector.add_to_newsletter("monthly", ids)
    member = next(iter(emu.org.members))
    # The connector's own authenticated simple-salesforce session, for a raw collections call.
    answer = connector._call(
        "delete",
        lambda sf: sf.restful(
            f"composite/sobjects?ids={member},00vXXXXXXXXXXXXAAA,001XXXXXXXXXXXXAAA"
            "&allOrNone=false",
            method="DELETE",
        ),
    )
    assert [r["success"] for r in answer] == [True, False, False]
    assert [r["errors"][0]["statusCode"] for r in answer[1:]] == [
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
    ]
    assert emu.campaign_members(campaign) == set()


def test_read_leads_returns_current_values_by_id(emu, make_connector):
    ids = emu.add_leads([lead(1), lead(2)])
    emu.update_lead(ids[1], {"Status": "Working - Contacted"})
    connector = make_connector()
    found = {r.id: r.fields["status"] for r in connector.read_leads([*ids, "00Q000000000000AAA"])}
    assert found == {ids[0]: "Open - Not Contacted", ids[1]: "Working - Contacted"}
