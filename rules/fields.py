"""The lead vocabulary rules are written against: canonical field names and their types.

Both CRMs are read into these names (each connector maps them to its own API names through the
``fields`` mapping in its config), so one rule file serves Salesforce and HubSpot alike. Admins
add custom fields in config; they join this catalogue at load time.

A value may always be missing (``None``): conditions on missing values have a defined result
(see ``rules.conditions``), they never raise.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "CRM_FIELDS",
    "DATE_ONLY_FIELDS",
    "DERIVED_FIELDS",
    "ENRICHMENT_FIELDS",
    "STAGE_FIELDS",
    "STANDARD_FIELDS",
    "FieldType",
]


class FieldType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


_S, _I, _N, _B, _D = (
    FieldType.STRING,
    FieldType.INTEGER,
    FieldType.NUMBER,
    FieldType.BOOLEAN,
    FieldType.DATETIME,
)

#: Read from the CRM (mapped per connector).
CRM_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {
        "status": _S,
        "email": _S,
        "first_name": _S,
        "last_name": _S,
        "title": _S,
        "company": _S,
        "industry": _S,
        "country": _S,
        "employees": _I,
        "annual_revenue": _N,
        "lead_source": _S,
        "created_at": _D,
        "last_activity_at": _D,
        "owner": _S,
        # BANT: free text or picklist values; presence is what qualification checks.
        "budget": _S,
        "authority": _S,
        "need": _S,
        "timeline": _S,
    }
)

#: Read from the CRM where a connector maps it; not every CRM or lead has one.
STAGE_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {
        # HubSpot lifecyclestage (or a mapped Salesforce stage field); see syncd.lifecycle.
        "lifecycle_stage": _S,
    }
)

#: Derived in-process by ``syncd.enrichment``; each value is stored with the reason for it.
ENRICHMENT_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {
        "email_domain": _S,
        "free_mail": _B,
        "role": _S,  # function: marketing, sales, engineering, it, finance, operations, hr, ...
        "seniority": _S,  # c_level, vp, director, manager, individual, unknown
        "decision_maker": _B,
        "icp_score": _I,  # 0..100
        "icp_fit": _S,  # strong, medium, weak
        "bant_score": _I,  # 0..4 BANT fields present
        "bant_complete": _B,
    }
)

#: Known to syncd from its mirror, not stored in the CRM as such.
DERIVED_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {
        "crm": _S,  # the connector type: "salesforce" | "hubspot" | a registered one
        "connector": _S,  # the connector instance name from config: "salesforce/emea"
        "status_changed_at": _D,  # when the current status was first seen (or written by syncd)
        "newsletters": _S,  # comma-joined newsletter names the lead was added to by syncd
    }
)

STANDARD_FIELDS: Mapping[str, FieldType] = MappingProxyType(
    {**CRM_FIELDS, **STAGE_FIELDS, **ENRICHMENT_FIELDS, **DERIVED_FIELDS}
)

#: Date/time fields a CRM may deliver as a date without a time of day (Salesforce's
#: ``LastActivityDate``, read as midnight UTC). On these a value at midnight UTC is a date, and a
#: date is compared with a date/time on the calendar's local date (``rules.calendar``): an
#: activity dated the day a lead was accepted counts as after the acceptance.
DATE_ONLY_FIELDS: frozenset[str] = frozenset({"last_activity_at"})
