"""The last line of defence against loops that span cycles: a lead syncd changed too often.

Rules that fight each other within one evaluation are caught by the rule engine; rules that
fight across cycles (A moves a lead to X, next cycle B moves it back, or a CRM workflow undoes
syncd's write every time) are not visible to any single evaluation. So before a field of a lead
(its status, or a field rules set, such as HubSpot's lifecycle stage) is changed again, the
audit says how often syncd already changed it: a lead with a field syncd wrote in
``max_changes`` runs within ``window`` is held (nothing of its decision is written) until the
older writes leave the window, and ``syncd status``, ``explain`` and the
``syncd_loop_held_leads`` metric say so. Runs, not audit rows, are counted: a declared backward
lifecycle move is a clear and a set in one run.

The count is one grouped query per chunk of leads the planner is about to change, on the
audit's (crm, lead_id) index -- never a scan of every lead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlmodel import col

from syncd.settings import LoopGuardSettings
from syncd.state import AuditOutcome, AuditRow, StateStore

__all__ = ["LoopGuard"]

#: Leads per IN (...) list: well under SQLite's and PostgreSQL's bind-parameter limits.
_CHUNK = 500


class LoopGuard:
    """Counts syncd's applied status writes per lead within the window, and holds leads."""

    def __init__(self, store: StateStore, crm: str, settings: LoopGuardSettings) -> None:
        self.store = store
        self.crm = crm
        self.settings = settings
        #: Leads held since :meth:`start_pass` (the cycle's metric counts them).
        self.held: set[str] = set()

    def start_pass(self) -> None:
        """Forget the leads held so far: a new plan over the mirror begins."""
        self.held = set()

    def counts(self, lead_ids: Collection[str], now: datetime) -> dict[str, dict[str, int]]:
        """For the given leads that reached the limit: each field syncd wrote in at least
        ``max_changes`` runs within the window, with that number of runs (leads below the
        limit are left out)."""
        ids = list(lead_ids)
        found: dict[str, dict[str, int]] = {}
        for start in range(0, len(ids), _CHUNK):
            found.update(
                self._at_limit(now, col(AuditRow.lead_id).in_(ids[start : start + _CHUNK]))
            )
        return found

    def _at_limit(self, now: datetime, *where: ColumnElement[bool]) -> dict[str, dict[str, int]]:
        """Leads (among ``where``) with a field syncd wrote (applied) in at least
        ``max_changes`` runs within the window, by field: one grouped query."""
        lead, field = col(AuditRow.lead_id), col(AuditRow.field)
        runs = func.count(func.distinct(col(AuditRow.run_id)))
        query = (
            select(lead, field, runs)
            .where(
                col(AuditRow.crm) == self.crm,
                col(AuditRow.outcome) == AuditOutcome.APPLIED.value,
                col(AuditRow.at) >= now - self.settings.window,
                *where,
            )
            .group_by(lead, field)
            .having(runs >= self.settings.max_changes)
        )
        found: dict[str, dict[str, int]] = {}
        with self.store.reading() as conn:  # one statement: autocommit on PostgreSQL
            for lead_id, name, n in conn.execute(query):
                found.setdefault(str(lead_id), {})[str(name)] = int(n)
        return found

    def reason(self, count: int, field: str = "status") -> str:
        window = _days(self.settings.window)
        what = "its status" if field == "status" else f"its {field}"
        return (
            f"syncd changed {what} {count} times within {window} (loop_guard: at most "
            f"{self.settings.max_changes}); held as a likely rule loop, or a CRM workflow "
            "undoing syncd's write: see `syncd audit` for the lead and fix the rules or the "
            "workflow, or raise loop_guard.max_changes"
        )

    def hold(self, verdicts: Iterable[Any], now: datetime) -> int:
        """Hold every verdict that would change a field syncd already changed too often;
        returns how many were held."""
        changing = {v.lead_id: v for v in verdicts if any(c.kind == "field" for c in v.changes)}
        if not changing:
            return 0
        held = 0
        for lead_id, fields in self.counts(changing.keys(), now).items():
            verdict = changing[lead_id]
            hit = [
                (c.field, fields[c.field])
                for c in verdict.changes
                if c.kind == "field" and c.field in fields
            ]
            if not hit:
                continue
            verdict.loop_held = self.reason(hit[0][1], hit[0][0])
            verdict.changes = []
            self.held.add(lead_id)
            held += 1
        return held

    def held_now(self, now: datetime) -> dict[str, tuple[str, int]]:
        """Every lead of the connector at the limit now (for ``syncd status``), with the field
        changed most often and how often: one grouped query over the window's audit rows."""
        return {
            lead_id: max(fields.items(), key=lambda item: (item[1], item[0] == "status"))
            for lead_id, fields in self._at_limit(now).items()
        }


def _days(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"
