"""Light records of the outbox rows the drain reads, decoded without SQLAlchemy's rows (SQLite).

Every change a cycle delivers is read back from the outbox before it is sent
(``StateStore.iter_due_changes``): two per changed lead in a typical run (its status and a
newsletter), 20,000 rows in a 1 % cycle at a million leads. A SQLAlchemy ``Row`` runs a
result processor per typed column (two JSON columns, three datetimes) and its attribute reads
go through the row's key map; here the same SELECT runs with untyped columns and each row
becomes an :class:`OutboxLight`, a slotted object. The decoding is what SQLAlchemy's types do
on SQLite (``syncd.plan_read`` does the same for the mirror's plan columns):

* ``value`` and ``before`` (JSON): the stored text, decoded with ``json.loads`` (SQLAlchemy's
  default deserializer); NULL stays None.
* datetimes (SQLModel's ``UTCDateTime``): SQLAlchemy's stored text, read with
  ``datetime.fromisoformat`` and taken as UTC.

Only SQLite: psycopg hands a JSON string over already decoded, indistinguishable from stored
text, so PostgreSQL keeps SQLAlchemy's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from syncd.plan_read import _json, _when
from syncd.state import OutboxRow

__all__ = ["OUTBOX_COLUMNS", "OutboxLight", "fetch_outbox", "outbox_columns"]

#: Every column of ``outbox``, in :class:`OutboxLight`'s constructor order.
OUTBOX_COLUMNS = (
    "id",
    "crm",
    "lead_id",
    "kind",
    "field",
    "value",
    "before",
    "rule_id",
    "ruleset_version",
    "run_id",
    "intent_id",
    "state",
    "attempts",
    "next_attempt_at",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
    "may_have_landed",
)


class OutboxLight:
    """One outbox row (:class:`syncd.records.OutboxRecord`) as the drain reads it."""

    __slots__ = OUTBOX_COLUMNS

    id: int
    crm: str
    lead_id: str
    kind: str
    field: str
    value: Any
    before: Any
    rule_id: str | None
    ruleset_version: str | None
    run_id: str
    intent_id: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    may_have_landed: bool

    def __repr__(self) -> str:
        return f"OutboxLight({self.id!r}, {self.lead_id!r}, {self.kind}:{self.field})"

    def _asdict(self) -> dict[str, Any]:
        """Column name -> value, as a SQLAlchemy row's ``_asdict``."""
        return {name: getattr(self, name) for name in OUTBOX_COLUMNS}


def outbox_columns() -> list[ColumnElement[Any]]:
    """The SELECT list: :data:`OUTBOX_COLUMNS` without SQLAlchemy's result processing (the
    WHERE and ORDER BY clauses keep the typed columns, so bound values are converted)."""
    table = OutboxRow.__table__
    return [type_coerce(table.c[name], NullType()).label(name) for name in OUTBOX_COLUMNS]


def _json_or_none(value: Any) -> Any:
    # A JSON column's NULL (SQLAlchemy stores Python None as the text 'null', also None).
    return None if value is None else _json(value)


def fetch_outbox(conn: Connection, stmt: Select[Any]) -> list[OutboxLight]:
    """Runs ``stmt`` (selecting :func:`outbox_columns`, on SQLite) and decodes its rows."""
    rows: Sequence[Any] = conn.execute(stmt).all()
    out: list[OutboxLight] = []
    append = out.append
    new = OutboxLight.__new__
    parse, utc, plain = datetime.fromisoformat, UTC, str
    for (
        id_,
        crm,
        lead_id,
        kind,
        field,
        value,
        before,
        rule_id,
        ruleset_version,
        run_id,
        intent_id,
        state,
        attempts,
        next_attempt_at,
        error_code,
        error_message,
        created_at,
        updated_at,
        may_have_landed,
    ) in rows:
        r = new(OutboxLight)
        r.id = id_
        r.crm = crm
        r.lead_id = lead_id
        r.kind = kind
        r.field = field
        r.value = _json_or_none(value)
        r.before = _json_or_none(before)
        r.rule_id = rule_id
        r.ruleset_version = ruleset_version
        r.run_id = run_id
        r.intent_id = intent_id
        r.state = state
        r.attempts = attempts
        r.next_attempt_at = None if next_attempt_at is None else _when(next_attempt_at)
        r.error_code = error_code
        r.error_message = error_message
        # Inline for the two timestamps every row has: the same as _when without two calls.
        if created_at.__class__ is plain:
            when = parse(created_at)
            r.created_at = when.replace(tzinfo=utc) if when.tzinfo is None else _when(when)
        else:
            r.created_at = _when(created_at)
        if updated_at.__class__ is plain:
            when = parse(updated_at)
            r.updated_at = when.replace(tzinfo=utc) if when.tzinfo is None else _when(when)
        else:
            r.updated_at = _when(updated_at)
        r.may_have_landed = bool(may_have_landed)  # SQLite stores a boolean as 0 or 1
        append(r)
    return out
