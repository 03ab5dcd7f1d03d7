"""The contact property catalogue the emulator serves (``/crm/v3/properties/contacts``).

Shapes follow the ``Property`` schema of the properties v3 OpenAPI spec. Simplifications, named so
nobody mistakes them for HubSpot facts: ``numemployees`` and ``annualrevenue`` are plain numbers
here (in real portals ``numemployees`` is an enumeration of ranges such as ``25-50``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

__all__ = ["DATETIME_PROPERTIES", "MERGED_IDS", "NUMBER_PROPERTIES", "PropertyCatalogue"]

#: The ids merged into a contact, ";"-separated; HubSpot sets it on the record a merge creates.
MERGED_IDS = "hs_merged_object_ids"

DATETIME_PROPERTIES = frozenset({"createdate", "lastmodifieddate", "notes_last_updated"})
NUMBER_PROPERTIES = frozenset({"numemployees", "annualrevenue", "hs_object_id"})

_ANALYTICS_SOURCES = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "PAID_SOCIAL",
)
_LIFECYCLE = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_STAMP = "2020-01-01T00:00:00Z"


def _option(value: str, order: int) -> dict[str, Any]:
    return {
        "label": value.replace("_", " ").title(),
        "value": value,
        "displayOrder": order,
        "hidden": False,
        "description": "",
    }


def _prop(
    name: str,
    label: str,
    *,
    type_: str = "string",
    field_type: str = "text",
    group: str = "contactinformation",
    options: Iterable[str] = (),
    read_only_value: bool = False,
    calculated: bool = False,
    hubspot_defined: bool = True,
    external_options: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "description": "",
        "displayOrder": -1,
        "hidden": False,
        "hasUniqueValue": name == "email",
        "formField": not read_only_value,
        "calculated": calculated,
        "externalOptions": external_options,
        "hubspotDefined": hubspot_defined,
        "archived": False,
        "createdAt": _STAMP,
        "updatedAt": _STAMP,
        "options": [_option(v, i) for i, v in enumerate(options)],
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only_value,
            "readOnlyOptions": False,
        },
    }


class PropertyCatalogue:
    """Contact property definitions; ``hs_lead_status`` options are editable through PATCH."""

    def __init__(self, status_options: Iterable[str], *, status_options_read_only: bool) -> None:
        status = _prop(
            "hs_lead_status",
            "Lead Status",
            type_="enumeration",
            field_type="radio",
            group="sales_properties",
            options=status_options,
        )
        status["modificationMetadata"]["readOnlyOptions"] = status_options_read_only
        props = [
            _prop("email", "Email"),
            _prop("firstname", "First Name"),
            _prop("lastname", "Last Name"),
            _prop("jobtitle", "Job Title"),
            _prop("company", "Company Name"),
            _prop("industry", "Industry"),
            _prop("country", "Country/Region"),
            _prop("numemployees", "Number of Employees", type_="number", field_type="number"),
            _prop("annualrevenue", "Annual Revenue", type_="number", field_type="number"),
            _prop(
                "hs_analytics_source",
                "Original Source",
                type_="enumeration",
                field_type="select",
                group="analyticsinformation",
                options=_ANALYTICS_SOURCES,
                read_only_value=True,
                calculated=True,
            ),
            _prop(
                "hubspot_owner_id",
                "Contact owner",
                type_="enumeration",
                field_type="select",
                external_options=True,
            ),
            status,
            _prop(
                "lifecyclestage",
                "Lifecycle Stage",
                type_="enumeration",
                field_type="radio",
                options=_LIFECYCLE,
            ),
            _prop(
                "notes_last_updated",
                "Last Activity Date",
                type_="datetime",
                field_type="date",
                group="sales_properties",
                read_only_value=True,
                calculated=True,
            ),
            _prop("createdate", "Create Date", type_="datetime", field_type="date"),
            _prop(
                "lastmodifieddate",
                "Last Modified Date",
                type_="datetime",
                field_type="date",
                read_only_value=True,
                calculated=True,
            ),
            _prop(
                "hs_object_id",
                "Record ID",
                type_="number",
                field_type="number",
                read_only_value=True,
            ),
            # A multiple checkboxes value ("1001;1002"), as HubSpot stores multi-valued ones.
            _prop(
                MERGED_IDS,
                "Merged Contact IDs",
                type_="enumeration",
                field_type="checkbox",
                read_only_value=True,
                calculated=True,
            ),
        ]
        props += [
            _prop(f"bant_{part}", f"BANT {part.title()}", hubspot_defined=False)
            for part in ("budget", "authority", "need", "timeline")
        ]
        # Provenance properties an admin creates for syncd (README: "Provenance written back").
        props += [
            _prop(name, label, group="sales_properties", hubspot_defined=False)
            for name, label in (
                ("syncd_rule", "syncd rule"),
                ("syncd_reason", "syncd reason"),
                ("syncd_run", "syncd run"),
            )
        ]
        props += [
            _prop(
                name,
                label,
                type_="datetime",
                field_type="date",
                group="sales_properties",
                hubspot_defined=False,
            )
            for name, label in (
                ("syncd_changed_at", "syncd changed at"),
                ("mql_date", "MQL date"),
                ("sal_date", "SAL date"),
            )
        ]
        self._props: dict[str, dict[str, Any]] = {p["name"]: p for p in props}
        self._archived: dict[str, dict[str, Any]] = {}

    def get(self, name: str) -> dict[str, Any] | None:
        """A deep copy of the property definition, or None."""
        prop = self._props.get(name)
        return copy.deepcopy(prop) if prop is not None else None

    def all(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self._props.values()]

    def exists(self, name: str) -> bool:
        return name in self._props

    def archive(self, name: str) -> None:
        """An admin archives (or deletes) a property: it is no longer listed or readable, and
        a write naming it fails with ``PROPERTY_DOESNT_EXIST``."""
        self._archived[name] = self._props.pop(name)

    def restore(self, name: str) -> None:
        """An admin restores an archived property, values and all."""
        self._props[name] = self._archived.pop(name)

    def read_only(self, name: str) -> bool:
        return bool(self._props[name]["modificationMetadata"]["readOnlyValue"])

    def allowed_options(self, name: str) -> list[str] | None:
        """Option values a write must use, or None when the property takes any value."""
        prop = self._props[name]
        if prop["type"] != "enumeration" or prop["externalOptions"]:
            return None
        return [o["value"] for o in prop["options"]]

    def options_read_only(self, name: str) -> bool:
        return bool(self._props[name]["modificationMetadata"].get("readOnlyOptions"))

    def set_options(
        self, name: str, options: list[dict[str, Any]], *, merge: bool, stamp: str
    ) -> None:
        """Apply a PATCH ``options`` list: replace (drop the unnamed) or merge by value."""
        prop = self._props[name]
        incoming = [
            {
                "label": o.get("label", o["value"]),
                "value": o["value"],
                "displayOrder": o.get("displayOrder", -1),
                "hidden": bool(o.get("hidden")),
                "description": o.get("description", ""),
            }
            for o in options
        ]
        if merge:
            by_value = {o["value"]: o for o in prop["options"]}
            by_value.update({o["value"]: o for o in incoming})
            prop["options"] = list(by_value.values())
        else:
            prop["options"] = incoming
        prop["updatedAt"] = stamp
