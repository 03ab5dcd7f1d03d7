"""Mapped fields a CRM lost while syncd runs (an admin archived or deleted them after the
start-up check): which rules that leaves reading nothing, and what the cycle says.

A CRM that leaves a missing field out of its answers without an error (HubSpot) makes every
lead look as if it had no value there. Rules would then act on data known to be incomplete:
``{field: budget, missing: true}`` would move every lead. So a cycle whose rules read a lost
field plans nothing and fails, saying which field, which rules and what to do; a lost field
no rule reads is only warned about, as at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rules.engine import RuleBook
from syncd.rule_fields import fields_of, rules_reading

__all__ = ["Drift", "drift_of", "fields_needed"]

#: The planner compares every verdict with the lead's current status, rule or not.
_ALWAYS_READ = frozenset({"status"})


def fields_needed(book: RuleBook) -> frozenset[str]:
    """Canonical fields the rules read or write, and the status the planner compares."""
    used = {f for rs in book.sets for rule in rs.rules for f in fields_of(rule)}
    return frozenset(used) | _ALWAYS_READ


@dataclass(frozen=True, slots=True)
class Drift:
    """What the lost fields mean for this cycle."""

    #: Why nothing may be planned (empty: the cycle goes on).
    blocking: str | None
    #: Lost fields no rule reads: a warning, pulls go on without them.
    unused: tuple[str, ...]


def drift_of(crm: str, where: str, gone: Mapping[str, str], book: RuleBook) -> Drift:
    """``gone``: canonical field -> the CRM's name, as the connector found them lost;
    ``where``: the config path of the connector's ``fields`` mapping."""
    needed = fields_needed(book)
    lines: list[str] = []
    unused: list[str] = []
    for canonical, crm_name in sorted(gone.items()):
        lost = f"'{crm_name}' (mapped to '{canonical}' in {where})"
        if canonical not in needed:
            unused.append(
                f"{crm}: the field {lost} is gone from the CRM since start-up (deleted, "
                "archived or hidden from syncd's user); no rule uses it, so leads are read without it. Restore it, or "
                "map it to null to leave it out"
            )
            continue
        users = rules_reading(book, canonical)
        readers = (
            "read by " + ", ".join(str(u) for u in users)
            if users
            else "which syncd compares for every lead"
        )
        lines.append(f"{lost}, {readers}")
    if not lines:
        return Drift(None, tuple(unused))
    blocking = (
        f"{crm} no longer has " + "; ".join(lines) + ": deleted, archived or hidden from "
        "syncd's user since start-up. Nothing is planned until it is back, "
        "as every lead would look as if it had no value there: restore it in "
        f"{crm} (syncd resumes at its next cycle), or change the rules (reload them) or the "
        "mapping (restart syncd)"
    )
    return Drift(blocking, tuple(unused))
