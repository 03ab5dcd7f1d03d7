"""Bulk statements of the state store on PostgreSQL: one statement per page, not one per row.

On SQLite an ``executemany`` runs in-process, row by row, at no cost beyond the row's own work.
On PostgreSQL psycopg pipelines an ``executemany``, but the server still executes the statement
once per row (a 2,000-lead page is 2,000 executions of an ``INSERT .. ON CONFLICT``), and
SQLAlchemy and psycopg process every row's parameters one by one in Python. Here a page travels
as one JSON document (``json.dumps`` in C) and the server reads it back as rows
(``json_to_recordset``) in a single statement:

* :func:`upsert_rows`: ``INSERT .. SELECT FROM json_to_recordset(..) ON CONFLICT .. DO UPDATE``
  (a pulled page's upsert before ``syncd.pg_copy`` staged it by COPY: its differential test
  compares the two);
* :func:`insert_rows`: ``INSERT .. SELECT FROM json_to_recordset(..)`` (outbox, audit and ledger
  rows: a first sync's plan and drain write some 10,000 of each at 100k leads);
* :func:`update_by_key`: ``UPDATE .. FROM json_to_recordset(..) WHERE`` the key matches;
* :func:`any_of`: ``column = ANY(array)`` instead of ``IN (500 parameters)``, so a lookup by
  ids is one statement whatever the number of ids.

psycopg pipelines an executemany, but each row is still a Bind/Execute the server handles on its
own and a parameter set SQLAlchemy and psycopg build in Python: measured on a 100k first sync,
the drain's 9,151 audit inserts, 9,151 mirror updates and the plan's 9,151 outbox inserts took
2 s of wall time as executemany statements, against 0.6 s of the server's execution.

What is stored is what SQLAlchemy would store: a JSON column's value is the text ``json.dumps``
gives (a nested value keeps its text in ``json_to_recordset``), ``None`` is SQL NULL where the
column says ``none_as_null`` and JSON ``null`` elsewhere; a timestamp travels as ISO 8601 with
its offset (a naive one is refused, as the columns' type refuses it on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, String, Table, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

__all__ = ["any_of", "insert_defaults", "insert_rows", "quote", "update_by_key", "upsert_rows"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def any_of(
    column: Any, ids: Sequence[str] | Sequence[int], element: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """``column = ANY(:ids)`` with the ids as one array parameter (of text unless ``element``
    says otherwise)."""
    array = postgresql.ARRAY(element if element is not None else String())
    return column == any_(bindparam(None, list(ids), type_=array))  # type: ignore[no-any-return]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (every row with the same keys) in one statement, in their order: a
    serial key numbers them as an executemany would (the statement is a bare scan of the
    document, which ``json_to_recordset`` yields in order: nothing joins or sorts it). A column
    the rows leave out gets its default, as SQLAlchemy gives it."""
    if not rows:
        return
    given = list(rows[0])
    defaults = insert_defaults(table, given)
    if defaults:
        rows = [{**r, **defaults} for r in rows]
    columns = given + list(defaults)
    names = ", ".join(quote(c) for c in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {_values(table, columns)} "
        f"FROM {_recordset(table, columns)}"
    )
    conn.exec_driver_sql(sql, {"rows": _document(sql, rows)})


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
    given = list(rows[0])  # the columns an update sets (not those defaulted)
    rows, columns = upsert_rows_and_columns(table, rows, keys)
    names = ", ".join(quote(c) for c in columns)
    updates = ", ".join(
        f"{quote(c)} = EXCLUDED.{quote(c)}" for c in given if c not in keys and c not in keep
    )
    conflict = ", ".join(quote(k) for k in keys)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {_values(table, columns)} "
        f"FROM {_recordset(table, columns)} ON CONFLICT ({conflict}) {action}"
    )
    conn.exec_driver_sql(sql, {"rows": _document(sql, rows)})


def update_by_key(
    conn: Connection,
    table: Table,
    where: dict[str, Any],
    key: str,
    rows: Sequence[dict[str, Any]],
    also: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """``UPDATE table SET <columns of rows> WHERE <where> AND key = row's key`` for every row, in
    one statement; a key occurring twice keeps its later row (as an executemany would).

    ``also``: more columns set to an SQL expression (the table is ``t``, the row's values ``v``;
    a ``t`` column is its value before the update, as in any UPDATE), whose ``%(name)s``
    placeholders take ``params``."""
    if not rows:
        return
    rows = list({r[key]: r for r in rows}.values())
    columns = list(rows[0])
    if any(c.onupdate is not None for c in table.c):  # none in syncd's tables
        raise NotImplementedError(f"{table.name}: a column with a value set on update")
    sets = ", ".join(
        [f"{quote(c)} = v.{quote(c)}" for c in columns if c != key]
        + [f"{quote(c)} = {expression}" for c, expression in (also or {}).items()]
    )
    fixed = " AND ".join(f"t.{quote(c)} = %(w_{c})s" for c in where)
    sql = (
        f"UPDATE {quote(table.name)} AS t SET {sets} FROM {_recordset(table, columns)} "
        f"WHERE {fixed} AND t.{quote(key)} = v.{quote(key)}"
    )
    bound = {"rows": _document(sql, rows), **{f"w_{c}": v for c, v in where.items()}}
    conn.exec_driver_sql(sql, {**bound, **(params or {})})


def insert_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.c:
        if column.name in given or column.default is None:
            continue
        if not column.default.is_scalar:  # none in syncd's tables; refuse rather than guess
            raise NotImplementedError(f"{table.name}.{column.name}: a default that is not a value")
        out[column.name] = column.default.arg  # type: ignore[attr-defined]
    return out


def _document(sql: str, rows: Sequence[dict[str, Any]]) -> str:
    try:
        return json.dumps(rows, default=_iso)
    except (TypeError, ValueError) as exc:
        # As SQLAlchemy reports a value its column type refuses (the same on SQLite).
        raise StatementError(str(exc), sql, None, exc) from None


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        if value.utcoffset() is None:  # the columns' type refuses naive times on SQLite too
            raise ValueError("Datetime values must have timezone information")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _recordset(table: Table, columns: Sequence[str]) -> str:
    typed = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect=_DIALECT)}" for c in columns)
    return f"json_to_recordset(%(rows)s::json) AS v({typed})"


def _values(table: Table, columns: Sequence[str]) -> str:
    """The select list: JSON ``null`` for ``None`` in a JSON column that stores it so."""
    out = []
    for c in columns:
        column_type = table.c[c].type
        if isinstance(column_type, JSON) and not column_type.none_as_null:
            out.append(f"COALESCE(v.{quote(c)}, 'null'::json)")
        else:
            out.append(f"v.{quote(c)}")
    return ", ".join(out)


def quote(name: str) -> str:
    return _DIALECT.identifier_preparer.quote(name)


def upsert_rows_and_columns(
    table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> tuple[Sequence[dict[str, Any]], list[str]]:
    """``rows`` ready for one upsert statement, and their columns in order.

    A row whose key occurs again later is left out (one statement cannot update a row twice;
    an executemany would have ended with the later row anyway). A column the rows leave out
    gets its default when inserted (as SQLAlchemy gives it), and keeps its value when updated.
    """
    last = {tuple(r[k] for k in keys): r for r in rows}
    if len(last) < len(rows):
        rows = list(last.values())
    given = list(rows[0])
    defaults = insert_defaults(table, given)
    if defaults:
        rows = [{**r, **defaults} for r in rows]
    return rows, given + list(defaults)
