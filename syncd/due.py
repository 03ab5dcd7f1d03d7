"""Which mirrored leads a cycle evaluates: the ones whose verdict could have changed.

A lead's verdict (``syncd.planner.Planner.verdict``) is a function of its mirror row, the
rules and their settings, its open outbox rows, the audit (loop guard) and the time. So a
cycle evaluates exactly:

* every lead whose row was written since it was last evaluated: every write of a row's content
  sets ``lead.due_at`` to NULL (``syncd.state.StateStore`` does it in one place: pulls, writes
  confirmed or failed, race restores, quarantine);
* every lead with an open (planned, pending or in-doubt) outbox row: planning reconciles them;
* every lead whose ``due_at`` has come: when it was evaluated, the earliest instant at which
  time alone could change its verdict was stored -- a time-based rule's threshold passing its
  values (``RuleBook.next_change``), a person's edit leaving the hold, and for a lead the loop
  guard holds, the next cycle;
* every live lead when the *planning fingerprint* changed since the store's leads were last
  evaluated: the rule-set version, the calendar, the enrichment and loop-guard settings, the
  connector's settings planning reads (status values, field mapping, hold, lifecycle) and
  syncd's version. The cycle then makes every lead due at once (one UPDATE).

A lead left out is one whose full evaluation would decide exactly what its last evaluation
decided, and that decision left nothing to do (no open row). ``syncd plan`` uses the same
selection, so it shows what the next cycle does; with a draft rule file (another fingerprint)
it evaluates every lead.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from rules import RuleBook
from syncd.plan_read import PLAN_COLUMNS, PlanLead, fetch_plan_leads, plan_columns
from syncd.state import NEVER_DUE, OPEN_STATES, LeadRow, OutboxRow, OutboxState, StateStore

__all__ = [
    "PLAN_COLUMNS",
    "fingerprint_changed",
    "fingerprint_key",
    "iter_plan_rows",
    "planning_fingerprint",
    "record_fingerprint",
    "reset_blocked",
    "stored_due",
]

#: Ids per ``IN (...)`` list: under SQLite's and PostgreSQL's bind-parameter limits.
_ID_CHUNK = 500


@functools.cache
def _version() -> str:
    try:
        return metadata.version("syncd")
    except metadata.PackageNotFoundError:
        return "unknown"


def planning_fingerprint(
    book: RuleBook, settings: BaseModel, enrichment: BaseModel, loop_guard: BaseModel | None
) -> str:
    """A hash of everything besides a lead's row, its outbox rows and the time that a verdict
    depends on. The whole connector settings count (cheap to over-count: a change of an
    unrelated setting costs one evaluation of every lead)."""
    parts: dict[str, Any] = {
        "rules": book.version,
        "calendars": [repr(rs.calendar) for rs in book.sets],
        "connector": settings.model_dump(mode="json", exclude={"interval", "enabled"}),
        "enrichment": enrichment.model_dump(mode="json"),
        "loop_guard": loop_guard.model_dump(mode="json") if loop_guard is not None else None,
        "syncd": _version(),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_key(crm: str) -> str:
    """The meta key of ``crm``'s planning fingerprint."""
    return f"plan_fingerprint:{crm}"


def fingerprint_changed(store: StateStore, crm: str, fingerprint: str) -> bool:
    """Whether the store's due times were computed under another fingerprint."""
    return bool(store.get_meta(fingerprint_key(crm)) != fingerprint)


def record_fingerprint(store: StateStore, crm: str, fingerprint: str) -> bool:
    """Before a cycle plans: when the fingerprint changed, every live lead becomes due and the
    new fingerprint is stored, in one transaction (a cycle stopped halfway leaves the rest
    due). Returns whether it changed."""
    if not fingerprint_changed(store, crm, fingerprint):
        return False
    with store.begin() as conn:
        store.reset_due(conn, crm)
        store.put_meta(conn, fingerprint_key(crm), fingerprint)
    return True


def stored_due(at: datetime | None) -> datetime:
    """``lead.due_at`` for a next-change instant (UTC; naive is taken as UTC): NEVER_DUE for
    none."""
    if at is None:
        return NEVER_DUE
    aware = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return min(aware, NEVER_DUE)


def reset_blocked(store: StateStore, conn: Connection, crm: str, run_id: str) -> None:
    """The breaker blocked a run's plan: its leads are due again, to be planned anew."""
    table = OutboxRow.__table__
    leads = conn.execute(
        select(table.c.lead_id)
        .where(
            table.c.crm == crm,
            table.c.run_id == run_id,
            table.c.state == OutboxState.BLOCKED,
        )
        .distinct()
    ).scalars()
    store.reset_due(conn, crm, list(leads))


def open_lead_ids(store: StateStore, crm: str) -> list[str]:
    """Leads with open outbox rows, sorted."""
    with store.reading() as conn:
        return sorted(store.lead_ids_in_states(conn, crm, OPEN_STATES))


def iter_plan_rows(
    store: StateStore, crm: str, now: datetime, *, every: bool, chunk: int = 2000
) -> Iterator[list[PlanLead]]:
    """The live, unconverted leads a cycle at ``now`` evaluates (every one with ``every``), in
    chunks, as light records of :data:`PLAN_COLUMNS` (``syncd.plan_read``): leads with open
    outbox rows first, then the ones never evaluated since their last write (by id), then the
    ones come due (by due time).

    Each part pages by keyset; evaluating a lead moves its due time past ``now``, out of the
    part being read, so rows written while the caller works through a chunk are not seen twice.
    """
    t = LeadRow.__table__
    cols = plan_columns()
    live = (t.c.crm == crm, t.c.deleted.is_(False), t.c.converted.is_(False))
    if every:
        yield from _by_id(store, cols, live, chunk)
        return
    opened = open_lead_ids(store, crm)
    for start in range(0, len(opened), _ID_CHUNK):
        with store.reading() as conn:
            rows = fetch_plan_leads(
                conn,
                select(*cols)
                .where(*live, t.c.lead_id.in_(opened[start : start + _ID_CHUNK]))
                .order_by(t.c.lead_id),
            )
        yield rows
    skip = set(opened)
    for rows in _by_id(store, cols, (*live, t.c.due_at.is_(None)), chunk):
        yield [r for r in rows if r.lead_id not in skip]
    due_by = stored_due(now)
    last: tuple[datetime, str] | None = None
    while True:
        stmt = select(*cols).where(*live, t.c.due_at <= due_by)
        if last is not None:
            stmt = stmt.where(
                or_(t.c.due_at > last[0], and_(t.c.due_at == last[0], t.c.lead_id > last[1]))
            )
        with store.reading() as conn:
            rows = fetch_plan_leads(conn, stmt.order_by(t.c.due_at, t.c.lead_id).limit(chunk))
        if not rows:
            return
        yield [r for r in rows if r.lead_id not in skip]
        tail = rows[-1]
        assert tail.due_at is not None  # selected by due_at <= due_by
        last = (tail.due_at, tail.lead_id)


def _by_id(
    store: StateStore, cols: Sequence[Any], where: Sequence[Any], chunk: int
) -> Iterator[list[PlanLead]]:
    t = LeadRow.__table__
    last = ""
    while True:
        with store.reading() as conn:
            rows = fetch_plan_leads(
                conn,
                select(*cols).where(*where, t.c.lead_id > last).order_by(t.c.lead_id).limit(chunk),
            )
        if not rows:
            return
        yield rows
        last = rows[-1].lead_id


def hold_expiry(rep_edit_at: datetime | None, hold: timedelta, now: datetime) -> datetime | None:
    """When a person's edit stops holding the lead (``syncd.holds``), if after ``now``."""
    if rep_edit_at is None:
        return None
    edited = rep_edit_at if rep_edit_at.tzinfo is not None else rep_edit_at.replace(tzinfo=UTC)
    try:
        until = edited + hold
    except OverflowError:
        return None
    return until if until > now else None
