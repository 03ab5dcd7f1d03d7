"""``syncd retry``: plan a connector's refused writes again once the admin fixed their cause.

A write the CRM refused for good (a picklist value a record type lacks, a validation rule, a
deleted Campaign) is not sent again until the lead changes in the CRM (``syncd.planner``: the
lead's ``error_at`` is at or after its ``modified_at``). After the admin fixes the cause, a
retry request brings those leads back.

Only the connector's lease holder writes its mirror (``syncd.lease``), so the command never
edits a lead: it queues a ``retry_request`` row (:func:`queue`). The leader applies the pending
requests at the start of its next full cycle (:func:`apply_pending`), in a transaction its lease
token fences: for each lead that matches and was refused since its last change, it clears the
refusal and makes the lead due now, so the cycle plans it again from the current mirror and
rules (a person's edit still holds it, guards and the loop guard still apply; the failed
outbox row is never sent again as it was), writes an audit row saying who asked, and marks the
request applied (when, in which run, how many leads). Retention deletes an applied request
``retention.retry_requests`` after it was applied, never a pending one (``syncd.retention``).

A leader whose idle cycles run on kept answers (``syncd.idle_memo``) asks the store nothing
before its pull, so it learns of a request from its lease renewals instead: each renewal's
statement also returns :func:`pending_column` (``Lease.watch``), and a cycle's kept answers
stand only while it said no. A running daemon therefore applies a request within one lease
renewal period plus one cycle interval (and the rest of a cycle running at the time).
"""

from __future__ import annotations

import getpass
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, insert, select, update
from sqlalchemy.engine import Connection

from syncd.state import AuditOutcome, LeadRow, RetryRequestRow, StateStore, _utc

__all__ = [
    "Applied",
    "Queued",
    "Waiting",
    "apply_pending",
    "pending",
    "pending_column",
    "queue",
    "requester",
    "waiting",
]

log = logging.getLogger("syncd.retry")

_LEAD = LeadRow.__table__
_REQUEST = RetryRequestRow.__table__


@dataclass(frozen=True, slots=True)
class Waiting:
    """A lead whose refused write waits for it to change in the CRM."""

    lead_id: str
    error_code: str
    error_message: str | None
    error_at: datetime


@dataclass(frozen=True, slots=True)
class Queued:
    """A request not applied yet."""

    request_id: int
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    """One request a leader applied."""

    request_id: int
    requested_by: str
    leads: int


def requester() -> str:
    """Who asks: the OS user and host (``alice@ops-1``), like the lease names its holder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container's arbitrary user)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _matching(
    crm: str, codes: Sequence[str] | None, lead_ids: Sequence[str] | None
) -> list[ColumnElement[bool]]:
    """Live leads of ``crm`` refused since their last change, narrowed by codes and ids."""
    where = [
        _LEAD.c.crm == crm,
        _LEAD.c.error_code.is_not(None),
        _LEAD.c.error_at.is_not(None),
        _LEAD.c.modified_at <= _LEAD.c.error_at,
        _LEAD.c.deleted.is_(False),
        _LEAD.c.converted.is_(False),
    ]
    if codes:
        where.append(_LEAD.c.error_code.in_(list(codes)))
    if lead_ids:
        where.append(_LEAD.c.lead_id.in_(list(lead_ids)))
    return where


def waiting(
    store: StateStore,
    crm: str,
    codes: Sequence[str] | None = None,
    lead_ids: Sequence[str] | None = None,
) -> list[Waiting]:
    """The leads a request with these filters would bring back now, by lead id (reads only)."""
    query = (
        select(_LEAD.c.lead_id, _LEAD.c.error_code, _LEAD.c.error_message, _LEAD.c.error_at)
        .where(*_matching(crm, codes, lead_ids))
        .order_by(_LEAD.c.lead_id)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [Waiting(r.lead_id, r.error_code, r.error_message, _utc(r.error_at)) for r in rows]


def queue(
    store: StateStore,
    crm: str,
    *,
    codes: Sequence[str] | None,
    lead_ids: Sequence[str] | None,
    by: str,
    now: datetime,
) -> int:
    """Record a request for the connector's leader; its id. Writes no lead."""
    values = {
        "crm": crm,
        "codes": list(codes) if codes else None,
        "lead_ids": list(lead_ids) if lead_ids else None,
        "requested_by": by[:255],
        "requested_at": now,
    }
    # Bookkeeping for this process: no plan reads the table (the leader's apply writes leads).
    with store.begin(bookkeeping=True) as conn:
        key = conn.execute(insert(_REQUEST).values(**values)).inserted_primary_key
        assert key is not None  # a single-row insert
        return int(key[0])


def pending(store: StateStore, crm: str) -> list[Queued]:
    """``crm``'s requests not applied yet, oldest first (reads only)."""
    query = (
        select(_REQUEST.c.id, _REQUEST.c.requested_by, _REQUEST.c.requested_at)
        .where(_REQUEST.c.crm == crm, _REQUEST.c.applied_at.is_(None))
        .order_by(_REQUEST.c.id)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [Queued(r.id, r.requested_by, _utc(r.requested_at)) for r in rows]


def pending_column(crm: str) -> ColumnElement[bool]:
    """Whether ``crm`` has a request not applied yet, as a column of a select or RETURNING."""
    return exists().where(_REQUEST.c.crm == crm, _REQUEST.c.applied_at.is_(None))


def apply_pending(
    store: StateStore, conn: Connection, crm: str, run_id: str, now: datetime
) -> list[Applied]:
    """Apply ``crm``'s pending requests, oldest first, in the caller's fenced transaction."""
    requests = conn.execute(
        select(_REQUEST)
        .where(_REQUEST.c.crm == crm, _REQUEST.c.applied_at.is_(None))
        .order_by(_REQUEST.c.id)
    ).all()
    done = []
    for request in requests:
        leads = conn.execute(
            select(_LEAD.c.lead_id, _LEAD.c.error_code, _LEAD.c.error_message).where(
                *_matching(crm, request.codes, request.lead_ids)
            )
        ).all()
        ids = [lead.lead_id for lead in leads]
        if ids:
            # The same condition as the read: in this fenced transaction no other process
            # writes these rows. due_at NULL: evaluated at this cycle's plan (syncd.due).
            conn.execute(
                update(_LEAD)
                .where(*_matching(crm, request.codes, request.lead_ids))
                .values(error_code=None, error_message=None, error_at=None, due_at=None)
            )
        store.rows_written["lead"] += len(ids)
        asked = f"retry requested by {request.requested_by} at " + (
            f"{_utc(request.requested_at):%Y-%m-%d %H:%M:%S} UTC (request {request.id})"
        )
        if leads:
            store.add_audit(conn, [_audit_row(crm, lead, asked, run_id, now) for lead in leads])
        conn.execute(
            update(_REQUEST)
            .where(_REQUEST.c.id == request.id)
            .values(applied_at=now, applied_run_id=run_id, applied_leads=len(ids))
        )
        done.append(Applied(request.id, request.requested_by, len(ids)))
    return done


def _audit_row(crm: str, lead: Any, asked: str, run_id: str, now: datetime) -> dict[str, Any]:
    return {
        "crm": crm,
        "lead_id": lead.lead_id,
        "field": "retry",
        "before": None,
        "after": None,
        "rule_id": None,
        "ruleset_version": None,
        "run_id": run_id,
        "intent_id": None,
        "at": now,
        "outcome": AuditOutcome.RETRY_REQUESTED,
        "error_code": lead.error_code,
        "message": f"{asked}; it cleared the refusal {lead.error_code}: "
        f"{lead.error_message or '(no message)'}; the lead is planned again from the current rules",
    }
