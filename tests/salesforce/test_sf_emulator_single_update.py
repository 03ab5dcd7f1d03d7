"""The emulator's single-record ``PATCH sobjects/Lead/{id}``, driven by simple-salesforce's
``sf.Lead.update`` (what the benchmark's naive cron-job baseline calls once per lead)."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.base import ApiQuota

from .support import lead


@pytest.fixture
def sf(connector) -> Salesforce:
    return connector._sf or connector._login()


def test_single_update_changes_the_lead_answers_204_and_is_journaled_and_counted(
    emu, sf, connector
):
    [lead_id] = emu.add_leads([lead(1)])
    before = emu.api_usage

    status = sf.Lead.update(lead_id, {"Status": "Nurture", "Title": "CTO"})

    assert status == 204
    assert emu.lead(lead_id)["Status"] == "Nurture"
    assert emu.lead(lead_id)["Title"] == "CTO"
    assert emu.lead(lead_id)["LastModifiedById"] == emu.integration_user_id
    entry = emu.journal.entries()[-1]
    assert (entry.method, entry.path.endswith(f"/sobjects/Lead/{lead_id}"), entry.status) == (
        "PATCH",
        True,
        204,
    )
    assert entry.record_ids == (lead_id,)
    assert emu.api_usage == before + 1
    # The response carried Sforce-Limit-Info, seen by the connector's hook on the session.
    assert connector.api_quota() == ApiQuota(emu.api_usage, emu.config.daily_api_limit)


def test_single_update_with_a_bad_picklist_value_is_a_salesforce_error_array(emu, sf):
    emu.config.restricted_status_picklist = True  # as a custom restricted picklist would be
    [lead_id] = emu.add_leads([lead(1)])

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Lead.update(lead_id, {"Status": "No Such Status"})

    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emu.lead(lead_id)["Status"] != "No Such Status"


def test_single_update_of_an_unknown_id_is_404(emu, sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.update("00Q000000000000AAA", {"Status": "Nurture"})
