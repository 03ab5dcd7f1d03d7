"""SQLite datetimes bound in C store the very text SQLAlchemy's own binding stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.dialects.sqlite import DATETIME, base

from syncd.sqlite_datetime import FastDateTime
from syncd.state import CursorRow, StateStore

VALUES = [
    datetime(2026, 11, 30, 14, 1, 2, 345),
    datetime(2026, 11, 30, 14, 1, 2),  # no microseconds: still six digits
    datetime(5, 1, 2, 3, 4, 5, 6),  # a year below 1000: still four digits
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),  # wall time kept
    date(2026, 1, 2),
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_fast_binding_gives_the_text_sqlalchemy_binding_gives(value: object) -> None:
    dialect = base.SQLiteDialect()
    ours, theirs = FastDateTime().bind_processor(dialect), DATETIME().bind_processor(dialect)
    assert ours is not None and theirs is not None
    assert ours(value) == theirs(value)


def test_a_sqlite_store_binds_datetimes_fast_and_reads_back_what_it_wrote(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    column_type = CursorRow.__table__.c.modified_at.type  # sqlmodel's UTCDateTime over DateTime
    bound = column_type.dialect_impl(store.engine.dialect)
    assert isinstance(getattr(bound, "impl_instance", bound), FastDateTime)
    at = datetime(2026, 11, 30, 14, 1, 2, 345, tzinfo=UTC)
    with store.begin() as conn:
        store.save_cursor(conn, "salesforce", at, "00Q1", at, read_at=at)
        text = conn.exec_driver_sql("SELECT modified_at FROM cursor").scalar_one()
    assert text == "2026-11-30 14:01:02.000345"
    assert store.cursor("salesforce") == (at, "00Q1", at)
    store.close()
