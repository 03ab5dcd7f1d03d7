"""One PostgreSQL write sent by psycopg itself, past SQLAlchemy's execution path.

An idle cycle on kept answers (``syncd.idle_memo``) sends the state store a single statement:
the quiet run's row and the pull's cursor (``syncd.run_books.finish_quiet``). Measured on
loopback (2 cores, 2026-12-02, median of 2,700 calls), that statement took 0.42 ms through
``Connection.execute`` in autocommit and 0.28 ms as psycopg's own ``execute`` on a connection of
the same pool; the server's work is under 0.1 ms of either. The difference is SQLAlchemy's per
statement path: the compiled-cache lookup, parameter processing, the result object, and the
autocommit switch its ``isolation_level`` execution option makes at every checkout and undoes
at every checkin. In an idle cycle of 2.3-2.6 ms that is the difference between PostgreSQL at
1.13 x SQLite and within 1.1 x (docs/benchmarks.md, §8: 1.04 x since).

What the statement keeps from SQLAlchemy: the pool (the same connections, checked out and in as
any other), its SQL text as SQLAlchemy's PostgreSQL dialect compiles it (once per statement),
its parameters' bind processors (``UTCDateTime`` refusing a naive datetime), errors raised as SQLAlchemy's ``DBAPIError`` subclasses (callers catching ``SQLAlchemyError``
still do), and a connection the server dropped is discarded, not returned to the pool. What it
does not keep: the engine's statement events (``before_cursor_execute``) do not see it; libpq's
own trace does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.base import Executable

__all__ = ["DirectWriter"]


class DirectWriter:
    """Sends single write statements to a PostgreSQL engine's pool in autocommit via psycopg."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            raise ValueError(f"DirectWriter needs postgresql+psycopg, not {engine.url.drivername}")
        self._engine = engine
        # By statement identity (the statement kept beside it: an id is reused once freed).
        self._compiled: dict[int, tuple[Executable, tuple[str, dict[str, Any]]]] = {}

    def compiled(self, statement: Executable) -> tuple[str, dict[str, Callable[[Any], Any]]]:
        """``statement`` compiled by the engine's dialect, with named ``%(name)s`` parameters,
        and the bind processors of its parameters that have one (``UTCDateTime``'s check that a
        datetime is aware, and its conversion to UTC), as SQLAlchemy's execution applies them.

        Raises:
            ValueError: the statement needs what only SQLAlchemy's execution gives it, such as a
                parameter expanded at execution (``IN``).
        """
        known = self._compiled.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        dialect = self._engine.dialect
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        sql = str(compiled)
        if compiled.positional or "POSTCOMPILE" in sql:
            raise ValueError("the statement needs SQLAlchemy's execution")
        processors = {}
        for name, bind in compiled.binds.items():
            if bind.expanding:
                raise ValueError(f"parameter {name!r} needs SQLAlchemy's execution")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self._compiled[id(statement)] = (statement, (sql, processors))
        return sql, processors

    def write(self, statement: Executable, values: Mapping[str, Any]) -> None:
        """Send ``statement`` (one, atomic on its own) with ``values`` in autocommit.

        Raises:
            sqlalchemy.exc.StatementError: a value its parameter's type refuses, or psycopg's
                error (a ``DBAPIError``), as SQLAlchemy's execution would raise them.
        """
        sql, processors = self.compiled(statement)
        params = dict(values)
        try:
            for name, process in processors.items():
                params[name] = process(params[name])
        except (TypeError, ValueError) as exc:  # as SQLAlchemy's execution reports it
            raise StatementError(str(exc), sql, params, exc) from exc
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        raw = self._engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None  # a checked-out connection has one
            try:
                driver.autocommit = True
                try:
                    driver.execute(sql, params).close()
                finally:
                    if not (driver.closed or driver.broken):
                        driver.autocommit = False  # as the pool hands connections out
            except dbapi_error as exc:
                dropped = self._engine.dialect.is_disconnect(exc, driver, None)
                if dropped or driver.autocommit:
                    raw.invalidate(exc)  # not back to the pool dropped or still in autocommit
                raise DBAPIError.instance(
                    sql, params, exc, dbapi_error, connection_invalidated=dropped
                ) from exc
        finally:
            raw.close()
