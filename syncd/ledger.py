"""Rows of the status history ledger (``status_history``), built where the mirror changes.

The ledger is written in the same transactions as what it describes, so it cannot disagree with
the mirror or the outbox: a pulled page's transitions with the page (``source=pulled``), a
confirmed write's with its result (``source=written``). Tracked fields are the lead's status and,
when the connector maps it, the lifecycle stage (``field="lifecycle_stage"``).

A lead seen for the first time adds no pulled row: the pull did not see a transition, only a
value. What happened before syncd first saw a lead comes from the CRM's own field history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import HistoryEntry, RemoteLead
from syncd.records import LeadBody, LeadState, OutboxRecord
from syncd.state import HistoryActor, HistorySource

__all__ = [
    "LIFECYCLE",
    "STATUS",
    "backfill_rows",
    "last_person_edit",
    "pulled_rows",
    "same_value",
    "written_rows",
]

STATUS = "status"
LIFECYCLE = "lifecycle_stage"


def _row(
    crm: str,
    lead_id: str,
    field: str,
    before: Any,
    after: Any,
    at: datetime,
    actor: HistoryActor,
    source: HistorySource,
    *,
    actor_id: str | None = None,
    rule_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    return {
        "crm": crm,
        "lead_id": lead_id,
        "field": field,
        "from_value": None if before is None else str(before),
        "to_value": None if after is None else str(after),
        "at": at,
        "actor": actor.value,
        "actor_id": actor_id,
        "rule_id": rule_id,
        "run_id": run_id,
        "source": source.value,
    }


def pulled_rows(
    crm: str,
    lead: RemoteLead,
    prev: LeadState | None,
    *,
    person: bool,
    queued: Mapping[str, OutboxRecord],
    lifecycle_field: str | None,
    stage_by_person: bool = False,
) -> list[dict[str, Any]]:
    """The transitions a pull saw on one already mirrored lead.

    ``person`` is the rep-edit verdict on the status change (``Pipeline._mirror_row``),
    ``stage_by_person`` the one on the stage's, when a rule sets it;
    ``queued`` the lead's open outbox rows by field (a value syncd meant to write is syncd's
    even when its confirmation was lost); ``lifecycle_field`` the canonical field holding the
    lifecycle stage, when mapped.
    """
    if prev is None:
        return []
    rows = []
    status = lead.fields.get("status")
    if status != prev.status:
        actor, rule_id = _actor(lead, queued.get("status"), status, person=person)
        rows.append(
            _row(
                crm,
                lead.id,
                STATUS,
                prev.status,
                status,
                lead.modified_at,
                actor,
                HistorySource.PULLED,
                actor_id=lead.modified_by if actor is not HistoryActor.SYNCD else None,
                rule_id=rule_id,
            )
        )
    if lifecycle_field is not None and lifecycle_field in lead.fields:
        stage, before = lead.fields.get(lifecycle_field), prev.fields.get(lifecycle_field)
        if stage != before:
            # A stage no rule sets is not judged (a person's edit of it holds nothing): the CRM
            # says who modified the record, when it says.
            person = stage_by_person or lead.modified_by_integration is False
            actor, rule_id = _actor(lead, queued.get(lifecycle_field), stage, person=person)
            rows.append(
                _row(
                    crm,
                    lead.id,
                    LIFECYCLE,
                    before,
                    stage,
                    lead.modified_at,
                    actor,
                    HistorySource.PULLED,
                    actor_id=lead.modified_by if actor is not HistoryActor.SYNCD else None,
                    rule_id=rule_id,
                )
            )
    return rows


def _actor(
    lead: RemoteLead, queued: OutboxRecord | None, value: Any, *, person: bool
) -> tuple[HistoryActor, str | None]:
    if queued is not None and queued.value == value:
        return HistoryActor.SYNCD, queued.rule_id
    if lead.modified_by_integration is True:
        return HistoryActor.SYNCD, None
    if person:
        return HistoryActor.PERSON, None
    return HistoryActor.UNKNOWN, None


def written_rows(
    crm: str,
    lead: LeadBody,
    group: Sequence[OutboxRecord],
    now: datetime,
    run_id: str,
    *,
    lifecycle_field: str | None,
) -> list[dict[str, Any]]:
    """The transitions a confirmed write of one lead's changes made (``lead``: the mirror as it
    was before the write)."""
    rows = []
    for r in group:
        if r.kind != "field":
            continue
        if r.field == "status":
            field, before = STATUS, lead.status
        elif lifecycle_field is not None and r.field == lifecycle_field:
            field, before = LIFECYCLE, lead.fields.get(r.field)
        else:
            continue
        if before == r.value:
            continue
        rows.append(
            _row(
                crm,
                lead.lead_id,
                field,
                before,
                r.value,
                now,
                HistoryActor.SYNCD,
                HistorySource.WRITTEN,
                rule_id=r.rule_id,
                run_id=run_id,
            )
        )
    return rows


#: The CRM's actor kinds as the ledger's: the integration user is syncd.
_ACTORS = {
    "integration": HistoryActor.SYNCD,
    "person": HistoryActor.PERSON,
    "automation": HistoryActor.AUTOMATION,
    "unknown": HistoryActor.UNKNOWN,
}

#: A CRM stamps a transition syncd also recorded up to this much earlier than syncd did (whole
#: seconds, the write's round trip).
_SKEW = timedelta(seconds=5)


def backfill_rows(
    crm: str,
    entries: Iterable[HistoryEntry],
    known: Mapping[str, Sequence[Any]] | None = None,
    first_sight: Mapping[str, datetime] | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows (``source=backfill``) for the CRM's history entries the ledger lacks.

    ``known``: the ledger's rows of each lead so far. The CRM's history fills in what happened
    before syncd's own record of the lead begins (its first pulled or written row); an entry
    already backfilled (same field, value and time) is not added again.

    ``first_sight``: leads seen for the first time, with the time of the CRM record the mirror
    holds of each (its ``modified_at``). Such a lead's own rows are those of the leads merged
    into it (``StateStore.rekey_history``), and syncd's record of those ended with the merge:
    an entry after the newest of them, up to that time, is one no pull saw (the value the merge
    set, an original's last change) and is added too.
    """
    known = known or {}
    first_sight = first_sight or {}
    rows = []
    for e in entries:
        mine = known.get(e.lead_id, ())
        own = [_naive(r.at) for r in mine if r.source != HistorySource.BACKFILL.value]
        if own and _naive(e.at) > min(own) - _SKEW:
            seen = first_sight.get(e.lead_id)
            if seen is None or not max(own) < _naive(e.at) <= _naive(seen):
                continue
        if any(
            r.source == HistorySource.BACKFILL.value
            and r.field == e.field
            and r.to_value == e.to_value
            and _naive(r.at) == _naive(e.at)
            for r in mine
        ):
            continue
        rows.append(
            _row(
                crm,
                e.lead_id,
                e.field,
                e.from_value,
                e.to_value,
                e.at,
                _ACTORS[e.actor],
                HistorySource.BACKFILL,
                actor_id=e.actor_id if e.actor != "integration" else None,
            )
        )
    return rows


def last_person_edit(
    entries: Sequence[HistoryEntry], status: Any, *, field: str = STATUS
) -> HistoryEntry | None:
    """The lead's latest transition of ``field`` (the status unless named), when a person made
    it and the lead still has the value they set, ``status`` (``entries``: one lead's, any
    order).

    Transitions at the same instant come in no order either CRM promises (Salesforce's
    ``CreatedDate`` is to the second, HubSpot's timestamps to the millisecond): among the latest
    ones, a person's that left the value the lead has is the answer, so a hold is not missed
    for a tie with an import's or a flow's transition."""
    moves = [e for e in entries if e.field == field]
    if not moves:
        return None
    latest = max(e.at for e in moves)
    for e in moves:
        if e.at == latest and e.actor == "person" and same_value(e.to_value, status):
            return e
    return None


def same_value(text: str | None, value: Any) -> bool:
    """Whether a history entry's value (text, as CRMs' field history keeps it) is ``value``
    (the mirror's, typed): a number or a boolean compares as one (Salesforce's ``NewValue`` of
    a number field may read ``7`` where the field reads ``7.0``)."""
    if text is None or value is None:
        return text is None and value is None
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == str(value)


def _naive(at: datetime) -> datetime:
    """Stored times come back naive (UTC) from SQLite and aware from PostgreSQL."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
