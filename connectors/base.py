"""The contract between the daemon and one CRM account.

A connector knows HTTP and its CRM and nothing of rules or of syncd's state store. The daemon
(``syncd.pipeline``) owns the paging loop's bookkeeping, the outbox and every policy decision
(retry, skip record, stop the connector); the connector only reports what happened:

* whole-request failures raise one of :mod:`connectors.errors`;
* per-record failures inside a batch (a Salesforce SaveResult list with failures, a HubSpot 207)
  are *results*, never exceptions: :class:`RecordResult` with an :class:`Outcome`.

Field names crossing this boundary are syncd's canonical lead field names (``status``, ``email``,
``title``, ...; see :mod:`rules.fields`). Each connector maps them to its CRM's API names with the
``fields`` mapping in its config, and parses values to Python types (tz-aware UTC ``datetime``,
``int``, ``float``, ``bool``, ``str``) so nothing above it parses CRM formats.
"""

from __future__ import annotations

import abc
import enum
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

__all__ = [
    "ApiQuota",
    "Connector",
    "ConnectorStats",
    "CrmField",
    "Cursor",
    "FieldProblem",
    "FieldWrites",
    "HistoryActorKind",
    "HistoryEntry",
    "LeadChange",
    "NewsletterAdds",
    "Outcome",
    "Page",
    "Preflight",
    "RecordResult",
    "RemoteLead",
    "WriteCollection",
    "WrittenThenRead",
    "overlap_start",
]


@dataclass(frozen=True, order=True, slots=True)
class Cursor:
    """A keyset position: the last record read, by (modification time, record id).

    Many records share one modification time (Salesforce stamps whole seconds, mass updates stamp
    thousands of rows alike), so the time alone cannot be a cursor.

    ``read_at`` is when the read that reached this position started. A record can have been
    invisible to that read only if it was modified shortly before it (a transaction committing
    late, a search index lagging), so a connector re-reads behind the cursor only from
    ``read_at - overlap`` (see :func:`overlap_start`), not forever from ``modified_at - overlap``.
    It takes no part in ordering or equality.
    """

    modified_at: datetime
    # Ordering uses (length, text) of the id: Salesforce ids have one length, so that is their
    # text order (as SOQL's ORDER BY Id); HubSpot ids are numbers of varying length, so that is
    # their numeric order ("999" before "1000"), as search sorts hs_object_id.
    _id_key: tuple[int, str] = field(init=False, repr=False)
    record_id: str = field(compare=False)
    read_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_id_key", (len(self.record_id), self.record_id))


def overlap_start(since: Cursor | None, overlap: timedelta) -> datetime | None:
    """Where a pull resuming after ``since`` must start re-reading, or None if nowhere.

    Records modified before ``read_at - overlap`` were visible to the read that produced
    ``since``; only the part of the overlap window that reaches behind the cursor matters.
    """
    if since is None or overlap <= timedelta(0):
        return None
    start = (since.read_at or since.modified_at) - overlap
    return start if start < since.modified_at else None


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A CRM value syncd could not parse or store; the field was set to None instead.

    ``excerpt`` is a short prefix of the raw value (never the whole of a huge one).
    """

    field: str  # canonical field name
    excerpt: str
    reason: str  # e.g. "not a finite number", "not a valid date"


@dataclass(slots=True)
class RemoteLead:
    """One lead as the CRM reported it, in canonical field names."""

    id: str
    modified_at: datetime
    fields: dict[str, Any]
    deleted: bool = False
    converted: bool = False
    # True when the CRM says the integration user itself made the last change (Salesforce
    # LastModifiedById), False when someone else did, None when the CRM does not say.
    modified_by_integration: bool | None = None
    # The CRM user id of whoever made the last change, when the CRM says (Salesforce
    # LastModifiedById): the ledger's ``actor_id`` for a person's edit.
    modified_by: str | None = None
    # Values the connector nulled because syncd cannot parse or store them (quarantine).
    problems: list[FieldProblem] = field(default_factory=list)
    # Ids of leads the CRM merged into this one (HubSpot ``hs_merged_object_ids``): they are
    # gone as leads of their own. (Salesforce reports a merged-away lead as a deleted row.)
    merged_ids: tuple[str, ...] = ()

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.modified_at, self.id)


#: Who made a transition of a CRM's field history: the integration user syncd runs as, a person
#: (a CRM user in its UI), the CRM's automation or an import, or not said.
HistoryActorKind = Literal["integration", "person", "automation", "unknown"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transition of a lead's field as the CRM's own field history records it.

    ``field`` is the canonical name (``status``, ``lifecycle_stage``); values are the CRM's.
    ``from_value`` None: the field was empty, or the CRM no longer says (a truncated history).
    """

    lead_id: str
    field: str
    from_value: str | None
    to_value: str | None
    at: datetime
    actor: HistoryActorKind
    actor_id: str | None = None


@dataclass(slots=True)
class Page:
    """A page of leads in cursor order; ``cursor`` is the position after its last lead."""

    leads: list[RemoteLead]
    cursor: Cursor | None
    #: How many leads the whole pull this page belongs to is expected to yield, as the CRM
    #: reported when the pull started (Salesforce ``totalSize``, HubSpot search ``total``);
    #: None when it does not say. For progress display only: never exact, never relied on.
    total: int | None = None


@dataclass(frozen=True, slots=True)
class LeadChange:
    """Field values to write to one lead, in canonical field names and CRM values.

    ``crm_fields`` are written in the same record, named as the CRM names them (provenance
    fields such as ``syncd_Rule__c`` an admin created for syncd; never read back into rules).
    """

    lead_id: str
    fields: Mapping[str, Any]
    # Fields to clear in a request of their own before setting them: a declared backward move
    # of a forward-only field (HubSpot lifecyclestage, syncd.lifecycle). A connector whose CRM
    # applies such a move directly may ignore it.
    clear_first: frozenset[str] = frozenset()
    crm_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldWrites:
    """One collection of a combined write: field changes to up to ``max_batch_size`` leads."""

    changes: Sequence[LeadChange]


@dataclass(frozen=True, slots=True)
class NewsletterAdds:
    """One collection of a combined write: up to ``max_membership_batch`` leads to add to one
    newsletter (idempotent, as :meth:`Connector.add_to_newsletter`)."""

    newsletter: str
    lead_ids: Sequence[str]


#: What :meth:`Connector.write_collections` carries: field changes or newsletter adds.
WriteCollection = FieldWrites | NewsletterAdds


@dataclass(frozen=True, slots=True)
class WrittenThenRead:
    """What :meth:`Connector.write_collections_then_history` answers: each collection's results
    (as :meth:`Connector.write_collections`), and people's status edits since the time asked
    for, read after the writes landed, in the same counted call."""

    results: list[list[RecordResult]]
    #: Oldest first per lead, as :meth:`Connector.status_history`; None when it was not read.
    history: list[HistoryEntry] | None
    #: Why the CRM refuses to show the history for good (say no permission on it); None with no
    #: history means it failed transiently (or is stale) and may be read on its own.
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class CrmField:
    """A CRM field as the CRM describes it, for fields named by their CRM name."""

    name: str
    exists: bool
    updateable: bool = False
    length: int | None = None  # the most characters a text value may have; None: no limit


class Outcome(enum.Enum):
    """What became of one record in a batch."""

    OK = "ok"  # the CRM confirmed the write (or the add was already in place)
    RETRY = "retry"  # transient (a row lock, a 5xx on that record): try again on a later attempt
    FAILED = "failed"  # permanent (bad picklist value, validation rule, converted or deleted lead)


@dataclass(frozen=True, slots=True)
class RecordResult:
    lead_id: str
    outcome: Outcome
    error_code: str | None = None
    message: str | None = None
    # Fields the connector cleared in a separate request before writing them (audited).
    cleared: frozenset[str] = frozenset()


@dataclass(slots=True)
class Preflight:
    """What the CRM allows, read at start-up before anything is written.

    ``check`` only reads. Set-up the CRM needs and the connector may do itself (HubSpot: add a
    missing ``hs_lead_status`` option when ``allow_add_status_options`` is on) is listed in
    ``setup`` and carried out by :meth:`Connector.prepare` only after every connector accepted
    the whole rule set, so a rejected rule set never changes a CRM.
    """

    statuses: set[str]  # values the status field accepts (after ``setup``)
    writable_fields: set[str]  # canonical field names the integration user may update
    problems: list[str] = field(default_factory=list)  # human-readable, one per problem
    # CRM values asked for but absent now; those in ``statuses`` too are added by ``prepare``
    missing_statuses: set[str] = field(default_factory=set)
    missing_fields: set[str] = field(default_factory=set)  # canonical names absent or unmapped
    setup: list[str] = field(default_factory=list)  # what prepare() would change, for the log
    # What works only in part (logged at start-up, never a start-up failure), e.g. a status that
    # some Salesforce record types do not allow.
    warnings: list[str] = field(default_factory=list)
    # CRM status value -> the record types (or other partitions) that refuse it.
    partly_refused_statuses: dict[str, list[str]] = field(default_factory=dict)
    # Canonical field -> the value type the CRM stores it as, in the rule language's words
    # (string, integer, number, boolean, datetime); for comparing custom fields' field_types.
    field_kinds: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ConnectorStats:
    """What a connector counts, the same shape for every CRM (metrics and run rows read it)."""

    calls: int = 0  # requests counted against the CRM's API limits (token grants excluded)
    retries: int = 0  # whole-request retries after a transient failure
    # Retried attempts that got no answer (a timeout, a reset, a 502/504): the CRM may have
    # applied one, so a write's later answer does not prove what it left undone.
    unanswered: int = 0
    reauths: int = 0  # token grants or refreshes after the first
    budget_stops: int = 0  # times the daily budget (or its configured share) stopped work
    paced_seconds: float = 0.0  # time spent waiting for client-side pacing
    rate_limited: Counter[str] = field(default_factory=Counter)  # 429s by policy / kind
    errors: Counter[str] = field(default_factory=Counter)  # whole-request errors by code
    record_errors: Counter[str] = field(default_factory=Counter)  # per-record errors by code


@dataclass(frozen=True, slots=True)
class ApiQuota:
    """The CRM's daily API allowance as last reported (Salesforce ``Sforce-Limit-Info``)."""

    used: int
    limit: int


class Connector(abc.ABC):
    """One CRM account. Pulls leads incrementally and writes change batches back.

    Implementations must be safe to call from one thread at a time; the daemon never shares a
    connector between concurrent jobs.
    """

    kind: ClassVar[str]  # the connector type config names in ``type:`` ("salesforce", ...)
    # Records per update call (Salesforce 200, HubSpot 100). A plain attribute, not a ClassVar:
    # a connector may lower it per instance from its config (Salesforce ``batch_size``).
    max_batch_size: int
    max_membership_batch: ClassVar[int]  # records per newsletter-membership call
    #: Collections (each a full batch of field changes or newsletter adds) one counted API call
    #: can carry (Salesforce Composite: 5). 1: every collection is a call of its own, and the
    #: daemon gives :meth:`write_collections` one collection at a time.
    max_collections_per_call: int = 1
    #: Collections one counted call carries when it also reads people's status edits since a
    #: time (:meth:`write_collections_then_history`; Salesforce Composite: 4 and the query),
    #: the race check, which can also ride in a pull's first page (:meth:`read_edits_beside_pull`).
    #: 0: this CRM cannot; the daemon reads it by :meth:`status_history` after each call.
    collections_with_history: int = 0

    #: Counters every connector keeps; ``stats.calls`` is the API-call counter the daemon reads.
    stats: ConnectorStats
    #: True when the latest :meth:`iter_pages` read every lead from the beginning (a full
    #: reconcile): the daemon then marks mirrored leads it did not yield as deleted.
    last_pull_was_full_reconcile: bool = False

    @property
    def name(self) -> str:
        """This instance's name in config (``salesforce/emea``); the type until one is given.

        The daemon keys everything by it (cursor, outbox, metrics label), so two orgs of one
        type never share state. :meth:`connectors.registry.ConnectorSpec.create` sets it.
        """
        return self.__dict__.get("_instance_name") or self.kind

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_instance_name"] = value

    def api_quota(self) -> ApiQuota | None:
        """The daily API allowance as last reported by the CRM, if it reports one."""
        return None

    @property
    def clock_behind(self) -> timedelta:
        """How far the CRM's clock, which stamps its records' modification times, ran behind
        this host's at its last answer (zero when ahead or unknown): a host time compared with
        those stamps moves back by this much."""
        return timedelta(0)

    def bind_stop(self, stop: threading.Event) -> None:  # noqa: B027 - optional hook
        """Let ``stop`` cut retry and pacing waits short (they raise ``Interrupted``).

        The default keeps no reference: a connector without waits has nothing to interrupt.
        """

    def prepare(self, preflight: Preflight) -> None:  # noqa: B027 - optional hook
        """Carry out ``preflight.setup``; called only once every connector accepted the rules."""

    @abc.abstractmethod
    def check(self, *, statuses: set[str], fields: set[str], newsletters: set[str]) -> Preflight:
        """Verify credentials and that the CRM accepts what the rules will write.

        Args:
            statuses: CRM status values the rules may write.
            fields: canonical field names the rules may write.
            newsletters: newsletter names the rules may add leads to (keys of the
                connector's ``newsletters`` config).

        Returns:
            The CRM's status values and writable fields, with every problem found listed in
            ``problems`` (all of them, not only the first).

        Raises:
            AuthError: the credentials were refused.
            RetriableError: the CRM could not be reached.
        """

    @abc.abstractmethod
    def iter_pages(self, since: Cursor | None, *, until: datetime) -> Iterator[Page]:
        """Yield every lead changed after ``since`` and at or before ``until``, in cursor order.

        The connector applies its own overlap window (records committed late with an earlier
        timestamp, search-index lag), so a lead may be yielded again in a later call; the daemon
        treats re-delivery as harmless. Deleted and merged leads are yielded with
        ``deleted=True``. Memory stays flat: pages are fetched lazily.

        Raises:
            RetriableError, AuthError, BudgetExhausted: the whole request failed.
        """

    @abc.abstractmethod
    def write_batch(self, changes: Sequence[LeadChange]) -> list[RecordResult]:
        """Write up to ``max_batch_size`` changes; one result per change, in input order."""

    def write_collections(self, collections: Sequence[WriteCollection]) -> list[list[RecordResult]]:
        """Write up to ``max_collections_per_call`` collections of mixed kinds in one counted
        call; per collection, one result per record in input order.

        A collection the CRM refused whole (a failed Composite subrequest) is a list of failed
        (or, when transient, ``RETRY``) results, never an exception; an exception means the
        whole call failed (``RetriableError``, ``AuthError``, ``BudgetExhausted``) and, as for
        :meth:`write_batch`, whether it was applied is judged from the error. The default sends
        each collection by :meth:`write_batch` or :meth:`add_to_newsletter`, a call each.
        """
        out: list[list[RecordResult]] = []
        for collection in collections:
            if isinstance(collection, FieldWrites):
                out.append(self.write_batch(collection.changes))
            else:
                out.append(self.add_to_newsletter(collection.newsletter, collection.lead_ids))
        return out

    def write_collections_then_history(
        self, collections: Sequence[WriteCollection], since: datetime, *, also: Sequence[str] = ()
    ) -> WrittenThenRead:
        """Up to ``collections_with_history`` collections as :meth:`write_collections`, then, in
        the same counted call, people's status edits since ``since`` (:meth:`edits_since`, with
        the edits of the fields of ``also``), edits that landed before these writes included.

        The history's failure never fails the call: the writes' results stand, and
        ``WrittenThenRead.history`` is None. Raises as :meth:`write_collections` does.
        """
        raise NotImplementedError(f"{self.kind} cannot read history with its writes")

    def edits_since(self, since: datetime, *, also: Sequence[str] = ()) -> list[HistoryEntry]:
        """Status changes by anyone but the integration user since ``since``, oldest first per
        lead (the race check's first look, ``syncd.races``); with ``collections_with_history``.
        ``also``: canonical fields whose changes come in the same query, as
        :meth:`status_history` reads them (a field without history has none).
        """
        raise NotImplementedError(f"{self.kind} cannot read status edits by time")

    def read_edits_beside_pull(self, since: datetime, *, also: Sequence[str] = ()) -> None:
        """Have the next :meth:`iter_pages` read :meth:`edits_since` ``since`` (and ``also``)
        in the call of its first page; with ``collections_with_history``."""
        raise NotImplementedError(f"{self.kind} cannot read status edits beside its pull")

    def edits_beside_pull(self) -> WrittenThenRead | None:
        """What the latest pull read beside its first page (see
        :meth:`read_edits_beside_pull`); None when nothing was."""
        return None

    @abc.abstractmethod
    def add_to_newsletter(self, newsletter: str, lead_ids: Sequence[str]) -> list[RecordResult]:
        """Add up to ``max_membership_batch`` leads to a newsletter; idempotent.

        ``newsletter`` is a key of the connector's ``newsletters`` config (a Salesforce Campaign
        id or a HubSpot list id behind it). A lead already a member is ``Outcome.OK``.
        """

    @abc.abstractmethod
    def remove_from_newsletter(
        self, newsletter: str, lead_ids: Sequence[str]
    ) -> list[RecordResult]:
        """Remove up to ``max_membership_batch`` leads from a newsletter; idempotent.

        The inverse of :meth:`add_to_newsletter` (``syncd revert`` undoes a run's joins with
        it). A lead that is not a member (any more) is ``Outcome.OK``: it is out, as asked.
        """

    @abc.abstractmethod
    def read_leads(self, lead_ids: Sequence[str]) -> list[RemoteLead]:
        """Read these leads as they are now, in as few calls as the CRM allows.

        For checking written values (``syncd revert`` reads its writes back); leads that do not
        exist (any more) are left out of the answer.
        """

    def status_history(
        self, lead_ids: Sequence[str], *, also: Sequence[str] = ()
    ) -> list[HistoryEntry]:
        """The CRM's own history of these leads' status, oldest first per lead, in as few
        calls as the CRM allows.

        ``also``: canonical fields whose history to read besides the status where the same
        calls carry it at no extra call (HubSpot: one ``propertiesWithHistory`` list names
        several properties; Salesforce: one LeadHistory query, ``Field IN (...)``); their
        entries name the field. A CRM that cannot leaves them out.

        What the CRM keeps: Salesforce only with field history tracking on for Lead Status,
        HubSpot a bounded number of past values. The default, for a CRM without field
        history, is none.
        """
        return []

    #: Leads one :meth:`status_history` call covers (Salesforce 200, HubSpot 50); 0 for a CRM
    #: without field history. The daemon asks :meth:`org_status_history` only for more.
    status_history_batch: ClassVar[int] = 0
    #: True where history reads would slow the pull that meets many new leads (HubSpot: they
    #: share the 100 per 10 s budget, 50 contacts a call): such a pull mirrors them first and
    #: the daemon reads their history after it, before planning (``syncd.history_pending``).
    history_after_pull: ClassVar[bool] = False
    #: True where first sight and the race check ask :meth:`status_history` for the history of
    #: every field a rule sets (Salesforce: a LeadHistory row names any tracked field; HubSpot:
    #: ``propertiesWithHistory`` names any property); False where they ask for the lifecycle
    #: stage's alone.
    history_of_rule_fields: ClassVar[bool] = False

    def field_mapping(self) -> dict[str, str]:
        """The ``fields`` mapping pulls read, canonical name -> the CRM's name: the daemon keeps
        the one its mirror was read under, and reads every lead again when it changes
        (``syncd.field_remap``). Empty for a connector that maps no fields."""
        return {}

    def history_value(self, field: str, text: str | None) -> Any:
        """A value of canonical ``field`` as a :class:`HistoryEntry` keeps it (text) as a
        pull reads the field: typed as the CRM stores it (a number field's as a number), so a
        write of it back is accepted and the mirror holds what a pull would. None stays None
        (a cleared field). The default, for a CRM whose fields are all text, is the text."""
        return text

    def org_status_history(
        self, *, leads: int, also: Sequence[str] = ()
    ) -> Iterator[list[HistoryEntry]] | None:
        """The whole org's status history, streamed page by page, when one stream costs fewer
        calls than :meth:`status_history` of ``leads`` leads would; None when it does not (the
        daemon then reads per lead) or this CRM cannot stream it (the default). ``also``: as
        for :meth:`status_history`, in the same stream.

        Entries within a page come in the CRM's order, as :meth:`status_history` reads them. A
        connector may spend one call finding out the stream's size before answering None.

        Raises:
            ConfigurationError, FatalError: the CRM refuses to show its history (as
                :meth:`status_history` would).
        """
        return None

    def fields_gone(self, needed: Collection[str] = ()) -> dict[str, str]:
        """Mapped fields that existed when :meth:`check` ran and that the CRM no longer has,
        canonical name -> the CRM's name; the daemon asks before each pull, with ``needed``
        the canonical fields its rules read.

        A connector whose CRM leaves a missing field out of reads silently (HubSpot) re-reads
        its schema here at a bounded cost; one whose reads fail naming it (Salesforce's query:
        INVALID_FIELD) remembers what a read named. While one of ``needed`` is gone, a
        connector looks again each time (the cycle then makes no other call), so the daemon
        resumes once it is back. The default answers none.
        """
        return {}

    def describe_crm_fields(self, names: Sequence[str]) -> dict[str, CrmField] | None:
        """Whether lead fields named as the CRM names them exist and may be written.

        One read at start-up (provenance fields are checked with it). ``None``: this connector
        type cannot write fields by their CRM name (``LeadChange.crm_fields``), so provenance
        cannot be configured for it.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets; the default has nothing to release."""
