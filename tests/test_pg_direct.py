"""The idle cycle's one statement on PostgreSQL goes by psycopg itself (``syncd.pg_direct``): it
writes what SQLAlchemy's execution writes, refuses what SQLAlchemy refuses with SQLAlchemy's
errors, and hands its connection back to the pool as the pool hands them out, or not at all
when the server dropped it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from syncd import run_books
from syncd.pg_direct import DirectWriter
from syncd.state import CursorRow, RunRow, StateStore
from tests.pgdb import empty_database

T0 = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    store = StateStore(empty_database(postgres_url, "syncd_direct"), auto_upgrade=True)
    yield store
    store.close()


def _run(run_id: str) -> RunRow:
    return RunRow(run_id=run_id, crm="salesforce", started_at=T0, finished_at=T0, outcome="ok")


def _quiet_end(store: StateStore, run_id: str, record_id: str | None = "00Q1") -> None:
    cursor = (T0.astimezone(CEST), record_id, T0)  # an offset other than UTC: stored as UTC
    run_books.finish_quiet(store, _run(run_id), cursor, T0)  # type: ignore[arg-type]


def _runs(store: StateStore) -> dict[str, str]:
    table = RunRow.__table__
    with store.reading() as conn:
        return dict(conn.execute(select(table.c.run_id, table.c.outcome)).all())


def _backend_pid(store: StateStore) -> int:
    with store.reading() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _pooled_autocommit(store: StateStore) -> bool:
    raw = store.engine.raw_connection()
    try:
        return bool(raw.driver_connection.autocommit)  # type: ignore[union-attr]
    finally:
        raw.close()


def test_a_quiet_end_sent_directly_stores_the_run_and_the_cursor_as_sqlalchemy_would(
    pg_store: StateStore,
) -> None:
    _quiet_end(pg_store, "r1")
    assert _runs(pg_store) == {"r1": "ok"}
    table = CursorRow.__table__
    with pg_store.reading() as conn:
        row = conn.execute(select(table).where(table.c.crm == "salesforce")).one()
    assert row.record_id == "00Q1" and row.modified_at == T0 and row.read_at == T0
    assert row.modified_at.utcoffset() == timedelta(0)
    assert not _pooled_autocommit(pg_store), "the pool's connections leave autocommit off"


def test_a_direct_write_reuses_the_pools_connection_instead_of_opening_one(
    pg_store: StateStore,
) -> None:
    before = _backend_pid(pg_store)
    for n in range(3):
        _quiet_end(pg_store, f"r{n}")
    assert _backend_pid(pg_store) == before
    assert pg_store.engine.pool.checkedout() == 0


def test_a_naive_datetime_is_refused_with_sqlalchemys_error_and_nothing_is_written(
    pg_store: StateStore,
) -> None:
    naive = T0.replace(tzinfo=None)
    values = {**_values("r1"), "cursor_updated_at": naive}
    with pytest.raises(StatementError, match="timezone"):
        DirectWriter(pg_store.engine).write(run_books._quiet_ending("postgresql"), values)
    assert _runs(pg_store) == {}


def test_a_refused_direct_write_raises_sqlalchemys_error_and_its_connection_serves_the_next(
    pg_store: StateStore,
) -> None:
    before = _backend_pid(pg_store)
    writer = DirectWriter(pg_store.engine)
    with pytest.raises(IntegrityError):
        writer.write(run_books._quiet_ending("postgresql"), _values("r1", record_id=None))
    assert _runs(pg_store) == {}, "the statement is atomic: no run without its cursor"
    assert _backend_pid(pg_store) == before and not _pooled_autocommit(pg_store)
    writer.write(run_books._quiet_ending("postgresql"), _values("r2"))
    assert _runs(pg_store) == {"r2": "ok"}


def test_a_connection_the_server_dropped_is_discarded_and_the_quiet_end_still_records_its_run(
    pg_store: StateStore, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the pooled connection (a restart, an idle timeout): the direct write
    fails on it, the connection is discarded (not reset by the pool, which would log a
    traceback), and ``finish_quiet`` records the run alone on a new one (the cursor is saved by
    the next cycle)."""
    dropped = _backend_pid(pg_store)
    admin = create_engine(postgres_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({dropped})")
    admin.dispose()
    writer = DirectWriter(pg_store.engine)
    with pytest.raises(OperationalError) as failed:
        writer.write(run_books._quiet_ending("postgresql"), _values("r0"))
    assert failed.value.connection_invalidated
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    _quiet_end(pg_store, "r1")
    assert _runs(pg_store) == {"r1": "ok"}
    assert _backend_pid(pg_store) != dropped


def test_a_statement_that_needs_sqlalchemys_execution_is_refused_before_anything_is_sent(
    pg_store: StateStore,
) -> None:
    table = RunRow.__table__
    expanding = table.delete().where(table.c.run_id.in_(["a", "b"]))
    with pytest.raises(ValueError, match="SQLAlchemy's execution"):
        DirectWriter(pg_store.engine).compiled(expanding)


def _values(run_id: str, record_id: str | None = "00Q1") -> dict[str, object]:
    values = run_books._run_values(_run(run_id))
    values.update(run_books._cursor_values("salesforce", (T0, record_id, T0), T0))  # type: ignore[arg-type]
    return values
