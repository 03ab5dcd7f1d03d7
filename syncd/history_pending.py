"""The status history of leads a pull mirrored before reading it, read before the next plan.

A HubSpot first sync (or mass import) meets thousands of new contacts; their history costs one
batch read per 50 (HubSpot's cap with ``propertiesWithHistory``) from the same 100-per-10-s
budget the pull needs for nothing else but leaves idle, so read inline it held the pull to a
third of the search rate. Such a pull marks the new leads pending (``history_pending``, in the
transaction that mirrors them) and ``read_pending`` reads their history once the pull is done:
the same ledger backfill rows and the same first-sight facts (when the status was set; a
person's edit held for ``hold_rep_edits_for``) as reading it inline gives.

The cycle runs this between the pull and the plan and does not plan while any is pending, so no
rule ever sees a new lead without its history; a cycle stopped or failed in between leaves the
marks for the next one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from connectors.base import HistoryEntry
from syncd import ledger
from syncd.state import StateStore

__all__ = ["PendingResult", "first_sight_edit", "first_sight_facts", "read_pending"]

log = logging.getLogger("syncd.pipeline")

#: Leads per round (one transaction): the connector splits them into its calls (50 HubSpot).
_ROUND = 1000


@dataclass(slots=True)
class PendingResult:
    leads: int = 0  # pending leads whose history was read (or refused)
    added: int = 0  # ledger rows added
    held: int = 0  # leads whose status (or a watched field) a person set within the hold


def first_sight_facts(
    entries: Sequence[HistoryEntry], status: Any
) -> tuple[datetime | None, HistoryEntry | None]:
    """What one lead's history says at first sight: when it got its current ``status`` (None:
    the history does not say) and the person's edit that set it, if a person did."""
    moves = [e for e in entries if e.field == ledger.STATUS and e.to_value == status]
    changed_at = max(e.at for e in moves) if moves else None
    return changed_at, ledger.last_person_edit(entries, status)


def first_sight_edit(
    entries: Sequence[HistoryEntry],
    status: Any,
    fields: Mapping[str, Any],
    watched: Sequence[str] = (),
) -> tuple[HistoryEntry, str | None] | None:
    """The newest edit a person made, as one lead's history shows it, of its status or of a
    ``watched`` field (a field a rule sets whose history was read beside the status), that the
    lead still has: ``(the edit, None for the status or the field's name)``. A field the mirror
    lacks (``fields``) says nothing."""
    found: list[tuple[HistoryEntry, str | None]] = []
    edit = ledger.last_person_edit(entries, status)
    if edit is not None:
        found.append((edit, None))
    for name in watched:
        if name in fields:
            edit = ledger.last_person_edit(entries, fields[name], field=name)
            if edit is not None:
                found.append((edit, name))
    return max(found, key=lambda f: f[0].at, default=None)


def read_pending(
    store: StateStore,
    crm: str,
    read: Callable[[Sequence[str]], list[HistoryEntry] | None],
    *,
    hold: timedelta,
    now: datetime,
    fence: Callable[[Connection], None],
    watched: Sequence[str] = (),
) -> PendingResult:
    """Read the history of every pending lead of ``crm`` into the ledger and the mirror.

    ``read``: the pipeline's history read; None when the CRM refuses its history (logged
    there), and the leads stay as mirrored, without it, as an inline read would leave them.
    ``fence``: the pipeline's lease check, in each round's transaction.
    ``watched``: fields besides the status whose history ``read`` returns (their entries are
    not the status ledger's): a person's edit of one holds the lead like a status edit.
    """
    result = PendingResult()
    while ids := store.history_pending(crm, _ROUND):
        entries = read(ids)
        by_lead: dict[str, list[HistoryEntry]] = defaultdict(list)
        for e in entries or ():
            by_lead[e.lead_id].append(e)
        with store.begin() as conn:
            fence(conn)
            mirror = store.leads_by_id(conn, crm, ids)
            known = store.history_of_leads(conn, crm, ids)
            statuses = [e for e in entries or () if e.field == ledger.STATUS]
            # Every pending lead is at first sight: the rows it has are those of the leads
            # merged into it, if any (StateStore.rekey_history).
            seen = {lead_id: lead.modified_at for lead_id, lead in mirror.items()}
            rows = ledger.backfill_rows(crm, statuses, known, seen)
            updates = []
            for lead_id, lead in mirror.items():
                history = by_lead.get(lead_id, ())
                changed_at, _ = first_sight_facts(history, lead.status)
                rep_at, rep_status = lead.rep_edit_at, lead.rep_edit_status
                rep_field = lead.rep_edit_field
                found = first_sight_edit(history, lead.status, lead.fields or {}, watched)
                if found is not None and (rep_at is None or found[0].at > rep_at):
                    edit, rep_field = found
                    value = lead.status if rep_field is None else lead.fields[rep_field]
                    rep_at, rep_status = edit.at, None if value is None else str(value)
                    if edit.at + hold > now:
                        result.held += 1
                        log.info(
                            "lead %s: %s %r was set by a person before syncd first saw it; "
                            "left alone until %s UTC",
                            lead_id,
                            rep_field or "status",
                            value,
                            f"{edit.at + hold:%Y-%m-%d %H:%M}",
                        )
                if changed_at is None and rep_at == lead.rep_edit_at:
                    continue
                updates.append(
                    {
                        "lead_id": lead_id,
                        "status_changed_at": changed_at or lead.status_changed_at,
                        "rep_edit_at": rep_at,
                        "rep_edit_status": rep_status,
                        "rep_edit_field": rep_field,
                    }
                )
            store.add_history(conn, rows)
            store.update_leads(conn, crm, updates)
            store.clear_history_pending(conn, crm, ids)
        result.leads += len(ids)
        result.added += len(rows)
    return result
