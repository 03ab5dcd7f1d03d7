"""Canonical leads (:mod:`connectors.testing.leads`) as HubSpot contact properties.

Every value is encoded by :func:`connectors.hubspot.values.format_value`, the function the
connector writes with, so whatever the emulator is seeded with is what
:func:`connectors.hubspot.values.parse_fields` reads back (datetimes as epoch milliseconds,
numbers without a trailing ``.0``, booleans as ``true``/``false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.hubspot.config import DEFAULT_FIELDS
from connectors.hubspot.values import format_value

__all__ = ["DEFAULT_STATUS_VALUES", "hubspot_properties"]

#: Canonical status -> ``hs_lead_status`` option value (HubSpot's internal values are upper case).
DEFAULT_STATUS_VALUES: dict[str, str] = {
    "New": "NEW",
    "Open": "OPEN",
    "MQL": "MQL",
    "SAL": "SAL",
    "SQL": "SQL",
    "Nurture": "NURTURE",
    "Unqualified": "UNQUALIFIED",
    "Archived": "ARCHIVED",
}


def hubspot_properties(
    lead: Mapping[str, Any],
    fields: Mapping[str, str] | None = None,
    status_values: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """One canonical lead as HubSpot property strings (unset values are left out)."""
    fields = DEFAULT_FIELDS if fields is None else fields
    values = DEFAULT_STATUS_VALUES if status_values is None else status_values
    props: dict[str, str] = {}
    for canonical, value in lead.items():
        prop = fields.get(canonical)
        if prop is None or value is None:
            continue
        props[prop] = format_value(values.get(value, value) if canonical == "status" else value)
    return props
