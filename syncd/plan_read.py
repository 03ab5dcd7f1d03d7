"""Light records of the mirror columns planning reads, decoded without SQLAlchemy's rows.

A cycle's plan step (``syncd.due.iter_plan_rows``) reads every due lead; building a SQLAlchemy
``Row`` with a result processor per column, then reading its attributes, cost more than the
rules' evaluation. Here the same SELECT runs with untyped columns (the driver's own values,
no processors) and each row becomes a :class:`PlanLead`: a slotted object whose attribute
reads are plain slot loads. The decoding is exactly what SQLAlchemy's types do, per dialect:

* JSON columns: read as their stored text (cast to text: psycopg would decode each value with
  ``json.loads`` itself), decoded to exactly what ``json.loads`` (SQLAlchemy's default
  deserializer) gives: by msgspec's JSON decoder where it accepts the text, else by
  ``json.loads`` itself (see :func:`_json`).
* Datetimes (SQLModel's ``UTCDateTime``): SQLite hands over SQLAlchemy's stored text, decoded
  with ``datetime.fromisoformat`` (SQLAlchemy 2's own SQLite processor) and taken as UTC;
  psycopg hands over aware ``datetime`` objects, converted to UTC.
* ``guard_blocked``: SQLite stores 0/1, read back as ``bool`` like SQLAlchemy's ``Boolean``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import JSON, Select, Text, cast, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from syncd.state import LeadRow

__all__ = ["PLAN_COLUMNS", "PlanLead", "fetch_plan_leads", "plan_columns"]

#: The mirror columns planning reads: never ``reasons`` (only ``explain`` shows it), nor the
#: quarantine and bookkeeping columns. Keeps the hot path's reading and decoding small. The
#: order is :class:`PlanLead`'s constructor order.
PLAN_COLUMNS = (
    "lead_id",
    "modified_at",
    "fields",
    "enrichment",
    "status",
    "status_changed_at",
    "written_status",
    "rep_edit_at",
    "rep_edit_status",
    "rep_edit_field",
    "newsletters",
    "error_code",
    "error_message",
    "error_at",
    "due_at",
    "guard_blocked",
)


class PlanLead:
    """One mirror lead as planning sees it (the :data:`PLAN_COLUMNS` of ``lead``)."""

    __slots__ = PLAN_COLUMNS

    lead_id: str
    modified_at: datetime
    fields: dict[str, Any]
    enrichment: dict[str, Any]
    status: str | None
    status_changed_at: datetime | None
    written_status: str | None
    rep_edit_at: datetime | None
    rep_edit_status: str | None
    rep_edit_field: str | None
    newsletters: list[str]
    error_code: str | None
    error_message: str | None
    error_at: datetime | None
    due_at: datetime | None
    guard_blocked: bool | None

    def __repr__(self) -> str:
        return f"PlanLead({self.lead_id!r}, status={self.status!r})"

    def _asdict(self) -> dict[str, Any]:
        """Column name -> value, as a SQLAlchemy row's ``_asdict``."""
        return {name: getattr(self, name) for name in PLAN_COLUMNS}


def plan_columns() -> list[ColumnElement[Any]]:
    """The SELECT list: :data:`PLAN_COLUMNS` without SQLAlchemy's result processing (the
    WHERE and ORDER BY clauses keep the typed columns, so bound values are converted)."""
    table = LeadRow.__table__
    return [type_coerce(_as_text(table.c[name]), NullType()).label(name) for name in PLAN_COLUMNS]


def _as_text(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON column as its stored text: psycopg would decode it with ``json.loads`` per value
    (a third of a PostgreSQL plan read's time); as text it takes the decoding below, as on
    SQLite, where the cast changes nothing (the value is stored as text)."""
    return cast(column, Text) if isinstance(column.type, JSON) else column


_loads = json.loads
_parse = datetime.fromisoformat
# SQLite's stored datetimes are naive UTC text: parsed with this suffix they come out aware,
# with ``UTC`` itself as tzinfo, in one call. ``datetime.replace(tzinfo=UTC)`` on the parsed
# value is the same datetime at ten times the cost (its keyword parsing, about 0.6 µs on
# CPython 3.11): two of them per lead were a tenth of the plan read.
_UTC_SUFFIX = "+00:00"
# msgspec builds the same dicts as json's C scanner at 2.3-3 times its speed (it reuses the key
# strings, which repeat in every lead): on 30,000 leads about 1.8 µs instead of 4.0 for a
# lead's fields and 0.55 instead of 1.65 for its enrichment. Where its values could differ it
# refuses the text instead (NaN and Infinity, numbers beyond a float's range, lone surrogates:
# all of which ``json.dumps`` may write), so anything it refuses goes to ``json.loads``, which
# decodes it or raises exactly as before. Integers of any size stay ``int`` in both.
_fast = msgspec.json.Decoder().decode
_Refused = msgspec.MsgspecError


def _json(value: Any) -> Any:
    if value.__class__ is not str:
        return value  # psycopg decoded it already
    if value == "[]":
        return []  # no newsletters: most leads
    try:
        return _fast(value)
    except _Refused:
        return _loads(value)


def _when(value: str | datetime) -> datetime:
    # SQLModel's UTCDateTime: naive (SQLite's text) is UTC, aware is converted to UTC.
    when = _parse(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.utcoffset() is None else when.astimezone(UTC)


def fetch_plan_leads(conn: Connection, stmt: Select[Any]) -> list[PlanLead]:
    """Runs ``stmt`` (selecting :func:`plan_columns`) and decodes its rows."""
    # The driver's own tuples: with no result processing selected, SQLAlchemy's rows would
    # only wrap them (about 0.4 µs per lead on SQLite, a tenth of the fetch).
    result = conn.execute(stmt)
    try:
        rows: Sequence[Any] = result.cursor.fetchall() if result.returns_rows else ()
    finally:
        result.close()
    out: list[PlanLead] = []
    append = out.append
    new = PlanLead.__new__
    fast, refused, parse, utc_suffix, plain = _fast, _Refused, _parse, _UTC_SUFFIX, str
    for (
        lead_id,
        modified_at,
        fields,
        enrichment,
        status,
        status_changed_at,
        written_status,
        rep_edit_at,
        rep_edit_status,
        rep_edit_field,
        newsletters,
        error_code,
        error_message,
        error_at,
        due_at,
        guard_blocked,
    ) in rows:
        lead = new(PlanLead)
        lead.lead_id = lead_id
        # Per lead, the two JSON objects and the modification time are decoded here rather
        # than by _json/_when: the same work without three Python calls. Text only; anything
        # else (psycopg's decoded values) goes through them.
        if modified_at.__class__ is plain:
            try:
                lead.modified_at = parse(modified_at + utc_suffix)
            except ValueError:  # text with an offset of its own
                lead.modified_at = _when(modified_at)
        else:
            lead.modified_at = _when(modified_at)
        if fields.__class__ is plain:
            try:
                lead.fields = fast(fields)
            except refused:
                lead.fields = _loads(fields)
        else:
            lead.fields = _json(fields)
        if enrichment.__class__ is plain:
            try:
                lead.enrichment = fast(enrichment)
            except refused:
                lead.enrichment = _loads(enrichment)
        else:
            lead.enrichment = _json(enrichment)
        lead.status = status
        # The others are NULL on most leads: the test inline avoids a call.
        if status_changed_at.__class__ is plain:
            try:
                lead.status_changed_at = parse(status_changed_at + utc_suffix)
            except ValueError:
                lead.status_changed_at = _when(status_changed_at)
        else:
            lead.status_changed_at = None if status_changed_at is None else _when(status_changed_at)
        lead.written_status = written_status
        lead.rep_edit_at = None if rep_edit_at is None else _when(rep_edit_at)
        lead.rep_edit_status = rep_edit_status
        lead.rep_edit_field = rep_edit_field
        lead.newsletters = [] if newsletters == "[]" else _json(newsletters)
        lead.error_code = error_code
        lead.error_message = error_message
        lead.error_at = None if error_at is None else _when(error_at)
        if due_at.__class__ is plain:
            try:
                lead.due_at = parse(due_at + utc_suffix)
            except ValueError:
                lead.due_at = _when(due_at)
        else:
            lead.due_at = None if due_at is None else _when(due_at)
        lead.guard_blocked = None if guard_blocked is None else bool(guard_blocked)
        append(lead)
    return out
