"""A cycle's run bookkeeping at its start and end, each one statement on PostgreSQL.

A cycle starts by recording its run row, then asks whether the outbox holds plans or writes in
doubt and where the pull stopped last (the cursor); it ends by recording how the run ended, and
the funnel KPIs (``syncd.kpi``) then ask whether the status ledger grew. On an idle cycle that
is most of what the state store is asked, and on PostgreSQL every statement is a round trip:

* :func:`start` sends the run's insert as a data-modifying ``WITH`` of the select that reads
  both answers (https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING),
  and the plan step's probe with them (``syncd.plan_probe``);
* :func:`finish` sends the run's final update, and the cursor an empty pull page moved (the
  pipeline keeps it until then: nothing reads it in between), as ``WITH`` clauses of the select
  of the ledger's newest id.

A leader's idle cycle may skip the start (``syncd.idle_memo``): the run's row is then written
whole by :func:`finish`, or with the first page its pull stores (:func:`record_started`); one
that wrote nothing at all ends with :func:`finish_quiet`, the run's insert and the cursor
alone, without the ledger read (its mark is the kept one).

A ``WITH`` clause runs to completion whether or not the select reads it, and the select sees
the tables as they were before the statement (neither reads a table the other writes). SQLite
has no data-modifying ``WITH`` and no round trip to save: the same statements in one
transaction each. Either way the statement commits all of it or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from syncd.state import CursorRow, OutboxRow, OutboxState, RunRow, StateStore, StatusHistoryRow

__all__ = ["RunStart", "finish", "finish_quiet", "record_started", "start"]

#: (modified_at, record_id, read_at), as ``StateStore.cursor`` gives it.
Position = tuple[datetime, str, datetime | None]


@dataclass(frozen=True, slots=True)
class RunStart:
    present: frozenset[OutboxState]  # the asked states ``crm``'s outbox has a row in
    cursor: Position | None  # the stored position of the lead pull, if any
    also: tuple[object, ...]  # the values of the ``also`` columns, in their order


def start(
    store: StateStore,
    run: RunRow,
    states: Sequence[OutboxState],
    also: Sequence[ColumnElement[Any]] = (),
) -> RunStart:
    """Insert ``run`` and read which of ``states`` its CRM's outbox holds, its cursor and the
    ``also`` columns (``syncd.plan_probe.columns``)."""
    outbox, cursor = OutboxRow.__table__, CursorRow.__table__
    crm = run.crm
    probes = [exists().where(outbox.c.crm == crm, outbox.c.state == s) for s in states]
    here = (cursor.c.crm == crm, cursor.c.object == "lead")
    position = [
        select(c).where(*here).scalar_subquery()
        for c in (cursor.c.modified_at, cursor.c.record_id, cursor.c.read_at)
    ]
    query = select(*probes, *position, *also)
    insert = RunRow.__table__.insert().values(**run.model_dump())
    try:
        # The run row is bookkeeping no plan reads: another connector's idle cycles must not
        # end this one's kept answers (syncd.idle_memo).
        if store.engine.dialect.name == "postgresql":
            with store.writing_one(bookkeeping=True) as conn:
                row = conn.execute(query.add_cte(insert.cte("started"))).one()
        else:
            with store.begin(bookkeeping=True) as conn:
                conn.execute(insert)
                row = conn.execute(query).one()
    except SQLAlchemyError:
        # The reads failed with the insert (a table gone, say): the run row must still say why
        # the cycle failed, wherever the store can be written.
        with suppress(SQLAlchemyError):
            store.start_run(run)
        raise
    values: tuple[object, ...] = tuple(row)
    found = values[: len(states)]
    modified_at, record_id, read_at = values[len(states) : len(states) + 3]
    stored = None
    if record_id is not None:
        assert isinstance(modified_at, datetime)  # the column is NOT NULL
        assert read_at is None or isinstance(read_at, datetime)
        stored = (_utc(modified_at), str(record_id), _opt_utc(read_at))
    return RunStart(
        present=frozenset(s for s, yes in zip(states, found, strict=True) if yes),
        cursor=stored,
        also=values[len(states) + 3 :],
    )


def record_started(conn: Any, run: RunRow) -> None:
    """Insert ``run``'s row in the caller's transaction: a cycle on kept answers
    (``syncd.idle_memo``) does so with the first page its pull stores."""
    conn.execute(RunRow.__table__.insert().values(**run.model_dump()))


def finish(
    store: StateStore,
    run: RunRow,
    cursor: Position | None,
    now: datetime,
    *,
    started: bool = True,
) -> int | None:
    """Record how ``run`` ended and, when given, the pull's ``cursor`` (saved at ``now``);
    return the status ledger's newest row id (0 when empty): the KPIs' mark of its growth.
    ``started=False``: the run's row may not exist yet (a cycle on kept answers,
    ``syncd.idle_memo``, writes it first here, whole).

    When that fails, the run alone is recorded and None returned (the next pull reads from the
    cursor saved before: nothing is lost).

    Raises:
        SQLAlchemyError: not even the run could be recorded.
    """
    try:
        return _finish(store, run, cursor, now, started=started)
    except SQLAlchemyError:
        if started:
            store.finish_run(run)
        else:
            with store.writing_one() as conn:
                conn.execute(_ending(store.engine.dialect.name, False, False), _run_values(run))
        return None


def finish_quiet(store: StateStore, run: RunRow, cursor: Position | None, now: datetime) -> None:
    """Record ``run``, which wrote nothing and whose row no page inserted (a cycle on kept
    answers that stayed idle: ``syncd.idle_memo``), with the pull's ``cursor`` when given (saved
    at ``now``): one statement on PostgreSQL, and no read of the ledger.

    When that fails, the run alone is recorded (the next pull reads from the cursor saved
    before: nothing is lost).

    Raises:
        SQLAlchemyError: not even the run could be recorded.
    """
    values = _run_values(run)
    dialect = store.engine.dialect.name
    try:
        if cursor is None:
            with store.writing_one(bookkeeping=True) as conn:
                conn.execute(_RUN_INSERTED, values)
            return
        values.update(_cursor_values(run.crm, cursor, now))
        if dialect == "postgresql":
            ending = _quiet_ending(dialect)
            if not store.write_bookkeeping_directly(ending, values):
                with store.writing_one(bookkeeping=True) as conn:
                    conn.execute(ending, values)
            return
        with store.begin(bookkeeping=True) as conn:
            conn.execute(_cursor_saved(dialect), values)
            conn.execute(_RUN_INSERTED, values)
    except SQLAlchemyError:
        with store.writing_one() as conn:
            conn.execute(_ending(dialect, False, False), _run_values(run))


def _finish(
    store: StateStore, run: RunRow, cursor: Position | None, now: datetime, *, started: bool
) -> int:
    dialect = store.engine.dialect.name
    values = _run_values(run)
    if cursor is not None:
        values.update(_cursor_values(run.crm, cursor, now))
    if dialect == "postgresql":
        with store.writing_one(bookkeeping=True) as conn:
            ending = _ending(dialect, started, cursor is not None)
            return int(conn.execute(ending, values).scalar_one())
    with store.begin(bookkeeping=True) as conn:
        if cursor is not None:
            conn.execute(_cursor_saved(dialect), values)
        conn.execute(_run_recorded(dialect, started), values)
        return int(conn.execute(_LEDGER_MARK).scalar_one())


# The run's end is the one statement of an idle cycle on kept answers (syncd.idle_memo), so its
# statements are built once with their values as parameters: built anew with the values in
# them, as before, SQLAlchemy spent about 2 ms of CPU a cycle constructing them and computing
# their cache keys (on PostgreSQL the run's upsert and the cursor's as WITH clauses), a third of
# such a cycle. A statement object keeps its cache key; the compiled form is then cached.

_RUN = RunRow.__table__
_CURSOR = CursorRow.__table__


def _run_values(run: RunRow) -> dict[str, Any]:
    return {f"run_{k}": v for k, v in run.model_dump().items()}


def _cursor_values(crm: str, cursor: Position, now: datetime) -> dict[str, Any]:
    return {
        "cursor_crm": crm,
        "cursor_object": "lead",
        "cursor_modified_at": cursor[0],
        "cursor_record_id": cursor[1],
        "cursor_read_at": cursor[2],
        "cursor_updated_at": now,
    }


def _params(table: Any, prefix: str) -> dict[str, Any]:
    return {c.name: bindparam(f"{prefix}_{c.name}", type_=c.type) for c in table.columns}


@cache
def _run_recorded(dialect: str, started: bool) -> Any:
    """``started``: the run's row updated; else inserted whole, or updated when a stored page
    already inserted it (``record_started``)."""
    params = _params(_RUN, "run")
    if started:
        del params["run_id"]
        return update(_RUN).where(_RUN.c.run_id == bindparam("run_run_id")).values(params)
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(_RUN).values(params)
    return insert.on_conflict_do_update(
        index_elements=[_RUN.c.run_id],
        set_={c: insert.excluded[c] for c in params if c != "run_id"},
    )


_RUN_INSERTED = _RUN.insert().values(_params(_RUN, "run"))


@cache
def _quiet_ending(dialect: str) -> Any:
    """On PostgreSQL a quiet run's end in one statement: the cursor's upsert with the run's
    insert as a data-modifying ``WITH`` clause."""
    return _cursor_saved(dialect).add_cte(_RUN_INSERTED.cte("finished"))


@cache
def _cursor_saved(dialect: str) -> Any:
    """``StateStore.cursor_upsert``'s statement, its values as parameters."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(_CURSOR)
    insert = insert.values(_params(_CURSOR, "cursor"))
    kept = ("modified_at", "record_id", "read_at", "updated_at")
    return insert.on_conflict_do_update(
        index_elements=[_CURSOR.c.crm, _CURSOR.c.object],
        set_={c: insert.excluded[c] for c in kept},
    )


# The newest id as the top of its primary key, not ``max(id)``: PostgreSQL answers a bare
# min/max from an index only in a query without ``WITH`` clauses (planagg.c rejects any query
# with a CTE list), and on PostgreSQL the select carries the run's and the cursor's; ``max``
# would then scan the whole ledger on every cycle. The subquery has none of its own: one index
# probe.
_NEWEST = StatusHistoryRow.__table__.c.id
_LEDGER_MARK = select(
    func.coalesce(select(_NEWEST).order_by(_NEWEST.desc()).limit(1).scalar_subquery(), 0)
)


@cache
def _ending(dialect: str, started: bool, with_cursor: bool) -> Any:
    """On PostgreSQL the run's end in one statement: the run's row and the cursor as
    data-modifying ``WITH`` clauses of the ledger mark's select. Elsewhere the run's row."""
    if dialect != "postgresql":
        return _run_recorded(dialect, started)
    query = _LEDGER_MARK.add_cte(_run_recorded(dialect, started).cte("finished"))
    if with_cursor:
        query = query.add_cte(_cursor_saved(dialect).cte("saved_cursor"))
    return query


def _utc(value: datetime) -> datetime:
    """SQLite forgets time zones; everything syncd stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)
