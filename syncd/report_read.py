"""Reading the funnel report's inputs from the store: each lead's status transitions from the
ledger, with the mirror's owner, source and last activity, streamed in bounded chunks.

:func:`read_inputs` feeds :func:`syncd.report.compute`; :func:`json_text` and
:func:`lead_info` are also how the KPIs kept between refreshes (:mod:`syncd.kpi_incremental`)
read the few leads a refresh looks at again.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    func,
    literal,
    literal_column,
    select,
    tuple_,
)

from syncd.report import LeadInfo, Transition

__all__ = ["LeadRange", "json_text", "lead_info", "read_inputs"]

_CHUNK = 2000

#: A range of leads by (crm, lead_id): low included, high excluded, None unbounded.
LeadRange = tuple[tuple[str, str] | None, tuple[str, str] | None]


def _parse_activity(value: object) -> datetime | date | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def read_inputs(
    engine: Engine,
    status_maps: Mapping[str, Mapping[str, str]],
    *,
    crm: str | None = None,
    since: datetime | None = None,
    chunk: int = _CHUNK,
    lead_range: LeadRange = (None, None),
    max_id: int | None = None,
) -> Iterator[tuple[LeadInfo, list[Transition]]]:
    """Each lead of the ledger with its status transitions in time order, streamed.

    Two ordered reads side by side, each fetched ``chunk`` rows at a time (a server-side cursor
    on PostgreSQL): the ledger in (crm, lead_id, at, id) order, along its ``ix_history_lead``
    index, and the mirror's leads that have ledger rows in (crm, lead_id) order, its primary
    key. Both are in the database's order of the same columns, so each lead's mirror row is
    the next one of the second read, or missing (a lead the mirror no longer has): memory holds
    one lead's history and one chunk of each read, whatever the size of the ledger.

    ``status_maps``: per CRM instance, the CRM's stored value -> rule status (the inverse of
    ``status_values``); a value without an entry is the status of that name. ``crm`` and
    ``since`` read one CRM's transitions from that time on only (the KPI gauges: what they
    show needs no earlier history). ``lead_range``: only the leads with ``low <= (crm,
    lead_id) < high`` (None: unbounded), one part of a report computed in parts. ``max_id``:
    only the ledger rows with ids up to it (the KPIs kept incrementally: a known row set).
    """
    from syncd.state import LeadRow, StatusHistoryRow

    h = StatusHistoryRow.__table__
    lt = LeadRow.__table__
    # ``field || ''``, not ``field``: a plain equality lets SQLite (no statistics) pick the
    # (field, to_value, at) index and then sort the whole ledger, or search it once per lead.
    # Hiding the column from the planner makes both reads walk (crm, lead_id, at).
    is_status = h.c.field.op("||")("") == "status"
    # On SQLite the time is text in SQLAlchemy's format, naive UTC: with the offset appended
    # by the database, fromisoformat() returns it aware, with no replace() per row.
    at_col: ColumnElement[Any] = h.c.at
    if engine.dialect.name == "sqlite":
        at_col = at_col.op("||")(literal_column("'+00:00'"))
    history_q: Select[Any] = select(
        h.c.crm, h.c.lead_id, at_col, h.c.from_value, h.c.to_value
    ).where(is_status)
    has_history = select(h.c.id).where(h.c.crm == lt.c.crm, h.c.lead_id == lt.c.lead_id, is_status)
    # The three fields the report uses, extracted by the database: not a whole JSON document
    # parsed per lead.
    leads_q: Select[Any] = select(
        lt.c.crm,
        lt.c.lead_id,
        lt.c.status,
        *(json_text(engine, lt.c.fields, key) for key in ("owner", "lead_source", "activity")),
    )
    if crm is not None:
        history_q = history_q.where(h.c.crm == crm)
        leads_q = leads_q.where(lt.c.crm == crm)
    if since is not None:
        history_q = history_q.where(h.c.at >= since)
        has_history = has_history.where(h.c.at >= since)
    if max_id is not None:
        history_q = history_q.where(h.c.id <= max_id)
        has_history = has_history.where(h.c.id <= max_id)
    history_q = _in_range(history_q, h.c.crm, h.c.lead_id, lead_range)
    leads_q = _in_range(leads_q, lt.c.crm, lt.c.lead_id, lead_range)
    history_q = history_q.order_by(h.c.crm, h.c.lead_id, h.c.at, h.c.id)
    leads_q = leads_q.where(has_history.exists()).order_by(lt.c.crm, lt.c.lead_id)
    rows = _stream(engine, history_q, chunk, "syncd_report_ledger")
    mirror = _stream(engine, leads_q, chunk, "syncd_report_leads")
    try:
        pending = next(mirror, None)
        current: tuple[str, str] | None = None
        history: list[Transition] = []
        mapping: Mapping[str, str] = {}

        def info(key: tuple[str, str]) -> LeadInfo:
            nonlocal pending
            if pending is not None and (pending[0], pending[1]) == key:
                found = lead_info(key, pending[2], pending[3], pending[4], pending[5], status_maps)
                pending = next(mirror, None)
                return found
            return LeadInfo(key[0], key[1])  # no mirror row: the ledger outlived the lead

        # Hot: once per ledger row. Functions bound to locals; a Transition made by
        # tuple.__new__ (the namedtuple's own __new__ is one more Python call per row).
        parse, make, get_map = datetime.fromisoformat, tuple.__new__, status_maps.get
        append = history.append
        for row_crm, lead_id, stamp, from_value, to_value in rows:
            if current is None or current[1] != lead_id or current[0] != row_crm:
                if current is not None:
                    yield info(current), history
                current, history = (row_crm, lead_id), []
                append = history.append
                mapping = get_map(row_crm, {})
            to = to_value or ""
            # Text from SQLite (aware: see at_col), a datetime from PostgreSQL (naive, UTC).
            at = parse(stamp) if stamp.__class__ is str else stamp
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            from_status = None if from_value is None else mapping.get(from_value, from_value)
            append(make(Transition, (at, mapping.get(to, to), from_status)))
        if current is not None:
            yield info(current), history
    finally:
        rows.close()
        mirror.close()


def _in_range(query: Select[Any], crm: Any, lead_id: Any, lead_range: LeadRange) -> Select[Any]:
    """``query`` limited to the leads of ``lead_range`` (row values: one index range)."""
    low, high = lead_range
    if low is not None:
        query = query.where(tuple_(crm, lead_id) >= tuple_(*map(literal, low)))
    if high is not None:
        query = query.where(tuple_(crm, lead_id) < tuple_(*map(literal, high)))
    return query


def _stream(engine: Engine, stmt: Select[Any], chunk: int, name: str) -> Generator[Any, None, None]:
    """The rows of ``stmt`` as plain DB-API tuples, ``chunk`` at a time, on a connection of its
    own (a named, server-side cursor on PostgreSQL).

    Below SQLAlchemy's result layer on purpose: its per-row processing was half the report's
    read time at a million leads. The statement is still SQLAlchemy's, compiled for the
    engine's dialect; the one value needing the processing skipped here is a datetime
    parameter on SQLite, stored as text (SQLAlchemy's format, UTC)."""
    compiled = stmt.compile(dialect=engine.dialect)
    sqlite = engine.dialect.name == "sqlite"
    params = {
        key: _sqlite_time(value) if sqlite and isinstance(value, datetime) else value
        for key, value in compiled.params.items()
    }
    order = compiled.positiontup
    args: Any = tuple(params[key] for key in order) if order is not None else params
    raw = engine.raw_connection()
    try:
        server_side = None if sqlite else raw.driver_connection
        cursor = raw.cursor() if server_side is None else server_side.cursor(name=name)
        cursor.execute(compiled.string, args)
        while batch := cursor.fetchmany(chunk):
            yield from batch
        cursor.close()
    finally:
        raw.close()


def json_text(engine: Engine, column: Any, key: str) -> Any:
    """``column``'s JSON member ``key`` as text, in the dialect's own words (a literal path:
    the raw cursor of :func:`_stream` skips SQLAlchemy's JSON path processing)."""
    name = "last_activity_at" if key == "activity" else key
    if engine.dialect.name == "postgresql":
        return column.op("->>")(literal_column(f"'{name}'"))
    return func.json_extract(column, literal_column(f"'$.{name}'"))


def _sqlite_time(value: datetime) -> str:
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return naive.isoformat(sep=" ", timespec="microseconds")


def lead_info(
    key: tuple[str, str],
    status: str | None,
    owner: object,
    source: object,
    activity: object,
    status_maps: Mapping[str, Mapping[str, str]],
) -> LeadInfo:
    mapping = status_maps.get(key[0], {})
    return LeadInfo(
        key[0],
        key[1],
        owner=str(owner) if owner else None,
        source=str(source) if source else None,
        last_activity_at=_parse_activity(activity),
        status=None if status is None else mapping.get(status, status),
    )
