"""Whether a cycle has anything to plan or send, asked of the store in one statement.

A cycle's plan step reads, each in its own statement, the stored planning fingerprint
(``syncd.due``), the leads with open outbox rows, the leads never evaluated since their last
write, the leads come due, and then counts the held and blocked leads; the drain then reads the
due outbox rows of each kind. On an idle cycle every one of those reads finds nothing, and on
PostgreSQL each is a round trip to the server: most of an idle cycle's time there.

:func:`probe` asks all of it at once (scalar subqueries, each an index probe or an indexed
count, the same ones the separate reads use). When it finds nothing to evaluate and no open
outbox row (:meth:`PlanProbe.idle`), the cycle plans and sends nothing, exactly as the separate
reads would have concluded, and reports the held and blocked counts the probe read (nothing
was evaluated, so nothing changed them). Otherwise the cycle goes on as before; the probe cost
it one statement.

A cycle asks it with its run's start (``syncd.run_books``), before the pull, and uses that
answer when nothing was written to the store in between (an idle pull writes nothing before
the run's end): then nothing the probe reads can have changed, bar another process's write in
those milliseconds, which the next cycle sees. The probe also reads the earliest instant at which
time alone changes its answer (the first due time, the first hold to end): until then a leader
may keep an idle answer for its next cycles (``syncd.idle_memo``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, exists, select

from syncd.business_clock import aware
from syncd.due import fingerprint_key, stored_due
from syncd.state import NEVER_DUE, OPEN_STATES, LeadRow, MetaRow, OutboxRow, StateStore

__all__ = ["PlanProbe", "columns", "from_row", "probe"]


@dataclass(frozen=True, slots=True)
class PlanProbe:
    fingerprint: str | None  # the fingerprint the stored due times were computed under
    open_changes: bool  # an outbox row planned, pending or in doubt
    never_evaluated: bool  # a live lead written since its last evaluation (due_at NULL)
    come_due: bool  # a live lead whose due time has come
    held: int
    blocked: int
    first_due: datetime | None = None  # the earliest due time of a live lead (UTC)
    first_hold_edit: datetime | None = None  # the earliest person's edit still holding a lead

    def idle(self, fingerprint: str) -> bool:
        """Nothing to evaluate under ``fingerprint`` and nothing in the outbox to send."""
        return self.fingerprint == fingerprint and not (
            self.open_changes or self.never_evaluated or self.come_due
        )

    def changes_at(self, hold: timedelta) -> datetime:
        """The earliest instant at which time alone may change this answer: a lead comes due,
        or a hold ends (``hold``: ``hold_rep_edits_for``); far in the future when neither."""
        ends = [NEVER_DUE]
        if self.first_due is not None:
            ends.append(self.first_due)
        if self.first_hold_edit is not None:
            ends.append(self.first_hold_edit + hold)
        return min(ends)


def columns(
    store: StateStore, crm: str, *, now: datetime, held_since: datetime
) -> list[ColumnElement[Any]]:
    """The probe's answers as the columns of a select: ``probe`` reads them alone,
    ``syncd.run_books.start`` with the run's start (:func:`from_row` reads them back)."""
    lead, outbox, meta = LeadRow.__table__, OutboxRow.__table__, MetaRow.__table__
    live = (lead.c.crm == crm, lead.c.deleted.is_(False), lead.c.converted.is_(False))
    held, blocked = store.held_and_blocked_counts(crm, held_since)

    def first(column: Any, *where: ColumnElement[bool]) -> Any:
        # The top of an index (ix_lead_due, ix_lead_rep_edit), not ``min()``: PostgreSQL
        # answers min from an index only in a query without ``WITH`` clauses, and the run's
        # start carries one (see syncd.run_books).
        query = select(column).where(*live, column.is_not(None), *where)
        return query.order_by(column).limit(1).scalar_subquery()

    return [
        select(meta.c.value).where(meta.c.key == fingerprint_key(crm)).scalar_subquery(),
        exists().where(outbox.c.crm == crm, outbox.c.state.in_(OPEN_STATES)),
        exists().where(*live, lead.c.due_at.is_(None)),
        exists().where(*live, lead.c.due_at <= stored_due(now)),
        held,
        blocked,
        first(lead.c.due_at),
        first(lead.c.rep_edit_at, lead.c.rep_edit_at > held_since),
    ]


def from_row(values: Sequence[object]) -> PlanProbe:
    """The :class:`PlanProbe` of the values the :func:`columns` read, in their order."""
    stored, open_changes, never, come_due, n_held, n_blocked, due, edit = values
    return PlanProbe(
        fingerprint=None if stored is None else json.loads(str(stored)),
        open_changes=bool(open_changes),
        never_evaluated=bool(never),
        come_due=bool(come_due),
        held=int(cast(int, n_held)),
        blocked=int(cast(int, n_blocked)),
        first_due=_aware(due),
        first_hold_edit=_aware(edit),
    )


def _aware(value: object) -> datetime | None:
    """A DateTime column's value, UTC when SQLite forgot its zone."""
    assert value is None or isinstance(value, datetime)
    return None if value is None else aware(value)


def probe(store: StateStore, crm: str, *, now: datetime, held_since: datetime) -> PlanProbe:
    """What :class:`PlanProbe` says of ``crm`` at ``now`` (held: edited after ``held_since``)."""
    query = select(*columns(store, crm, now=now, held_since=held_since))
    with store.reading() as conn:
        return from_row(tuple(conn.execute(query).one()))
