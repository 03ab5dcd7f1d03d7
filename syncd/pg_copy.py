"""A pulled page's upsert on PostgreSQL through ``COPY``: the rows go to a temporary table in
PostgreSQL's binary COPY format, then one ``INSERT .. SELECT .. ON CONFLICT`` moves them.

The page used to travel as one JSON document read back with ``json_to_recordset``
(``pg_bulk.upsert_rows``). Measured on a 2,000-lead page of a 100k first sync (about 4 MB of
JSON): the server spent 37 ms of the statement's 57 ms parsing the document (every nested
value parsed twice: once in the document, once more as the column's ``json``), and encoding it
took syncd 36 ms of Python. Through COPY each value arrives in its binary form (times,
booleans, texts: psycopg's C dumpers), only the JSON columns are serialized (``json_text``,
``json.dumps``' text) and parsed once by the server; the page took 75-80 ms of wall time
instead of 125-190 ms, 36-40 ms of it syncd's CPU instead of 45 ms or more.

What is stored is what SQLAlchemy's row-by-row upsert stores (differential test): a JSON
column holds the text ``json.dumps`` gives, ``None`` is SQL NULL where the column says
``none_as_null`` and JSON ``null`` elsewhere, a time is the same instant (a naive one is
refused, as the columns' type refuses it on SQLite), a row whose key occurs again later in the
page is left out (one statement cannot update a row twice; an executemany would have ended
with the later row).

The temporary table lives in the page's transaction only (``ON COMMIT DROP``: nothing is left
on a pooled connection, and it works behind a transaction-pooling proxy).
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

from syncd import json_text
from syncd.pg_bulk import quote, upsert_rows_and_columns

__all__ = ["upsert_copied"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
#: Names the staging tables of one session apart (two upserts in one transaction).
_serial = itertools.count()
_LENGTH = re.compile(r"\(.*\)")


def upsert_copied(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """Insert ``rows`` (every row with the same keys) or update the rows whose ``keys`` match,
    setting every column but the keys and ``keep``; a column the rows leave out gets its
    default when inserted and keeps its value when updated."""
    if not rows:
        return
    given = list(rows[0])  # the columns an update sets (not those defaulted)
    rows, columns = upsert_rows_and_columns(table, rows, keys)
    staging = f"syncd_rows_{next(_serial)}"
    types = [_copy_type(table, c) for c in columns]
    typed = ", ".join(f"{quote(c)} {t}" for c, t in zip(columns, types, strict=True))
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {staging} ({typed}) ON COMMIT DROP")
    copy = f"COPY {staging} ({', '.join(quote(c) for c in columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        _copy(conn, copy, types, columns, table, rows)
    except (TypeError, ValueError, OverflowError) as exc:
        # As SQLAlchemy reports a value its column type refuses (the same on SQLite); the
        # values are left out of the message: they may hold personal data.
        raise StatementError(str(exc), copy, None, exc) from None
    except psycopg.Error as exc:
        # As SQLAlchemy wraps the driver's errors everywhere else (the cycle reports a
        # store failure and retries; a connection the server closed is not reused).
        raise DBAPIError.instance(
            copy, None, exc, psycopg.Error, connection_invalidated=exc.sqlstate is None
        ) from None
    names = ", ".join(quote(c) for c in columns)
    updates = ", ".join(
        f"{quote(c)} = EXCLUDED.{quote(c)}" for c in given if c not in keys and c not in keep
    )
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {_select(table, columns)} "
        f"FROM {staging} ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}"
    )


def _copy(
    conn: Connection,
    copy: str,
    types: Sequence[str],
    columns: Sequence[str],
    table: Table,
    rows: Sequence[dict[str, Any]],
) -> None:
    values = operator.itemgetter(*columns)
    encoded = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    dumps = json_text.dumps
    driver: Any = conn.connection.dbapi_connection  # psycopg's, in the page's transaction
    with driver.cursor() as cursor, cursor.copy(copy) as staged:
        staged.set_types(types)
        for row in rows:
            value = values(row)
            if len(columns) == 1:
                value = (value,)
            if encoded:
                value = list(value)
                for i in encoded:
                    if value[i] is not None:
                        value[i] = dumps(value[i])
            staged.write_row(value)


def _copy_type(table: Table, column: str) -> str:
    """The staging column's type, as psycopg names it for the binary COPY: a JSON value is
    staged as its text (cast to the column's type when moved), a string without its length
    (the target column checks it)."""
    column_type = table.c[column].type
    if isinstance(column_type, JSON):
        return "text"
    name = _LENGTH.sub("", column_type.compile(dialect=_DIALECT)).strip().lower()
    return "timestamptz" if name == "timestamp with time zone" else name


def _select(table: Table, columns: Sequence[str]) -> str:
    """The select list: each JSON text cast to the column's type; JSON ``null`` for ``None``
    in a JSON column that stores it so."""
    out = []
    for c in columns:
        column_type = table.c[c].type
        if isinstance(column_type, JSON):
            cast = f"{quote(c)}::{column_type.compile(dialect=_DIALECT).lower()}"
            null = f"'null'::{column_type.compile(dialect=_DIALECT).lower()}"
            out.append(cast if column_type.none_as_null else f"COALESCE({cast}, {null})")
        else:
            out.append(quote(c))
    return ", ".join(out)
