"""Light reads of what a confirmed write changes on a mirror row, without SQLAlchemy's rows
(SQLite).

After each Composite call the drain reads back the status, fields and newsletters of every
lead it wrote (``StateStore.lead_bodies``), and the newsletters of leads whose newsletter adds
went alone (``StateStore.lead_newsletters``), to store the confirmed values. SQLAlchemy's JSON
result processor goes through ``json.loads`` and its two Python-level wrappers per column;
here the untyped columns are decoded as :mod:`syncd.plan_read` decodes them (the same
values: ``json.loads`` on any text its fast path cannot take whole).

Only SQLite: psycopg hands JSON over decoded, and PostgreSQL keeps SQLAlchemy's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from syncd.plan_read import _json
from syncd.state import LeadRow

__all__ = ["BODY_COLUMNS", "LightBody", "fetch_bodies", "fetch_newsletters"]

#: The columns of :class:`syncd.records.LeadBody`, in :class:`LightBody`'s order.
BODY_COLUMNS = ("lead_id", "status", "fields", "newsletters")


class LightBody:
    """A mirror row's :class:`syncd.records.LeadBody`, decoded from SQLite's values."""

    __slots__ = BODY_COLUMNS

    lead_id: str
    status: str | None
    fields: dict[str, Any]
    newsletters: list[str]

    def __init__(self, lead_id: str, status: str | None, fields: Any, newsletters: Any) -> None:
        self.lead_id = lead_id
        self.status = status
        self.fields = _json(fields)
        self.newsletters = [] if newsletters == "[]" else _json(newsletters)

    def __repr__(self) -> str:
        return f"LightBody({self.lead_id!r}, status={self.status!r})"

    def _asdict(self) -> dict[str, Any]:
        """Column name -> value, as a SQLAlchemy row's ``_asdict``."""
        return {name: getattr(self, name) for name in BODY_COLUMNS}


def _untyped(*names: str) -> list[ColumnElement[Any]]:
    table = LeadRow.__table__
    return [type_coerce(table.c[name], NullType()).label(name) for name in names]


def fetch_bodies(
    conn: Connection, crm: str, chunks: Iterable[ColumnElement[bool]]
) -> dict[str, LightBody]:
    """The bodies of the rows of ``crm`` each of ``chunks`` (conditions on ``lead_id``)
    selects, by lead id."""
    table = LeadRow.__table__
    columns = _untyped(*BODY_COLUMNS)
    out: dict[str, LightBody] = {}
    for chunk in chunks:
        for row in conn.execute(select(*columns).where(table.c.crm == crm, chunk)):
            out[row[0]] = LightBody(*row)
    return out


def fetch_newsletters(
    conn: Connection, crm: str, chunks: Iterable[ColumnElement[bool]]
) -> dict[str, list[str]]:
    """The newsletters of the rows of ``crm`` each of ``chunks`` selects, by lead id."""
    table = LeadRow.__table__
    columns = _untyped("lead_id", "newsletters")
    out: dict[str, list[str]] = {}
    for chunk in chunks:
        for lead_id, newsletters in conn.execute(select(*columns).where(table.c.crm == crm, chunk)):
            out[lead_id] = [] if newsletters == "[]" else _json(newsletters)
    return out
