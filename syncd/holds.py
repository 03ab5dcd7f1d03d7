"""What "held" means, in one place: a lead whose status, or a field a rule sets, a person set
recently.

A lead is **held** while it is live (not deleted, not converted) and a person (not syncd) set
its status, or a field some rule of the active book that can apply to its connector sets
(:func:`fields_rules_set`: the lifecycle stage, a ``set_field`` field), less than
``hold_rep_edits_for`` ago. syncd then leaves the whole lead alone, whatever the rules say: the person has taken it in hand, and a
rule that still decides another of its fields would fight them there. The cycle summary
("N held (rep edits)"), the run row, ``syncd_rep_edits_held`` and ``syncd status`` all count
exactly these leads: the cycle as it plans (``Planner.verdict``), ``syncd status`` with the
same test in SQL (``StateStore.held_leads``, from :func:`held_since`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from rules import RuleBook, can_apply

__all__ = ["edit_text", "fields_rules_set", "held_reason", "held_since", "is_held"]


def held_since(now: datetime, hold: timedelta) -> datetime:
    """Leads a person edited strictly after this instant are held at ``now``."""
    return now - hold


def is_held(rep_edit_at: datetime | None, now: datetime, hold: timedelta) -> bool:
    return rep_edit_at is not None and rep_edit_at > held_since(now, hold)


def edit_text(value: Any) -> str | None:
    """A person's value as the hold keeps and shows it: as they typed it in the CRM. A number
    field mirrors as a float, so a whole number drops its ``.0`` (75, not 75.0); None: they
    cleared the field."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def held_reason(
    rep_edit_value: str | None,
    rep_edit_at: datetime,
    hold: timedelta,
    field: str | None = None,
) -> str:
    """Why the lead is left alone, as the plan, ``explain`` and ``syncd status`` say it
    (``field``: the field the person set, None for the status)."""
    if field is not None and rep_edit_value is None:
        what = f"{field} cleared"
    else:
        what = f"{field or 'status'} set to '{rep_edit_value}'"
    return (
        f"{what} by a person at {rep_edit_at:%Y-%m-%d %H:%M} UTC; "
        f"syncd leaves it alone until {rep_edit_at + hold:%Y-%m-%d %H:%M} UTC"
    )


def fields_rules_set(
    book: RuleBook, settable: Iterable[str], *, crm: str, connector: str
) -> frozenset[str]:
    """The settable fields (besides the status) some rule of ``book`` that can apply to this
    connector (type ``crm``, instance ``connector``: :func:`rules.can_apply`) sets with
    ``set_field``: a person's edit of one of these holds the lead. A field no such rule decides
    is the people's on this connector; syncd never writes it there."""
    allowed = set(settable) - {"status"}
    return frozenset(
        name
        for rule_set in book.sets
        for rule in rule_set.rules
        if rule.field_sets and can_apply(rule, crm=crm, connector=connector)
        for name, _ in rule.field_sets
        if name in allowed
    )
