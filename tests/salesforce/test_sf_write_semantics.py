"""What a production org does to writes: duplicate rules, record types, automation limits,
the concurrent request limit, retired API versions, an unrestricted Lead Status."""

from __future__ import annotations

import logging

import pytest

from connectors.base import LeadChange, Outcome
from connectors.errors import ConfigurationError
from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import (
    DuplicateRuleDef,
    EmulatorConfig,
    RecordTypeDef,
    SalesforceEmulator,
)

from .support import T0, config_for, lead


def _changes(ids, **fields):
    return [LeadChange(i, fields) for i in ids]


@pytest.fixture
def emu_config(request) -> EmulatorConfig:
    return getattr(request, "param", EmulatorConfig())


DUPES = EmulatorConfig(duplicate_rules=(DuplicateRuleDef(name="Lead_Email_Dupes"),))


@pytest.mark.parametrize("emu_config", [DUPES], indirect=True)
def test_batch_with_two_duplicates_writes_the_other_198_and_names_the_duplicate_rule(
    emu, connector
):
    ids = emu.add_leads([lead(i) for i in range(200)])
    # Two leads outside the batch share an email with two leads inside it.
    twins = emu.add_leads([lead(7), lead(99)])

    results = connector.write_batch(_changes(ids, status="MQL"))

    failed = [r for r in results if r.outcome is not Outcome.OK]
    assert [r.lead_id for r in failed] == [ids[7], ids[99]]
    assert {r.outcome for r in failed} == {Outcome.FAILED}
    assert {r.error_code for r in failed} == {"DUPLICATES_DETECTED"}
    assert all("duplicate rule Lead_Email_Dupes" in (r.message or "") for r in failed)
    assert twins[0] in (failed[0].message or "")
    assert sum(emu.lead(i)["Status"] == "MQL" for i in ids) == 198
    assert emu.lead(ids[7])["Status"] == "Open - Not Contacted"
    assert connector.stats.record_errors["DUPLICATES_DETECTED"] == 2


@pytest.mark.parametrize("emu_config", [DUPES], indirect=True)
def test_duplicate_rule_header_allow_save_lets_duplicates_be_saved(emu, make_connector):
    [mine] = emu.add_leads([lead(1)])
    emu.add_leads([lead(1)])
    connector = make_connector(duplicate_rule_allow_save=True)

    [result] = connector.write_batch(_changes([mine], status="MQL"))

    assert result.outcome is Outcome.OK
    assert emu.lead(mine)["Status"] == "MQL"
    assert emu.journal[-1].headers.get("sforce-duplicate-rule-header") == "allowSave=true"


RECORD_TYPES = EmulatorConfig(
    record_types=(
        RecordTypeDef("Inbound"),
        RecordTypeDef("Partner", statuses=("Open - Not Contacted", "Working - Contacted")),
    )
)


@pytest.mark.parametrize("emu_config", [RECORD_TYPES], indirect=True)
def test_status_a_record_type_refuses_fails_only_its_records_and_preflight_warned(emu, connector):
    partner, inbound = emu.record_type_id("Partner"), emu.record_type_id("Inbound")
    ids = emu.add_leads(
        [lead(i, RecordTypeId=partner if i % 4 == 0 else inbound) for i in range(20)]
    )

    preflight = connector.check(
        statuses={"MQL", "Working - Contacted"}, fields={"status"}, newsletters=set()
    )

    assert preflight.problems == []
    assert preflight.partly_refused_statuses == {"MQL": ["Partner"]}
    assert len(preflight.warnings) == 1
    assert "'MQL'" in preflight.warnings[0] and "Partner" in preflight.warnings[0]

    results = connector.write_batch(_changes(ids, status="MQL"))

    failed = {r.lead_id: r for r in results if r.outcome is not Outcome.OK}
    assert set(failed) == {ids[i] for i in range(0, 20, 4)}
    assert {r.error_code for r in failed.values()} == {"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
    assert all(
        "record types Partner do not allow status 'MQL'" in (r.message or "")
        for r in failed.values()
    )
    assert all(emu.lead(ids[i])["Status"] == "MQL" for i in range(20) if i % 4)


AUTOMATION = EmulatorConfig(fail_batches_above=50)


@pytest.mark.parametrize("emu_config", [AUTOMATION], indirect=True)
def test_batch_failing_whole_with_a_cpu_limit_is_split_and_the_good_records_written(
    emu, connector, caplog
):
    emu.config.restricted_status_picklist = True
    ids = emu.add_leads([lead(i) for i in range(200)])
    bad = ids[123]
    changes = [LeadChange(i, {"status": "No Such Status" if i == bad else "SAL"}) for i in ids]

    with caplog.at_level(logging.WARNING, logger="connectors.salesforce"):
        results = connector.write_batch(changes)

    assert [r.lead_id for r in results] == ids
    assert [r.lead_id for r in results if r.outcome is not Outcome.OK] == [bad]
    assert results[123].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sum(emu.lead(i)["Status"] == "SAL" for i in ids) == 199
    updates = [e for e in emu.journal if e.method == "PATCH"]
    assert [e.records for e in updates[:3]] == [200, 100, 50]
    assert max(e.records for e in updates if e.status == 200 and e.written) <= 50
    # the whole-batch failures are not counted as record errors
    assert dict(connector.stats.record_errors) == {"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": 1}
    assert "salesforce.batch_size" in caplog.text


@pytest.mark.parametrize("emu_config", [AUTOMATION], indirect=True)
def test_configured_batch_size_is_the_connectors_batch_size(emu, make_connector):
    connector = make_connector(batch_size=50)
    assert connector.max_batch_size == 50
    ids = emu.add_leads([lead(i) for i in range(50)])
    assert {r.outcome for r in connector.write_batch(_changes(ids, status="SAL"))} == {Outcome.OK}
    with pytest.raises(ValueError, match="batch_size"):
        connector.write_batch(_changes(ids + ids[:1], status="SAL"))


@pytest.mark.parametrize("size", [0, 201])
def test_batch_size_outside_1_to_200_is_refused(emu, size):
    with pytest.raises(ValueError, match="batch_size"):
        config_for(emu, batch_size=size)


def test_concurrent_request_limit_backs_off_for_seconds_not_an_hour(emu):
    waits: list[float] = []
    connector = SalesforceConnector(config_for(emu), clock=emu.clock.now, sleep=waits.append)
    [lid] = emu.add_leads([lead(1)])
    connector.write_batch(_changes([lid], status="SAL"))  # logged in, usage known
    emu.faults.fail_next(
        1,
        status=403,
        path="composite",
        body=[
            {
                "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                "errorCode": "REQUEST_LIMIT_EXCEEDED",
            }
        ],
    )

    [result] = connector.write_batch(_changes([lid], status="MQL"))

    assert result.outcome is Outcome.OK and emu.lead(lid)["Status"] == "MQL"
    assert waits == [10.0]  # concurrent_limit_backoff_seconds, not budget_pause_seconds
    assert connector.stats.budget_stops == 0
    connector.close()


@pytest.mark.parametrize(
    "emu_config", [EmulatorConfig(api_versions=("58.0", "59.0"))], indirect=True
)
def test_retired_api_version_410_names_api_version_and_the_supported_range(emu, make_connector):
    connector = make_connector(api_version="30.0")

    with pytest.raises(ConfigurationError) as err:
        connector.check(statuses=set(), fields=set(), newsletters=set())

    message = str(err.value)
    assert err.value.status == 410
    assert "salesforce.api_version" in message and "30.0" in message
    assert "58.0 to 59.0" in message


def test_emulator_lists_its_versions_without_a_session():
    with SalesforceEmulator(EmulatorConfig(api_versions=("59.0", "58.0"))) as emu:
        emu.clock.freeze(T0)
        import requests

        reply = requests.get(f"{emu.base_url}/services/data/", verify=emu.ca_pem_path, timeout=5)
    assert reply.status_code == 200
    assert [v["version"] for v in reply.json()] == ["58.0", "59.0"]


def test_inactive_or_unknown_status_is_saved_as_given_by_default(emu, connector):
    [lid] = emu.add_leads([lead(1)])
    [result] = connector.write_batch(_changes([lid], status="Retired Value"))
    assert result.outcome is Outcome.OK
    assert emu.lead(lid)["Status"] == "Retired Value"
