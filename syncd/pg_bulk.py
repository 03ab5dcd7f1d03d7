"""Bulk statements of the state store on PostgreSQL: one statement per page, not one per row.

On SQLite an ``executemany`` runs in-process, row by row, at no cost beyond the row's own work.
On PostgreSQL psycopg pipelines an ``executemany``, but the server still executes the statement
once per row (a 2,000-lead page is 2,000 executions of an ``INSERT .. ON CONFLICT``), and
SQLAlchemy processes every row's parameters one by one. Here a page travels as one array per
column and the server unnests them in a single statement:

* :func:`upsert_rows`: ``INSERT .. SELECT FROM unnest(..) ON CONFLICT (..) DO UPDATE``;
* :func:`update_by_key`: ``UPDATE .. FROM unnest(..) WHERE`` key matches;
* :func:`any_of`: ``column = ANY(array)`` instead of ``IN (500 parameters)``, so a lookup by
  ids is one statement whatever the number of ids, and the same statement text every time
  (which psycopg prepares once it has seen it a few times).

Values go in as the column's PostgreSQL type; JSON as the text ``json.dumps`` gives, which is
what SQLAlchemy sends for a JSON column (psycopg's ``Json`` wrapper with the default dumps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, Table, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["any_of", "update_by_key", "upsert_rows"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def any_of(column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    """``column = ANY(:ids)`` with the ids as one text array parameter."""
    return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(String)))  # type: ignore[no-any-return]


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """Insert ``rows`` (every row with the same keys) or update the rows whose ``keys`` match,
    setting every column but the keys and ``keep``.

    A row whose key occurs again later in ``rows`` is left out: one statement cannot update a
    row twice, and an executemany would have ended with the later row anyway.
    """
    if not rows:
        return
    last = {tuple(r[k] for k in keys): r for r in rows}
    if len(last) < len(rows):
        rows = list(last.values())
    columns = list(rows[0])
    arrays = ", ".join(f"%(c{i})s::{_array_type(table, c)}" for i, c in enumerate(columns))
    names = ", ".join(_quote(c) for c in columns)
    updates = ", ".join(
        f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in columns if c not in keys and c not in keep
    )
    conflict = ", ".join(_quote(k) for k in keys)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    sql = (
        f"INSERT INTO {_quote(table.name)} ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({conflict}) {action}"
    )
    conn.exec_driver_sql(sql, _column_arrays(table, columns, rows))


def update_by_key(
    conn: Connection,
    table: Table,
    where: dict[str, Any],
    key: str,
    rows: Sequence[dict[str, Any]],
) -> None:
    """``UPDATE table SET <columns of rows> WHERE <where> AND key = row's key`` for every row, in
    one statement; a key occurring twice keeps its later row (as an executemany would)."""
    if not rows:
        return
    rows = list({r[key]: r for r in rows}.values())
    columns = list(rows[0])
    arrays = ", ".join(f"%(c{i})s::{_array_type(table, c)}" for i, c in enumerate(columns))
    aliases = ", ".join(f"v{i}" for i in range(len(columns)))
    sets = ", ".join(
        f"{_quote(c)} = v.v{i}" for i, c in enumerate(columns) if c != key
    )
    fixed = " AND ".join(f"t.{_quote(c)} = %(w_{c})s" for c in where)
    key_alias = f"v{columns.index(key)}"
    sql = (
        f"UPDATE {_quote(table.name)} AS t SET {sets} FROM unnest({arrays}) AS v({aliases}) "
        f"WHERE {fixed} AND t.{_quote(key)} = v.{key_alias}"
    )
    params = _column_arrays(table, columns, rows)
    params.update({f"w_{c}": v for c, v in where.items()})
    conn.exec_driver_sql(sql, params)


def _column_arrays(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, c in enumerate(columns):
        column_type = table.c[c].type
        values = [r[c] for r in rows]
        if isinstance(column_type, JSON):
            # SQL NULL where SQLAlchemy would send it: None in a none_as_null column.
            null = column_type.none_as_null
            values = [None if v is None and null else json.dumps(v) for v in values]
        params[f"c{i}"] = values
    return params


def _array_type(table: Table, column: str) -> str:
    return f"{table.c[column].type.compile(dialect=_DIALECT)}[]"


def _quote(name: str) -> str:
    return _DIALECT.identifier_preparer.quote(name)
