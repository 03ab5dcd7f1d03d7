"""Retention: old audit, run, finished outbox and applied retry rows go in small batches.

Without it every table grows for ever (at a million leads with 1 % changing every 5 minutes,
about a million audit and outbox rows a day). What goes, per ``retention:`` setting:

* ``audit``: rows older than ``retention.audit`` (default 180 days, never under 90). The audit is
  what undoing a change and reporting read: ``syncd revert`` needs the value a change replaced,
  and a quarter's figures are looked at weeks after it ends. 90 days is the undo window below
  which a bad rule found at quarter's end could no longer be reverted; 180 covers a quarter plus
  the following review.
* ``run``: finished run rows older than ``retention.runs`` (default 180 days, as the audit, so
  ``syncd audit --run`` finds the run of every audit row kept). A running run is never deleted.
* ``outbox``: rows that ended (done, failed, superseded, withdrawn, blocked) longer ago than
  ``retention.outbox`` (default 30 days; the audit keeps their history). Never a ``planned`` or
  ``pending`` row, and never a finished row of an intent that still has one: planning reads the
  delivered parts of an open intent to finish it whole.
* ``retry_request``: ``syncd retry`` requests applied longer ago than ``retention.retry_requests``
  (default 180 days, as the audit, whose ``retry_requested`` rows name the request and who asked).
  A pending request is never deleted, however old: the connector's leader has yet to apply it.

How: rows are visited in id order, ``batch_rows`` ids per transaction, and the rows among them
past the cutoff deleted; ids grow with time, so a walk stops at the first batch that reaches
rows newer than the cutoff and never reads the retained part of a table. A pass stops after
``max_seconds`` or a stop request, between batches; the next pass goes on. ``dry_run`` walks the
same batches and counts instead of deleting, so it reports exactly what a pass would delete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from syncd.settings import RetentionSettings
from syncd.state import (
    OPEN_STATES,
    AuditRow,
    OutboxRow,
    OutboxState,
    RetryRequestRow,
    RunRow,
    _utc,
)

__all__ = ["FINISHED_STATES", "Pruned", "prune"]

log = logging.getLogger("syncd.retention")

#: Outbox states that end a row; only these are ever pruned.
FINISHED_STATES = (
    OutboxState.DONE,
    OutboxState.FAILED,
    OutboxState.SUPERSEDED,
    OutboxState.WITHDRAWN,
    OutboxState.BLOCKED,
)


@dataclass(frozen=True, slots=True)
class Pruned:
    table: str
    cutoff: datetime  # rows older than this go
    rows: int  # deleted (or, in a dry run, that would be)
    complete: bool  # False: the pass stopped early (time bound or stop); the next goes on


def prune(
    engine: Engine,
    settings: RetentionSettings,
    now: datetime,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    max_seconds: float | None = None,
    pause: float = 0.0,
    on_batch: Callable[[str, int], None] | None = None,
) -> list[Pruned]:
    """Delete (or with ``dry_run`` count) what retention lets go, table by table.

    ``max_seconds`` bounds the pass (default: the setting; 0 for no bound);
    ``pause`` sleeps between batches so a cycle waiting for the database gets in.
    """
    limit = settings.max_seconds if max_seconds is None else max_seconds
    deadline = time.monotonic() + limit if limit else None
    walk = _Walk(
        engine,
        settings.batch_rows,
        dry_run=dry_run,
        stop=stop,
        deadline=deadline,
        pause=pause,
        on_batch=on_batch,
    )
    audit = AuditRow.__table__
    outbox = OutboxRow.__table__
    run = RunRow.__table__
    retry = RetryRequestRow.__table__
    results = []

    cutoff = now - settings.audit
    results.append(walk.by_id("audit", audit, audit.c.at, cutoff, audit.c.at < cutoff))

    cutoff = now - settings.outbox
    sibling = outbox.alias("sibling")
    open_sibling = exists().where(
        sibling.c.intent_id == outbox.c.intent_id, sibling.c.state.in_(OPEN_STATES)
    )
    results.append(
        walk.by_id(
            "outbox",
            outbox,
            outbox.c.created_at,
            cutoff,
            and_(outbox.c.state.in_(FINISHED_STATES), outbox.c.updated_at < cutoff, ~open_sibling),
        )
    )

    cutoff = now - settings.runs
    results.append(
        walk.small_table(
            "run",
            run,
            run.c.run_id,
            and_(run.c.started_at < cutoff, run.c.outcome != "running"),
            cutoff,
        )
    )

    cutoff = now - settings.retry_requests
    results.append(
        walk.small_table(
            "retry_request",
            retry,
            retry.c.id,
            # applied_at NULL (pending) never matches: the leader has yet to apply the request.
            and_(retry.c.applied_at.is_not(None), retry.c.applied_at < cutoff),
            cutoff,
        )
    )
    return results


class _Walk:
    def __init__(
        self,
        engine: Engine,
        batch: int,
        *,
        dry_run: bool,
        stop: threading.Event | None,
        deadline: float | None,
        pause: float,
        on_batch: Callable[[str, int], None] | None,
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.dry_run = dry_run
        self.stop = stop
        self.deadline = deadline
        self.pause = pause
        self.on_batch = on_batch

    def _out_of_time(self) -> bool:
        return bool(
            (self.stop is not None and self.stop.is_set())
            or (self.deadline is not None and time.monotonic() >= self.deadline)
        )

    def _apply(self, conn: Any, table: Any, where: ColumnElement[bool]) -> int:
        if self.dry_run:
            return int(
                conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
            )
        return int(conn.execute(delete(table).where(where)).rowcount or 0)

    def _done_batch(self, name: str, n: int) -> None:
        if n and self.on_batch is not None and not self.dry_run:
            self.on_batch(name, n)
        if self.pause:
            time.sleep(self.pause)

    def by_id(
        self, name: str, table: Any, stamp: Any, cutoff: datetime, where: ColumnElement[bool]
    ) -> Pruned:
        """Batches of ``batch`` ids from the oldest, until one reaches ``stamp >= cutoff``."""
        total, last = 0, None
        while True:
            if self._out_of_time():
                return Pruned(name, cutoff, total, complete=False)
            with self.engine.begin() as conn:
                query = select(table.c.id, stamp).order_by(table.c.id).limit(self.batch)
                if last is not None:
                    query = query.where(table.c.id > last)
                rows = conn.execute(query).all()
                if not rows:
                    return Pruned(name, cutoff, total, complete=True)
                first, last = rows[0][0], rows[-1][0]
                n = self._apply(conn, table, and_(table.c.id >= first, table.c.id <= last, where))
            total += n
            self._done_batch(name, n)
            if any(_utc(r[1]) >= cutoff for r in rows):
                return Pruned(name, cutoff, total, complete=True)  # reached the kept rows

    def small_table(
        self, name: str, table: Any, key: Any, where: ColumnElement[bool], cutoff: datetime
    ) -> Pruned:
        """A table of a few rows per cycle (``run``) or per operator's command
        (``retry_request``): batches of matching keys."""
        total = 0
        while True:
            if self._out_of_time():
                return Pruned(name, cutoff, total, complete=False)
            with self.engine.begin() as conn:
                if self.dry_run:
                    total = self._apply(conn, table, where)
                    return Pruned(name, cutoff, total, complete=True)
                keys = select(key).where(where).limit(self.batch).scalar_subquery()
                n = int(conn.execute(delete(table).where(key.in_(keys))).rowcount or 0)
            total += n
            self._done_batch(name, n)
            if n < self.batch:
                return Pruned(name, cutoff, total, complete=True)
