"""``syncd rules diff``: which mirrored leads two rule versions decide differently.

Both books are evaluated on every live lead of the mirror at one time, with the same guards,
holds and status mapping a cycle uses (:class:`syncd.planner.Planner`), so the diff is the
difference between the two plans, lead by lead. Nothing is written anywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.engine import RuleBook
from syncd.planner import LeadVerdict, Planner

__all__ = ["LeadDiff", "RulesDiff", "decision_text", "diff_rule_books"]


@dataclass(frozen=True, slots=True)
class LeadDiff:
    """One lead whose decision differs between the two versions."""

    crm: str
    lead_id: str
    before: str  # the old version's decision, as :func:`decision_text` words it
    after: str
    old_rule: str | None
    new_rule: str | None


@dataclass
class RulesDiff:
    """Per connector: how many leads move from one decision to another, and by which rules."""

    old_version: str
    new_version: str
    now: datetime
    compared: Counter[str] = field(default_factory=Counter)  # connector -> leads compared
    moves: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # crm, from, to
    rules_gained: Counter[tuple[str, str]] = field(default_factory=Counter)  # crm, new rule
    rules_lost: Counter[tuple[str, str]] = field(default_factory=Counter)  # crm, old rule
    leads: list[LeadDiff] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.leads)


def decision_text(verdict: LeadVerdict) -> str:
    """What a cycle would do to the lead, in one short phrase (``no change`` if nothing)."""
    if verdict.held:
        return "held"
    parts = []
    for change in verdict.changes:
        if change.kind == "membership":
            parts.append(f"join {change.field}")
        elif change.field == "status":
            parts.append(f"status {change.value}")
        else:
            parts.append(f"{change.field}={change.value}")
    if verdict.blocked and not parts:
        return "blocked"
    return ", ".join(parts) or "no change"


def diff_rule_books(app: Any, old: RuleBook, new: RuleBook, now: datetime) -> RulesDiff:
    """Evaluate ``old`` and ``new`` on every live mirror lead of every connector at ``now``."""
    result = RulesDiff(old.version, new.version, now)
    for name, cs in app.settings.connectors().items():
        before = Planner(crm=name, book=old, settings=cs, now=now)
        after = Planner(crm=name, book=new, settings=cs, now=now)
        for chunk in app.store.iter_live_leads(name):
            for row in chunk:
                if row.converted:
                    continue
                result.compared[name] += 1
                was, will = before.verdict(row, now), after.verdict(row, now)
                was_text, will_text = decision_text(was), decision_text(will)
                # The same effect by another rule is a change (audit rows name the rule);
                # two rules that both leave the lead alone are not, nor on a held lead (held
                # for a person's edit, it gets no write and no audit row under either).
                if was_text == will_text and (
                    was.rule_id == will.rule_id or was_text in ("no change", "held")
                ):
                    continue
                result.moves[(name, was_text, will_text)] += 1
                if will.rule_id != was.rule_id:
                    if will.rule_id is not None:
                        result.rules_gained[(name, will.rule_id)] += 1
                    if was.rule_id is not None:
                        result.rules_lost[(name, was.rule_id)] += 1
                result.leads.append(
                    LeadDiff(name, row.lead_id, was_text, will_text, was.rule_id, will.rule_id)
                )
    return result
