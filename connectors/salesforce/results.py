"""Per-record outcomes of sObject Collections calls (SaveResult -> RecordResult, facts A5/A10).

A collections call answers HTTP 200 even when records fail; each SaveResult says what happened
to one record, in input order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Outcome, RecordResult

__all__ = ["RETRY_CODES", "classify_save_result"]

#: Transient per-record failures: the same write may succeed on a later attempt.
RETRY_CODES = frozenset({
    "UNABLE_TO_LOCK_ROW",  # row lock contention (facts A10)
    "REQUEST_RUNNING_TOO_LONG",
    "SERVER_UNAVAILABLE",
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",  # the record was fine; another one failed the batch
})

#: Failures that mean "this is already in place" for an idempotent add.
ALREADY_DONE_CODES = frozenset({"DUPLICATE_VALUE"})  # "Already a campaign member." (facts A9)


def classify_save_result(result: Mapping[str, Any] | None, lead_id: str, *,
                         duplicate_is_success: bool = False) -> RecordResult:
    """Map one SaveResult to a :class:`RecordResult`.

    Permanent failures (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
    FIELD_CUSTOM_VALIDATION_EXCEPTION, CANNOT_UPDATE_CONVERTED_LEAD, ENTITY_IS_DELETED and any
    unknown code) are ``FAILED`` with the CRM's code and message.
    """
    if not isinstance(result, Mapping):
        return RecordResult(lead_id, Outcome.RETRY, "NO_RESULT",
                            "Salesforce returned no SaveResult for this record")
    if result.get("success"):
        return RecordResult(lead_id, Outcome.OK)
    errors = result.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "")[:500]
    if code in ALREADY_DONE_CODES and duplicate_is_success:
        return RecordResult(lead_id, Outcome.OK, code, message)
    outcome = Outcome.RETRY if code in RETRY_CODES else Outcome.FAILED
    return RecordResult(lead_id, outcome, code, message)
