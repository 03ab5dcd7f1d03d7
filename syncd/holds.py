"""What "held" means, in one place: a lead whose status a person set recently.

A lead is **held** while it is live (not deleted, not converted) and a person (not syncd) set
its status less than ``hold_rep_edits_for`` ago. syncd then leaves it alone, whatever the rules
say. The cycle summary ("N held (rep edits)"), the run row, ``syncd_rep_edits_held`` and
``syncd status`` all count exactly these leads: the cycle as it plans (``Planner.verdict``),
``syncd status`` with the same test in SQL (``StateStore.held_leads``, from
:func:`held_since`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["held_reason", "held_since", "is_held"]


def held_since(now: datetime, hold: timedelta) -> datetime:
    """Leads a person edited strictly after this instant are held at ``now``."""
    return now - hold


def is_held(rep_edit_at: datetime | None, now: datetime, hold: timedelta) -> bool:
    return rep_edit_at is not None and rep_edit_at > held_since(now, hold)


def held_reason(rep_edit_status: str | None, rep_edit_at: datetime, hold: timedelta) -> str:
    """Why the lead is left alone, as the plan, ``explain`` and ``syncd status`` say it."""
    return (
        f"status set to '{rep_edit_status}' by a person at {rep_edit_at:%Y-%m-%d %H:%M} UTC; "
        f"syncd leaves it alone until {rep_edit_at + hold:%Y-%m-%d %H:%M} UTC"
    )
