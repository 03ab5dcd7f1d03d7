"""Canonical leads (:mod:`connectors.testing.leads`) as Salesforce Lead records (API names)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.salesforce.config import DEFAULT_FIELDS

__all__ = ["DEFAULT_STATUS_VALUES", "salesforce_record"]

#: Canonical status -> a value of the emulator's default LeadStatus picklist.
DEFAULT_STATUS_VALUES: dict[str, str] = {
    "New": "Open - Not Contacted",
    "Open": "Working - Contacted",
    "Converted": "Closed - Converted",
}


def salesforce_record(
    lead: Mapping[str, Any],
    fields: Mapping[str, str] | None = None,
    status_values: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One canonical lead in Lead API field names and Salesforce value types.

    ``fields`` maps canonical names to API names (default: the connector's default mapping);
    ``status_values`` maps canonical statuses to LeadStatus values (default:
    :data:`DEFAULT_STATUS_VALUES`, identity for the rest). Keys starting with ``_`` are not CRM
    fields and are skipped.
    """
    fields = DEFAULT_FIELDS if fields is None else fields
    values = DEFAULT_STATUS_VALUES if status_values is None else status_values
    record: dict[str, Any] = {}
    for canonical, value in lead.items():
        api = fields.get(canonical)
        if api is None or value is None:
            continue
        if canonical == "status":
            record[api] = values.get(value, value)
        elif api == "LastActivityDate" and isinstance(value, datetime):
            record[api] = value.date()  # Lead.LastActivityDate is a date field
        else:
            record[api] = value
    # Both are required on Lead; a lead without them could not exist in an org.
    record.setdefault("LastName", "Unknown")
    record.setdefault("Company", "Unknown")
    return record
