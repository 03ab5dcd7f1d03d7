"""The last line of defence against loops that span cycles: a lead syncd changed too often.

Rules that fight each other within one evaluation are caught by the rule engine; rules that
fight across cycles (A moves a lead to X, next cycle B moves it back, or a CRM workflow undoes
syncd's write every time) are not visible to any single evaluation. So before a lead's status
is changed again, the audit says how often syncd already changed it: a lead with
``max_changes`` applied status writes within ``window`` is held (nothing of its decision is
written) until the older writes leave the window, and ``syncd status``, ``explain`` and the
``syncd_loop_held_leads`` metric say so.

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

    def counts(self, lead_ids: Collection[str], now: datetime) -> dict[str, int]:
        """Applied status writes within the window, for the given leads that reached the
        limit (leads below it are left out)."""
        ids = list(lead_ids)
        found: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            found.update(
                self._at_limit(now, col(AuditRow.lead_id).in_(ids[start : start + _CHUNK]))
            )
        return found

    def _at_limit(self, now: datetime, *where: ColumnElement[bool]) -> dict[str, int]:
        """Leads (among ``where``) with at least ``max_changes`` applied status writes by
        syncd within the window, with their counts: one grouped query."""
        lead = col(AuditRow.lead_id)
        query = (
            select(lead, func.count())
            .where(
                col(AuditRow.crm) == self.crm,
                col(AuditRow.field) == "status",
                col(AuditRow.outcome) == AuditOutcome.APPLIED.value,
                col(AuditRow.at) >= now - self.settings.window,
                *where,
            )
            .group_by(lead)
            .having(func.count() >= self.settings.max_changes)
        )
        with self.store.reading() as conn:  # one statement: autocommit on PostgreSQL
            return {str(lead_id): int(n) for lead_id, n in conn.execute(query)}

    def reason(self, count: int) -> str:
        window = _days(self.settings.window)
        return (
            f"syncd changed its status {count} times within {window} (loop_guard: at most "
            f"{self.settings.max_changes}); held as a likely rule loop: see `syncd audit` "
            "for the lead and fix the rules, or raise loop_guard.max_changes"
        )

    def hold(self, verdicts: Iterable[Any], now: datetime) -> int:
        """Hold every verdict that would change the status of a lead at the limit; returns
        how many were held."""
        changing = {
            v.lead_id: v
            for v in verdicts
            if any(c.kind == "field" and c.field == "status" for c in v.changes)
        }
        if not changing:
            return 0
        counts = self.counts(changing.keys(), now)
        for lead_id, count in counts.items():
            verdict = changing[lead_id]
            verdict.loop_held = self.reason(count)
            verdict.changes = []
        self.held.update(counts)
        return len(counts)

    def held_now(self, now: datetime) -> dict[str, int]:
        """Every lead of the connector at the limit now (for ``syncd status``): one grouped
        query over the window's audit rows."""
        return self._at_limit(now)


def _days(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"
