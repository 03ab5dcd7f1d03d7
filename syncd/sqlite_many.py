"""Executemany on SQLite without SQLAlchemy's per-row parameter work.

A changing cycle writes its rows in a handful of executemany statements (mirror upserts and
updates, outbox, audit and ledger rows, due times): some 100,000 rows in a 1 % cycle at a
million leads. For every row of an executemany SQLAlchemy builds a dictionary of all the
statement's parameters (``construct_params``) and then a positional list from it, on top of the
column types' own conversions; that bookkeeping cost more than SQLite's own work on the row
(cProfile of a cycle writing 18,000 changes).

:class:`ManyStatements` compiles a statement once per set of row keys, as SQLAlchemy would for
the same call, and keeps what the compiled form says: the SQL text, the order of its positional
parameters, each parameter's bind processor (the column type's conversion: JSON text,
datetimes, enums) and the values bound into the statement itself; a UTC datetime, some twenty
per changed lead, is turned into its text in one step (``_utc_datetime``). A call then builds each
row's parameter tuple directly and hands the list to the driver's ``executemany``. What is
stored is what ``conn.execute(statement, rows)`` stores: the same SQL, the same processors on
the same values. A statement SQLAlchemy would give more (Python-side column defaults for keys
the rows lack, expanding parameters) runs through ``conn.execute`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ClauseElement
from sqlmodel.sql.sqltypes import UTCDateTime

__all__ = ["ManyStatements"]

_RowParams = Callable[[Mapping[str, Any]], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    params: _RowParams  # one row's positional parameters


def _row_params(slots: Sequence[tuple[str | None, Any]]) -> _RowParams:
    """A function giving one row's parameter tuple: per slot, ``(key, processor or None)`` for
    a value of the row, ``(None, value)`` for a value of the statement.

    Written out as one expression (``lambda row: (p0(row['a']), row['b'], c2)``) and compiled
    once per statement: a call per value, or a loop over slots, would cost as much again as
    the tuple itself for rows of twenty values. Keys enter the text through ``repr`` only;
    processors and constants are bound as names, never as text."""
    names: dict[str, Any] = {}
    parts: list[str] = []
    for n, (key, given) in enumerate(slots):
        if key is None:
            names[f"c{n}"] = given
            parts.append(f"c{n}")
        elif given is None:
            parts.append(f"row[{key!r}]")
        else:
            names[f"p{n}"] = given
            parts.append(f"p{n}(row[{key!r}])")
    source = f"lambda row: ({', '.join(parts)},)"
    scope = {"__builtins__": {}, **names}  # the lambda's globals: its processors, constants
    made: _RowParams = eval(source, scope)  # the text is built above from keys' repr
    return made


_SAMPLES = (datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


def _utc_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


def _utc_datetime(process: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    """The processor of a UTC datetime column (sqlmodel's ``UTCDateTime`` over the store's
    ``FastDateTime``: ``astimezone(UTC)``, then ISO text) taking a short cut for values already
    in UTC, the store's own; None unless it gives the processor's text for them."""
    if any(process(sample) != _utc_text(sample) for sample in _SAMPLES):
        return None

    def fused(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return _utc_text(value)
        return process(value)

    return fused


def _plan(conn: Connection, stmt: ClauseElement, keys: Sequence[str]) -> _Plan | None:
    """The statement compiled for rows of ``keys``, or None where SQLAlchemy adds per-row work
    of its own (defaults computed in Python, expanding or literal-execute parameters)."""
    compiled: Any = stmt.compile(dialect=conn.dialect, column_keys=list(keys), for_executemany=True)
    if (
        not compiled.positional
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.positiontup is None
    ):
        return None
    processors = compiled._bind_processors  # noqa: SLF001 - what SQLAlchemy applies per row
    bound = compiled.construct_params(_check=False)  # values the statement itself carries
    names = set(keys)
    slots: list[tuple[str | None, Any]] = []
    for name in compiled.positiontup:
        process = processors.get(name)
        if isinstance(process, tuple):
            return None  # tuple-typed parameters: not in the store's statements
        if process is not None and isinstance(compiled.binds[name].type, UTCDateTime):
            process = _utc_datetime(process) or process
        if name in names:
            slots.append((name, process))
        else:
            value = bound.get(name)
            slots.append((None, value if process is None else process(value)))
    return _Plan(compiled.string, _row_params(slots))


class ManyStatements:
    """Executemany of named statements, each compiled once per set of row keys."""

    def __init__(self) -> None:
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan | None] = {}

    def run(
        self,
        conn: Connection,
        name: str,
        build: Callable[[], Executable],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """Run the statement ``build`` makes (the same for one ``name``) once per row; every row
        has the keys of the first (``StateStore`` gives them the same keys)."""
        if not rows:
            return
        keys = tuple(rows[0])
        cache_key = (name, keys)
        if cache_key in self._plans:
            plan = self._plans[cache_key]
            stmt: Executable | None = None
        else:
            stmt = build()
            plan = self._plans[cache_key] = (
                _plan(conn, stmt, keys)
                if conn.dialect.name == "sqlite" and isinstance(stmt, ClauseElement)
                else None
            )
        if plan is None:
            conn.execute(stmt if stmt is not None else build(), list(rows))
            return
        try:
            params = list(map(plan.params, rows))
        except Exception as exc:
            # As SQLAlchemy reports a value its column type refuses (a naive datetime, say);
            # the parameters are left out of the message, as they may hold personal data.
            kind = type(exc)
            raise StatementError(
                f"({kind.__module__}.{kind.__name__}) {exc}", plan.sql, None, exc
            ) from exc
        conn.exec_driver_sql(plan.sql, params)
