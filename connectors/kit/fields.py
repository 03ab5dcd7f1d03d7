"""The ``fields`` mapping of a connector's config: given entries extend the defaults.

An admin who adds one custom field (``lead_score: Lead_Score__c``) keeps every default mapping;
mapping a canonical name to ``null`` or ``""`` removes that default (e.g. the BANT fields on an
org that does not have them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["OPTIONAL_FIELDS", "FieldTypeName", "merge_fields"]

#: The value types a custom field may be declared with (the rule language's field types).
FieldTypeName = Literal["string", "integer", "number", "boolean", "datetime"]

#: Canonical fields the defaults map to custom CRM fields an org may lack (BANT): a missing one
#: stops start-up only when some rule uses it.
OPTIONAL_FIELDS: frozenset[str] = frozenset({"budget", "authority", "need", "timeline"})


def merge_fields(defaults: Mapping[str, str], given: object) -> object:
    """``given`` over ``defaults``; entries mapped to null or empty text are removed.

    Anything but a mapping is returned as it is, for pydantic to report against the field.
    """
    if not isinstance(given, Mapping):
        return given
    merged: dict[object, object] = {k: v for k, v in defaults.items()}
    for key, value in given.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
