"""A connector's ``fields`` mapping changed since the mirror was read: read every lead again,
and write no remapped field rules may set for one ``hold_rep_edits_for``.

The mirror keeps each canonical field's value as the CRM field it was mapped to gave it. When
an admin points ``tier`` from ``Tier__c`` to ``Need__c`` (or maps a field newly), the mirror
still holds ``Tier__c``'s values under ``tier`` (or nothing) for every lead the CRM has not
changed since, and would until each one changes: rules would decide from the old field, and a
write of ``tier`` would go to ``Need__c`` with the wrong value as its audited ``before``.

So the first pull of a process whose mapping differs from the one the mirror was read under
(kept in ``meta``) first, in one transaction: drops the changed fields from every mirrored
lead, forgets the pull's cursor (that pull reads every lead, as a first sync does) and records
the new mapping. Until that pull has stored a lead again, rules see the field as missing.

A person may have set the newly mapped CRM field before the change, and syncd, which never
read it, cannot tell their value from one they left alone: a pulled value is compared with the
mirror's to find a person's edit (``syncd.open_changes.fields_a_person_set``), and there is
none to compare with. Any such edit protected now was made at most ``hold_rep_edits_for`` ago,
so for that long after the change syncd writes none of those fields (``active_holds``; the
leads come due again when it ends). Edits after the re-read are compared as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["active_holds", "changed_fields", "holds_after", "holds_key", "map_key"]


def map_key(crm: str) -> str:
    """The ``meta`` key of the mapping the mirror of connector ``crm`` was read under."""
    return f"field_map:{crm}"


def holds_key(crm: str) -> str:
    """The ``meta`` key of the remapped fields syncd does not write yet, with until when."""
    return f"field_remap_holds:{crm}"


def changed_fields(stored: Mapping[str, Any] | None, current: Mapping[str, str]) -> list[str]:
    """Canonical fields mapped to another CRM field, newly mapped, or unmapped since
    ``stored`` (None: not recorded yet, the mirror was read under ``current``)."""
    if stored is None:
        return []
    return sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))


def holds_after(
    kept: Mapping[str, Any] | None,
    changed: list[str],
    current: Mapping[str, str],
    settable: frozenset[str],
    until: datetime,
) -> dict[str, str]:
    """The holds to keep (``meta`` form: field -> ISO time) after ``changed``: each changed
    field rules may set (``settable_fields``) that is still mapped is held until ``until``;
    earlier holds stand."""
    out = {k: str(v) for k, v in (kept or {}).items() if k in current}
    for name in changed:
        if name in settable and name in current:
            out[name] = max(out.get(name, ""), until.isoformat())
    return out


def active_holds(stored: Mapping[str, Any] | None, now: datetime) -> dict[str, datetime]:
    """The remapped fields not written at ``now``, with the instant the hold ends."""
    out = {}
    for name, iso in (stored or {}).items():
        until = datetime.fromisoformat(str(iso))
        if until > now:
            out[name] = until
    return out
