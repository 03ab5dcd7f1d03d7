"""The SOQL syncd sends, and Salesforce's wire formats for datetimes and dates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

from simple_salesforce.format import format_soql

from connectors.base import Cursor

__all__ = [
    "SYSTEM_FIELDS",
    "format_wire_datetime",
    "lead_stream_query",
    "parse_date",
    "parse_datetime",
]

#: Read on every lead, whatever the field mapping says.
SYSTEM_FIELDS = (
    "Id",
    "SystemModstamp",
    "IsDeleted",
    "IsConverted",
    "MasterRecordId",
    "LastModifiedById",
)


def _utc(value: datetime) -> datetime:
    # format_soql converts naive datetimes with local-time semantics and drops microseconds
    # (crm-api A3.3): only ever hand it tz-aware UTC values.
    if value.tzinfo is None:
        raise ValueError("datetimes sent to Salesforce must be tz-aware")
    return value.astimezone(UTC)


def lead_stream_query(
    api_fields: Iterable[str],
    *,
    since: Cursor | None,
    start: datetime | None,
    until: datetime,
    overlap_cursor: Cursor | None = None,
    me: str | None = None,
    ordered: bool = True,
) -> str:
    """The single ``queryAll`` statement of a pull, in keyset order ``SystemModstamp, Id``.

    Args:
        api_fields: mapped Lead API field names (system fields are added).
        since: resume exactly after this (time, id) position (compound keyset, crm-api A3.1), or
            None.
        start: when set (the overlap window), read from this time inclusive instead.
        until: upper bound, inclusive (the run's start minus the lag).
        overlap_cursor, me: with ``start``, the part of the window before ``overlap_cursor``
            is re-read only for leads last modified by someone other than ``me`` (the
            integration user). The window exists for other people's transactions committed
            late (crm-api A3.2); syncd's own writes are already in its mirror, and re-reading
            them after every large write burst would cost a page per 2,000 of them.
        ordered: False leaves out ``ORDER BY`` (a Bulk API 2.0 job returns every matching row
            in one snapshot, so its order carries no cursor).
    """
    fields = list(dict.fromkeys([*SYSTEM_FIELDS, *api_fields]))
    where = ["SystemModstamp <= {until}"]
    params: dict[str, object] = {"until": _utc(until)}
    if start is not None:
        where.insert(0, "SystemModstamp >= {start}")
        params["start"] = _utc(start)
        if overlap_cursor is not None and me:
            where.append(
                "((SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {id})) "
                "OR LastModifiedById != {me})"
            )
            params.update(t=_utc(overlap_cursor.modified_at), id=overlap_cursor.record_id, me=me)
    elif since is not None:
        where.insert(0, "(SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {id}))")
        params.update(t=_utc(since.modified_at), id=since.record_id)
    order = " ORDER BY SystemModstamp, Id" if ordered else ""
    return format_soql(
        f"SELECT {', '.join(fields)} FROM Lead WHERE {' AND '.join(where)}{order}", **params
    )


#: The shapes Salesforce writes a dateTime in: ``2024-01-01T12:00:00.000+0000`` in REST
#: answers, ``2024-01-01T12:00:00.000Z`` in Bulk API 2.0 query results (CSV; crm-api A7).
_WIRE_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:[+-]\d{4}|Z)", re.ASCII)


def parse_datetime(value: str) -> datetime:
    """``2024-01-01T12:00:00.000+0000`` (or ``...000Z``) -> tz-aware UTC datetime."""
    # Every record of a pull carries a few of these: ``fromisoformat`` reads the usual shape
    # several times faster than ``strptime``, which still judges anything else.
    if _WIRE_DATETIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass  # out of range: strptime raises it in its own words
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def parse_date(value: str) -> datetime:
    """``2024-01-01`` (a Salesforce date) -> 2024-01-01T00:00:00 UTC."""
    d = date.fromisoformat(value)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def format_wire_datetime(value: datetime) -> str:
    """tz-aware datetime -> the JSON form Salesforce accepts in record bodies."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
