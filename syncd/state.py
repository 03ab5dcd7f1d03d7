"""The state store: syncd's own tables, in SQLite by default or any SQLAlchemy database.

Tables (one row each):

* ``lead``      the mirror: one CRM lead as last pulled, its enrichment, and syncd's memory of it
                (what syncd last wrote, when a person last changed its status, its last error).
* ``cursor``    per connector and object, the keyset position of the last pulled page.
* ``outbox``    one planned change (a field value or a newsletter membership). Committed before
                any API call; it leaves ``pending`` only when the CRM confirmed it, it failed
                permanently, or planning closed it for a stated reason (``OutboxState``). The
                rows one rule decided together for one lead share an ``intent_id``: once any of
                them reached the CRM the rest are delivered too, unless something other than
                syncd changed the lead. The durable hand-off between planning and writing.
* ``audit``     one row per change applied, failed, found in place, superseded or withdrawn,
                with the rule, rule-set version and intent (``AuditOutcome``).
* ``run``       one row per cycle per connector, with its counts and how it ended.
* ``meta``      small key/value facts (last rules error, enrichment settings version).
* ``retry_request`` an operator's ``syncd retry``, queued until the connector's leader applies it
                (``syncd.retry_requests``).
* ``lease``     per connector, which process may write it and its fencing token (``syncd.lease``).
* ``status_history``  the ledger: one row per observed transition of a lead's lifecycle fields
                (status, lifecycle stage): from, to, when, who and how it is known.

Hot paths (a page upsert, the outbox drain) use set-based SQLAlchemy Core statements, not one ORM
object per lead, so a million-lead mirror pulls and evaluates in flat memory.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, overload

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    delete,
    event,
    exists,
    false,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect
from sqlmodel import Field, SQLModel, create_engine

from syncd import json_text, pg_bulk, pg_copy
from syncd.pg_direct import DirectWriter
from syncd.pg_engine import postgres_engine_options
from syncd.records import (
    AuditRecord,
    LeadBody,
    LeadRecord,
    LeadState,
    OutboxRecord,
    QuarantineRecord,
    RunRecord,
)
from syncd.schema import SchemaError, ensure_schema
from syncd.sqlite_datetime import use_fast_datetime
from syncd.sqlite_many import ManyStatements
from syncd.store_vacuum import wait_for_vacuum

__all__ = [
    "NEVER_DUE",
    "OPEN_STATES",
    "AuditOutcome",
    "AuditRow",
    "CursorRow",
    "HistoryActor",
    "HistoryPendingRow",
    "HistorySource",
    "LeadRow",
    "LeaseRow",
    "MetaRow",
    "OutboxRow",
    "OutboxState",
    "RetryRequestRow",
    "RunRow",
    "StateStore",
    "StateStoreError",
    "StatusHistoryRow",
    "audit_values",
    "ledger_rekeys",
]


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """SQLite forgets time zones; everything syncd stores is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StateStoreError(Exception):
    """The state store cannot be used as it is; the message says what to do."""


class OutboxState(StrEnum):
    """Where one outbox row is. The stored text is the member's value.

    ``planned -> pending -> done | failed`` is the normal life; the other states end a row that
    was never sent:

    * ``planned``     written by planning, not yet approved: the run still has to pass the change
                      breaker. Planned rows left by a run that died before approving them are
                      ``superseded`` ("plan of an interrupted run") at the start of the next run,
                      which plans them again if the rules still want them.
    * ``pending``     approved; the drain sends it once ``next_attempt_at`` (a retry's backoff)
                      has passed. A run that is stopped or killed leaves its pending rows here, and
                      the next run sends them: stopping never loses an approved change.
    * ``sending``     in a batch on its way to the CRM (``updated_at`` is when it left). A row
                      still ``sending`` at the next pull is *in doubt*: the process died, or the
                      request failed, after the CRM may have applied it. The pull settles it: if
                      the CRM shows the value, planning marks it done; if someone other than syncd
                      modified the lead since it left and the CRM shows another status, that
                      status is a person's (held, and the intent withdrawn) -- syncd cannot tell
                      a person's revert of its unconfirmed write from an untouched lead, and rep
                      edits win; otherwise it is ``pending`` again, marked
                      ``may_have_landed``, and sent (a row so marked that ends unsent or failed
                      is audited as possibly in the CRM).
    * ``done``        the CRM confirmed it, or the CRM already showed the value when planning
                      looked again (a write confirmed just before a crash is not sent twice).
    * ``failed``      the CRM refused it permanently, or a retriable error outlasted
                      ``outbox.max_attempts``; shown by ``syncd status`` on the lead.
    * ``blocked``     the change breaker stopped the run that planned it; never sent. The next run
                      plans again from the rules (``sync --once --approve-large-run`` lets it pass).
    * ``superseded``  syncd's own re-decision before any part of its intent reached the CRM: the
                      rules no longer want it, a newer decision replaced it, the lead is now
                      held (a longer hold now covers a person's earlier edit, a lower loop
                      guard limit, a field mapped anew: syncd.field_remap), or its run died
                      before approving it.
                      Nothing of the decision was written, so nothing is left half done.
    * ``withdrawn``   not sent because of something outside syncd: the lead was deleted or
                      converted, a person (or the CRM) changed its status after syncd planned or
                      wrote part of the intent, or a new rule-set version no longer wants it.

    ``error_message`` of a superseded or withdrawn row says which, and an audit row with the same
    outcome and message records it (except discarded plans of interrupted runs, never approved).
    """

    PLANNED = "planned"
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


#: Rows the drain may still send (or planning may still approve).
OPEN_STATES = (OutboxState.PLANNED, OutboxState.PENDING, OutboxState.SENDING)


class AuditOutcome(StrEnum):
    """What happened to one change, as the audit records it. The stored text is the value."""

    APPLIED = "applied"  # the CRM confirmed the write
    FAILED = "failed"  # the CRM refused it permanently (or retries ran out); error_code says why
    ALREADY_IN_PLACE = "already_in_place"  # the CRM already showed it; no second write
    SUPERSEDED = "superseded"  # see OutboxState.SUPERSEDED; message says why
    WITHDRAWN = "withdrawn"  # see OutboxState.WITHDRAWN; message says why
    # Not a change: an operator asked (`syncd retry`) that the lead's refused write be planned
    # again; message says by whom and which refusal it cleared (syncd.retry_requests).
    RETRY_REQUESTED = "retry_requested"


#: Outcomes that leave a change out of the CRM as far as syncd knows (``audit_values``).
_UNSENT_OR_FAILED = frozenset(
    {AuditOutcome.FAILED, AuditOutcome.SUPERSEDED, AuditOutcome.WITHDRAWN}
)


def _like_ascii(text: str) -> str:
    """A LIKE pattern (escape ``\\``) for the lower-cased ASCII letters of ``text``, with ``%``
    for each run of other characters."""
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append("\\" + ch if ch in "%_\\" else ch.lower())
        elif not out or out[-1] != "%":
            out.append("%")
    return "".join(out)


class LeadRow(SQLModel, table=True):
    __tablename__ = "lead"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    # A cycle selects the leads due for evaluation on it (syncd.due), never a scan of all.
    __table_args__ = (
        Index("ix_lead_due", "crm", "due_at", "lead_id"),
        # The SAL leads a pull stored again since the last funnel KPI refresh (migration 0010,
        # syncd.kpi_incremental): a range of the leads pulled since, not the whole mirror.
        Index("ix_lead_pulled", "crm", "pulled_at"),
        # Held and blocked leads, counted every cycle: a few of many, so partial indexes
        # (migration 0008; every lead's row version would otherwise add an entry to each).
        Index(
            "ix_lead_rep_edit",
            "crm",
            "rep_edit_at",
            postgresql_where=text("rep_edit_at IS NOT NULL"),
            sqlite_where=text("rep_edit_at IS NOT NULL"),
        ),
        Index(
            "ix_lead_blocked",
            "crm",
            "guard_blocked",
            # As each dialect writes ``guard_blocked IS true``: SQLite uses a partial index
            # only for a query term written exactly as its predicate (``IS 1``).
            postgresql_where=text("guard_blocked IS true"),
            sqlite_where=text("guard_blocked IS 1"),
        ),
    )
    crm: str = Field(primary_key=True, max_length=64)  # connector instance name
    lead_id: str = Field(primary_key=True, max_length=64)
    modified_at: datetime
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enrichment: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Empty since the enrichment's reasons are derived when `explain` asks (syncd.plan); rows
    # pulled by earlier releases keep theirs until their enrichment is written again. Kept, not
    # dropped: a migration rewriting every row would buy nothing.
    reasons: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str | None = None  # the CRM's stored value
    status_changed_at: datetime | None = None
    deleted: bool = False
    converted: bool = False
    written_status: str | None = None  # last value syncd wrote and the CRM confirmed
    written_at: datetime | None = None
    # A person (not syncd) last changed the status, or a field a rule sets, then (syncd.holds).
    rep_edit_at: datetime | None = None
    rep_edit_status: str | None = None  # the value they set (as text): of rep_edit_field, if any
    rep_edit_field: str | None = Field(default=None, max_length=64)  # NULL: the status
    newsletters: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error_code: str | None = None  # last permanent write failure, shown by `syncd status`
    error_message: str | None = None
    error_at: datetime | None = None  # a failed write is not retried until the lead changes
    first_seen_at: datetime
    pulled_at: datetime
    # Values of the last pull that syncd could not parse or store, nulled in ``fields``:
    # [{field, excerpt, reason}], SQL NULL when there were none (shown by `syncd status`).
    quarantine: list[dict[str, str]] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    # When the rules' decision for the lead can next change by time alone (see syncd.due).
    # NULL: evaluate at the next cycle -- every write of the row's content sets it so
    # (``StateStore`` does it in one place); NEVER_DUE: nothing time-based, or not live.
    due_at: datetime | None = None
    # Whether its last evaluation found a rule's target refused by the guards (counted each
    # cycle from here: not every lead is evaluated). NULL: never evaluated since 0006.
    guard_blocked: bool | None = None


#: ``lead.due_at`` of a lead only a change can make due (nothing time-based, deleted, converted).
NEVER_DUE = datetime(9999, 1, 1, tzinfo=UTC)


class CursorRow(SQLModel, table=True):
    __tablename__ = "cursor"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    crm: str = Field(primary_key=True, max_length=64)  # connector instance name
    object: str = Field(primary_key=True, max_length=32)
    modified_at: datetime
    record_id: str
    read_at: datetime | None = None  # when the read that reached this position started
    updated_at: datetime


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    __table_args__ = (
        Index("ix_outbox_crm_state", "crm", "state", "next_attempt_at"),
        Index("ix_outbox_lead", "crm", "lead_id"),
        # the drain's keyset orders (iter_due_changes): no sort of every pending
        # row for each chunk
        Index("ix_outbox_drain_fields", "crm", "kind", "state", "lead_id", "id"),
        Index("ix_outbox_drain_members", "crm", "kind", "state", "field", "lead_id", "id"),
        Index("ix_outbox_intent", "intent_id", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(max_length=64)  # connector instance name
    lead_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # "field" | "membership"
    field: str  # canonical field name, or the newsletter name for a membership
    value: Any = Field(default=None, sa_column=Column(JSON))
    before: Any = Field(default=None, sa_column=Column(JSON))
    rule_id: str | None = None
    ruleset_version: str | None = None  # the rule-set version that planned it
    run_id: str  # the run that planned it
    # Shared by every row one planning decision made for one lead: "<run_id>.<lead_id>".
    intent_id: str = Field(max_length=96)
    state: str = Field(default=OutboxState.PLANNED, max_length=16)  # an OutboxState value
    attempts: int = 0
    next_attempt_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    # Sent once in a request whose answer never came, and settled back to pending: the CRM may
    # already hold it whatever later attempts say (migration 0009). Kept until the row ends, so
    # an audit row that ends it unsent or failed can say so (``audit_values``).
    may_have_landed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    __table_args__ = (Index("ix_audit_lead", "crm", "lead_id"), Index("ix_audit_run", "run_id"))
    id: int | None = Field(default=None, primary_key=True)
    crm: str
    lead_id: str
    field: str
    before: Any = Field(default=None, sa_column=Column(JSON))
    after: Any = Field(default=None, sa_column=Column(JSON))
    rule_id: str | None = None
    ruleset_version: str | None = None
    run_id: str  # the run in which it happened (not necessarily the one that planned it)
    intent_id: str | None = None  # the outbox intent the change belonged to
    at: datetime
    outcome: str  # an AuditOutcome value
    error_code: str | None = None
    message: str | None = None


class RunRow(SQLModel, table=True):
    __tablename__ = "run"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    run_id: str = Field(primary_key=True)
    crm: str
    started_at: datetime
    finished_at: datetime | None = None
    # running | ok | failed | breaker | budget | stopped | interrupted (its process died; set by
    # close_interrupted_runs when the next process starts)
    outcome: str = "running"
    ruleset_version: str | None = None
    pulled: int = 0
    deleted: int = 0
    planned: int = 0
    written: int = 0
    failed: int = 0
    retrying: int = 0
    held: int = 0
    blocked: int = 0
    api_calls: int = 0
    message: str | None = None


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    key: str = Field(primary_key=True)
    value: str


class LeaseRow(SQLModel, table=True):
    """Who may write one connector (see ``syncd.lease``); times come from the database."""

    __tablename__ = "lease"
    connector: str = Field(primary_key=True, max_length=64)
    token: int  # fencing token: +1 at every change of holder
    host: str = Field(max_length=255)
    pid: int
    process_id: str = Field(max_length=32)
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime  # a released lease expires at once


class RetryRequestRow(SQLModel, table=True):
    """An operator's ``syncd retry``: plan a connector's refused writes again (migration 0012).

    Queued by the command, applied by the connector's lease holder in a fenced transaction at
    its next full cycle (``syncd.retry_requests``); kept afterwards as the record of it, until
    retention deletes it ``retention.retry_requests`` after it was applied (``syncd.retention``).
    """

    __tablename__ = "retry_request"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    __table_args__ = (Index("ix_retry_request_pending", "crm", "applied_at"),)
    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(max_length=64)  # connector instance name
    # Only leads whose last refusal has one of these error codes / these ids; NULL: any.
    codes: list[str] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    lead_ids: list[str] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    requested_by: str = Field(max_length=255)  # OS user@host of the command
    requested_at: datetime
    applied_at: datetime | None = None  # NULL: pending
    applied_run_id: str | None = Field(default=None, max_length=32)
    applied_leads: int | None = None  # leads whose refusal it cleared


class HistoryActor(StrEnum):
    """Who made a transition of the ledger."""

    SYNCD = "syncd"  # a rule of syncd (``rule_id``, ``run_id`` say which)
    PERSON = "person"  # a CRM user (``actor_id`` is the CRM user id when the CRM says)
    AUTOMATION = "automation"  # the CRM's own automation, an import, another integration
    UNKNOWN = "unknown"  # the CRM does not say


class HistorySource(StrEnum):
    """How the ledger knows of a transition."""

    WRITTEN = "written"  # syncd wrote it and the CRM confirmed it
    PULLED = "pulled"  # a pull saw the lead with another value than the mirror had
    BACKFILL = "backfill"  # read from the CRM's own field history


class StatusHistoryRow(SQLModel, table=True):
    """One transition of one lead's lifecycle field: the funnel is measured from these."""

    __tablename__ = "status_history"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    __table_args__ = (
        Index("ix_history_lead", "crm", "lead_id", "at"),
        Index("ix_history_field_to", "field", "to_value", "at"),
        Index("ix_history_at", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(max_length=64)
    lead_id: str = Field(max_length=64)
    field: str = Field(default="status", max_length=32)  # "status" | "lifecycle_stage"
    from_value: str | None = None  # the CRM value before (None: none, or unknown)
    to_value: str | None = None  # the CRM value after
    at: datetime  # when the transition happened (the CRM's time where it says)
    actor: str = Field(max_length=16)  # HistoryActor
    actor_id: str | None = None  # CRM user id for a person, when known
    rule_id: str | None = None  # the rule (chain) for syncd's transitions
    run_id: str | None = None
    source: str = Field(max_length=16)  # HistorySource


class HistoryPendingRow(SQLModel, table=True):
    """A lead a pull mirrored before reading its CRM status history (``syncd.history_pending``):
    read before the next plan, so its first-sight hold and ledger backfill are never skipped."""

    __tablename__ = "history_pending"
    __table__: ClassVar[Table]  # set by SQLModel; declared for the type checker
    crm: str = Field(primary_key=True, max_length=64)
    lead_id: str = Field(primary_key=True, max_length=64)


_UPSERT_CHUNK = 500  # rows per INSERT .. ON CONFLICT statement (SQLite's variable limit)
# The lead columns the pull and the write path read (StateStore.lead_states, LeadState).
_LEAD_STATE_COLUMNS = (
    "lead_id",
    "modified_at",
    "fields",
    "status",
    "status_changed_at",
    "written_status",
    "written_at",
    "rep_edit_at",
    "rep_edit_status",
    "rep_edit_field",
    "newsletters",
    "error_code",
    "error_message",
    "error_at",
)


def _rekeys_key(crm: str) -> str:
    return f"ledger_rekeys:{crm}"


def ledger_rekeys(conn: Connection, crm: str) -> int:
    """How many times ``StateStore.rekey_history`` moved ``crm``'s ledger rows (0: never)."""
    table = MetaRow.__table__
    value = conn.execute(select(table.c.value).where(table.c.key == _rekeys_key(crm))).scalar()
    return 0 if value is None else int(json.loads(value))


class StateStore:
    """All access to syncd's tables goes through here."""

    def __init__(
        self, url: str, *, engine: Engine | None = None, auto_upgrade: bool | None = None
    ) -> None:
        """Open the store, bringing its schema to this syncd's revision (see syncd.schema).

        ``auto_upgrade`` None means the default: upgrade SQLite files in place, refuse to
        upgrade a PostgreSQL database without an explicit ``syncd db upgrade``.

        Raises:
            StateStoreError: the schema cannot be used as it is; the message says what to do.
        """
        self.url = url
        if engine is None:
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {
                    "check_same_thread": False,
                    "timeout": _SQLITE_BUSY_TIMEOUT_S,
                }
                kwargs["json_serializer"] = json_text.dumps  # json.dumps' text, at less cost
            elif url.startswith("postgresql"):
                kwargs.update(postgres_engine_options())
            engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                event.listen(engine, "connect", _sqlite_pragmas)
                use_fast_datetime(engine)  # the same stored text, bound in C
        self.engine = engine
        self._dialect = engine.dialect.name
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._direct = (
            DirectWriter(engine)
            if self._dialect == "postgresql" and engine.dialect.driver == "psycopg"
            else None
        )
        if auto_upgrade is None:
            auto_upgrade = self._dialect == "sqlite"
        try:
            ensure_schema(engine, auto_upgrade=auto_upgrade)
        except SchemaError as exc:
            raise StateStoreError(str(exc)) from None
        self._check_schema()
        # Executemany statements compiled once each (on SQLite without per-row dictionaries).
        self._many = ManyStatements()
        # Rows written per table since its last ANALYZE (syncd.planner_stats reads and resets).
        self.rows_written: Counter[str] = Counter()
        # Rows updated per table since its last VACUUM: dead versions (syncd.store_vacuum).
        self.rows_churned: Counter[str] = Counter()
        #: Write transactions this process opened (``begin``, ``writing_one``) that may change
        #: what a plan reads: a reader that sees it unchanged knows this process wrote nothing
        #: a plan reads meanwhile (syncd.plan_probe, syncd.idle_memo). Bookkeeping (the lease
        #: row, a run's start and end with its cursor: syncd.run_books) is not counted.
        self.writes = 0

    def _check_schema(self) -> None:
        """The migrated schema has every column the models use.

        A failure here is a bug in syncd (a model changed without a migration in
        ``syncd/migrations/versions``), caught before the first cycle instead of mid-cycle.
        """
        inspector = inspect(self.engine)
        missing: list[str] = []
        for table in SQLModel.metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            missing.extend(f"{table.name}.{c.name}" for c in table.columns if c.name not in have)
        if missing:
            raise StateStoreError(
                f"the state store ({self.engine.url.render_as_string(hide_password=True)}) "
                f"lacks {', '.join(missing)} after migrating: this syncd build is missing a "
                "schema migration; please report it"
            )

    def close(self) -> None:
        wait_for_vacuum(self)  # its connection must not outlive the store
        self.engine.dispose()

    @contextmanager
    def begin(self, *, bookkeeping: bool = False) -> Iterator[Connection]:
        """One transaction: all of it commits, or none of it. ``bookkeeping``: it writes only
        rows no plan reads (the lease's), so :attr:`writes` does not count it."""
        self.writes += not bookkeeping
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads each complete in one statement.

        On PostgreSQL it runs in autocommit: psycopg otherwise sends ``BEGIN`` before the first
        statement and the pool a ``ROLLBACK`` when the connection goes back, three round trips
        for one read. A statement in autocommit sees the snapshot it would see as the first
        statement of a READ COMMITTED transaction. SQLite reads stay as they are (no round trip
        to save).
        """
        engine = self._autocommit if self._dialect == "postgresql" else self.engine
        with engine.connect() as conn:
            yield conn

    def _id_chunks(self, column: Any, ids: Sequence[str]) -> Iterator[ColumnElement[bool]]:
        """Conditions ``column`` in ``ids``, a statement's worth each: 500 parameters on
        SQLite (its variable limit), one array of them all on PostgreSQL (``pg_bulk.any_of``:
        one round trip whatever the number of ids)."""
        if self._dialect == "postgresql":
            if ids:
                yield pg_bulk.any_of(column, ids)
            return
        for start in range(0, len(ids), _UPSERT_CHUNK):
            yield column.in_(ids[start : start + _UPSERT_CHUNK])

    @contextmanager
    def writing_one(self, *, bookkeeping: bool = False) -> Iterator[Connection]:
        """A transaction of a single statement (the caller sends exactly one).

        On PostgreSQL it runs in autocommit: one statement is atomic on its own, and psycopg
        would otherwise send ``BEGIN`` before it and ``COMMIT`` after it, three round trips
        for one write. SQLite writes stay in a transaction as they are (no round trip to save).
        ``bookkeeping`` as for :meth:`begin`.
        """
        self.writes += not bookkeeping
        engine = self._autocommit if self._dialect == "postgresql" else self.engine
        with engine.begin() as conn:
            yield conn

    def write_bookkeeping_directly(self, statement: Any, values: Mapping[str, Any]) -> bool:
        """Send one bookkeeping ``statement`` (no plan reads what it writes) by psycopg itself,
        in autocommit, when the store is on PostgreSQL (``syncd.pg_direct``: the idle cycle's
        one statement, without SQLAlchemy's per-statement cost). False, having sent nothing,
        elsewhere: the caller sends it as usual.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the statement failed; nothing of it was written.
        """
        if self._direct is None:
            return False
        self._direct.write(statement, values)
        return True

    # ---- cursors -----------------------------------------------------------------------

    def cursor(self, crm: str, obj: str = "lead") -> tuple[datetime, str, datetime | None] | None:
        """(modified_at, record_id, read_at) of the stored position, if any."""
        table = CursorRow.__table__
        with self.reading() as conn:
            row = conn.execute(
                select(table.c.modified_at, table.c.record_id, table.c.read_at).where(
                    table.c.crm == crm, table.c.object == obj
                )
            ).first()
        return (_utc(row[0]), row[1], _utc(row[2])) if row else None

    def save_cursor(
        self,
        conn: Connection,
        crm: str,
        modified_at: datetime,
        record_id: str,
        now: datetime,
        obj: str = "lead",
        read_at: datetime | None = None,
    ) -> None:
        conn.execute(self.cursor_upsert(crm, (modified_at, record_id, read_at), now, obj))

    def cursor_upsert(
        self,
        crm: str,
        cursor: tuple[datetime, str, datetime | None],
        now: datetime,
        obj: str = "lead",
    ) -> Any:
        """The statement ``save_cursor`` runs (modified_at, record_id, read_at): for a caller
        that sends it as a data-modifying ``WITH`` of another statement on PostgreSQL."""
        values = {
            "crm": crm,
            "object": obj,
            "modified_at": cursor[0],
            "record_id": cursor[1],
            "read_at": cursor[2],
            "updated_at": now,
        }
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        # One row as keywords, not a list: SQLAlchemy caches the compiled form of a single-row
        # insert, while a multi-row VALUES is compiled again on every cycle (~1 ms of CPU).
        stmt = dialect_insert(CursorRow.__table__).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=["crm", "object"],
            set_={c: stmt.excluded[c] for c in values if c not in ("crm", "object")},
        )

    def checkpoint(
        self,
        crm: str,
        run_id: str,
        counts: dict[str, int],
        cursor: tuple[datetime, str, datetime | None] | None,
        now: datetime,
        obj: str = "lead",
    ) -> None:
        """The run's counters and, when given, the cursor (``save_cursor``: modified_at,
        record_id, read_at), atomically.

        On PostgreSQL one statement in autocommit (the cursor's upsert rides as a
        data-modifying ``WITH`` of the run's update): one round trip, where a transaction of
        the two would be four (``BEGIN``, both, ``COMMIT``). SQLite has no round trips to
        save and no data-modifying ``WITH``: a transaction of both.
        """
        table = RunRow.__table__
        progress = update(table).where(table.c.run_id == run_id).values(**counts)
        if self._dialect != "postgresql":
            with self.begin() as conn:
                if cursor is not None:
                    self.save_cursor(conn, crm, cursor[0], cursor[1], now, obj, cursor[2])
                conn.execute(progress)
            return
        if cursor is not None:
            saved = self.cursor_upsert(crm, cursor, now, obj)
            progress = progress.add_cte(saved.cte("saved_cursor"))
        with self.writing_one() as conn:
            conn.execute(progress)

    # ---- mirror ------------------------------------------------------------------------

    def leads_by_id(self, conn: Connection, crm: str, ids: Sequence[str]) -> dict[str, LeadRecord]:
        """The mirror rows (as Row objects) of ``ids`` that exist."""
        out: dict[str, LeadRecord] = {}
        table = LeadRow.__table__
        for chunk in self._id_chunks(table.c.lead_id, ids):
            for row in conn.execute(select(table).where(table.c.crm == crm, chunk)):
                out[row.lead_id] = row
        return out

    def lead_enrichment_page(
        self, conn: Connection, crm: str, after: str, limit: int
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(lead_id, fields, enrichment) of up to ``limit`` mirrored leads of ``crm`` after
        ``after`` in id order, deleted ones too (``explain`` shows them)."""
        table = LeadRow.__table__
        rows = conn.execute(
            select(table.c.lead_id, table.c.fields, table.c.enrichment)
            .where(table.c.crm == crm, table.c.lead_id > after)
            .order_by(table.c.lead_id)
            .limit(limit)
        ).all()
        return [(r.lead_id, r.fields, r.enrichment) for r in rows]

    def leads_modified_since(
        self, conn: Connection, crm: str, since: datetime, after: str, limit: int
    ) -> list[tuple[str, dict[str, Any], datetime | None]]:
        """(lead_id, fields, rep_edit_at) of up to ``limit`` live, unconverted leads of ``crm``
        modified in the CRM after ``since``, after ``after`` in id order."""
        table = LeadRow.__table__
        rows = conn.execute(
            select(table.c.lead_id, table.c.fields, table.c.rep_edit_at)
            .where(
                table.c.crm == crm,
                table.c.lead_id > after,
                table.c.modified_at > since,
                table.c.deleted.is_(False),
                table.c.converted.is_(False),
            )
            .order_by(table.c.lead_id)
            .limit(limit)
        ).all()
        return [(r.lead_id, r.fields, r.rep_edit_at) for r in rows]

    def lead_states(self, conn: Connection, crm: str, ids: Sequence[str]) -> dict[str, LeadState]:
        """What the pull and the write path read of the mirror rows of ``ids`` that exist
        (:class:`~syncd.records.LeadState`): not the enrichment, its reasons or the quarantine,
        whose JSON is most of what decoding a row costs."""
        out: dict[str, LeadState] = {}
        table = LeadRow.__table__
        columns = [table.c[name] for name in _LEAD_STATE_COLUMNS]
        for chunk in self._id_chunks(table.c.lead_id, ids):
            for row in conn.execute(select(*columns).where(table.c.crm == crm, chunk)):
                out[row.lead_id] = row
        return out

    def lead_bodies(self, conn: Connection, crm: str, ids: Sequence[str]) -> dict[str, LeadBody]:
        """The status, fields and newsletters of the mirror rows of ``ids`` that exist: what a
        confirmed write changes (no timestamp is decoded to be written back unchanged)."""
        table = LeadRow.__table__
        if self._dialect == "sqlite":
            # Light records (syncd.body_read): the same values, decoded at less cost.
            from syncd.body_read import fetch_bodies

            return dict(fetch_bodies(conn, crm, self._id_chunks(table.c.lead_id, ids)))
        out: dict[str, LeadBody] = {}
        columns = [table.c.lead_id, table.c.status, table.c.fields, table.c.newsletters]
        for chunk in self._id_chunks(table.c.lead_id, ids):
            for row in conn.execute(select(*columns).where(table.c.crm == crm, chunk)):
                out[row.lead_id] = row
        return out

    def lead_newsletters(
        self, conn: Connection, crm: str, ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """The newsletters of the mirror rows of ``ids`` that exist, by lead id."""
        table = LeadRow.__table__
        if self._dialect == "sqlite":
            from syncd.body_read import fetch_newsletters

            return fetch_newsletters(conn, crm, self._id_chunks(table.c.lead_id, ids))
        out: dict[str, list[str]] = {}
        for chunk in self._id_chunks(table.c.lead_id, ids):
            for lead_id, newsletters in conn.execute(
                select(table.c.lead_id, table.c.newsletters).where(table.c.crm == crm, chunk)
            ):
                out[lead_id] = newsletters
        return out

    def forget_lead_fields(self, conn: Connection, crm: str, names: Sequence[str]) -> int:
        """Drop fields ``names`` from every mirrored lead of ``crm`` (``syncd.field_remap``):
        read again, they come back as first read. Returns the leads changed."""
        table = LeadRow.__table__
        if not names:
            return 0
        if self._dialect == "postgresql":
            dropped = text("(fields::jsonb - CAST(:names AS text[]))::json").bindparams(
                names=list(names)
            )
        else:  # a JSON path per name, quoted as SQLite's JSON paths quote a key
            paths = {f"p{i}": f'$."{n}"' for i, n in enumerate(names)}
            dropped = text(f"json_remove(fields, {', '.join(':' + k for k in paths)})")
            dropped = dropped.bindparams(**paths)
        result = conn.execute(update(table).where(table.c.crm == crm).values(fields=dropped))
        self.rows_churned["lead"] += result.rowcount or 0
        return result.rowcount or 0

    def forget_cursor(self, conn: Connection, crm: str, obj: str = "lead") -> None:
        """The next pull of ``crm`` reads every record, as a first sync does."""
        table = CursorRow.__table__
        conn.execute(delete(table).where(table.c.crm == crm, table.c.object == obj))

    def existing_lead_ids(self, conn: Connection, crm: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the mirror holds (the index alone: no row is read or decoded)."""
        out: set[str] = set()
        table = LeadRow.__table__
        for chunk in self._id_chunks(table.c.lead_id, ids):
            out.update(
                conn.execute(select(table.c.lead_id).where(table.c.crm == crm, chunk)).scalars()
            )
        return out

    def upsert_leads(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update mirror rows (``first_seen_at`` is kept on update).

        One statement, compiled once and cached, run as an executemany: a multi-VALUES statement
        per page would be compiled again for every page.
        """
        if not rows:
            return
        rows = _same_keys([{**r, "due_at": _due_after_write(r)} for r in rows])
        self.rows_written["lead"] += len(rows)
        self.rows_churned["lead"] += len(rows)
        if self._dialect == "postgresql":  # staged by COPY, moved in one statement
            pg_copy.upsert_copied(
                conn, LeadRow.__table__, rows, ("crm", "lead_id"), keep=("first_seen_at",)
            )
            return
        keys = tuple(sorted(rows[0]))

        def build() -> Any:
            insert = sqlite.insert(LeadRow.__table__)
            return insert.on_conflict_do_update(
                index_elements=["crm", "lead_id"],
                set_={
                    c: insert.excluded[c]
                    for c in keys
                    if c not in ("crm", "lead_id", "first_seen_at")
                },
            )

        self._many.run(conn, "upsert_leads", build, rows)

    def update_leads(self, conn: Connection, crm: str, rows: Sequence[dict[str, Any]]) -> None:
        """Update several leads in one executemany; each row has ``lead_id`` and the same keys."""
        if not rows:
            return
        table = LeadRow.__table__
        if self._dialect == "postgresql":  # one statement, not one a lead
            pg_bulk.update_by_key(
                conn,
                table,
                {"crm": crm},
                "lead_id",
                rows,
                also={"due_at": _PG_DUE_AFTER_UPDATE},
                params={"never_due": NEVER_DUE},
            )
            return
        keys = [k for k in rows[0] if k != "lead_id"]

        def build() -> Any:
            return (
                update(table)
                .where(table.c.crm == crm, table.c.lead_id == bindparam("_id"))
                .values({**{k: bindparam(k) for k in keys}, "due_at": _DUE_AFTER_UPDATE})
            )

        self._many.run(
            conn,
            f"update_leads {crm}",  # the statement binds crm
            build,
            [{**{k: r[k] for k in keys}, "_id": r["lead_id"]} for r in rows],
        )

    def update_lead(self, conn: Connection, crm: str, lead_id: str, **values: Any) -> None:
        table = LeadRow.__table__
        conn.execute(
            update(table)
            .where(table.c.crm == crm, table.c.lead_id == lead_id)
            .values(**{"due_at": _DUE_AFTER_UPDATE, **values})
        )

    def set_due(
        self, conn: Connection, crm: str, dues: Sequence[tuple[str, datetime, bool]]
    ) -> None:
        """Store, for each evaluated lead, when it is next due (``syncd.due``) and whether the
        guards blocked its rule: one executemany."""
        if not dues:
            return
        table = LeadRow.__table__
        self.rows_written["lead"] += len(dues)  # due_at's statistics (syncd.planner_stats)
        self.rows_churned["lead"] += len(dues)
        if self._dialect == "postgresql":  # one statement, not one a lead
            rows = [{"lead_id": i, "due_at": d, "guard_blocked": b} for i, d, b in dues]
            pg_bulk.update_by_key(conn, table, {"crm": crm}, "lead_id", rows)
            return
        self._many.run(
            conn,
            f"set_due {crm}",  # the statement binds crm
            lambda: (
                update(table)
                .where(table.c.crm == crm, table.c.lead_id == bindparam("_id"))
                .values(due_at=bindparam("_due"), guard_blocked=bindparam("_blocked"))
            ),
            [{"_id": i, "_due": due, "_blocked": blocked} for i, due, blocked in dues],
        )

    def _count_unconverted(self, crm: str, condition: ColumnElement[bool]) -> int:
        """Live, unconverted leads of ``crm`` meeting ``condition`` (an indexed count)."""
        table = LeadRow.__table__
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(
                        table.c.crm == crm,
                        condition,
                        table.c.deleted.is_(False),
                        table.c.converted.is_(False),
                    )
                ).scalar_one()
            )

    def count_held_and_blocked(self, crm: str, since: datetime) -> tuple[int, int]:
        """``count_held(crm, since)`` and ``count_blocked(crm)`` in one round trip: two
        indexed counts a cycle reports (``run.held``, ``run.blocked``), each O(counted rows)."""
        with self.reading() as conn:
            held, blocked = conn.execute(select(*self.held_and_blocked_counts(crm, since))).one()
        return int(held), int(blocked)

    def held_and_blocked_counts(
        self, crm: str, since: datetime
    ) -> tuple[ScalarSelect[int], ScalarSelect[int]]:
        """The two counts of :meth:`count_held_and_blocked`, as subqueries of a larger read
        (``syncd.plan_probe``)."""
        table = LeadRow.__table__
        unconverted = (
            table.c.crm == crm,
            table.c.deleted.is_(False),
            table.c.converted.is_(False),
        )

        def counted(condition: ColumnElement[bool]) -> ScalarSelect[int]:
            query = select(func.count()).select_from(table).where(condition, *unconverted)
            return query.scalar_subquery()

        return counted(table.c.rep_edit_at > since), counted(table.c.guard_blocked.is_(True))

    def count_blocked(self, crm: str) -> int:
        """Live leads whose last evaluation the guards blocked (an indexed count)."""
        return self._count_unconverted(crm, LeadRow.__table__.c.guard_blocked.is_(True))

    def reset_due(self, conn: Connection, crm: str, lead_ids: Sequence[str] | None = None) -> None:
        """Make leads due at the next cycle: these, or every live one of ``crm``."""
        table = LeadRow.__table__
        live = [table.c.crm == crm, table.c.deleted.is_(False), table.c.converted.is_(False)]
        if lead_ids is None:
            conn.execute(
                update(table).where(*live, table.c.due_at.is_not(None)).values(due_at=None)
            )
            return
        ids = list(lead_ids)
        for start in range(0, len(ids), _UPSERT_CHUNK):
            conn.execute(
                update(table)
                .where(*live, table.c.lead_id.in_(ids[start : start + _UPSERT_CHUNK]))
                .values(due_at=None)
            )

    def mark_unseen_deleted(
        self, crm: str, pulled_before: datetime, now: datetime, *, run_id: str
    ) -> int:
        """After a full pass: live leads not pulled since ``pulled_before`` are gone.

        Their open changes are withdrawn (audited in ``run_id``).
        """
        table = LeadRow.__table__
        with self.begin() as conn:
            stale = [
                r[0]
                for r in conn.execute(
                    select(table.c.lead_id).where(
                        table.c.crm == crm,
                        table.c.deleted.is_(False),
                        table.c.pulled_at < pulled_before,
                    )
                )
            ]
            self._set_deleted(conn, crm, stale)
            self.close_changes(
                conn,
                self.open_changes(conn, crm, stale),
                OutboxState.WITHDRAWN,
                now,
                run_id=run_id,
                reason="lead deleted in the CRM",
            )
        return len(stale)

    def mark_deleted(self, conn: Connection, crm: str, lead_ids: Sequence[str]) -> list[str]:
        """Mark those of ``lead_ids`` that are live in the mirror deleted (never due again);
        returns them. Their open changes are the caller's to close."""
        table = LeadRow.__table__
        live: list[str] = []
        for start in range(0, len(lead_ids), _UPSERT_CHUNK):
            live += [
                r[0]
                for r in conn.execute(
                    select(table.c.lead_id).where(
                        table.c.crm == crm,
                        table.c.deleted.is_(False),
                        table.c.lead_id.in_(lead_ids[start : start + _UPSERT_CHUNK]),
                    )
                )
            ]
        self._set_deleted(conn, crm, live)
        return live

    def rekey_history(self, conn: Connection, crm: str, merged: Mapping[str, str]) -> int:
        """Move the ledger rows of leads the CRM merged into others (``merged``: old id -> the
        lead it lives on in) to that lead, ids, times, sources and actors kept: the merged
        lead's history is both originals' (HubSpot's, crm-api C12). One statement (per 500 old
        ids); returns the rows moved. When any moved, the CRM's re-key count
        (:func:`ledger_rekeys`) goes up in the same transaction: a moved row keeps its id, so
        that count is how the funnel kept between refreshes (``syncd.kpi_incremental``) learns
        of it."""
        table = StatusHistoryRow.__table__
        olds = sorted(merged)
        moved = 0
        for start in range(0, len(olds), _UPSERT_CHUNK):
            chunk = olds[start : start + _UPSERT_CHUNK]
            result = conn.execute(
                update(table)
                .where(table.c.crm == crm, table.c.lead_id.in_(chunk))
                .values(lead_id=case({old: merged[old] for old in chunk}, value=table.c.lead_id))
            )
            moved += result.rowcount
        if moved:
            self.put_meta(conn, _rekeys_key(crm), ledger_rekeys(conn, crm) + 1)
        return moved

    @staticmethod
    def _set_deleted(conn: Connection, crm: str, lead_ids: Sequence[str]) -> None:
        table = LeadRow.__table__
        for start in range(0, len(lead_ids), _UPSERT_CHUNK):
            conn.execute(
                update(table)
                .where(
                    table.c.crm == crm,
                    table.c.lead_id.in_(lead_ids[start : start + _UPSERT_CHUNK]),
                )
                .values(deleted=True, due_at=NEVER_DUE)
            )

    def iter_live_leads(self, crm: str, *, chunk: int = 2000) -> Iterator[list[LeadRecord]]:
        """Every mirrored lead not deleted, in chunks, by keyset (flat memory, no OFFSET)."""
        last = ""
        table = LeadRow.__table__
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(table)
                    .where(table.c.crm == crm, table.c.deleted.is_(False), table.c.lead_id > last)
                    .order_by(table.c.lead_id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield list(rows)
            last = rows[-1].lead_id

    def lead(self, crm: str, lead_id: str) -> LeadRecord | None:
        table = LeadRow.__table__
        with self.engine.connect() as conn:
            return conn.execute(
                select(table).where(table.c.crm == crm, table.c.lead_id == lead_id)
            ).first()

    def find_leads(self, ref: str) -> list[LeadRecord]:
        """Leads whose id is ``ref`` or whose email is ``ref`` (case-insensitive), any CRM."""
        table = LeadRow.__table__
        ref = ref.strip()  # pasted with the spaces around it
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.lead_id == ref)).all()
            if rows:
                return list(rows)
            # SQLAlchemy renders the JSON path for each dialect (json_extract / ->>).
            email = table.c.fields["email"].as_string()
            if ref.isascii():
                # SQL lower() folds ASCII letters on every store, so SQL alone decides.
                return list(conn.execute(select(table).where(func.lower(email) == ref.lower())))
            # SQLite's lower() (and PostgreSQL's under the C locale) folds ASCII letters only:
            # 'ANN@MÜLLER.DE' reads 'ann@mÜller.de' there, and no SQL form of 'ANN@müller.de'
            # equals that. SQL narrows by the ASCII letters (each run of other letters is a
            # wildcard: their case forms may differ in length, 'İ'.lower() is two characters);
            # Python compares the few candidates with full Unicode lower-casing.
            candidates = conn.execute(
                select(table).where(func.lower(email).like(_like_ascii(ref), escape="\\"))
            )
            wanted = ref.lower()
            return [
                r
                for r in candidates
                if isinstance(r.fields.get("email"), str) and r.fields["email"].lower() == wanted
            ]

    def count_live(self, crm: str, *, at_most: int | None = None) -> int:
        """How many live (not deleted) leads ``crm`` has; with ``at_most``, counted no further
        than that (a count of all reads every lead row: seconds at a million leads)."""
        table = LeadRow.__table__
        live = select(literal(1)).where(table.c.crm == crm, table.c.deleted.is_(False))
        if at_most is not None:
            live = live.limit(at_most)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(live.subquery())).scalar_one())

    def count_held(self, crm: str, since: datetime) -> int:
        """How many leads ``held_leads`` lists (an indexed count)."""
        return self._count_unconverted(crm, LeadRow.__table__.c.rep_edit_at > since)

    def held_leads(self, crm: str, since: datetime) -> list[LeadRecord]:
        """Held leads (``syncd.holds``): live, unconverted, a person's edit after ``since``."""
        table = LeadRow.__table__
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table)
                    .where(
                        table.c.crm == crm,
                        table.c.rep_edit_at > since,
                        table.c.deleted.is_(False),
                        table.c.converted.is_(False),
                    )
                    .order_by(table.c.lead_id)
                ).all()
            )

    def quarantined_leads(self, crm: str) -> list[QuarantineRecord]:
        """Live leads whose last pull had values syncd could not use."""
        table = LeadRow.__table__
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table.c.lead_id, table.c.quarantine)
                    .where(
                        table.c.crm == crm,
                        table.c.quarantine.is_not(None),
                        table.c.deleted.is_(False),
                    )
                    .order_by(table.c.lead_id)
                ).all()
            )

    def failed_leads(self, crm: str) -> list[LeadRecord]:
        table = LeadRow.__table__
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table).where(
                        table.c.crm == crm,
                        table.c.error_code.is_not(None),
                        table.c.deleted.is_(False),
                    )
                ).all()
            )

    # ---- outbox ------------------------------------------------------------------------

    def open_changes(self, conn: Connection, crm: str, ids: Sequence[str]) -> list[OutboxRecord]:
        """Planned, pending or in-doubt (``sending``) outbox rows of these leads."""
        out: list[OutboxRecord] = []
        table = OutboxRow.__table__
        for chunk in self._id_chunks(table.c.lead_id, ids):
            out.extend(
                conn.execute(
                    select(table).where(
                        table.c.crm == crm,
                        chunk,
                        table.c.state.in_(OPEN_STATES),
                    )
                ).all()
            )
        return out

    def refused_memberships(
        self, conn: Connection, crm: str, ids: Sequence[str]
    ) -> dict[tuple[str, str], datetime]:
        """(lead id, newsletter) -> when the CRM last refused adding the lead to it for good
        (a ``failed`` membership row), for these leads."""
        table = OutboxRow.__table__
        out: dict[tuple[str, str], datetime] = {}
        for chunk in self._id_chunks(table.c.lead_id, ids):
            rows = conn.execute(
                select(table.c.lead_id, table.c.field, func.max(table.c.updated_at))
                .where(
                    table.c.crm == crm,
                    chunk,
                    table.c.kind == "membership",
                    table.c.state == OutboxState.FAILED,
                )
                .group_by(table.c.lead_id, table.c.field)
            ).all()
            out.update({(r[0], r[1]): r[2] for r in rows})
        return out

    def lead_ids_in_states(
        self, conn: Connection, crm: str, states: Sequence[OutboxState]
    ) -> set[str]:
        """Leads of ``crm`` with an outbox row in one of ``states``: O(such rows), not O(outbox).

        Ordered as ``ix_outbox_crm_state`` is and deduplicated here: a ``DISTINCT lead_id`` led
        SQLite to walk ``ix_outbox_lead`` over every row the CRM ever had, done ones included,
        on every cycle (an idle cycle's largest cost at 1M leads).
        """
        table = OutboxRow.__table__
        return set(
            conn.execute(
                select(table.c.lead_id)
                .where(table.c.crm == crm, table.c.state.in_(states))
                .order_by(table.c.state, table.c.next_attempt_at)
            ).scalars()
        )

    def has_changes_in(self, crm: str, states: Sequence[OutboxState]) -> bool:
        """Whether ``crm`` has an outbox row in one of ``states`` (one index probe, no
        transaction): lets an idle cycle skip a transaction that would change nothing."""
        table = OutboxRow.__table__
        with self.reading() as conn:
            probe = select(table.c.id).where(table.c.crm == crm, table.c.state.in_(states))
            return conn.execute(probe.limit(1)).first() is not None

    def outbox_states_present(self, crm: str, states: Sequence[OutboxState]) -> set[OutboxState]:
        """Which of ``states`` ``crm`` has an outbox row in: one statement (an index probe a
        state), where ``has_changes_in`` for each would be a round trip each on PostgreSQL."""
        table = OutboxRow.__table__
        probes = [exists().where(table.c.crm == crm, table.c.state == s) for s in states]
        with self.reading() as conn:
            found = conn.execute(select(*probes)).one()
        return {s for s, present in zip(states, found, strict=True) if present}

    def settle_sending(self, conn: Connection, crm: str, now: datetime) -> int:
        """In-doubt rows the pull did not resolve go back to ``pending`` (see OutboxState)."""
        table = OutboxRow.__table__
        result = conn.execute(
            update(table)
            .where(table.c.crm == crm, table.c.state == OutboxState.SENDING)
            .values(state=OutboxState.PENDING, updated_at=now, may_have_landed=True)
        )
        return result.rowcount or 0

    def intent_parts(
        self, conn: Connection, intent_ids: Iterable[str]
    ) -> dict[str, list[OutboxRecord]]:
        """Every outbox row of these intents, whatever its state, by intent id."""
        ids = sorted(set(intent_ids))
        out: dict[str, list[OutboxRecord]] = {i: [] for i in ids}
        table = OutboxRow.__table__
        for start in range(0, len(ids), _UPSERT_CHUNK):
            for row in conn.execute(
                select(table)
                .where(table.c.intent_id.in_(ids[start : start + _UPSERT_CHUNK]))
                .order_by(table.c.id)
            ):
                out[row.intent_id].append(row)
        return out

    def add_changes(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._insert_many(conn, "add_changes", OutboxRow.__table__, rows)
            self.rows_written["outbox"] += len(rows)

    def _insert_many(
        self, conn: Connection, name: str, table: Table, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Insert ``rows``: an executemany on SQLite, one statement on PostgreSQL (pg_bulk)."""
        if self._dialect == "postgresql":
            pg_bulk.insert_rows(conn, table, _same_keys(rows))
        else:
            self._many.run(conn, name, table.insert, _same_keys(rows))

    def set_change_state(
        self, conn: Connection, ids: Iterable[int], state: OutboxState, now: datetime, **values: Any
    ) -> None:
        ids = list(ids)
        table = OutboxRow.__table__
        if self._dialect == "postgresql":  # one statement whatever the number of rows
            chunks = [pg_bulk.any_of(table.c.id, ids, Integer())] if ids else []
        else:
            chunks = [
                table.c.id.in_(ids[start : start + _UPSERT_CHUNK])
                for start in range(0, len(ids), _UPSERT_CHUNK)
            ]
        for chunk in chunks:
            conn.execute(update(table).where(chunk).values(state=state, updated_at=now, **values))
        self.rows_written["outbox"] += len(ids)  # state's statistics (syncd.planner_stats)
        self.rows_churned["outbox"] += len(ids)

    def close_changes(
        self,
        conn: Connection,
        rows: Sequence[OutboxRecord],
        state: OutboxState,
        now: datetime,
        *,
        run_id: str,
        reason: str,
    ) -> None:
        """End open rows unsent (``superseded`` or ``withdrawn``) with ``reason``, and audit it.

        The reason is kept on the row (``error_message``) and in the audit row's message, so
        ``syncd status`` and ``syncd audit`` say why a change was not delivered.
        """
        if state not in (OutboxState.SUPERSEDED, OutboxState.WITHDRAWN):
            raise ValueError(f"close_changes ends rows unsent; {state!r} is not such a state")
        if not rows:
            return
        self.set_change_state(conn, [r.id for r in rows], state, now, error_message=reason)
        self.add_audit(
            conn,
            [audit_values(r, AuditOutcome(state.value), now, run_id, message=reason) for r in rows],
        )

    def promote_planned(
        self, conn: Connection, crm: str, run_id: str, state: OutboxState, now: datetime
    ) -> int:
        """Planned rows of a run become ``pending`` (approved) or ``blocked`` (breaker)."""
        table = OutboxRow.__table__
        result = conn.execute(
            update(table)
            .where(
                table.c.crm == crm, table.c.run_id == run_id, table.c.state == OutboxState.PLANNED
            )
            .values(state=state, updated_at=now)
        )
        promoted = result.rowcount or 0
        self.rows_written["outbox"] += promoted  # state's statistics (syncd.planner_stats)
        self.rows_churned["outbox"] += promoted
        return promoted

    def discard_stale_plans(self, crm: str, now: datetime) -> int:
        """Planned rows of a run that died before approving them will never be sent.

        Not audited: an unapproved plan was never a decision to write (a whole first sync can
        be one), and the next run plans again what the rules still want.
        """
        table = OutboxRow.__table__
        planned = [table.c.crm == crm, table.c.state == OutboxState.PLANNED]
        if not self.has_changes_in(crm, [OutboxState.PLANNED]):
            return 0  # every cycle but one after a crash: no transaction
        with self.begin() as conn:
            # Their leads were marked evaluated with the plan: due again, to be planned anew.
            leads = sorted(self.lead_ids_in_states(conn, crm, [OutboxState.PLANNED]))
            self.reset_due(conn, crm, leads)
            return (
                conn.execute(
                    update(table)
                    .where(*planned)
                    .values(
                        state=OutboxState.SUPERSEDED,
                        updated_at=now,
                        error_message="plan of an interrupted run",
                    )
                ).rowcount
                or 0
            )

    def iter_due_changes(
        self, crm: str, kind: str, now: datetime, *, chunk: int = 2000
    ) -> Iterator[list[OutboxRecord]]:
        """Pending changes of one kind that are due, in chunks by keyset.

        Field changes come ordered by lead, so a lead's rows are adjacent; memberships by
        newsletter, then lead. Rows changing state while the caller works through a chunk do
        not disturb the keyset.
        """
        table = OutboxRow.__table__
        order = (
            (table.c.lead_id, table.c.id)
            if kind == "field"
            else (table.c.field, table.c.lead_id, table.c.id)
        )
        # On SQLite, light records (syncd.outbox_read): the same values without SQLAlchemy's
        # per-column result processing, most of what reading the drain's rows cost.
        from syncd.outbox_read import fetch_outbox, outbox_columns

        light = self._dialect == "sqlite"
        last: tuple[Any, ...] | None = None
        while True:
            stmt = (select(*outbox_columns()) if light else select(table)).where(
                table.c.crm == crm,
                table.c.kind == kind,
                table.c.state == OutboxState.PENDING,
                or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
            )
            if last is not None:
                stmt = stmt.where(tuple_(*order) > tuple_(*last))
            stmt = stmt.order_by(*order).limit(chunk)
            with self.reading() as conn:
                rows: Sequence[OutboxRecord] = (
                    fetch_outbox(conn, stmt) if light else conn.execute(stmt).all()
                )
            if not rows:
                return
            yield list(rows)
            last = tuple(getattr(rows[-1], c.name) for c in order)

    def pending_count(self, crm: str) -> int:
        """Approved changes not yet confirmed: waiting to be sent, or sent and in doubt."""
        table = OutboxRow.__table__
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        table.c.crm == crm,
                        table.c.state.in_((OutboxState.PENDING, OutboxState.SENDING)),
                    )
                ).scalar_one()
            )

    def pending_summary(self, crm: str) -> list[tuple[str, str, str | None, int]]:
        """Pending (and in-doubt) rows grouped by (kind, field, last error code), largest group
        first."""
        table = OutboxRow.__table__
        count = func.count().label("n")
        waiting = table.c.state.in_((OutboxState.PENDING, OutboxState.SENDING))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.kind, table.c.field, table.c.error_code, count)
                .where(table.c.crm == crm, waiting)
                .group_by(table.c.kind, table.c.field, table.c.error_code)
                .order_by(count.desc())
            ).all()
        return [(r.kind, r.field, r.error_code, r.n) for r in rows]

    def changes_by_id(self, crm: str, ids: Sequence[int], state: str) -> list[OutboxRecord]:
        """The outbox rows of ``crm`` among ``ids`` that are in ``state``, oldest first."""
        table = OutboxRow.__table__
        out: list[OutboxRecord] = []
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                out += conn.execute(
                    select(table).where(
                        table.c.crm == crm,
                        table.c.id.in_(ids[start : start + 500]),
                        table.c.state == state,
                    )
                ).all()
        return sorted(out, key=lambda r: r.id)

    def change_ids_in(self, crm: str, ids: Sequence[int], state: str) -> list[int]:
        """The ids among ``ids`` of ``crm``'s outbox rows in ``state``, in order (ids only:
        a restarted process may look at half a million of them)."""
        table = OutboxRow.__table__
        out: list[int] = []
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                out += conn.execute(
                    select(table.c.id).where(
                        table.c.crm == crm,
                        table.c.id.in_(ids[start : start + 500]),
                        table.c.state == state,
                    )
                ).scalars()
        return sorted(out)

    def changes_of_run(self, crm: str, run_id: str, states: Sequence[str]) -> list[OutboxRecord]:
        table = OutboxRow.__table__
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table)
                    .where(table.c.crm == crm, table.c.run_id == run_id, table.c.state.in_(states))
                    .order_by(table.c.id)
                ).all()
            )

    # ---- audit and runs ----------------------------------------------------------------

    def add_audit(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._insert_many(conn, "add_audit", AuditRow.__table__, rows)

    def add_history(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of the status history ledger (``syncd.ledger`` builds them)."""
        if rows:
            self._insert_many(conn, "add_history", StatusHistoryRow.__table__, rows)
            self.rows_written["status_history"] += len(rows)

    def add_history_pending(self, conn: Connection, crm: str, lead_ids: Sequence[str]) -> None:
        """Mark leads whose first-sight history is still to be read (``syncd.history_pending``)."""
        if lead_ids:
            # One executemany of a statement compiled once (cached): a pull adds every page.
            insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
            stmt = insert(HistoryPendingRow.__table__).on_conflict_do_nothing(
                index_elements=["crm", "lead_id"]
            )
            conn.execute(stmt, [{"crm": crm, "lead_id": i} for i in dict.fromkeys(lead_ids)])

    def history_pending(self, crm: str, limit: int) -> list[str]:
        """Up to ``limit`` leads whose first-sight history is still to be read."""
        table = HistoryPendingRow.__table__
        stmt = select(table.c.lead_id).where(table.c.crm == crm)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt.order_by(table.c.lead_id).limit(limit)).scalars())

    def clear_history_pending(self, conn: Connection, crm: str, lead_ids: Sequence[str]) -> None:
        table = HistoryPendingRow.__table__
        for start in range(0, len(lead_ids), _UPSERT_CHUNK):
            chunk = list(lead_ids[start : start + _UPSERT_CHUNK])
            conn.execute(delete(table).where(table.c.crm == crm, table.c.lead_id.in_(chunk)))

    def correct_written_from(
        self,
        conn: Connection,
        crm: str,
        lead_id: str,
        run_id: str,
        to_value: str,
        actual: str | None,
        *,
        field: str = "status",
    ) -> None:
        """syncd's write of ``to_value`` to ``field`` (the ledger's name) in ``run_id``
        replaced ``actual`` (a person's value the mirror had not seen): the ledger's row says
        so."""
        table = StatusHistoryRow.__table__
        conn.execute(
            update(table)
            .where(
                table.c.crm == crm,
                table.c.lead_id == lead_id,
                table.c.run_id == run_id,
                table.c.field == field,
                table.c.to_value == to_value,
                table.c.source == HistorySource.WRITTEN.value,
            )
            .values(from_value=actual)
        )

    def history_of_leads(
        self, conn: Connection, crm: str, lead_ids: Sequence[str]
    ) -> dict[str, list[Any]]:
        """The ledger's rows of these leads, by lead."""
        table = StatusHistoryRow.__table__
        out: dict[str, list[Any]] = {}
        for start in range(0, len(lead_ids), _UPSERT_CHUNK):
            chunk = list(lead_ids[start : start + _UPSERT_CHUNK])
            stmt = select(table).where(table.c.crm == crm, table.c.lead_id.in_(chunk))
            for row in conn.execute(stmt.order_by(table.c.at, table.c.id)):
                out.setdefault(row.lead_id, []).append(row)
        return out

    def history_of_lead(self, crm: str, lead_id: str) -> list[Any]:
        """The ledger's transitions of one lead, oldest first."""
        table = StatusHistoryRow.__table__
        stmt = (
            select(table)
            .where(table.c.crm == crm, table.c.lead_id == lead_id)
            .order_by(table.c.at, table.c.id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def audit_of_lead(self, lead_id: str, crm: str | None = None) -> list[AuditRecord]:
        table = AuditRow.__table__
        cond = [table.c.lead_id == lead_id] + ([table.c.crm == crm] if crm else [])
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(and_(*cond)).order_by(table.c.id)).all())

    def audit_of_run(self, run_id: str, *, limit: int | None = None) -> list[AuditRecord]:
        table = AuditRow.__table__
        stmt = select(table).where(table.c.run_id == run_id).order_by(table.c.id)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt if limit is None else stmt.limit(limit)).all())

    def audit_count(self, run_id: str) -> int:
        table = AuditRow.__table__
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).where(table.c.run_id == run_id)).scalar_one()
            )

    def unsent_by_reason(self, run_ids: Sequence[str]) -> Counter[tuple[str, str]]:
        """Changes these runs superseded or withdrew, counted by (outcome, reason)."""
        table = AuditRow.__table__
        if not run_ids:
            return Counter()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.outcome, table.c.message, func.count())
                .where(
                    table.c.run_id.in_(list(run_ids)),
                    table.c.outcome.in_((AuditOutcome.SUPERSEDED, AuditOutcome.WITHDRAWN)),
                )
                .group_by(table.c.outcome, table.c.message)
            ).all()
        return Counter({(r[0], r[1] or ""): r[2] for r in rows})

    def start_run(self, run: RunRow) -> None:
        with self.writing_one() as conn:
            conn.execute(RunRow.__table__.insert(), [run.model_dump()])

    def finish_run(self, run: RunRow) -> None:
        with self.writing_one() as conn:
            table = RunRow.__table__
            conn.execute(
                update(table)
                .where(table.c.run_id == run.run_id)
                .values(**run.model_dump(exclude={"run_id"}))
            )

    def record_run_progress(self, conn: Connection, run_id: str, counts: dict[str, int]) -> None:
        """The run's counters so far, in the transaction that committed what they count.

        A run killed mid-cycle then shows what it pulled, planned and wrote up to its last
        commit, not zeros (``finish_run`` writes the final figures).
        """
        table = RunRow.__table__
        conn.execute(update(table).where(table.c.run_id == run_id).values(**counts))

    def close_interrupted_runs(self, now: datetime, crm: str | None = None) -> int:
        """Runs still marked running belong to a process that died; say so.

        Call it only while holding ``crm``'s lease: a live leader's run is also ``running``.
        """
        table = RunRow.__table__
        cond = [table.c.outcome == "running"] + ([table.c.crm == crm] if crm else [])
        with self.begin() as conn:
            return (
                conn.execute(
                    update(table)
                    .where(*cond)
                    .values(
                        outcome="interrupted",
                        finished_at=now,
                        message="the process stopped before the run finished",
                    )
                ).rowcount
                or 0
            )

    def last_runs(self, limit: int = 10, crm: str | None = None) -> list[RunRecord]:
        table = RunRow.__table__
        stmt = select(table).order_by(table.c.started_at.desc()).limit(limit)
        if crm:
            stmt = stmt.where(table.c.crm == crm)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    # ---- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        with self.reading() as conn:
            table = MetaRow.__table__
            value = conn.execute(select(table.c.value).where(table.c.key == key)).scalar()
        return None if value is None else json.loads(value)

    def set_meta(self, key: str, value: Any) -> None:
        with self.begin() as conn:
            self.put_meta(conn, key, value)

    def put_meta(self, conn: Connection, key: str, value: Any) -> None:
        """``set_meta`` inside the caller's transaction."""
        conn.execute(self._upsert(MetaRow, [{"key": key, "value": json.dumps(value)}], ["key"]))

    def meta_with_prefix(self, prefix: str) -> dict[str, Any]:
        """Every ``meta`` record whose key starts with ``prefix``, by key (records kept in
        parts: one written per step, rather than one rewritten whole at each)."""
        table = MetaRow.__table__
        with self.reading() as conn:
            rows = conn.execute(
                select(table.c.key, table.c.value).where(
                    table.c.key.startswith(prefix, autoescape=True)
                )
            ).all()
        return {key: json.loads(value) for key, value in rows}

    def delete_meta(self, conn: Connection, *keys: str, prefix: str | None = None) -> None:
        """Delete the ``meta`` records ``keys`` and those whose key starts with ``prefix``,
        inside the caller's transaction."""
        table = MetaRow.__table__
        if keys:
            conn.execute(delete(table).where(table.c.key.in_(keys)))
        if prefix is not None:
            conn.execute(delete(table).where(table.c.key.startswith(prefix, autoescape=True)))

    # ---- helpers -----------------------------------------------------------------------

    def _upsert(
        self,
        model: type[SQLModel],
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        update_cols: Sequence[str] | None = None,
    ) -> Any:
        table = model.__table__  # type: ignore[attr-defined]
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(table).values(list(rows))
        cols = update_cols if update_cols is not None else [c for c in rows[0] if c not in keys]
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}
        )


def audit_values(
    change: OutboxRecord,
    outcome: AuditOutcome,
    now: datetime,
    run_id: str,
    *,
    error_code: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """The audit row of one outbox row's outcome.

    A row that may already be in the CRM (sent without an answer: still ``sending``, or settled
    with ``may_have_landed``) and ends failed, withdrawn or superseded says so in its message,
    whatever the reason it ends: the audit must not claim the CRM never got it.
    """
    if outcome in _UNSENT_OR_FAILED and _may_have_landed(change):
        if message is None:
            message = MAY_HAVE_LANDED
        elif "unconfirmed" not in message:
            message = f"{message}; {MAY_HAVE_LANDED}"
    return {
        "crm": change.crm,
        "lead_id": change.lead_id,
        "field": change.field if change.kind == "field" else f"newsletter:{change.field}",
        "before": change.before,
        "after": change.value,
        "rule_id": change.rule_id,
        "ruleset_version": change.ruleset_version,
        "run_id": run_id,
        "intent_id": change.intent_id,
        "at": now,
        "outcome": outcome,
        "error_code": error_code,
        "message": message,
    }


#: Appended to the audit message of a change that ends unsent or failed after it was sent once
#: without an answer (``audit_values``).
MAY_HAVE_LANDED = "sent earlier without an answer (unconfirmed): it may have landed"


def _may_have_landed(change: OutboxRecord) -> bool:
    return change.state == OutboxState.SENDING or bool(change.may_have_landed)


def _due_after_write(row: dict[str, Any]) -> datetime | None:
    """``due_at`` of a mirror row just written: due at the next cycle while live (its content
    changed), never once deleted or converted (never evaluated)."""
    return NEVER_DUE if row.get("deleted") or row.get("converted") else None


# The same, as SQL, for UPDATEs of rows whose flags the statement may not set.
_DUE_AFTER_UPDATE = case(
    (
        or_(LeadRow.__table__.c.deleted.is_(True), LeadRow.__table__.c.converted.is_(True)),
        NEVER_DUE,
    ),
    else_=None,
)
# As pg_bulk.update_by_key writes it (``t``: the row before the update).
_PG_DUE_AFTER_UPDATE = (
    "CASE WHEN t.deleted IS true OR t.converted IS true THEN %(never_due)s::timestamptz END"
)


def _same_keys(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """An executemany compiles its statement from the first row's keys and silently drops keys
    that only later rows have; give every row the same keys."""
    first = rows[0].keys() if rows else None
    if all(row.keys() == first for row in rows):
        return list(rows)  # the usual case, checked in C: no row is copied
    keys = {k for row in rows for k in row}
    return [{k: row.get(k) for k in keys} for row in rows]


#: How long an SQLite connection waits for a lock another process holds: sqlite3's busy
#: timeout, and how long a new connection retries turning on WAL (which may refuse at once).
_SQLITE_BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets `syncd status` read while the daemon writes; NORMAL sync is durable at each
    # commit under WAL against process crashes (the failure syncd must survive).
    cur = dbapi_conn.cursor()
    _turn_on_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _turn_on_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while SQLite answers "database is locked".

    On a new file, processes opening it at once (two daemons, or `syncd status`, started
    together) race to switch it to WAL, and SQLite may refuse the pragma at once rather than
    wait out the busy timeout: measured here, 3 of 120 processes opening a new store three at a
    time failed with it before their first statement.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
