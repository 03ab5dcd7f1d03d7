"""A person's edit that landed while syncd's write batch was in flight.

syncd decides on the lead as it read it, a person changes the status (or a field a rule sets,
``set_field``: a Salesforce custom field, HubSpot's lifecycle stage), then syncd's write lands
on top: the mirror and the CRM agree afterwards, so no pull can see the person's edit. The
CRM's history can: syncd's own transition there starts from a value syncd never saw, and a
person's transition set that value (or, for a field, cleared it). The pipeline reads the
history of the status and field writes (the fields' rows in the same queries and batch reads as
the status's), writes the person's value back (typed as a pull reads the field; a clearing
cleared again), holds the lead with the field named, and audits both. A field the CRM keeps no
history of (a Salesforce field without history tracking) has no rows: its race goes unseen, as
at first sight.

What the check costs (counted in ``tests/daemon/test_ledger_races.py`` and
``test_composite_races.py``): on Salesforce with Composite nothing. One query of people's edits
of the status and the rule-set fields since before the reads (LeadHistory rows by anyone but the
integration user, ``Field IN (...)``, usually none: ``Connector.edits_since``) covers every
status and field write of a cycle; it rides in a free slot of the
cycle's last Composite write call, or, when that call is full, beside the next pull's first query
page in one Composite request. Only the leads a person edited meanwhile have their whole history
read (one query per 200, only then) and judged by :func:`find_races`. Until the next pull the check
waits, in memory and in the state store (:mod:`syncd.race_book`): a daemon stopped in between
leaves it to the next process. With ``composite: false`` one history query per batch of 200. On
HubSpot one batch read with ``propertiesWithHistory`` per 50 written contacts (the history of
the fields a rule sets in the same reads as the status's): HubSpot caps a batch read with history at 50
inputs (crm-api C4, C10), so a full 100-contact write batch costs two.
Nothing cheaper sees the race there: after syncd's write the contact's value, ``lastmodifieddate``
and the pull all look as if nobody else had touched it, and the batch update answers only the new
values; a read before the write would narrow the window, not close it.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.base import HistoryEntry
from syncd.ledger import same_value
from syncd.records import OutboxRecord

__all__ = ["CHECK_REACH", "PendingCheck", "Race", "find_races", "suspects"]

#: How far before the earliest read the look at people's edits starts: the CRM's clock is not
#: the daemon's (NTP keeps them within seconds). Reaching back further costs rows of people's
#: edits made just before the read (query-more calls when there are thousands).
CHECK_REACH = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """Confirmed status (and rule-set field) writes whose race check is still to be read:
    people's edits since ``since`` (before the earliest read the writes were decided on).

    ``written`` holds the writes' outbox ids only, 8 bytes each: a first sync confirms a
    status write for half a million leads before its last call, and their whole rows held
    until then were most of the process's memory (691 MiB at a million leads). The few
    suspects are read back from the store when the check runs."""

    since: datetime
    written: array[int]


def suspects(written: Sequence[OutboxRecord], edits: Sequence[HistoryEntry]) -> list[OutboxRecord]:
    """The writes that may have raced: on leads whose latest edit by a person of the written
    field (the status, or a field a rule sets) since the check's start (``edits``, oldest first
    per lead) left a value other than the one syncd read (``before``). An edit the read already
    saw ends on that value; only the suspects' whole history needs reading (:func:`find_races`
    judges it)."""
    last: dict[tuple[str, str], HistoryEntry] = {}
    for e in edits:
        if e.actor != "integration":
            last[(e.lead_id, e.field)] = e
    return [
        w
        for w in written
        if (w.lead_id, w.field) in last
        and not same_value(last[(w.lead_id, w.field)].to_value, w.before)
    ]


@dataclass(frozen=True, slots=True)
class Race:
    """syncd's confirmed write ``change`` (of the status or a field a rule sets) overwrote
    ``edit``, a person's change of that field it had not seen."""

    change: OutboxRecord
    edit: HistoryEntry
    person_value: str | None  # the value the person set, None: they cleared the field
    written_at: datetime  # when the CRM recorded syncd's write

    @property
    def field(self) -> str:
        """The canonical field raced over: ``status`` or the field a rule sets."""
        return self.change.field


def find_races(written: Sequence[OutboxRecord], entries: Sequence[HistoryEntry]) -> list[Race]:
    """The races among ``written`` (confirmed writes, one per lead and field), judged from the
    leads' history of the written fields (``entries``, oldest first per lead). History keeps
    text: a number or boolean field's value compares as one (``ledger.same_value``)."""
    by_field: dict[tuple[str, str], list[HistoryEntry]] = defaultdict(list)
    for e in entries:
        by_field[(e.lead_id, e.field)].append(e)
    races = []
    for change in written:
        history = by_field.get((change.lead_id, change.field), [])
        # syncd's write: the latest transition to its value by the integration user.
        mine = [
            i
            for i, e in enumerate(history)
            if e.actor == "integration" and same_value(e.to_value, change.value)
        ]
        if not mine:
            continue
        write = history[mine[-1]]
        if same_value(write.from_value, change.before):
            continue  # it replaced the value syncd decided on: no race
        if any(e.actor == "person" for e in history[mine[-1] + 1 :]):
            # A person changed it again after syncd's write: their latest value stands (the
            # pull holds the lead as any person's edit); writing the older one back would
            # undo it.
            continue
        edit = next(
            (
                e
                for e in reversed(history[: mine[-1]])
                if e.actor == "person" and e.to_value == write.from_value
            ),
            None,
        )
        if edit is None or (
            edit.to_value is None and not _cleared(change, edit, history, mine[-1])
        ):
            continue
        races.append(Race(change, edit, edit.to_value, write.at))
    return races


def _cleared(
    change: OutboxRecord, edit: HistoryEntry, history: Sequence[HistoryEntry], write: int
) -> bool:
    """Whether ``edit``, a person's clearing, is what syncd's write (``history[write]``)
    replaced: of a field a rule sets (a status is never written back empty), and the last
    transition before syncd's. The oldest value a history keeps may have no known
    predecessor (None: HubSpot's bounded history), so a None not set by the person's
    clearing right before syncd's write says nothing."""
    return change.field != "status" and write > 0 and history[write - 1] is edit
