"""Writes: batch update outcomes (200 / 207 / whole-batch 400), batch caps, retries, newsletters."""

from __future__ import annotations

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import ApiException
from hubspot_support import contacts

from connectors.base import LeadChange, Outcome
from connectors.errors import ConfigurationError, RetriableError
from connectors.testing.hubspot import EmulatorConfig


def _changes(ids, bad=()):
    return [LeadChange(i, {"status": "BOGUS" if i in bad else "IN_PROGRESS"}) for i in ids]


@pytest.mark.parametrize(
    "emu_config",
    [
        EmulatorConfig(batch_update_error_mode="multi_status"),
        EmulatorConfig(batch_update_error_mode="whole_batch"),
        EmulatorConfig(batch_update_error_mode="whole_batch", validation_400_names_records=False),
    ],
    ids=["207", "whole-batch-400", "whole-batch-400-anonymous"],
)
def test_batch_of_100_with_two_invalid_options_writes_98_and_reports_2_with_hubspot_message(
    emu, make_connector
):
    ids = emu.add_contacts(contacts(100))
    bad = {ids[17], ids[80]}
    connector = make_connector()

    results = connector.write_batch(_changes(ids, bad))

    assert [r.lead_id for r in results] == ids
    failed = [r for r in results if r.outcome is not Outcome.OK]
    assert {r.lead_id for r in failed} == bad
    for r in failed:
        assert r.outcome is Outcome.FAILED and r.error_code == "INVALID_OPTION"
        assert r.message.startswith("BOGUS was not one of the allowed options: [NEW, OPEN")
    for i in ids:
        expected = "NEW" if i in bad else "IN_PROGRESS"
        assert emu.contact(i)["hs_lead_status"] == expected
    updates = emu.journal.entries("POST", "batch/update")
    assert max(e.records for e in updates) <= 100
    if (
        emu.config.batch_update_error_mode == "whole_batch"
        and emu.config.validation_400_names_records
    ):
        assert [e.status for e in updates] == [400, 200]  # named records: one resend, no bisect


def test_api_writes_are_recorded_as_integration_in_property_history(emu, make_connector):
    [cid] = emu.add_contacts(contacts(1))
    emu.update_contact(cid, {"hs_lead_status": "OPEN"})
    make_connector().write_batch([LeadChange(cid, {"status": "CONNECTED"})])
    assert emu.status_history(cid) == [
        ("NEW", "IMPORT"),
        ("OPEN", "CRM_UI"),
        ("CONNECTED", "INTEGRATION"),
    ]


def test_missing_contact_is_failed_with_object_not_found_and_the_rest_lands(emu, make_connector):
    ids = emu.add_contacts(contacts(2))
    emu.archive_contact(ids[1])
    results = make_connector().write_batch(_changes([ids[0], ids[1], "999999"]))
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.FAILED, Outcome.FAILED]
    assert {r.error_code for r in results[1:]} == {"OBJECT_NOT_FOUND"}
    assert emu.contact(ids[0])["hs_lead_status"] == "IN_PROGRESS"


def test_no_batch_exceeds_100(emu, make_connector):
    ids = emu.add_contacts(contacts(250))
    connector = make_connector()
    with pytest.raises(ValueError, match="at most 100"):
        connector.write_batch(_changes(ids[:101]))
    with pytest.raises(ValueError, match="at most 100"):
        connector.add_to_newsletter("news", ids[:101])
    for start in range(0, 250, connector.max_batch_size):
        connector.write_batch(_changes(ids[start : start + connector.max_batch_size]))
    assert [e.records for e in emu.journal.entries("POST", "batch/update")] == [100, 100, 50]
    # and the emulator enforces the documented cap (crm-api C4)
    raw = HubSpot(access_token=emu.access_token, host=emu.base_url, retry=False)
    from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInput as Batch

    with pytest.raises(ApiException) as err:
        raw.crm.contacts.batch_api.update(
            Batch(inputs=[{"id": i, "properties": {}} for i in ids[:101]])
        )
    assert err.value.status == 400


def test_transient_503_and_dropped_connection_are_retried_and_the_write_lands_once(
    emu, make_connector
):
    ids = emu.add_contacts(contacts(3))
    emu.faults.fail_next(1, status=503, path="batch/update")
    emu.faults.drop_next(1, path="batch/update")
    connector = make_connector()

    results = connector.write_batch(_changes(ids))

    assert all(r.outcome is Outcome.OK for r in results)
    assert [e.status for e in emu.journal.entries("POST", "batch/update")] == [503, 0, 200]
    assert connector.stats.retries == 2


def test_persistent_5xx_raises_retriable_error_after_the_configured_attempts(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    emu.faults.fail_next(10, status=502, path="batch/update")
    connector = make_connector(max_attempts=3)
    with pytest.raises(RetriableError, match="HTTP 502"):
        connector.write_batch(_changes(ids))
    assert len(emu.journal.entries("POST", "batch/update")) == 3


def test_read_timeout_is_retried(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    emu.faults.slow_next(1, delay=0.6, path="batch/update")
    connector = make_connector(timeout_seconds=0.3)
    assert connector.write_batch(_changes(ids))[0].outcome is Outcome.OK
    assert connector.stats.retries == 1


def test_membership_add_is_idempotent(emu, make_connector):
    ids = emu.add_contacts(contacts(3))
    list_id = emu.add_list("Newsletter")
    connector = make_connector(newsletters={"news": list_id})

    first = connector.add_to_newsletter("news", ids[:2])
    second = connector.add_to_newsletter("news", [*ids, "424242"])

    assert [r.outcome for r in first] == [Outcome.OK, Outcome.OK]
    assert [r.outcome for r in second] == [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.FAILED]
    assert second[3].error_code == "OBJECT_NOT_FOUND"
    assert emu.list_members(list_id) == set(ids)


def test_membership_add_to_a_dynamic_list_is_a_configuration_error(emu, make_connector):
    ids = emu.add_contacts(contacts(1))
    connector = make_connector(newsletters={"news": emu.add_list("Active", "DYNAMIC")})
    with pytest.raises(ConfigurationError, match="MANUAL or SNAPSHOT"):
        connector.add_to_newsletter("news", ids)
    with pytest.raises(ConfigurationError, match="not configured"):
        connector.add_to_newsletter("other", ids)
