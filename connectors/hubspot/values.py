"""HubSpot property strings <-> syncd's typed canonical values.

HubSpot returns every property value as a string (spec ``properties: {type: string}``):
numbers as ``"25"``, datetimes as ISO 8601 (``2024-05-01T10:00:00.123Z``) or, for date pickers and
older properties, epoch milliseconds. Empty strings mean "no value".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIELD_KINDS", "format_value", "parse_fields", "parse_time", "to_ms"]

#: Types of the canonical CRM fields that are not strings. Mirrors rules.fields.CRM_FIELDS
#: (connectors must not import rules, see tests/test_layers.py); custom fields come from
#: HubSpotConfig.field_types.
FIELD_KINDS: dict[str, str] = {
    "employees": "integer", "annual_revenue": "number", "created_at": "datetime",
    "last_activity_at": "datetime",
}

_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-|\+)")


def parse_time(text: str) -> datetime:
    """A tz-aware UTC datetime from an ISO 8601 string or epoch milliseconds."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds, the unit HubSpot search filters on dates use (facts C2)."""
    return int(math.floor(value.timestamp() * 1000 + 0.5))


def _parse(kind: str, text: str) -> Any:
    if kind == "datetime":
        return parse_time(text)
    if kind == "integer":
        try:
            return int(float(text))
        except ValueError:
            # enumerated ranges such as "25-50" or "1000+" (real numemployees): the lower bound
            m = _RANGE.match(text)
            return int(float(m.group(1))) if m else None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return None
    if kind == "boolean":
        return text.lower() == "true"
    return text


def parse_fields(properties: Mapping[str, str | None], mapping: Mapping[str, str],
                 kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Canonical field -> typed value for every mapped field (None when unset or unparsable).

    ``kinds`` (canonical field -> string/integer/number/boolean/datetime) extends
    :data:`FIELD_KINDS`; unlisted fields are strings.
    """
    kinds = {**FIELD_KINDS, **(kinds or {})}
    out: dict[str, Any] = {}
    for canonical, prop in mapping.items():
        raw = properties.get(prop)
        if raw is None or raw == "":
            out[canonical] = None
            continue
        kind = kinds.get(canonical, "string")
        try:
            out[canonical] = _parse(kind, str(raw))
        except ValueError:
            out[canonical] = None
    return out


def format_value(value: Any) -> str:
    """A Python value as the string HubSpot accepts; None clears the property (empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime values written to HubSpot must be tz-aware")
        return str(to_ms(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
