"""A person's edit that landed while syncd's write batch was in flight.

syncd decides on the lead as it read it, a person changes the status, then syncd's write lands
on top: the mirror and the CRM agree afterwards, so no pull can see the person's edit. The
CRM's history can: syncd's own transition there starts from a value syncd never saw, and a
person's transition set that value. The pipeline reads the history of the status writes,
writes the person's value back, holds the lead, and audits both.

What the read costs (counted in ``tests/daemon/test_ledger_races.py`` and
``test_composite_races.py``): on Salesforce with Composite nothing, as it is the write call's
last subrequest (``Connector.write_collections_then_history``: 4 collections and the LeadHistory
query, run in order after the writes; more than 2,000 history rows are read on by query-more
calls), so one ``find_races`` judges the whole call; with ``composite: false`` one query per
batch of 200. On HubSpot one batch read with ``propertiesWithHistory`` per 50 status writes:
HubSpot caps a batch read with history at 50 inputs (crm-api C4, C10), so a full 100-contact
write batch costs two. Nothing cheaper sees the race there: after syncd's write the contact's
value, ``lastmodifieddate`` and the pull all look as if nobody else had touched it, and the
batch update answers only the new values; a read before the write would narrow the window, not
close it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from connectors.base import HistoryEntry
from syncd.records import OutboxRecord

__all__ = ["Race", "find_races"]


@dataclass(frozen=True, slots=True)
class Race:
    """syncd's confirmed status write ``change`` overwrote ``edit``, a person's change it had
    not seen."""

    change: OutboxRecord
    edit: HistoryEntry
    person_value: str  # the status the person set (never empty: a status is required)
    written_at: datetime  # when the CRM recorded syncd's write


def find_races(written: Sequence[OutboxRecord], entries: Sequence[HistoryEntry]) -> list[Race]:
    """The races among ``written`` (confirmed status writes, one per lead), judged from the
    leads' status history (``entries``, oldest first per lead)."""
    by_lead: dict[str, list[HistoryEntry]] = defaultdict(list)
    for e in entries:
        if e.field == "status":
            by_lead[e.lead_id].append(e)
    races = []
    for change in written:
        history = by_lead.get(change.lead_id, [])
        # syncd's write: the latest transition to its value by the integration user.
        mine = [
            i
            for i, e in enumerate(history)
            if e.actor == "integration" and e.to_value == change.value
        ]
        if not mine:
            continue
        write = history[mine[-1]]
        if write.from_value == change.before:
            continue  # it replaced the value syncd decided on: no race
        edit = next(
            (
                e
                for e in reversed(history[: mine[-1]])
                if e.actor == "person" and e.to_value is not None and e.to_value == write.from_value
            ),
            None,
        )
        if edit is not None and edit.to_value is not None:
            races.append(Race(change, edit, edit.to_value, write.at))
    return races
