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

from connectors.kit.values import Quarantine

__all__ = ["FIELD_KINDS", "format_value", "parse_fields", "parse_time", "to_ms"]

#: Types of the canonical CRM fields that are not strings. Mirrors rules.fields.CRM_FIELDS
#: (connectors must not import rules, see tests/test_layers.py); custom fields come from
#: HubSpotConfig.field_types.
FIELD_KINDS: dict[str, str] = {
    "employees": "integer",
    "annual_revenue": "number",
    "created_at": "datetime",
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
    """Epoch milliseconds, the unit HubSpot search filters on dates use (crm-api C2)."""
    return math.floor(value.timestamp() * 1000 + 0.5)


#: A thousands separator: a comma between a digit and exactly three more ("1,000", "10,001+").
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _integer(text: str) -> int:
    # Imports and enrichment tools write counts as "1,000" or LinkedIn's "1,001-5,000"
    text = _THOUSANDS.sub("", text)
    m = _RANGE.match(text)
    if m:
        # enumerated ranges such as "25-50" or "1000+" (real numemployees): the lower bound
        return int(float(m.group(1)))
    return int(float(text))  # "25", "25.0"; "1e400" overflows, "NaN" is not a number


def _number(text: str) -> float:
    return float(_THOUSANDS.sub("", text))


def _boolean(text: str) -> bool:
    return text.lower() == "true"


_PARSERS: dict[str, Any] = {
    "datetime": parse_time,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
}


def parse_fields(
    properties: Mapping[str, str | None],
    mapping: Mapping[str, str],
    kinds: Mapping[str, str] | None = None,
    quarantine: Quarantine | None = None,
) -> dict[str, Any]:
    """Canonical field -> typed value for every mapped field; never raises on HubSpot data.

    ``kinds`` (canonical field -> string/integer/number/boolean/datetime) extends
    :data:`FIELD_KINDS`; unlisted fields are strings. A value that cannot be parsed or stored
    (``1e400``, ``NaN``, a malformed date, huge text) is None, and reported in ``quarantine``.
    """
    kinds = {**FIELD_KINDS, **(kinds or {})}
    quarantine = quarantine if quarantine is not None else Quarantine()
    out: dict[str, Any] = {}
    for canonical, prop in mapping.items():
        raw = properties.get(prop)
        if raw is None or raw == "":
            out[canonical] = None
            continue
        kind = kinds.get(canonical, "string")
        parser = _PARSERS.get(kind, str)
        out[canonical] = quarantine.parse(canonical, str(raw), parser, what=f"{prop} {kind}")
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
