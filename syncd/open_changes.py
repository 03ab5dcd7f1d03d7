"""What becomes of an open outbox change that planning or a pull finds overtaken.

A change is planned as part of an intent (everything one rule decided for a lead) and may sit
in the outbox across cycles: pending a retry, in flight, or in doubt after a lost answer. Each
cycle the pipeline asks of every open change the current verdict does not want as it is:

* :func:`judge_leftover`: keep it (part of its intent already reached the CRM), supersede it
  (syncd's own newer decision, or a hold that now covers the lead: :func:`held_back`), or
  withdraw it (a person, a deletion or a new rule set), and the reason the audit row gives;
* :func:`reverted_in_doubt`: whether a person overrode a status write whose answer was lost;
* :func:`answered_unapplied`: whether a failed request's error proves the CRM applied nothing;
* :func:`syncd_made`: whether a pulled status change is syncd's own;
* :func:`fields_a_person_set`: which pulled changes of fields rules set are not syncd's.

The reasons are the outbox row's ``error_message`` and its audit row's message, so ``syncd
status`` and ``syncd audit`` say why a change was not delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from connectors.base import RemoteLead
from connectors.errors import ConnectorError, Interrupted
from rules import RuleBook
from syncd.records import LeadState, OutboxRecord, PlanRecord
from syncd.state import OutboxState, _utc

if TYPE_CHECKING:
    from syncd.planner import LeadVerdict, PlannedChange, Planner

# Why an open change is not sent (the row's error_message and the audit row's message).
OUTSIDE_AFTER_WRITE = "status changed by a person (or the CRM) after syncd's write"
OUTSIDE_BEFORE_WRITE = "status changed by a person (or the CRM) before syncd wrote it"
NO_LONGER_WANTED = "no longer wanted by the rules"
# The rules still want it, but the lead is now held: for a person's edit the change was planned
# after (hold_rep_edits_for lengthened since), or by the loop guard (its limit lowered since).
# One text each, whatever the lead, so `syncd status` counts them as one reason.
HELD_FOR_PERSONS_EDIT = (
    "the lead is now held for a person's edit (hold_rep_edits_for); "
    "planned again if the rules still want it when the hold ends"
)
HELD_BY_LOOP_GUARD = (
    "the lead is now held by the loop guard (loop_guard.max_changes); "
    "planned again if the rules still want it once syncd's changes leave its window"
)
HELD_FOR_REMAP = (
    "the field is mapped to another CRM field since it was planned; not written until one "
    "hold_rep_edits_for after the change (a person may have set the new one before)"
)
LEAD_DELETED = "lead deleted in the CRM"
UNCONFIRMED_OVERRIDDEN = (
    "sent but unconfirmed (the answer was lost); someone else changed the "
    "status afterwards, and it is left as they set it"
)
LEAD_CONVERTED = "lead converted in the CRM"
UNCONFIRMED_WITH_OVERRIDDEN = (
    "sent but unconfirmed with the lead's status write (the answer was lost); someone else "
    "changed the status afterwards, so it is not sent again (it may have landed)"
)


def lead_merged(into: str) -> str:
    """Why a merged-away lead's open changes are withdrawn: ``into`` is the lead the CRM
    merged it into."""
    return f"lead merged into {into} in the CRM"


def judge_leftover(
    row: PlanRecord,
    change: OutboxRecord,
    parts: Sequence[OutboxRecord],
    done_now: set[int],
    wanted: Mapping[tuple[str, str], PlannedChange],
    book: RuleBook,
    planner: Planner,
    now: datetime,
    *,
    held: str | None = None,
) -> tuple[OutboxState, str] | None:
    """What becomes of an open change the current verdict does not want as it is.

    ``None`` keeps it pending: part of its intent already reached the CRM, and the verdict
    differs only because syncd's own write changed the lead. Otherwise the state to close it in
    and why. ``parts`` are every row of the change's intent; ``done_now`` the ids planning just
    found in place in the CRM (delivered, though not yet marked so); ``held``: why the current
    verdict holds the lead back (:func:`held_back`), None when it does not.
    """
    delivered = any(p.state == OutboxState.DONE or p.id in done_now for p in parts)
    if changed_outside_syncd(row, parts, done_now):
        reason = OUTSIDE_AFTER_WRITE if delivered else OUTSIDE_BEFORE_WRITE
        field = _field_edited_since(row, parts)
        return OutboxState.WITHDRAWN, reason if field is None else reason.replace("status", field)
    newer = wanted.get((change.kind, change.field))
    if newer is not None:
        # The same field, another value: the newer decision is the one to deliver.
        return OutboxState.SUPERSEDED, "replaced by a newer decision for the same field"
    if not delivered:
        return OutboxState.SUPERSEDED, held or NO_LONGER_WANTED
    if change.ruleset_version != book.version and not wanted_before_the_intent(
        row, change, parts, done_now, planner, now
    ):
        return OutboxState.WITHDRAWN, (
            f"rule set changed to version {book.version} and no longer wants it"
        )
    return None


def held_back(verdict: LeadVerdict, field: str | None = None) -> str | None:
    """Why ``verdict`` holds its lead back whatever the rules want (``judge_leftover``'s
    ``held``): a person's edit (``syncd.holds``), the loop guard, or, for ``field``, a
    mapping changed lately (``syncd.field_remap``); None when it does not."""
    if verdict.held:
        return HELD_FOR_PERSONS_EDIT
    if verdict.loop_held:
        return HELD_BY_LOOP_GUARD
    if field is not None and field in verdict.remap_held:
        return HELD_FOR_REMAP
    return None


def changed_outside_syncd(
    row: PlanRecord, parts: Sequence[OutboxRecord], done_now: set[int]
) -> bool:
    """Whether someone other than syncd changed the lead's status since the intent was planned.

    The pull marks a status change syncd did not make (``rep_edit_at``, CRM time); and a status
    that is neither where the intent found it, nor its target, nor syncd's last confirmed write
    cannot be syncd's either (a person set it back to the old value counts: once the intent's
    status write is done, only its target or a later syncd write are syncd's).
    """
    created = _utc(min(p.created_at for p in parts))
    edited = _utc(row.rep_edit_at)
    if edited is not None and edited >= created:
        return True
    status = next((p for p in parts if p.kind == "field" and p.field == "status"), None)
    if status is None:
        return False
    ours = {status.value, row.written_status}
    if status.state != OutboxState.DONE and status.id not in done_now:
        ours.add(status.before)
    return row.status not in ours


def _field_edited_since(row: PlanRecord, parts: Sequence[OutboxRecord]) -> str | None:
    """The field (not the status) a person's edit since the intent was planned set, if that
    edit is what withdraws it (``syncd.holds``)."""
    edited = _utc(row.rep_edit_at)
    if edited is None or edited < _utc(min(p.created_at for p in parts)):
        return None
    return row.rep_edit_field


def wanted_before_the_intent(
    row: PlanRecord,
    change: OutboxRecord,
    parts: Sequence[OutboxRecord],
    done_now: set[int],
    planner: Planner,
    now: datetime,
) -> bool:
    """Whether the current rules still decide ``change`` for the lead as the intent found it.

    The delivered parts are undone on a copy of the mirror row, so a rule set that changed for
    unrelated reasons keeps a half-delivered decision, and one that dropped it withdraws the rest.
    (When the status was set is not undone: the mirror keeps only the latest.)
    """
    view = row._asdict()
    fields = dict(view["fields"])
    newsletters = list(view["newsletters"] or [])
    for p in parts:
        if p.state != OutboxState.DONE and p.id not in done_now:
            continue
        if p.kind == "membership":
            if p.field in newsletters:
                newsletters.remove(p.field)
        else:
            fields[p.field] = p.before
            if p.field == "status":
                view["status"] = p.before
    view.update(fields=fields, newsletters=newsletters)
    verdict = planner.verdict(SimpleNamespace(**view), now)
    return any(
        (c.kind, c.field, c.value) == (change.kind, change.field, change.value)
        for c in verdict.changes
    )


#: How far a CRM's clock may run behind syncd's: an edit stamped up to this long before an
#: in-doubt write left may still have come after it (judged conservatively: rep edits win).
CLOCK_SKEW = timedelta(seconds=5)


def answered_unapplied(exc: ConnectorError) -> bool:
    """The CRM answered the batch's request with an error, so it applied nothing. No answer
    (a timeout, a dropped connection, a stop during a retry wait) or a gateway's 502/504 (the
    CRM behind it may have applied it) leaves the batch in doubt, and so does a retry chain
    with such an attempt anywhere in it: a request dropped after the CRM applied it and then
    answered 503 on every retry was applied once."""
    return not (isinstance(exc, Interrupted) or exc.unanswered or exc.unanswered_attempts)


def reverted_in_doubt(
    lead: RemoteLead,
    status: Any,
    in_doubt: OutboxRecord | None,
    prev: LeadState | None,
    *,
    crm_behind: timedelta = timedelta(0),
) -> bool:
    """Someone other than syncd modified the lead after syncd's unconfirmed status write left,
    and the CRM shows another status: the person's, whatever the mirror still says (a person
    who set the old value back looks exactly like a lead syncd never wrote).

    "After" needs a modification the mirror has not seen (a lead touched just before the write,
    already mirrored, is not one) stamped no earlier than the write left, give or take the
    CRM's clock skew: ``CLOCK_SKEW``, and ``crm_behind`` more where the CRM's answers showed its
    clock that far behind syncd's (``Connector.clock_behind``)."""
    if in_doubt is None or lead.modified_by_integration is True or status == in_doubt.value:
        return False
    if prev is not None and lead.modified_at <= _utc(prev.modified_at):
        return False
    return bool(lead.modified_at >= _utc(in_doubt.updated_at) - CLOCK_SKEW - crm_behind)


def syncd_made(lead: RemoteLead, prev: LeadState, *, queued: bool) -> bool:
    """Whether a pulled status change is syncd's own: its last confirmed write, a value its
    outbox meant to write (the confirmation may have been lost), or the CRM says so."""
    status = lead.fields.get("status")
    return status == prev.written_status or queued or lead.modified_by_integration is True


def fields_a_person_set(
    lead: RemoteLead,
    fields: Mapping[str, Any],
    prev: LeadState,
    watched: Iterable[str],
    queued: Mapping[str, OutboxRecord],
    *,
    unusable: Iterable[str] = (),
) -> list[str]:
    """Of ``watched`` (the fields rules set, ``syncd.holds.fields_rules_set``), those whose
    pulled value (``fields``, as stored) is not the mirror's and not syncd's own, in name order.

    The mirror holds syncd's last confirmed write of a field (the write path stores it), so a
    pulled value that differs from it is someone else's, unless it is a value the outbox means
    to write (its confirmation may have been lost) or the CRM says the integration user made
    the change (Salesforce ``LastModifiedById``). A value the pull could not use (``unusable``,
    stored as empty) says nothing of who changed it, nor does a field the mirror has no value of
    (mapped since the lead was last pulled: the mirror stores every pulled field, empty or not).
    """
    if lead.modified_by_integration is True:
        return []
    skipped = set(unusable)
    before = prev.fields
    out = []
    for name in sorted(watched):
        if name not in fields or name not in before or name in skipped:
            continue
        value = fields[name]
        if value == before[name]:
            continue
        open_row = queued.get(name)
        if open_row is not None and open_row.value == value:
            continue
        out.append(name)
    return out
