"""A person's recent edit of a field the rules have only just started to set holds its lead.

A pull looks for a person's edit only of the fields some rule sets (``syncd.holds``,
``Pipeline._watched_fields``): of the others it keeps the values, not who set them. When a rule
file starts setting another field (a new ``set_field``, or a rule that now applies to this
connector), the mirror cannot tell a rep's edit of that field yesterday from a value nobody
touched, and the first cycle under the new rules would write over the rep's value at once.

So the fields the rules set are recorded per connector, and when they gain one, the cycle reads
the CRM's history of the new fields before it plans. It reads it for every live lead modified
within ``hold_rep_edits_for``: a person's edit the hold still covers made the lead's
modification time at least that recent. A lead whose newest change of such a field was a
person's, and still holds the value they set, is held as if the pull had seen the edit
(``rep_edit_at``, ``rep_edit_field``). The new set is recorded after the last of those leads was
read, so a cycle stopped halfway reads them again (holding is idempotent: it only moves a
lead's edit time forward). Where the CRM keeps no history of the field (Salesforce tracks the
fields its admin chose: https://help.salesforce.com/s/articleView?id=sf.tracking_field_history.htm),
nothing is found: the same limit as a lead's first sight has.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from connectors.base import HistoryEntry
from syncd.history_pending import first_sight_edit
from syncd.state import StateStore

__all__ = ["fields_key", "hold_recent_edits", "recorded_fields"]

log = logging.getLogger("syncd.pipeline")

#: Leads per round: one history read (the connector splits it into its calls) and one
#: transaction.
_ROUND = 1000


def fields_key(crm: str) -> str:
    """The meta key of the fields ``crm``'s rules set, as of the last completed check."""
    return f"rule_set_fields:{crm}"


def recorded_fields(store: StateStore, crm: str) -> frozenset[str] | None:
    """The recorded fields; None before the first record (a new mirror, or an upgrade)."""
    stored = store.get_meta(fields_key(crm))
    return None if stored is None else frozenset(stored)


def record_fields(store: StateStore, conn: Connection, crm: str, fields: Collection[str]) -> None:
    store.put_meta(conn, fields_key(crm), sorted(fields))


def hold_recent_edits(
    store: StateStore,
    crm: str,
    fields: Sequence[str],
    read: Callable[[Sequence[str]], list[HistoryEntry] | None],
    *,
    hold: timedelta,
    now: datetime,
    fence: Callable[[Connection], None],
) -> int:
    """Hold the live leads modified within ``hold`` whose newest change of one of ``fields``
    was a person's (see the module docstring); returns how many were held.

    ``read``: the pipeline's history read of these fields; None when the CRM refuses its
    history (logged there): nothing is held, as a first sight without history holds nothing.
    ``fence``: the pipeline's lease check, in each round's transaction.
    """
    held = 0
    after = ""
    since = now - hold
    while True:
        with store.reading() as conn:
            leads = store.leads_modified_since(conn, crm, since, after, _ROUND)
        if not leads:
            return held
        after = leads[-1][0]
        entries = read([lead_id for lead_id, _fields, _at in leads]) or ()
        by_lead: dict[str, list[HistoryEntry]] = defaultdict(list)
        for e in entries:
            if e.field in fields:
                by_lead[e.lead_id].append(e)
        updates = []
        for lead_id, values, edited_at in leads:
            history = by_lead.get(lead_id)
            if not history:
                continue
            # First sight's reading of a lead's history; the status entries are left out above,
            # so the newest person's edit it finds is of one of ``fields``.
            found = first_sight_edit(history, None, values, fields)
            if found is None:
                continue
            edit, name = found
            if name is None:  # the status: none of its entries is here
                continue
            if edit.at + hold <= now or (edited_at is not None and edit.at <= edited_at):
                continue  # the hold has ended, or a later edit holds the lead already
            value = values[name]
            updates.append(
                {
                    "lead_id": lead_id,
                    "rep_edit_at": edit.at,
                    "rep_edit_status": None if value is None else str(value),
                    "rep_edit_field": name,
                }
            )
            log.info(
                "lead %s: %s %r was set by a person before the rules set it; left alone "
                "until %s UTC",
                lead_id,
                name,
                value,
                f"{edit.at + hold:%Y-%m-%d %H:%M}",
            )
        if updates:
            with store.begin() as conn:
                fence(conn)
                store.update_leads(conn, crm, updates)
            held += len(updates)
