"""Writing statuses and newsletter membership through sObject Collections."""

from __future__ import annotations

import pytest

from connectors.base import LeadChange, Outcome, RecordResult
from connectors.salesforce.results import classify_save_result

from .support import lead


def _changes(ids, **fields):
    return [LeadChange(i, fields) for i in ids]


def test_batch_with_lock_and_picklist_errors_maps_each_record(emu, connector):
    emu.config.restricted_status_picklist = True
    ids = emu.add_leads([lead(i) for i in range(200)])
    locked, bad = ids[10:13], ids[50:52]
    emu.faults.lock_rows(locked, attempts=1)
    changes = [LeadChange(i, {"status": "No Such Status" if i in bad else "MQL"}) for i in ids]

    results = connector.write_batch(changes)

    assert [r.lead_id for r in results] == ids
    by_outcome = {o: [r for r in results if r.outcome is o] for o in Outcome}
    assert [r.lead_id for r in by_outcome[Outcome.RETRY]] == locked
    assert {r.error_code for r in by_outcome[Outcome.RETRY]} == {"UNABLE_TO_LOCK_ROW"}
    assert [r.lead_id for r in by_outcome[Outcome.FAILED]] == bad
    assert all(
        r.error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        and (r.message or "").startswith("bad value for restricted picklist field: No Such Status")
        for r in by_outcome[Outcome.FAILED]
    )
    assert len(by_outcome[Outcome.OK]) == 195
    assert emu.lead(ids[0])["Status"] == "MQL"
    assert emu.lead(locked[0])["Status"] == "Open - Not Contacted"

    retried = connector.write_batch(_changes(locked, status="MQL"))
    assert [r.outcome for r in retried] == [Outcome.OK] * 3
    assert all(emu.lead(i)["Status"] == "MQL" for i in locked)
    assert connector.stats.record_errors["UNABLE_TO_LOCK_ROW"] == 3


def test_converted_and_deleted_leads_fail_permanently(emu, connector):
    converted, deleted = emu.add_leads([lead(1), lead(2)])
    emu.convert_lead(converted)
    emu.delete_lead(deleted)
    results = connector.write_batch(_changes([converted, deleted], status="MQL"))
    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.FAILED, "CANNOT_UPDATE_CONVERTED_LEAD"),
        (Outcome.FAILED, "ENTITY_IS_DELETED"),
    ]


def test_token_expiring_mid_cycle_is_renewed_without_losing_or_repeating_a_write(emu, connector):
    ids = emu.add_leads([lead(i) for i in range(600)])
    batches = [ids[i : i + 200] for i in range(0, 600, 200)]
    assert all(
        r.outcome is Outcome.OK for r in connector.write_batch(_changes(batches[0], status="SAL"))
    )
    emu.expire_sessions()  # the session dies between two batches of one cycle

    for batch in batches[1:]:
        assert all(
            r.outcome is Outcome.OK for r in connector.write_batch(_changes(batch, status="SAL"))
        )

    applied = [e for e in emu.journal.writes() if e.status == 200]
    written = [i for e in applied for i in e.record_ids]
    assert sorted(written) == sorted(ids)  # each record written exactly once
    assert [e.status for e in emu.journal.writes()] == [200, 401, 200, 200]
    assert connector.stats.reauths == 1
    assert all(emu.lead(i)["Status"] == "SAL" for i in ids)


def test_campaign_membership_added_twice_stays_one_member_and_reports_success(emu, make_connector):
    campaign = emu.add_campaign("Monthly newsletter")
    ids = emu.add_leads([lead(1), lead(2)])
    connector = make_connector(newsletters={"monthly": campaign})

    first = connector.add_to_newsletter("monthly", ids)
    second = connector.add_to_newsletter("monthly", ids)

    assert [r.outcome for r in first + second] == [Outcome.OK] * 4
    assert {r.error_code for r in second} == {"DUPLICATE_VALUE"}
    assert emu.campaign_members(campaign) == set(ids)


def test_unknown_newsletter_is_a_configuration_error(connector):
    from connectors.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"salesforce\.newsletters"):
        connector.add_to_newsletter("nope", ["00Q"])


def test_auto_assign_header_is_false_by_default(emu, make_connector):
    lid = emu.add_leads([lead(1)])[0]
    make_connector().write_batch(_changes([lid], status="MQL"))
    make_connector(auto_assign=True, duplicate_rule_allow_save=True).write_batch(
        _changes([lid], status="SQL")
    )
    default, opted = [e.headers for e in emu.journal.writes()]
    assert default.get("sforce-auto-assign") == "FALSE"
    assert "sforce-duplicate-rule-header" not in default
    assert opted.get("sforce-auto-assign") == "TRUE"
    assert opted.get("sforce-duplicate-rule-header") == "allowSave=true"


def test_no_collection_call_exceeds_200_records(emu, connector):
    ids = emu.add_leads([lead(i) for i in range(201)])
    with pytest.raises(ValueError, match="at most 200"):
        connector.write_batch(_changes(ids, status="MQL"))
    connector.write_batch(_changes(ids[:200], status="MQL"))
    assert max(e.records for e in emu.journal.writes()) == 200
    assert connector.max_batch_size == connector.max_membership_batch == 200


def test_emulator_rejects_a_collection_over_200_records(emu, connector):
    """The emulator enforces the ceiling itself (crm-api A5), whatever the client sends."""
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    sf = connector._sf or connector._login()
    records = [{"attributes": {"type": "Lead"}, "id": f"00Q{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("composite/sobjects", method="PATCH", json={"records": records})
    assert err.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_all_or_none_rolls_back_every_record(emu, connector):
    emu.config.restricted_status_picklist = True
    good, bad = emu.add_leads([lead(1), lead(2)])
    sf = connector._sf or connector._login()
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "id": good, "Status": "MQL"},
                {"attributes": {"type": "Lead"}, "id": bad, "Status": "Nope"},
            ],
        },
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert emu.lead(good)["Status"] == "Open - Not Contacted"


@pytest.mark.parametrize(
    ("save_result", "duplicate_ok", "expected"),
    [
        ({"id": "00Q1", "success": True, "errors": []}, False, (Outcome.OK, None)),
        (
            {
                "success": False,
                "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}],
            },
            False,
            (Outcome.RETRY, "UNABLE_TO_LOCK_ROW"),
        ),
        (
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        "message": "bad value for restricted picklist field: X",
                        "fields": ["Status"],
                    }
                ],
            },
            False,
            (Outcome.FAILED, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ),
        (
            {
                "success": False,
                "errors": [
                    {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Title required"}
                ],
            },
            False,
            (Outcome.FAILED, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        ),
        (
            {"success": False, "errors": [{"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD"}]},
            False,
            (Outcome.FAILED, "CANNOT_UPDATE_CONVERTED_LEAD"),
        ),
        (
            {"success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED"}]},
            False,
            (Outcome.FAILED, "ENTITY_IS_DELETED"),
        ),
        (
            {"success": False, "errors": [{"statusCode": "SOMETHING_NEW", "message": "?"}]},
            False,
            (Outcome.FAILED, "SOMETHING_NEW"),
        ),
        ({"success": False, "errors": []}, False, (Outcome.FAILED, "UNKNOWN_ERROR")),
        (
            {
                "success": False,
                "errors": [
                    {"statusCode": "DUPLICATE_VALUE", "message": "Already a campaign member."}
                ],
            },
            True,
            (Outcome.OK, "DUPLICATE_VALUE"),
        ),
        (
            {"success": False, "errors": [{"statusCode": "DUPLICATE_VALUE"}]},
            False,
            (Outcome.FAILED, "DUPLICATE_VALUE"),
        ),
        (
            {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK"}]},
            False,
            (Outcome.RETRY, "ALL_OR_NONE_OPERATION_ROLLED_BACK"),
        ),
        (None, False, (Outcome.RETRY, "NO_RESULT")),
    ],
)
def test_save_result_classification(save_result, duplicate_ok, expected):
    got = classify_save_result(save_result, "00Q1", duplicate_is_success=duplicate_ok)
    assert isinstance(got, RecordResult) and got.lead_id == "00Q1"
    assert (got.outcome, got.error_code) == expected


def test_validation_rule_failure_carries_the_crm_message(emu, connector):
    lid = emu.add_leads([lead(1)])[0]
    emu.faults.validation_error([lid], "Title is required before MQL")
    (result,) = connector.write_batch(_changes([lid], status="MQL"))
    assert result.outcome is Outcome.FAILED
    assert (result.error_code, result.message) == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Title is required before MQL",
    )
