"""Per-record outcomes of sObject Collections calls (SaveResult -> RecordResult, crm-api A5/A10).

A collections call answers HTTP 200 even when records fail; each SaveResult says what happened
to one record, in input order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Outcome, RecordResult
from connectors.kit.errors import ANY, ErrorTable

__all__ = ["RECORD_OUTCOMES", "classify_save_result"]

#: Per-record outcomes by SaveResult statusCode; any other code is a permanent failure
#: (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, FIELD_CUSTOM_VALIDATION_EXCEPTION,
#: CANNOT_UPDATE_CONVERTED_LEAD, ENTITY_IS_DELETED, ...).
RECORD_OUTCOMES: ErrorTable[Outcome] = ErrorTable(
    {
        # Transient: the same write may succeed on a later attempt.
        (ANY, "UNABLE_TO_LOCK_ROW"): Outcome.RETRY,  # row lock contention (crm-api A10)
        (ANY, "REQUEST_RUNNING_TOO_LONG"): Outcome.RETRY,
        (ANY, "SERVER_UNAVAILABLE"): Outcome.RETRY,
        # The record was fine; another one failed the batch.
        (ANY, "ALL_OR_NONE_OPERATION_ROLLED_BACK"): Outcome.RETRY,
    },
    default=Outcome.FAILED,
)

#: Errors of org automation (a record-triggered flow; a trigger) that wrap the error the
#: automation met: a row lock among them is as transient as one met by the save itself
#: ("CANNOT_EXECUTE_FLOW_TRIGGER whose message mentions UNABLE_TO_LOCK_ROW", crm-api A10).
_AUTOMATION_WRAPPERS = frozenset(
    {"CANNOT_EXECUTE_FLOW_TRIGGER", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"}
)

#: For an idempotent add, failures that mean "this is already in place".
ALREADY_DONE: ErrorTable[bool] = ErrorTable(
    {
        (ANY, "DUPLICATE_VALUE"): True,  # "Already a campaign member." (crm-api A9)
    },
    default=False,
)


def classify_save_result(
    result: Mapping[str, Any] | None,
    lead_id: str,
    *,
    duplicate_is_success: bool = False,
    campaign: str | None = None,
) -> RecordResult:
    """Map one SaveResult to a :class:`RecordResult` through :data:`RECORD_OUTCOMES`.

    ``campaign`` names the Campaign of a CampaignMember insert ("Campaign 701... (newsletter
    'x')"): an error on its ``CampaignId`` is then said to be the campaign's, not the lead's."""
    if not isinstance(result, Mapping):
        return RecordResult(
            lead_id, Outcome.RETRY, "NO_RESULT", "Salesforce returned no SaveResult for this record"
        )
    if result.get("success"):
        return RecordResult(lead_id, Outcome.OK)
    errors = result.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    full_message = str(first.get("message") or "")
    message = full_message[:500]
    if code == "DUPLICATES_DETECTED":
        message = _duplicate_message(first, message)
    if duplicate_is_success and ALREADY_DONE.lookup(code=code):
        return RecordResult(lead_id, Outcome.OK, code, message)
    if campaign is not None and "CampaignId" in (first.get("fields") or ()):
        message = _campaign_message(campaign, message)
    outcome = RECORD_OUTCOMES.lookup(code=code)
    if code in _AUTOMATION_WRAPPERS and "UNABLE_TO_LOCK_ROW" in full_message:
        outcome = Outcome.RETRY
    return RecordResult(lead_id, outcome, code, message)


def _campaign_message(campaign: str, message: str) -> str:
    """An insert refused for its CampaignId: the campaign was deleted (``ENTITY_IS_DELETED``: a
    lookup to a record in the recycle bin) or the integration user cannot see it
    (``INVALID_CROSS_REFERENCE_KEY``) since start-up checked it; the lead is fine."""
    return (
        f"{campaign} refused the member ({message}): the campaign was deleted or the "
        "integration user cannot see it; restore it in Salesforce, or point "
        "salesforce.newsletters at a campaign that exists, then run `syncd retry` (the add "
        "is also tried again when the lead changes in the CRM)"
    )[:500]


def _duplicate_message(error: Mapping[str, Any], message: str) -> str:
    """Name the duplicate rule (and the matched records) that refused the save, from the
    error's ``duplicateResult`` (docs/crm-api.md#a13)."""
    dup = error.get("duplicateResult")
    if not isinstance(dup, Mapping):
        return message
    rule = str(dup.get("duplicateRule") or "an unnamed rule")
    matched: list[str] = []
    for match in dup.get("matchResults") or []:
        if isinstance(match, Mapping):
            for rec in match.get("matchRecords") or []:
                record = rec.get("record") if isinstance(rec, Mapping) else None
                if isinstance(record, Mapping) and record.get("Id"):
                    matched.append(str(record["Id"]))
    also = f", matching {', '.join(matched[:3])}" if matched else ""
    return (
        f"duplicate rule {rule} blocked the save{also}: {message}; merge the leads, or set "
        "salesforce.duplicate_rule_allow_save: true to save duplicates"
    )[:500]
