"""One cycle for one connector: pull, mirror, evaluate, plan, (breaker), write.

1. **Pull.** Pages of changed leads since the stored cursor go into the mirror; each page, its
   enrichment and the advanced cursor commit in one transaction. A change syncd did not make
   of the status, or of a field the rules set, is remembered as a person's edit
   (``rep_edit_at``, ``rep_edit_field``).
2. **Plan.** The leads whose verdict could have changed are evaluated (``syncd.due``): the
   pulled and written ones, those with open outbox rows, those whose time-based conditions
   ("untouched for 90 days") came due, and every live lead after the rules or their settings
   changed. Each evaluated lead's next due time is stored with its plan. Real differences
   become ``planned`` outbox rows, all of one lead's sharing an intent id; an open change
   that is still wanted is kept, and one the CRM already shows is marked done (that is
   how a write confirmed just before a crash is not sent twice). An intent is delivered whole:
   once any part of it reached the CRM, the rest stays pending even though syncd's own write
   changed what the rules now say. It is withdrawn only when someone else changed the lead, the
   lead was deleted or converted, or a new rule-set version no longer wants it; an intent with
   nothing delivered is superseded when the rules no longer want it. Each says why, in the
   outbox row and an audit row.
3. **Breaker.** If the run would change more than the configured share of live leads, its plan is
   ``blocked`` and nothing is written.
4. **Write.** Pending rows are sent in batches of the CRM's maximum; every record's outcome is
   committed with its audit row before the next batch. A person's status edit that landed while
   a batch was in flight is then found in the CRM's history and restored (``syncd.races``).

With a ``lease`` (``syncd.lease``), storing a page and recording a batch check the fencing token
in their transaction, and a batch is sent only after the lease was renewed: a process that lost
the connector's lease ends the cycle (outcome ``lease_lost``) and writes nothing more.

``syncd.planner`` holds the per-lead decision (shared by the cycle and by ``syncd plan``/``explain``).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import (
    Connector,
    Cursor,
    FieldWrites,
    HistoryEntry,
    LeadChange,
    NewsletterAdds,
    Outcome,
    Page,
    RecordResult,
    RemoteLead,
    WriteCollection,
    WrittenThenRead,
)
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConfigurationError,
    ConnectorError,
    FatalError,
    Interrupted,
)
from rules import RuleBook
from syncd import (
    due,
    enrichment_refresh,
    field_remap,
    history_pending,
    ledger,
    newly_set_fields,
    plan_probe,
    planner_stats,
    races,
    retry_requests,
    run_books,
    schema_drift,
    store_vacuum,
)
from syncd.business_clock import aware
from syncd.call_ahead import Answer, CallAhead
from syncd.enrichment import Enricher
from syncd.history_staging import FirstSightHistory
from syncd.holds import edit_text, fields_rules_set, held_since
from syncd.idle_memo import IdleMemo
from syncd.lease import Lease, LeaseLost
from syncd.lifecycle import clear_first_fields, policy_of
from syncd.logs import cycle_context
from syncd.loop_guard import LoopGuard
from syncd.metrics import Metrics
from syncd.open_changes import (
    LEAD_CONVERTED,
    LEAD_DELETED,
    UNCONFIRMED_OVERRIDDEN,
    UNCONFIRMED_WITH_OVERRIDDEN,
    answered_unapplied,
    fields_a_person_set,
    held_back,
    judge_leftover,
    lead_merged,
    reverted_in_doubt,
    syncd_made,
)
from syncd.plan_overlap import BatchRecorder
from syncd.planner import LeadVerdict, PlannedChange, Planner, due_updates, iter_verdicts
from syncd.progress import ProgressFactory
from syncd.pull_overlap import pull_overlapped
from syncd.race_book import RaceBook
from syncd.records import LeadState, OutboxRecord, PlanRecord
from syncd.settings import BreakerSettings, ConnectorSettings, LoopGuardSettings, OutboxSettings
from syncd.state import AuditOutcome, OutboxState, RunRow, StateStore, _utc, audit_values

__all__ = ["CycleReport", "Pipeline"]

log = logging.getLogger("syncd.pipeline")
#: A page's leads' ``Pipeline._lead_columns`` by lead id.
_Columns = dict[str, dict[str, Any]]

#: One batch of outbox rows: lead groups of one kind, sent as one collection.
Groups = list[list[OutboxRecord]]
Batch = tuple[str, Groups]
#: One batch a call carried and the CRM's answers to it, record by record.
Answered = tuple[Sequence[Sequence[OutboxRecord]], Sequence[RecordResult]]
_RACES_UNSEEN = "edits made while a batch was in flight go unseen"
#: No lease token: the ``fields`` mapping not compared with the mirror's yet in this process.
_UNCHECKED = object()


@dataclass(frozen=True, slots=True)
class _Arrival:
    """What a write call brought back."""

    answers: Sequence[Sequence[RecordResult]]  # collection by collection
    checked: WrittenThenRead | None  # the race check's read beside the writes
    unanswered: bool  # an attempt went unanswered before the call's answer (then retried)


@dataclass(frozen=True, slots=True)
class _Departure:
    """A write call whose rows are marked ``sending``: what it carries, and how to send it."""

    batches: Sequence[Batch]
    ids: list[int]
    by_time: bool  # the race check reads people's edits by time (syncd.races)
    restoring: bool
    call: Callable[[], _Arrival]


@dataclass(slots=True)
class CycleReport:
    crm: str
    run_id: str
    outcome: str = "running"
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
    resume_at: datetime | None = None
    # Leads the plan step evaluated (syncd.due selects them); not a run-table column.
    evaluated: int = 0
    # Why a failed cycle failed, as a short label for metrics: auth, configuration, crm,
    # crm_unavailable, preflight, database, internal.
    reason: str | None = None
    # The status ledger's newest row id when the run was recorded (syncd.kpi's mark of its
    # growth, read in the same statement); None when the run could not be recorded.
    ledger_mark: int | None = None
    # Ledger rows a pull moved from leads the CRM merged away to the merged lead
    # (StateStore.rekey_history): the funnel KPIs' cue, as the ledger's newest id stays.
    ledger_moved: int = 0

    def summary(self) -> str:
        text = (
            f"{self.crm}: pulled {self.pulled}, changed {self.planned}, "
            f"written {self.written}, failed {self.failed}"
        )
        extras = [
            f"{n} {k}"
            for k, n in (
                ("retrying", self.retrying),
                ("held (rep edits)", self.held),
                ("blocked by guards", self.blocked),
                ("deleted", self.deleted),
            )
            if n
        ]
        if extras:
            text += " (" + ", ".join(extras) + ")"
        if self.outcome != "ok":
            text += f" — {self.outcome}" + (f": {self.message}" if self.message else "")
        return text


# What a run row records of its report: every report field the run table also has, derived so a
# counter added to both cannot be forgotten here.
_RUN_FIELDS = tuple(
    f.name
    for f in dataclass_fields(CycleReport)
    if f.name in RunRow.model_fields and f.name not in ("crm", "run_id")
)
# The counters among them, written as the cycle's transactions commit (``Pipeline._progress``).
_RUN_COUNTS = tuple(n for n in _RUN_FIELDS if RunRow.model_fields[n].annotation is int)


class Pipeline:
    """Runs cycles for one connector against the state store."""

    def __init__(
        self,
        *,
        connector: Connector,
        store: StateStore,
        rules: Callable[[], RuleBook],
        enricher: Enricher,
        settings: ConnectorSettings,
        breaker: BreakerSettings,
        outbox: OutboxSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
        loop_guard: LoopGuardSettings | None = None,
    ) -> None:
        self.connector = connector
        self.crm = connector.name
        self.store = store
        self.loop_guard = LoopGuard(store, self.crm, loop_guard) if loop_guard is not None else None
        self.rules = rules
        self.enricher = enricher
        self.settings = settings
        self.breaker = breaker
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self.paused_until: datetime | None = None
        self._calls_before = 0  # the connector's call count when the current cycle started
        self.pause_reason = "daily API budget spent"
        #: Provenance fields written with each field change (``syncd.provenance.Provenance``,
        #: set by the app after checking the fields), or None.
        self.provenance: Any = None
        #: A check of the rules against this CRM still due before its next cycle (set when the
        #: start-up check could not run); returns the problems found.
        self.preflight: Callable[[RuleBook], list[str]] | None = None
        self._lease: Lease | None = None  # set by whoever holds the connector's lease
        #: A lease renewal saw a retry request pending (``syncd.retry_requests``): the next
        #: cycle reads the store instead of standing on kept answers.
        self._retry_seen = threading.Event()
        #: The running cycle's start found retry requests pending: applied before its pull.
        self._retries_pending = False
        self._lifecycle = policy_of(settings)
        #: The fields the running pull watches for a person's edit (``syncd.holds``).
        self._watched_fields: frozenset[str] = frozenset()
        #: The lease token under which the ``fields`` mapping was last compared with the
        #: mirror's (``syncd.field_remap``): compared again whenever the lease changed hands,
        #: since the holder in between (a replica of another release in a rolling update)
        #: may have pulled under another mapping.
        self._mapping_token: object = _UNCHECKED
        #: The lease token under which the mirror's enrichment was last found derived under
        #: this enricher's settings (``syncd.enrichment_refresh``): checked again whenever the
        #: lease changed hands, for the same reason.
        self._enrichment_token: object = _UNCHECKED
        #: (lease token, fields the rules set) last checked against the recorded fields
        #: (``syncd.newly_set_fields``): read again when either changes.
        self._set_fields_seen: object = _UNCHECKED
        #: The canonical field whose transitions the ledger records as ``lifecycle_stage``.
        self._ledger_stage_field = (
            self._lifecycle.field if self._lifecycle is not None else ledger.LIFECYCLE
        )
        #: Shows how far a pull got (syncd.progress); set by the command that runs cycles.
        self.progress: ProgressFactory | None = None
        #: Where the running pull reads new leads' CRM history from (syncd.history_staging).
        self._pull_history: FirstSightHistory | None = None
        #: The run that already logged that races go unseen (the CRM refuses its history).
        self._races_unseen_run: str | None = None
        #: Confirmed status writes whose race check has not been read yet (syncd.races),
        #: in memory and in the store (syncd.race_book).
        self._races = RaceBook(store, self.crm)
        # What this cycle's plan step found when it had nothing to plan (syncd.plan_probe).
        self._idle_probe: plan_probe.PlanProbe | None = None
        #: The stored cursor as the running pull read it at its start or last saved it.
        self._stored_cursor: Cursor | None = None
        #: What the running cycle's start read with its run row (syncd.run_books), until used.
        self._run_start: run_books.RunStart | None = None
        #: The plan probe as the cycle's start read it, and the store's write count then.
        self._early_probe: plan_probe.PlanProbe | None = None
        self._writes_at_start = 0
        #: The last idle cycle's answers, kept for the next while they stand (syncd.idle_memo).
        self._memo: IdleMemo | None = None
        #: The running cycle started on kept answers (its run row is written at its end) ...
        self._on_memo = False
        #: ... and that row is not written yet (a stored page writes it: ``_progress``).
        self._run_unwritten: RunRow | None = None
        #: The kept answers' ledger mark, while a cycle runs on them.
        self._memo_mark = 0
        #: When the store was last asked the plan probe's answer the cycle plans on.
        self._probe_read_at: datetime | None = None
        #: The planning fingerprint with the objects it was hashed from (``fingerprint``).
        self._fingerprint: tuple[tuple[object, ...], str] | None = None
        #: In a cycle, an empty pull page's cursor waits for the run's final statement
        #: (``run_books.finish``): (position, when it was read); nothing reads it before.
        self._in_cycle = False
        self._unsaved_cursor: tuple[run_books.Position, datetime] | None = None
        #: Leads may wait in ``history_pending`` (a previous process may have left some; this
        #: process's pulls add them): the table is read only then, not on every idle cycle.
        self._history_pending_unread = True
        #: When the running cycle's pull began reading (the earliest read of its decisions).
        self._read_from: datetime | None = None
        #: Where the connector's field mapping is configured, for messages (set by the app).
        self.fields_where = f"{self.crm}.connector.fields"
        #: The lost fields no rule reads that were last warned about (syncd.schema_drift).
        self._drift_warned: tuple[str, ...] = ()
        #: The fields the current rule book reads, with the book (syncd.schema_drift).
        self._needed: tuple[RuleBook, frozenset[str]] | None = None

    @property
    def lease(self) -> Lease | None:
        return self._lease

    @lease.setter
    def lease(self, lease: Lease | None) -> None:
        """The connector's lease, whose renewals also say whether a retry request waits."""
        self._lease = lease
        if lease is not None:
            lease.watch(retry_requests.pending_column(self.crm), self._retry_request_seen)

    def _retry_request_seen(self, pending: object) -> None:
        if pending:
            self._retry_seen.set()

    # ---- the cycle -----------------------------------------------------------------------

    def pause(self, until: datetime | None, *, reason: str) -> None:
        """Send nothing until ``until`` (the daily API budget is spent)."""
        self.paused_until = until
        self.pause_reason = reason

    def run_cycle(self, *, approve_large_run: bool = False) -> CycleReport:
        """One cycle; never raises: every failure becomes the report's outcome and reason.

        A failed cycle still leaves a run row saying why, wherever the store can be written.
        """
        now = self.clock()
        report = CycleReport(self.crm, uuid.uuid4().hex[:12])
        # Every record logged during the cycle (retries in the connector too) names it.
        with cycle_context(self.crm, report.run_id):
            return self._run_cycle(report, now, approve_large_run=approve_large_run)

    def _run_cycle(
        self, report: CycleReport, now: datetime, *, approve_large_run: bool
    ) -> CycleReport:
        run: RunRow | None = None
        calls_before = self._calls_before = _api_calls(self.connector)
        # The last churning cycle's VACUUM ran while the daemon waited for this one; were it
        # still running, this cycle would walk the dead entries it is removing, and compete.
        store_vacuum.wait_for_vacuum(self.store)
        try:
            book = self.rules()
            run = RunRow(
                run_id=report.run_id, crm=self.crm, started_at=now, ruleset_version=book.version
            )
            self._in_cycle, self._unsaved_cursor = True, None
            memo, self._memo = self._memo, None
            token = self.lease.token if self.lease is not None else None
            self._retries_pending = False
            if (
                memo is not None
                and not self._retry_seen.is_set()
                and memo.stands(token=token, writes=self.store.writes, now=aware(now))
            ):
                # Nothing can have changed what the start would read (syncd.idle_memo).
                self._on_memo, self._run_unwritten = True, run
                self._memo_mark = memo.ledger_mark
                self._run_start = run_books.RunStart(frozenset(), memo.cursor, ())
                self._early_probe, self._probe_read_at = memo.probe, memo.read_at
            else:
                self._on_memo = False
                # Cleared before the start reads the requests: one queued after that read is
                # seen by a later renewal, and that cycle reads them again.
                self._retry_seen.clear()
                since = held_since(aware(now), self.settings.hold_rep_edits_for)
                probe = plan_probe.columns(self.store, self.crm, now=now, held_since=since)
                self._run_start = run_books.start(
                    self.store,
                    run,
                    [OutboxState.PLANNED, OutboxState.SENDING],
                    [*probe, retry_requests.pending_column(self.crm)],
                )
                *probed, pending = self._run_start.also
                self._retries_pending = bool(pending)
                # Still the plan step's answer if nothing is written before it (plan_probe).
                self._early_probe = plan_probe.from_row(probed)
                self._probe_read_at = aware(now)
            self._writes_at_start = self.store.writes
            self._steps(report, book, now, approve_large_run=approve_large_run)
        except Interrupted as exc:
            # A retry or pacing wait was cut short by SIGTERM: nothing more was sent, and what
            # was sent but not recorded stays pending in the outbox for the next cycle.
            report.outcome, report.message = "stopped", str(exc)
        except BudgetExhausted as exc:
            report.outcome, report.message = "budget", str(exc)
            self.pause(exc.resume_at, reason="daily API budget spent")
            report.resume_at = exc.resume_at
        except FatalError as exc:
            report.outcome, report.message = "failed", str(exc)
            report.reason = _fatal_reason(exc)
        except ConnectorError as exc:
            # The connector's "...; will retry" meant its own retries, spent by now.
            said = str(exc).removesuffix("; will retry")
            report.outcome, report.message = "failed", f"{said} (will retry next cycle)"
            report.reason = "crm_unavailable"
        except LeaseLost as exc:
            report.outcome, report.message = "lease_lost", str(exc)
        except SQLAlchemyError as exc:
            report.outcome, report.reason = "failed", "database"
            report.message = (
                f"the state store failed ({_first_line(exc)}); nothing is lost: "
                "the cycle is retried from its last checkpoint next time"
            )
        except Exception as exc:  # a cycle must end in a report, never a crash
            report.outcome, report.reason = "failed", "internal"
            report.message = f"unexpected {type(exc).__name__}: {_first_line(exc)}"
            # A bug, not an operating condition: the traceback is for the developer's log.
            log.error(
                "cycle %s of %s failed unexpectedly",
                report.run_id,
                self.crm,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
        return self._finish(run, report, calls_before)

    def _steps(
        self, report: CycleReport, book: RuleBook, now: datetime, *, approve_large_run: bool
    ) -> None:
        """The cycle proper: pull, plan, write (failures are ``_run_cycle``'s to report)."""
        if self.paused_until and now < self.paused_until:
            report.outcome = "budget"
            report.resume_at = self.paused_until
            report.message = (
                f"paused until {self.paused_until:%Y-%m-%d %H:%M} UTC "
                f"({self.pause_reason}); no request is sent until then"
            )
            return
        if self.preflight is not None and not self._deferred_preflight(book, report):
            return
        if not self._fields_still_there(book, report):
            return
        if self._retries_pending:
            self._apply_retries(report, now)
        # One statement for both: an idle cycle has neither (the pull settles rows in doubt,
        # it never makes new ones, so none after it when none before).
        start = self._run_start
        present = (
            start.present
            if start is not None
            else self.store.outbox_states_present(
                self.crm, [OutboxState.PLANNED, OutboxState.SENDING]
            )
        )
        if OutboxState.PLANNED in present:
            self.store.discard_stale_plans(self.crm, now)
        self._refresh_enrichment()
        self.pull(report, until=now)
        if report.pulled and not self._fields_still_there(book, report):
            # A field went missing from the leads just pulled (HubSpot leaves an archived
            # property out of its answers: crm-api C11): they are mirrored without its value,
            # which no rule may plan from. The connector reads them again once it is back.
            return
        self._read_pending_history()  # no rule may see a new lead before its history
        self._hold_edits_of_newly_set_fields(now)
        planner_stats.analyze_if_grown(self.store)  # before planning walks the mirror
        if self.lease is not None and not self._still_idle(report, book):
            self.lease.verify()  # a standby must not supersede the new leader's plan
        sending = OutboxState.SENDING in present
        if sending and self.store.has_changes_in(self.crm, [OutboxState.SENDING]):
            with self.store.begin() as conn:
                self._fence(conn)
                self.store.settle_sending(conn, self.crm, self.clock())
        self._idle_probe = None
        if not self.stop.is_set():
            self.plan(report, book, now, approve_large_run=approve_large_run)
            planner_stats.analyze_if_grown(self.store)  # before the drain walks the outbox
        # An idle plan found no open outbox row: the drain would read two empty kinds.
        idle = self._idle_probe is not None
        if report.outcome == "running" and not self.stop.is_set() and not idle:
            self.drain(report)
        if report.outcome == "running":
            report.outcome = "stopped" if self.stop.is_set() else "ok"

    def _refresh_enrichment(self) -> None:
        """Before the pull, once per lease: the mirror's enrichment derived again if it was
        derived under other enrichment settings (``syncd.enrichment_refresh``); fenced, so a
        replica that lost the lease writes nothing."""
        token = self.lease.token if self.lease is not None else None
        if self._enrichment_token == token:
            return
        done = enrichment_refresh.refresh(
            self.store, self.crm, self.enricher, fence=self._fence, stopping=self.stop.is_set
        )
        if done is not None:  # stopped halfway: the cycle plans nothing (it is stopping)
            self._enrichment_token = token

    def _apply_retries(self, report: CycleReport, now: datetime) -> None:
        """Apply the connector's pending ``syncd retry`` requests, fenced by the lease: their
        leads' refusals are cleared and they are planned in this cycle (syncd.retry_requests)."""
        self._retries_pending = False
        with self.store.begin() as conn:
            self._fence(conn)
            applied = retry_requests.apply_pending(self.store, conn, self.crm, report.run_id, now)
        for request in applied:
            log.info(
                "%s: retry request %d by %s applied: %d %s planned again in run %s",
                self.crm,
                request.request_id,
                request.requested_by,
                request.leads,
                "lead's refused writes are" if request.leads == 1 else "leads' refused writes are",
                report.run_id,
            )

    def _still_idle(self, report: CycleReport, book: RuleBook) -> bool:
        """On kept answers, the pull brought nothing and nothing was written: the plan will
        find nothing to do (syncd.idle_memo), so there is no plan to fence."""
        early = self._early_probe
        return (
            self._on_memo
            and early is not None
            and report.pulled == 0
            and self.store.writes == self._writes_at_start
            and early.idle(self.fingerprint(book))
        )

    def _deferred_preflight(self, book: RuleBook, report: CycleReport) -> bool:
        """The rules were not checked against this CRM yet (its budget was spent at start-up):
        check them before anything is pulled or written. False (and the report says why) when
        the CRM does not accept them."""
        assert self.preflight is not None
        problems = self.preflight(book)
        if problems:
            report.outcome, report.reason = "failed", "preflight"
            report.message = "the CRM does not accept what the rules write: " + "; ".join(problems)
            return False
        self.preflight = None
        return True

    def _fields_still_there(self, book: RuleBook, report: CycleReport) -> bool:
        """The CRM still has every mapped field the rules read (syncd.schema_drift). False
        (the report says which, read by which rules, and what to do) when one is gone: rules
        must not plan from leads that only look as if they had no value there."""
        if self._needed is None or self._needed[0] is not book:
            self._needed = (book, schema_drift.fields_needed(book))  # walked once per book
        gone = self.connector.fields_gone(self._needed[1])
        if not gone and not self._drift_warned:
            return True
        drift = schema_drift.drift_of(self.crm, self.fields_where, gone, book)
        if drift.unused != self._drift_warned:
            for line in drift.unused:
                log.warning("%s", line)
            self._drift_warned = drift.unused
        if drift.blocking is None:
            return True
        report.outcome, report.reason, report.message = "failed", "configuration", drift.blocking
        return False

    def _finish(self, run: RunRow | None, report: CycleReport, calls_before: int) -> CycleReport:
        report.api_calls = _api_calls(self.connector) - calls_before
        finished = self.clock()
        unsaved, self._unsaved_cursor = self._unsaved_cursor, None
        self._in_cycle, self._run_start, self._early_probe = False, None, None
        # A cycle on kept answers whose pull stored no page and that wrote nothing else: no
        # ledger row can have come since the kept mark (syncd.idle_memo).
        quiet = (
            self._on_memo
            and self._run_unwritten is not None
            and self.store.writes == self._writes_at_start
        )
        row_exists, self._on_memo, self._run_unwritten = not self._on_memo, False, None
        if run is not None:
            for name in _RUN_FIELDS:
                setattr(run, name, getattr(report, name))
            run.finished_at = finished
            try:
                position, read = unsaved if unsaved is not None else (None, finished)
                if quiet:
                    run_books.finish_quiet(self.store, run, position, read)
                    report.ledger_mark = self._memo_mark
                else:
                    report.ledger_mark = run_books.finish(
                        self.store, run, position, read, started=row_exists
                    )
                self._memo = self._kept_answers(report)
            except SQLAlchemyError as exc:
                # The store went away mid-cycle; the next start marks this run interrupted.
                log.warning(
                    "%s: could not record how run %s ended (%s)",
                    self.crm,
                    report.run_id,
                    _first_line(exc),
                )
        if self.metrics is not None:
            started = run.started_at if run is not None else finished
            self.metrics.observe_cycle(report, finished - started)
        # The dead index entries of a churning cycle (a first sync's) would cost every idle
        # cycle after it until autovacuum came by: vacuumed beside the wait for the next cycle,
        # once this one's work is done (syncd.store_vacuum).
        if not self.stop.is_set():  # a stopping daemon would wait for it as it closes
            store_vacuum.vacuum_if_churned(self.store)
        level = logging.INFO if report.outcome in ("ok", "stopped") else logging.WARNING
        log.log(
            level,
            "cycle %s %s",
            report.run_id,
            report.summary(),
            extra={"crm": self.crm, "run_id": report.run_id, "outcome": report.outcome},
        )
        return report

    def _kept_answers(self, report: CycleReport) -> IdleMemo | None:
        """What a cycle that ended well leaves its successor (syncd.idle_memo): an idle
        cycle's answers, or those read at the end of a cycle that sent nothing."""
        probe, token = self._idle_probe, self.lease.token if self.lease is not None else None
        read_at = self._probe_read_at
        if token is None or report.outcome != "ok" or report.ledger_mark is None:
            return None
        if probe is None:
            probe, read_at = self._settled_answers(report)
        if probe is None or read_at is None:
            return None
        stored = self._stored_cursor
        cursor = None if stored is None else (stored.modified_at, stored.record_id, stored.read_at)
        return IdleMemo.of(
            token=token,
            writes=self.store.writes,
            probe=probe,
            cursor=cursor,
            ledger_mark=report.ledger_mark,
            read_at=read_at,
            hold=self.settings.hold_rep_edits_for,
        )

    def _settled_answers(
        self, report: CycleReport
    ) -> tuple[plan_probe.PlanProbe | None, datetime | None]:
        """The answers the next cycle's start would ask, read in one statement at the end of a
        cycle that planned or stored but sent nothing (it settled the echo of syncd's own
        writes, say), when they say the next cycle has nothing to plan: a leader's next cycle
        then runs on them (syncd.idle_memo) instead of asking at its start. The probe is the
        same statement that start would send; on PostgreSQL it walks the index entries this
        cycle's updates left dead (``syncd.store_vacuum``), and that walk is now this cycle's,
        not the first idle one's. A cycle that wrote to the CRM is not asked: the next pull
        brings back the echo of its writes, which spends any answers kept."""
        kept = self._fingerprint
        if report.written or report.retrying or report.failed or kept is None:
            return None, None
        if self.stop.is_set():
            return None, None
        now = aware(self.clock())
        since = held_since(now, self.settings.hold_rep_edits_for)
        try:
            probe = plan_probe.probe(self.store, self.crm, now=now, held_since=since)
        except SQLAlchemyError:
            return None, None  # the next cycle asks at its start, as it would have
        return (probe, now) if probe.idle(kept[1]) else (None, None)

    def _progress(self, conn: Any, report: CycleReport, **now_counts: int) -> None:
        """Write the run row's counters in the transaction of the page, plan or batch they
        count (``now_counts``: the report's values once that transaction commits)."""
        if self._run_unwritten is not None:
            # A cycle on kept answers writes its run row with its first stored page.
            run_books.record_started(conn, self._run_unwritten)
            self._run_unwritten = None
        counts = {name: getattr(report, name) for name in _RUN_COUNTS}
        counts.update(now_counts, api_calls=_api_calls(self.connector) - self._calls_before)
        self.store.record_run_progress(conn, report.run_id, counts)

    # ---- 1. pull -------------------------------------------------------------------------

    def pull_and_read_history(self, report: CycleReport, *, until: datetime) -> None:
        """The pull, then the history of the leads it mirrored without it: what a plan of the
        mirror needs (``syncd plan``, ``syncd revert``), as the cycle does before it plans."""
        self.pull(report, until=until)
        self._read_pending_history()

    def pull(self, report: CycleReport, *, until: datetime) -> None:
        start, self._run_start = self._run_start, None  # the cycle's start read the cursor
        # A person's edit of a field the active rules set holds the lead (syncd.holds).
        self._watched_fields = fields_rules_set(
            self.rules(),
            self.settings.settable_fields,
            crm=self.settings.type,
            connector=self.crm or self.settings.type,  # as the planner's rule input names it
        )
        token = self.lease.token if self.lease is not None else None
        if self._mapping_token != token and self._read_again_if_remapped(token):
            start = None  # the cursor was forgotten: this pull reads every lead
        stored = start.cursor if start is not None else self.store.cursor(self.crm)
        since = self._stored_cursor = Cursor(*stored) if stored else None
        started = self.clock()
        progress = self.progress(self.crm) if self.progress is not None else None
        first_sight = self._pull_history = FirstSightHistory(
            self.connector, self.crm, first_sync=since is None, also=self._first_sight_fields()
        )
        self._read_from = started
        awaiting = self._races.load()
        if awaiting is not None and self._collections_with_history():
            # The last cycle's race check rides in this pull's first page: no call of its own.
            self.connector.read_edits_beside_pull(awaiting.since, also=self._race_fields())

        def with_columns(pages: Iterator[Page]) -> Iterator[tuple[Page, _Columns]]:
            # Made as the page is read, while the last page is stored: they need no store.
            for page in pages:
                yield page, {lead.id: self._lead_columns(lead) for lead in page.leads}

        def prepare(read: tuple[Page, _Columns]) -> _ReadPage:
            page, columns = read
            first_sight.expect(page.total)
            return _ReadPage(page, self._first_sight_history(_by_id(page.leads)), columns)

        def store(read: _ReadPage) -> None:
            page = read.page
            self._store_page(
                page.leads, page.cursor, report, firsts=read.firsts, columns=read.columns
            )
            planner_stats.analyze_if_grown(self.store)  # the next page's lookups by id
            if progress is not None:
                progress.advance(len(read.page.leads), read.page.total)

        try:
            # On PostgreSQL the next page is read from the CRM while this one is stored.
            pages = with_columns(self.connector.iter_pages(since, until=until))
            overlap = self._overlap()
            inline = _empty_page  # an idle pull's one page: no store thread for it
            if pull_overlapped(
                pages, prepare, store, self.stop.is_set, overlap=overlap, inline=inline
            ):
                log.info("stop requested: page checkpointed, leaving the pull")
                return
        finally:
            if progress is not None:
                progress.close()
            first_sight.close()
            self._pull_history = None
        if self._races.pending is not None:
            self._check_races(self.connector.edits_beside_pull(), report)
        if self.connector.last_pull_was_full_reconcile:
            # The cursor was older than the CRM's delete log: the pull was a full pass, so a
            # mirrored lead it did not yield was deleted and purged in the meantime.
            gone = self.store.mark_unseen_deleted(
                self.crm, started, self.clock(), run_id=report.run_id
            )
            report.deleted += gone
            log.warning(
                "%s: cursor older than the delete log; full reconcile marked %d leads deleted",
                self.crm,
                gone,
            )

    def _overlap(self) -> bool:
        """Whether a store thread writes while this one reads (syncd.pull_overlap) or judges
        (syncd.plan_overlap): on PostgreSQL, whose server does the writing in its own
        processes, so the two really run at once. On SQLite the store's work is this
        process's, under the same interpreter lock: measured at 100k leads, a first sync took
        about 10 % longer with a pull's store thread than without (and an in-memory SQLite
        database is one per thread)."""
        return self.store.engine.dialect.name == "postgresql"

    def _store_page(
        self,
        leads: Sequence[RemoteLead],
        cursor: Cursor | None,
        report: CycleReport,
        *,
        firsts: Mapping[str, list[HistoryEntry]],
        columns: _Columns,
    ) -> None:
        """The page's transaction, its cursor with it; no CRM call (``firsts``: the page's
        first-sight history, read before; ``columns``: its leads' ``_lead_columns``, made as
        it was read): on PostgreSQL it runs on the pull's store thread."""
        by_id = _by_id(leads)
        if not by_id:
            # An idle pull's page: bookkeeping alone, unfenced. It carries no lead, only the
            # read time at the position the pull started from; saved by a process that lost its
            # lease, it can move the cursor back to a position already read, so the next pull
            # reads again what the new leader read (an idempotent re-read), never past a lead.
            self._checkpoint(cursor, report)
            return
        now = self.clock()
        with self.store.begin() as conn:
            self._fence(conn)  # a page read before the new leader's writes must not land
            existing = self.store.lead_states(conn, self.crm, list(by_id))
            merged = _merged_away(by_id)
            # The originals' ledger rows become the merged lead's before its first-sight
            # history (read before this transaction, or after the pull: history_pending),
            # which HubSpot gives it from both originals (crm-api C12), is backfilled: that
            # adds only what the ledger lacks, so no transition counts twice.
            on_ledger: dict[str, list[Any]] = {}
            if merged:
                report.ledger_moved += self.store.rekey_history(conn, self.crm, merged)
                new_targets = sorted({i for i in merged.values() if i not in existing})
                on_ledger = self.store.history_of_leads(conn, self.crm, new_targets)
            # A status the outbox meant to write is syncd's own even when its confirmation was
            # lost in a crash (HubSpot does not say who made a change).
            open_fields = [
                r for r in self.store.open_changes(conn, self.crm, list(by_id)) if r.kind == "field"
            ]
            status_rows = [r for r in open_fields if r.field == "status"]
            queued = {(r.lead_id, r.value) for r in status_rows}
            open_by_lead: dict[str, dict[str, OutboxRecord]] = defaultdict(dict)
            for r in open_fields:
                open_by_lead[r.lead_id][r.field] = r
            history: list[dict[str, Any]] = []
            in_doubt = {r.lead_id: r for r in status_rows if r.state == OutboxState.SENDING}
            rows: list[dict[str, Any]] = []
            gone: dict[str, str] = {}  # lead id -> why its open changes are withdrawn
            reverted: list[OutboxRecord] = []  # unconfirmed writes a person has overridden
            quarantined: list[dict[str, Any]] = []
            for lead in by_id.values():
                ours = (lead.id, lead.fields.get("status")) in queued
                doubt = in_doubt.get(lead.id)
                prev = existing.get(lead.id)
                known = firsts.get(lead.id, []) if prev is None else []
                people_set = self._fields_a_person_set(
                    lead, columns[lead.id], prev, open_by_lead.get(lead.id, {})
                )
                rows.append(
                    self._mirror_row(
                        lead,
                        columns[lead.id],
                        prev,
                        now,
                        queued=ours,
                        in_doubt=doubt,
                        crm_history=known,
                        people_set=people_set,
                    )
                )
                history += ledger.backfill_rows(
                    self.crm,
                    [e for e in known if e.field == ledger.STATUS],
                    on_ledger,
                    {lead.id: lead.modified_at} if prev is None else None,
                )
                history += ledger.pulled_rows(
                    self.crm,
                    lead,
                    prev,
                    person=prev is not None and not syncd_made(lead, prev, queued=ours),
                    queued=open_by_lead.get(lead.id, {}),
                    lifecycle_field=self._ledger_stage_field,
                    stage_by_person=self._ledger_stage_field in people_set,
                )
                if doubt is not None and reverted_in_doubt(
                    lead, rows[-1]["status"], doubt, prev, crm_behind=self.connector.clock_behind
                ):
                    reverted.append(doubt)
                if rows[-1]["quarantine"] and (
                    prev is None or lead.modified_at > _utc(prev.modified_at)
                ):
                    # Not the overlap's re-read of a version already mirrored: an idle daemon
                    # re-reads its newest lead every cycle, and would count its value again.
                    quarantined.append(rows[-1])
                if lead.deleted or lead.converted:
                    gone[lead.id] = LEAD_DELETED if lead.deleted else LEAD_CONVERTED
                report.deleted += lead.deleted
            if rows:
                self.store.upsert_leads(conn, rows)
            self._mark_history_pending(conn, by_id, existing)
            self.store.add_history(conn, history)
            # The write may have been applied (its answer was lost); the person's value stands,
            # and the audit says both.
            self._close_reverted(conn, reverted, now, report)
            gone |= self._retire_merged(conn, merged, report)
            if gone:
                self._withdraw_gone(conn, gone, now, report)
            saved = self._save_cursor(conn, cursor, now) if cursor is not None else None
            self._progress(conn, report, pulled=report.pulled + len(by_id))
        if saved is not None:  # committed
            self._stored_cursor = saved
        report.pulled += len(by_id)
        self._report_quarantine(quarantined)

    def _retire_merged(
        self, conn: Connection, merged: Mapping[str, str], report: CycleReport
    ) -> dict[str, str]:
        """Mirrored leads the CRM merged into a pulled one (``merged``: old id -> the lead it
        lives on in) are marked deleted; returns why their open changes go (a write to an old
        id would land on the merged lead, decided from the old one's data: crm-api C12)."""
        if not merged:
            return {}
        gone = self.store.mark_deleted(conn, self.crm, sorted(merged))
        if gone:
            report.deleted += len(gone)
            log.info(
                "%s: %d mirrored leads were merged into others in the CRM; marked deleted (%s)",
                self.crm,
                len(gone),
                ", ".join(f"{old} into {merged[old]}" for old in gone[:5])
                + (", ..." if len(gone) > 5 else ""),
            )
        return {old: lead_merged(merged[old]) for old in gone}

    def _withdraw_gone(
        self, conn: Connection, gone: Mapping[str, str], now: datetime, report: CycleReport
    ) -> None:
        """Withdraw the open changes of leads gone from the CRM (``gone``: lead id -> why)."""
        withdrawn: dict[str, list[OutboxRecord]] = defaultdict(list)
        for r in self.store.open_changes(conn, self.crm, list(gone)):
            withdrawn[gone[r.lead_id]].append(r)
        for reason, open_rows in withdrawn.items():
            self.store.close_changes(
                conn, open_rows, OutboxState.WITHDRAWN, now, run_id=report.run_id, reason=reason
            )

    def _save_cursor(self, conn: Connection, cursor: Cursor, now: datetime) -> Cursor | None:
        """Save the position if it is worth saving (``_cursor_moved``); return it if saved."""
        if not self._cursor_moved(cursor):
            return None
        self.store.save_cursor(
            conn, self.crm, cursor.modified_at, cursor.record_id, now, read_at=cursor.read_at
        )
        self._unsaved_cursor = None  # this later position supersedes an empty page's
        return cursor

    def _cursor_moved(self, cursor: Cursor) -> bool:
        """A position that moved forward, or the same one read again later (the read time
        bounds how far the next pull must look back)."""
        old = self._stored_cursor  # as the pull read it or the last page saved it
        return (
            old is None
            or cursor > old
            or (
                cursor == old
                and cursor.read_at is not None
                and (old.read_at is None or cursor.read_at > old.read_at)
            )
        )

    def _checkpoint(self, cursor: Cursor | None, report: CycleReport) -> None:
        """A page without leads: the cursor's new read time and the run's counters, written
        together (``StateStore.checkpoint``: one statement on PostgreSQL); in a cycle, by the
        run's final statement (``run_books.finish``)."""
        save = cursor if cursor is not None and self._cursor_moved(cursor) else None
        counts = {name: getattr(report, name) for name in _RUN_COUNTS}
        counts["api_calls"] = _api_calls(self.connector) - self._calls_before
        position = None if save is None else (save.modified_at, save.record_id, save.read_at)
        if self._in_cycle:
            # The run's final statement writes the counters and this position (run_books).
            if position is not None:
                self._unsaved_cursor = (position, self.clock())
        else:
            self.store.checkpoint(self.crm, report.run_id, counts, position, self.clock())
        if save is not None:
            self._stored_cursor = save

    def _close_reverted(
        self, conn: Connection, reverted: Sequence[OutboxRecord], now: datetime, report: CycleReport
    ) -> None:
        """Close unconfirmed status writes a person has overridden, and the rest of their
        intents that were in doubt with them (one Composite call carries a lead's status write
        and its newsletter add): those may have landed too, and are not sent again now that a
        person decided the status. The audit says both."""
        if not reverted:
            return
        self.store.close_changes(
            conn,
            reverted,
            OutboxState.WITHDRAWN,
            now,
            run_id=report.run_id,
            reason=UNCONFIRMED_OVERRIDDEN,
        )
        closed = {r.id for r in reverted}
        parts = self.store.intent_parts(conn, {r.intent_id for r in reverted})
        companions = [
            p
            for rows_of in parts.values()
            for p in rows_of
            if p.state == OutboxState.SENDING and p.id not in closed
        ]
        self.store.close_changes(
            conn,
            companions,
            OutboxState.WITHDRAWN,
            now,
            run_id=report.run_id,
            reason=UNCONFIRMED_WITH_OVERRIDDEN,
        )

    def _read_again_if_remapped(self, token: int | None) -> bool:
        """The first pull of this process, when the connector's ``fields`` mapping is not the
        one the mirror was read under (``syncd.field_remap``): drop the changed fields from the
        mirror, forget the cursor and hold the remapped fields rules may set, in one
        transaction.
        True when the cursor was forgotten (a field is mapped anew: every lead is read)."""
        current = self.connector.field_mapping()
        stored = self.store.get_meta(field_remap.map_key(self.crm))
        changed = field_remap.changed_fields(stored, current)
        if stored is not None and not changed:
            self._mapping_token = token
            return False
        read_again = any(name in current for name in changed)
        now = aware(self.clock())
        holds = field_remap.holds_after(
            self.store.get_meta(field_remap.holds_key(self.crm)),
            changed,
            current,
            # Every field rules may set, not only those the current rules do: a rule file
            # reloaded within the hold may start setting one.
            frozenset(self.settings.settable_fields),
            now + self.settings.hold_rep_edits_for,
        )
        with self.store.begin() as conn:
            if changed:
                self.store.forget_lead_fields(conn, self.crm, changed)
                self.store.put_meta(conn, field_remap.holds_key(self.crm), holds)
            if read_again:
                self.store.forget_cursor(conn, self.crm)
            self.store.put_meta(conn, field_remap.map_key(self.crm), current)
        self._mapping_token = token
        if changed:
            held = sorted(set(changed) & set(holds))
            log.warning(
                "%s: fields mapped differently since the mirror was read (%s)%s%s",
                self.crm,
                ", ".join(
                    f"{n}: {stored.get(n) if stored else None} -> {current.get(n)}" for n in changed
                ),
                "; this pull reads every lead again" if read_again else "",
                (
                    f"; syncd writes none of {', '.join(held)} until "
                    f"{now + self.settings.hold_rep_edits_for:%Y-%m-%d %H:%M} UTC "
                    "(hold_rep_edits_for: a person may have set it before the change)"
                )
                if held
                else "",
            )
        return read_again

    def _first_sight_history(
        self, by_id: Mapping[str, RemoteLead]
    ) -> dict[str, list[HistoryEntry]]:
        """The CRM's status history of the page's leads syncd has not mirrored yet, by lead:
        it backfills the ledger, and a status a person set before syncd first saw the lead is
        held like any rep edit. Read per lead (one call per 200 Salesforce leads, per 50
        HubSpot contacts), or, when the pull meets many new leads, from the org's whole
        history read once (``syncd.history_staging``).

        A CRM that refuses to say (no permission on the history) costs the backfill, not the
        cycle."""
        if not self.settings.read_crm_history or not by_id:
            return {}  # an empty page (an idle pull) meets no new lead
        with self.store.reading() as conn:  # one statement: no BEGIN/COMMIT on PostgreSQL
            seen = self.store.existing_lead_ids(conn, self.crm, list(by_id))
        new = [i for i, lead in by_id.items() if i not in seen and not lead.deleted]
        if not new:
            return {}
        staged = self._pull_history.history_of(new) if self._pull_history is not None else None
        if staged is not None:
            return staged
        out: dict[str, list[HistoryEntry]] = defaultdict(list)
        also = self._first_sight_fields()
        for e in self._crm_history(new, "new leads are mirrored without it", also=also) or ():
            out[e.lead_id].append(e)
        return out

    def _first_sight_fields(self) -> tuple[str, ...]:
        """Fields besides the status whose CRM history first sight reads, in the same calls,
        so that a person's edit of one before syncd first saw the lead holds the lead as a
        status edit does (``syncd.holds``): every field a rule that can apply here sets where
        the connector reads any field's history (Salesforce, HubSpot), else the lifecycle stage
        when a rule sets it."""
        if self.connector.history_of_rule_fields:
            return tuple(sorted(self._watched_fields))
        stage = self._ledger_stage_field
        return (stage,) if stage in self._watched_fields else ()

    def _mark_history_pending(
        self, conn: Any, by_id: Mapping[str, RemoteLead], existing: Mapping[str, LeadState]
    ) -> None:
        """In the page's transaction: its new leads' history is read after the pull."""
        if self._pull_history is not None and self._pull_history.deferred:
            new = [i for i, lead in by_id.items() if i not in existing and not lead.deleted]
            self.store.add_history_pending(conn, self.crm, new)
            self._history_pending_unread = self._history_pending_unread or bool(new)

    def _read_pending_history(self) -> None:
        """The history of the leads the pull mirrored without it (``syncd.history_pending``)."""
        if not self.settings.read_crm_history or not self._history_pending_unread:
            return
        calls = _api_calls(self.connector)
        done = history_pending.read_pending(
            self.store,
            self.crm,
            lambda ids: self._crm_history(
                ids, "new leads are mirrored without it", also=self._first_sight_fields()
            ),
            hold=self.settings.hold_rep_edits_for,
            now=self.clock(),
            fence=self._fence,
            watched=self._first_sight_fields(),
        )
        self._history_pending_unread = False  # read to the end (an error leaves it set)
        if done.leads:
            log.info(
                "%s: read the status history of %d leads after the pull (%d calls): "
                "%d transitions backfilled, %d leads a person edited held",
                self.crm,
                done.leads,
                _api_calls(self.connector) - calls,
                done.added,
                done.held,
            )

    def _hold_edits_of_newly_set_fields(self, now: datetime) -> None:
        """Before the plan, when the rules set a field they did not at the last check: the
        leads a person edited it on within the hold are held (``syncd.newly_set_fields``).
        Checked against the store once per lease and whenever the fields change."""
        token = self.lease.token if self.lease is not None else None
        watched = self._watched_fields
        if self._set_fields_seen == (token, watched):
            return
        recorded = newly_set_fields.recorded_fields(self.store, self.crm)
        # None: a new mirror, or one from a release before the record, whose pulls watched
        # these fields already.
        new = sorted(watched - recorded) if recorded is not None else []
        if self.connector.history_of_rule_fields:
            readable = new
        else:
            readable = [name for name in new if name == self._ledger_stage_field]
        if readable and self.settings.read_crm_history:
            held = newly_set_fields.hold_recent_edits(
                self.store,
                self.crm,
                readable,
                lambda ids: self._crm_history(
                    ids,
                    "a person's recent edit of a field the rules newly set is not seen",
                    also=readable,
                ),
                hold=self.settings.hold_rep_edits_for,
                now=aware(now),
                fence=self._fence,
            )
            log.info(
                "%s: the rules now set %s: read the history of the leads changed within "
                "hold_rep_edits_for; %d %s a person set it held",
                self.crm,
                ", ".join(readable),
                held,
                "lead" if held == 1 else "leads",
            )
        if recorded != watched:
            with self.store.begin() as conn:
                self._fence(conn)
                newly_set_fields.record_fields(self.store, conn, self.crm, watched)
        self._set_fields_seen = (token, watched)

    def _crm_history(
        self, lead_ids: Sequence[str], without: str, *, also: Sequence[str] = ()
    ) -> list[HistoryEntry] | None:
        """The connector's ``status_history`` (``also``: of these fields too, where the same
        calls carry it); None (logged, saying ``without`` what syncd goes on) when the CRM
        refuses it for good, say the integration user may not read field history: the ledger
        and rep edits lose that source, the cycle goes on."""
        if not self.settings.read_crm_history:
            return None
        try:
            return self.connector.status_history(lead_ids, also=also)
        except (ConfigurationError, FatalError) as exc:
            if isinstance(exc, AuthError):
                raise
            log.warning(
                "%s: the CRM's status history could not be read (%s); %s",
                self.crm,
                _first_line(exc),
                without,
            )
            return None

    def _report_quarantine(self, rows: Sequence[dict[str, Any]]) -> None:
        """Log and count the values the connector (or ``_mirror_row``) nulled."""
        for row in rows:
            fields = ", ".join(f"{p['field']} ({p['reason']})" for p in row["quarantine"])
            log.warning(
                "%s lead %s: unusable values stored as empty: %s",
                self.crm,
                row["lead_id"],
                fields,
                extra={"crm": self.crm},
            )
            if self.metrics is not None:
                for problem in row["quarantine"]:
                    self.metrics.quarantined.labels(self.crm, problem["field"]).inc()

    def _lead_columns(self, lead: RemoteLead) -> dict[str, Any]:
        """The mirror row's columns that depend on the pulled lead alone (its fields, their
        problems, its enrichment): made as the page is read, before the store is asked."""
        fields = {k: v if type(v) in _JSON_AS_IS else _jsonable(v) for k, v in lead.fields.items()}
        problems = [
            {"field": p.field, "excerpt": p.excerpt, "reason": p.reason} for p in lead.problems
        ]
        reported = {p.field for p in lead.problems}
        # Last line: a value the connector let through that JSON cannot hold (NaN, infinity).
        problems += [
            {"field": k, "excerpt": repr(lead.fields[k])[:40], "reason": "not storable as JSON"}
            for k, v in fields.items()
            if v is None and lead.fields[k] is not None and k not in reported
        ]
        return {
            "crm": self.crm,
            "lead_id": lead.id,
            "modified_at": lead.modified_at,
            "fields": fields,
            "enrichment": self.enricher.values(lead.fields),
            # Not stored: `explain` derives the reasons from the stored fields when asked, under
            # the settings the stored values were derived under (syncd.enrichment_refresh).
            "reasons": {},
            "status": fields.get("status"),
            "deleted": lead.deleted,
            "converted": lead.converted,
            "quarantine": problems or None,
        }

    def _mirror_row(
        self,
        lead: RemoteLead,
        columns: dict[str, Any],
        prev: LeadState | None,
        now: datetime,
        *,
        queued: bool = False,
        in_doubt: OutboxRecord | None = None,
        crm_history: Sequence[HistoryEntry] = (),
        people_set: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The lead's mirror row: ``columns`` (``_lead_columns``, completed in place) with what
        the lead's stored state and the pull's time decide (``people_set``: the fields rules
        set that a person changed, ``_fields_a_person_set``)."""
        row = columns
        row["pulled_at"] = row["first_seen_at"] = now
        status = row["status"]
        if prev is None:
            # When the status was set is unknown on first sight; the last modification is the
            # latest it can have been, so time-based rules fire late rather than early.
            row.update(
                status_changed_at=lead.modified_at,
                written_status=None,
                written_at=None,
                rep_edit_at=None,
                rep_edit_status=None,
                rep_edit_field=None,
                newsletters=[],
                error_code=None,
                error_message=None,
                error_at=None,
            )
            self._first_sight(row, lead, crm_history)
            return row
        row.update(
            status_changed_at=prev.status_changed_at,
            written_status=prev.written_status,
            written_at=prev.written_at,
            rep_edit_at=prev.rep_edit_at,
            rep_edit_status=prev.rep_edit_status,
            rep_edit_field=prev.rep_edit_field,
            newsletters=prev.newsletters or [],
            error_code=prev.error_code,
            error_message=prev.error_message,
            error_at=prev.error_at,
        )
        if status != prev.status or reverted_in_doubt(
            lead, status, in_doubt, prev, crm_behind=self.connector.clock_behind
        ):
            if status != prev.status:
                row["status_changed_at"] = lead.modified_at
            if not syncd_made(lead, prev, queued=queued):
                self._held_for(row, lead, "status", status)
                return row  # the status edit is the hold's reason, whatever else they set
        if people_set:
            name = people_set[0]
            self._held_for(row, lead, name, row["fields"].get(name))
        return row

    def _fields_a_person_set(
        self,
        lead: RemoteLead,
        columns: dict[str, Any],
        prev: LeadState | None,
        queued: Mapping[str, OutboxRecord],
    ) -> list[str]:
        """The fields the active rules set that a person changed on an already mirrored lead
        (``syncd.open_changes.fields_a_person_set``), judged on the values as stored."""
        if prev is None or not self._watched_fields:
            return []
        unusable = [p["field"] for p in columns["quarantine"] or ()]
        return fields_a_person_set(
            lead, columns["fields"], prev, self._watched_fields, queued, unusable=unusable
        )

    def _held_for(self, row: dict[str, Any], lead: RemoteLead, name: str, value: Any) -> None:
        """A person set ``name`` (the status or a field a rule sets) to ``value``: the lead is
        held from the lead's modification time (``syncd.holds``), and a write the CRM refused
        before may be tried again once the hold ends."""
        row["rep_edit_at"] = lead.modified_at
        row["rep_edit_status"] = edit_text(value)
        row["rep_edit_field"] = None if name == "status" else name
        row["error_code"] = row["error_message"] = row["error_at"] = None
        until = lead.modified_at + self.settings.hold_rep_edits_for
        log.info(
            "lead %s: %s changed to %r by a person; left alone until %s UTC",
            lead.id,
            name,
            value,
            f"{until:%Y-%m-%d %H:%M}",
        )

    def _first_sight(
        self, row: dict[str, Any], lead: RemoteLead, crm_history: Sequence[HistoryEntry]
    ) -> None:
        """What the CRM's history says of a lead syncd mirrors for the first time: when its
        status was set, and whether a person set it, or a field whose history was read with it
        (``_first_sight_fields``): held like any rep edit."""
        status = row["status"]
        moves = [e for e in crm_history if e.field == ledger.STATUS and e.to_value == status]
        if moves:
            row["status_changed_at"] = max(e.at for e in moves)
        fields = row["fields"] or {}
        found = history_pending.first_sight_edit(
            crm_history, status, fields, self._first_sight_fields()
        )
        if found is None:
            return
        edit, field = found
        value = status if field is None else fields[field]
        row["rep_edit_at"], row["rep_edit_field"] = edit.at, field
        row["rep_edit_status"] = edit_text(value)
        if edit.at + self.settings.hold_rep_edits_for > self.clock():
            log.info(
                "lead %s: %s %r was set by a person before syncd first saw it; left alone "
                "until %s UTC",
                lead.id,
                field or "status",
                value,
                f"{edit.at + self.settings.hold_rep_edits_for:%Y-%m-%d %H:%M}",
            )

    # ---- 2. plan -------------------------------------------------------------------------

    def verdicts(self, book: RuleBook, now: datetime) -> Iterator[tuple[PlanRecord, LeadVerdict]]:
        return iter_verdicts(
            self.store, self.crm, book, self.settings, now, loop_guard=self.loop_guard
        )

    def fingerprint(self, book: RuleBook) -> str:
        """What this connector's verdicts depend on besides leads and time (``syncd.due``):
        hashed once per book and settings objects (an idle cycle asks twice, before its lease
        check and in its plan)."""
        guard = self.loop_guard.settings if self.loop_guard is not None else None
        inputs = (book, self.settings, self.enricher.settings, guard)
        kept = self._fingerprint
        if kept is None or any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
            kept = self._fingerprint = (inputs, due.planning_fingerprint(*inputs))
        return kept[1]

    def plan(
        self, report: CycleReport, book: RuleBook, now: datetime, *, approve_large_run: bool = False
    ) -> None:
        batch: list[tuple[PlanRecord, LeadVerdict]] = []
        # Judges open changes of earlier decisions (a lead as it was before syncd's write).
        planner = Planner(crm=self.crm, book=book, settings=self.settings, now=now)
        if self.loop_guard is not None:
            self.loop_guard.start_pass()
        fingerprint = self.fingerprint(book)
        since = held_since(aware(now), self.settings.hold_rep_edits_for)
        early, self._early_probe = self._early_probe, None
        if early is not None and report.pulled == 0 and self.store.writes == self._writes_at_start:
            self._idle_probe = early  # nothing written since the cycle's start read it
        else:
            self._idle_probe = plan_probe.probe(self.store, self.crm, now=now, held_since=since)
            self._probe_read_at = aware(now)
        if self._idle_probe.idle(fingerprint):  # one statement instead of a plan's reads
            report.held, report.blocked = self._idle_probe.held, self._idle_probe.blocked
            if self.loop_guard is not None and self.metrics is not None:
                self.metrics.loop_held.labels(self.crm).set(len(self.loop_guard.held))
            return
        self._idle_probe = None
        # New rules or settings: every live lead is due now (syncd.due).
        due.record_fingerprint(self.store, self.crm, fingerprint)
        # On PostgreSQL a store thread records each batch while the next is judged.
        with BatchRecorder[list[tuple[PlanRecord, LeadVerdict]]](
            lambda items: self._record_plan(items, report, book, now, planner),
            overlap=self._overlap(),
        ) as recorder:
            for item in self.verdicts(book, now):
                batch.append(item)
                if len(batch) >= 1000:
                    recorder.submit(batch)
                    batch = []
            if batch:
                recorder.submit(batch)
            changing_leads = recorder.total()
        if self.loop_guard is not None and self.metrics is not None:
            self.metrics.loop_held.labels(self.crm).set(len(self.loop_guard.held))
        # Held and blocked leads are not all evaluated each cycle: counted over the store.
        report.held, report.blocked = self.store.count_held_and_blocked(self.crm, since)
        # Counted only when the breaker could trip, and no further than the count that keeps
        # the share at or under the limit: a count of all live leads reads them all.
        small = changing_leads < self.breaker.min_changes or approve_large_run
        enough = self._live_enough(changing_leads)
        live = 0 if small else self.store.count_live(self.crm, at_most=enough)
        share = changing_leads / live if live else 0.0
        if not small and share > self.breaker.max_change_share:
            with self.store.begin() as conn:
                self._fence(conn)
                self.store.promote_planned(conn, self.crm, report.run_id, OutboxState.BLOCKED, now)
                due.reset_blocked(self.store, conn, self.crm, report.run_id)
            report.outcome = "breaker"
            report.message = (
                f"this run would change {changing_leads} of {live} leads "
                f"({share:.0%}), above breaker.max_change_share "
                f"{self.breaker.max_change_share:.0%}; nothing was written. Review "
                "it with `syncd plan`, then run `syncd sync --once "
                "--approve-large-run` or raise the limit"
            )
            if self.metrics is not None:
                self.metrics.breaker_trips.labels(self.crm).inc()
            return
        if report.planned == 0:
            return  # this run planned no row: nothing to approve, no transaction (idle cycle)
        with self.store.begin() as conn:
            self._fence(conn)
            self.store.promote_planned(conn, self.crm, report.run_id, OutboxState.PENDING, now)

    def _live_enough(self, changing_leads: int) -> int | None:
        """A count of live leads past which ``changing_leads`` are within the breaker's share
        (None: only the full count says, with a share of 0)."""
        limit = self.breaker.max_change_share
        return math.floor(changing_leads / limit) + 1 if limit > 0 else None

    def _record_plan(
        self,
        items: Sequence[tuple[PlanRecord, LeadVerdict]],
        report: CycleReport,
        book: RuleBook,
        now: datetime,
        planner: Planner,
    ) -> int:
        """Reconcile verdicts with open outbox rows; returns leads with field changes.

        A verdict's changes for one lead are one intent. An open row still wanted is kept; one
        the CRM already shows is done; any other is judged by its intent (``judge_leftover``).
        """
        changing = 0
        with self.store.begin() as conn:
            self._fence(conn)
            open_rows: dict[str, list[OutboxRecord]] = defaultdict(list)
            for r in self.store.open_changes(conn, self.crm, [row.lead_id for row, _ in items]):
                open_rows[r.lead_id].append(r)
            new_rows: list[dict[str, Any]] = []
            done: list[OutboxRecord] = []
            leftovers: list[
                tuple[PlanRecord, OutboxRecord, dict[tuple[str, str], PlannedChange], str | None]
            ] = []
            for row, verdict in items:
                wanted = {(c.kind, c.field): c for c in verdict.changes}
                for existing in open_rows.get(row.lead_id, ()):
                    key = (existing.kind, existing.field)
                    change = wanted.get(key)
                    if change is not None and change.value == existing.value:
                        del wanted[key]  # still wanted and already queued
                    elif (
                        existing.kind == "field" and _current(row, existing.field) == existing.value
                    ):
                        done.append(existing)  # the CRM already shows it (written before a crash)
                    else:
                        held = held_back(verdict, existing.field)
                        leftovers.append((row, existing, wanted, held))
                if any(c.kind == "field" for c in verdict.changes):
                    changing += 1
                intent_id = f"{report.run_id}.{row.lead_id}"
                for change in wanted.values():
                    new_rows.append(
                        {
                            "crm": self.crm,
                            "lead_id": row.lead_id,
                            "kind": change.kind,
                            "field": change.field,
                            "value": change.value,
                            "before": change.before,
                            "rule_id": verdict.rule_id,
                            "ruleset_version": book.version,
                            "run_id": report.run_id,
                            "intent_id": intent_id,
                            "state": OutboxState.PLANNED,
                            "attempts": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            closed: dict[tuple[OutboxState, str], list[OutboxRecord]] = defaultdict(list)
            if leftovers:
                intents = self.store.intent_parts(conn, {r.intent_id for _, r, _, _ in leftovers})
                done_now = {r.id for r in done}
                for row, existing, wanted, held in leftovers:
                    closing = judge_leftover(
                        row,
                        existing,
                        intents[existing.intent_id],
                        done_now,
                        wanted,
                        book,
                        planner,
                        now,
                        held=held,
                    )
                    if closing is not None:
                        closed[closing].append(existing)
            for (state, reason), rows in closed.items():
                self.store.close_changes(
                    conn, rows, state, now, run_id=report.run_id, reason=reason
                )
            self.store.set_change_state(conn, [r.id for r in done], OutboxState.DONE, now)
            self.store.add_audit(
                conn,
                [self._audit(r, AuditOutcome.ALREADY_IN_PLACE, now, report.run_id) for r in done],
            )
            self.store.add_changes(conn, new_rows)
            self.store.set_due(conn, self.crm, due_updates(items))
            self._progress(conn, report, planned=report.planned + len(new_rows))
        report.planned += len(new_rows)
        report.evaluated += len(items)
        return changing

    # ---- 4. write ------------------------------------------------------------------------

    def drain(self, report: CycleReport) -> None:
        """Send every due pending change in full batches of the CRM's maximum.

        Batches fill across the outbox chunks (a partial batch would cost a call the minimum
        does not need); only the last batch of a kind may be short. A connector whose call
        carries several batches (``max_collections_per_call``) gets them that many at a time,
        kinds mixed: a cycle's N batches cost ceil(N / max_collections_per_call) calls. One
        that reads people's status edits by time (``collections_with_history``, Salesforce
        Composite) checks the cycle's status writes for races once (``syncd.races``), in a
        free slot of the cycle's last call or else beside the next pull's first page, so the
        race check costs no call and no collection's slot. There, full calls go ahead
        (:meth:`_sends_ahead`): a call's answers are recorded while the next is on its way.
        """
        now = self.clock()
        # A connector whose one call carries several collections (Salesforce Composite: 5)
        # gets field batches and newsletter adds together; removals (reverts) go alone.
        per_call = max(1, self.connector.max_collections_per_call)
        queued: list[Batch] = []
        ahead: CallAhead[_Departure, _Arrival] | None = (
            CallAhead("syncd-write") if self._sends_ahead() else None
        )

        def land() -> None:
            answer = ahead.answer() if ahead is not None else None
            if answer is not None:
                self._arrive_answer(answer, report)

        def send(kind: str, groups: list[list[OutboxRecord]]) -> None:
            if per_call == 1 or (kind == "membership" and groups[0][0].value is False):
                land()
                self._send(kind, groups, report)
                return
            queued.append((kind, groups))
            if len(queued) >= per_call:
                if ahead is not None:
                    self._send_ahead(list(queued), report, ahead)
                else:
                    self._send_batches(queued, report)
                queued.clear()

        try:
            self._drain_kind("field", now, self.connector.max_batch_size, send)
            self._drain_kind("membership", now, self.connector.max_membership_batch, send)
            land()
            if queued and not self.stop.is_set():
                self._send_batches(queued, report, last=True)
        finally:
            if ahead is not None and ahead.close() is not None:
                # Left by an error: its rows stay in doubt (sending), as after a crash, for
                # the next cycle to settle.
                log.warning(
                    "%s: a write call's answers were not recorded; its rows are settled by "
                    "the next cycle",
                    self.crm,
                )

    def _sends_ahead(self) -> bool:
        """Whether full calls go ahead (syncd.call_ahead): the next leaves once the last has
        answered, and the last's answers are recorded while the next is on its way. Only for
        calls of several collections whose recording makes no CRM call of its own: the race
        check reads people's edits by time, once a cycle (without it, each batch's history is
        read after the batch)."""
        return self.connector.max_collections_per_call > 1 and self._collections_with_history() > 0

    def _drain_kind(
        self, kind: str, now: datetime, size: int, send: Callable[[str, Groups], None]
    ) -> None:
        # lead (or newsletter+lead) -> its rows, in outbox order; a lead's rows are adjacent
        buffer: dict[tuple[str, str], list[OutboxRecord]] = {}
        for rows in self.store.iter_due_changes(self.crm, kind, now):
            for r in rows:
                key = (_membership_key(r) if kind == "membership" else "", r.lead_id)
                buffer.setdefault(key, []).append(r)
            # Keep the last group open: its remaining rows may be in the next chunk.
            while len(buffer) > size or (buffer and _newsletters(buffer) > 1):
                if self.stop.is_set():
                    return
                send(kind, _take(buffer, size))
        while buffer and not self.stop.is_set():
            send(kind, _take(buffer, size))

    def _send(
        self,
        kind: str,
        groups: list[list[OutboxRecord]],
        report: CycleReport,
        *,
        restoring: bool = False,
    ) -> None:
        self._send_batches([(kind, groups)], report, restoring=restoring)

    def _send_batches(
        self,
        batches: Sequence[Batch],
        report: CycleReport,
        *,
        restoring: bool = False,
        last: bool = False,
    ) -> None:
        """One connector call for the batches (several only when the connector's call
        carries several collections); each batch's results recorded as a batch of its own.
        The cycle's ``last`` call carries the race check when it has a free slot."""
        departure = self._depart(batches, restoring=restoring, last=last)
        try:
            arrival = departure.call()
        except ConnectorError as exc:
            self._refused_whole(departure, exc)
            raise
        self._arrive(departure, arrival, report)

    def _send_ahead(
        self,
        batches: Sequence[Batch],
        report: CycleReport,
        ahead: CallAhead[_Departure, _Arrival],
    ) -> None:
        """Send the batches once the call on its way has answered, then record that answer
        while they are on their way (``syncd.call_ahead``). A call that failed stops the drain
        before the next one is marked ``sending``."""
        answer = ahead.answer()
        if answer is not None and answer.error is not None:
            self._arrive_answer(answer, report)  # raises
        try:
            departure = self._depart(batches, restoring=False, last=False)
        except BaseException:
            if answer is not None:  # answered: recorded, unless the store refuses that too
                self._arrive_answer(answer, report)
            raise
        ahead.launch(departure, departure.call)
        if answer is not None:
            self._arrive_answer(answer, report)

    def _arrive_answer(self, answer: Answer[_Departure, _Arrival], report: CycleReport) -> None:
        if answer.error is not None:
            if isinstance(answer.error, ConnectorError):
                self._refused_whole(answer.sent, answer.error)
            raise answer.error
        assert answer.result is not None
        self._arrive(answer.sent, answer.result, report)

    def _depart(self, batches: Sequence[Batch], *, restoring: bool, last: bool) -> _Departure:
        """Renew the lease, mark the batches' rows in doubt (``sending``) and hand back the
        call that sends them: what a send does before the CRM is asked."""
        ids = [r.id for _, groups in batches for g in groups for r in g]
        by_time = self._collections_with_history() > 0
        fields = self._race_fields()
        checked_rows = _checked_rows(batches, fields)
        riding = (
            last
            and by_time
            and not restoring
            and (self._races.pending is not None or bool(checked_rows))
            and 0 < len(batches) <= self._collections_with_history()
        )
        awaited = [r.id for r in checked_rows] if by_time and not restoring else []
        # Where the race check looks from: the store may be asked (an earlier run's start),
        # so once, for the rows' mark and the check riding the call alike.
        since = self._check_since(batches) if awaited or riding else None
        if self.lease is not None:
            self.lease.before_send()
        self._mark_sending(ids, awaited, since if awaited else None)
        connector = self.connector
        send: Callable[[], tuple[Sequence[Sequence[RecordResult]], WrittenThenRead | None]]
        if riding and since is not None:
            collections = [self._collection(kind, groups) for kind, groups in batches]
            edits_from = since

            def send() -> tuple[Sequence[Sequence[RecordResult]], WrittenThenRead | None]:
                checked = connector.write_collections_then_history(
                    collections, edits_from, also=fields
                )
                return checked.results, checked

        elif len(batches) == 1:
            kind, groups = batches[0]

            def send() -> tuple[Sequence[Sequence[RecordResult]], WrittenThenRead | None]:
                return [self._deliver(kind, groups)], None

        else:
            collections = [self._collection(kind, groups) for kind, groups in batches]

            def send() -> tuple[Sequence[Sequence[RecordResult]], WrittenThenRead | None]:
                return connector.write_collections(collections), None

        def call() -> _Arrival:
            # Counted on the thread that makes the call, around it alone: a call sent ahead
            # must not take the next one's unanswered attempts for its own.
            before = connector.stats.unanswered
            answers, checked = send()
            return _Arrival(answers, checked, connector.stats.unanswered > before)

        return _Departure(batches, ids, by_time, restoring, call)

    def _refused_whole(self, departure: _Departure, exc: ConnectorError) -> None:
        if answered_unapplied(exc):
            # The CRM answered with an error: nothing of the batch was applied, so it is
            # not in doubt; it waits (pending) for the next cycle.
            with self.store.begin() as conn:
                self._fence(conn)
                self.store.set_change_state(conn, departure.ids, OutboxState.PENDING, self.clock())

    def _arrive(self, departure: _Departure, arrival: _Arrival, report: CycleReport) -> None:
        """Record what the CRM answered to a departed call, then what follows from it."""
        batches = departure.batches
        answers, checked = arrival.answers, arrival.checked
        if len(answers) != len(batches):
            raise FatalError(
                f"{self.crm} answered {len(answers)} collections for {len(batches)} sent; "
                "refusing to guess which succeeded",
                crm=self.crm,
            )
        if arrival.unanswered:
            _mark_may_have_landed(batches, answers)
        # Every answer is recorded before any race restore sends: a restore that fails must
        # not leave the call's other answered batches in doubt.
        self._record_results(
            [(groups, results) for (_, groups), results in zip(batches, answers, strict=True)],
            report,
        )
        if departure.by_time and not departure.restoring:
            self._await_check(batches, answers)
            if checked is not None:
                self._check_races(checked, report)
            return
        for (kind, groups), results in zip(batches, answers, strict=True):
            if kind == "field" and not departure.restoring:
                self._restore_races(groups, results, report)

    def _ledger_field(self, field: str) -> str | None:
        """The ledger's name of a canonical field it records (the status, the lifecycle
        stage), None for a field it does not (``syncd.ledger``)."""
        if field == "status":
            return ledger.STATUS
        return ledger.LIFECYCLE if field == self._ledger_stage_field else None

    def _race_fields(self) -> tuple[str, ...]:
        """Fields besides the status whose writes the race check covers: those whose history
        the connector reads in the same calls as the status's (first sight's), so checking them
        costs no call of its own (``syncd.races``)."""
        return self._first_sight_fields()

    def _collections_with_history(self) -> int:
        """Collections a call carries with its status writes' history read; 0: read apart."""
        if not self.settings.read_crm_history:
            return 0
        return max(0, self.connector.collections_with_history)

    def _check_since(self, batches: Sequence[Batch]) -> datetime:
        """Where the race check's look at people's edits starts: before the earliest read of
        the decisions it covers: this cycle's pull, or, for a batch retried from an earlier
        cycle, the start of the run that decided it."""
        rows = [r for _, groups in batches for g in groups for r in g]
        starts = [self._read_from if self._read_from is not None else self.clock()]
        earlier = {r.run_id: r.created_at for r in rows if r.created_at < starts[-1]}
        if earlier:
            runs = {r.run_id: r.started_at for r in self.store.last_runs(50, crm=self.crm)}
            # A run no longer among the latest: reach back an hour before its decision.
            starts += [runs.get(run, at - timedelta(hours=1)) for run, at in earlier.items()]
        # The CRM's clock is not the daemon's; reaching back further costs only rows of
        # people's edits (those the read saw make no suspect, races.suspects).
        since = min(starts) - races.CHECK_REACH
        pending = self._races.pending
        if pending is not None:
            # Already reaches back: taking the reach off it again would move the start back
            # by CHECK_REACH per write call, until it took in the edits the pull had read
            # (a query-more call per 2,000 of them).
            since = min(since, pending.since)
        return since

    def _mark_sending(
        self, ids: Sequence[int], awaited: Sequence[int], since: datetime | None
    ) -> None:
        """The rows are in doubt from here until their results are recorded (``SENDING``);
        the status writes among them (``awaited``) await the race check of people's edits
        from ``since`` from here too."""
        with self.store.begin() as conn:
            self._fence(conn)
            self.store.set_change_state(conn, ids, OutboxState.SENDING, self.clock())
            if since is not None:
                # With the rows' departure: a crash after the CRM applied them still leaves
                # their race check to the next process (syncd.race_book).
                self._races.record_sent(conn, awaited, since)

    def _await_check(
        self, batches: Sequence[Batch], answers: Sequence[Sequence[RecordResult]]
    ) -> None:
        """Keep the call's confirmed status (and checked field) writes for the next race
        check."""
        fields = self._race_fields()
        written = [
            r.id
            for (kind, groups), results in zip(batches, answers, strict=True)
            if kind == "field"
            for r in _confirmed_writes(groups, results, fields)
        ]
        if written:
            self._races.confirm(written, self._check_since(batches))

    def _check_races(self, checked: WrittenThenRead | None, report: CycleReport) -> None:
        """The race check of the status and field writes awaiting it: people's edits since
        before their reads (read beside a write or a pull page, else on their own); only leads
        a person edited meanwhile have their history read (``status_history``) and judged."""
        pending = self._races.pending
        if pending is None:
            return
        if checked is not None and checked.history is None and checked.refused is not None:
            self._races.clear()
            self._races_unseen(checked.refused, report)
            return
        edits = checked.history if checked is not None else None
        if edits is None:
            try:
                edits = self.connector.edits_since(pending.since, also=self._race_fields())
            except (ConfigurationError, FatalError) as exc:
                if isinstance(exc, AuthError):
                    raise
                self._races.clear()
                self._races_unseen(_first_line(exc), report)
                return
        self._races.clear()
        suspects = self._races.suspects(pending, edits)
        if not suspects:
            return
        also = sorted({r.field for r in suspects} - {"status"})
        entries = self._crm_history(
            list(dict.fromkeys(r.lead_id for r in suspects)), _RACES_UNSEEN, also=also
        )
        self._restore_found(races.find_races(suspects, entries or []), report)

    def _races_unseen(self, why: str, report: CycleReport) -> None:
        """Log, once a cycle, that the CRM refuses the history the race check needs."""
        if self._races_unseen_run == report.run_id:
            return
        self._races_unseen_run = report.run_id
        log.warning(
            "%s: the CRM's status history could not be read (%s); %s", self.crm, why, _RACES_UNSEEN
        )

    def _restore_races(
        self,
        groups: Sequence[Sequence[OutboxRecord]],
        results: Sequence[RecordResult],
        report: CycleReport,
    ) -> None:
        """A person's edit of the status, or of a field the race check covers
        (:meth:`_race_fields`), that landed while the batch was in flight (``syncd.races``):
        their value is written back, the lead held, and the audit says both. Costs one history
        read per batch on Salesforce without Composite, one per 50 written leads on HubSpot (its
        cap with history, syncd.races; the fields' history rides in the same reads), and a
        write only when a race is found."""
        written = _confirmed_writes(groups, results, self._race_fields())
        if not written:
            return
        also = sorted({r.field for r in written} - {"status"})
        entries = self._crm_history(
            list(dict.fromkeys(r.lead_id for r in written)), _RACES_UNSEEN, also=also
        )
        self._restore_found(races.find_races(written, entries or []), report)

    def _restore_found(self, found: Sequence[races.Race], report: CycleReport) -> None:
        """Write the people's values back, hold the leads, audit both."""
        if not found:
            return
        now = self.clock()
        restores: list[dict[str, Any]] = []
        with self.store.begin() as conn:
            self._fence(conn)
            audits, history = [], []
            for race in found:
                change, edit = race.change, race.edit
                # History keeps text: written back as a pull reads the field (a number field's
                # as a number), so the CRM takes it and the mirror holds what a pull would.
                value = self.connector.history_value(race.field, race.person_value)
                until = edit.at + self.settings.hold_rep_edits_for
                who = f" (user {edit.actor_id})" if edit.actor_id else ""
                named = "" if race.field == "status" else f" of {race.field}"
                their = (
                    f"change{named} to '{edit.to_value}'"
                    if edit.to_value is not None
                    else f"clearing{named}"
                )
                back = "their value is written back" if value is not None else "cleared again"
                audits.append(
                    {
                        **self._audit(change, AuditOutcome.WITHDRAWN, now, report.run_id),
                        "before": value,
                        "message": f"overwrote a person's {their}{who} made "
                        f"at {edit.at:%Y-%m-%d %H:%M:%S} UTC while the write was in flight; "
                        f"{back} and the lead left alone until "
                        f"{until:%Y-%m-%d %H:%M} UTC",
                    }
                )
                if race.field == "status":
                    # The ledger backfills status transitions only (as first sight does).
                    history += ledger.backfill_rows(self.crm, [edit])
                tracked = self._ledger_field(race.field)
                if tracked is not None:
                    self.store.correct_written_from(
                        conn,
                        self.crm,
                        change.lead_id,
                        report.run_id,
                        str(change.value),
                        race.person_value,
                        field=tracked,
                    )
                self.store.update_lead(
                    conn,
                    self.crm,
                    change.lead_id,
                    rep_edit_at=edit.at,
                    rep_edit_status=race.person_value,
                    rep_edit_field=None if race.field == "status" else race.field,
                )
                restores.append(
                    {
                        "crm": self.crm,
                        "lead_id": change.lead_id,
                        "kind": "field",
                        "field": race.field,
                        "value": value,
                        "before": change.value,
                        "rule_id": RESTORE_RULE,
                        "ruleset_version": change.ruleset_version,
                        "run_id": report.run_id,
                        "intent_id": f"{report.run_id}.{change.lead_id}.restore",
                        "state": OutboxState.PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                log.warning(
                    "lead %s: a person %s while syncd's write of %r was in flight; "
                    "writing their value back and leaving the lead alone until %s UTC",
                    change.lead_id,
                    f"set {race.field} {edit.to_value!r}"
                    if edit.to_value is not None
                    else f"cleared {race.field}",
                    change.value,
                    f"{until:%Y-%m-%d %H:%M}",
                )
            self.store.add_audit(conn, audits)
            self.store.add_history(conn, history)
            self.store.add_changes(conn, restores)
            parts = self.store.intent_parts(conn, {r["intent_id"] for r in restores})
        # A lead's restores (its status and a field raced alike) share an intent: one record.
        pending = [
            group
            for rows in parts.values()
            if (group := [r for r in rows if r.state == OutboxState.PENDING])
        ]
        if pending:
            self._send("field", pending, report, restoring=True)

    def _deliver(self, kind: str, groups: list[list[OutboxRecord]]) -> list[RecordResult]:
        """One connector call for the batch: field writes, newsletter adds or removals."""
        if kind == "membership" and groups[0][0].value is False:
            # a revert takes the lead out of the newsletter
            return self.connector.remove_from_newsletter(
                groups[0][0].field, [g[0].lead_id for g in groups]
            )
        collection = self._collection(kind, groups)
        if isinstance(collection, FieldWrites):
            return self.connector.write_batch(collection.changes)
        return self.connector.add_to_newsletter(collection.newsletter, collection.lead_ids)

    def _collection(self, kind: str, groups: list[list[OutboxRecord]]) -> WriteCollection:
        """The batch as a collection: field changes, or adds to one newsletter."""
        if kind != "field":
            return NewsletterAdds(groups[0][0].field, [g[0].lead_id for g in groups])
        # Provenance fields ride in the same records: no extra call (syncd.provenance).
        extra = (
            self.provenance.for_groups(groups, self)
            if self.provenance is not None
            else [{} for _ in groups]
        )
        return FieldWrites(
            [
                LeadChange(
                    g[0].lead_id,
                    {r.field: r.value for r in g},
                    clear_first_fields(
                        self._lifecycle,
                        {r.field: (r.before, r.value) for r in g},
                        restoring=all(r.rule_id == RESTORE_RULE for r in g),
                    ),
                    crm,
                )
                for g, crm in zip(groups, extra, strict=True)
            ]
        )

    def _record_results(self, answered: Sequence[Answered], report: CycleReport) -> None:
        """Commit the outcome of each record one call answered (every batch it carried), their
        audit rows and the mirror, in one transaction.

        Set-based: a call of 1,000 records costs a handful of statements and one commit, not
        several statements per record or a commit per batch. Answers that do not match what
        was sent stop it: the batches before the first such answer are recorded, the rest stay
        in doubt (``sending``) for the next cycle to settle.
        """
        valid: list[Answered] = []
        try:
            for groups, results in answered:
                self._check_answer(groups, results)
                valid.append((groups, results))
        finally:
            if valid:
                self._record_answered(valid, report)

    def _check_answer(
        self, groups: Sequence[Sequence[OutboxRecord]], results: Sequence[RecordResult]
    ) -> None:
        """Raise FatalError unless ``results`` answer ``groups`` one for one, lead for lead."""
        if len(results) != len(groups):
            raise FatalError(
                f"{self.crm} returned {len(results)} results for {len(groups)} "
                "records; refusing to guess which succeeded",
                crm=self.crm,
            )
        for group, result in zip(groups, results, strict=True):
            if result.lead_id != group[0].lead_id:
                raise FatalError(
                    f"{self.crm} answered for lead {result.lead_id} where "
                    f"{group[0].lead_id} was sent",
                    crm=self.crm,
                )

    def _record_answered(self, answered: Sequence[Answered], report: CycleReport) -> None:
        now = self.clock()
        done: list[Sequence[OutboxRecord]] = []
        retry: list[tuple[Sequence[OutboxRecord], RecordResult]] = []
        failed: list[tuple[Sequence[OutboxRecord], RecordResult]] = []
        audits: list[dict[str, Any]] = []
        for groups, results in answered:
            batch_done: list[Sequence[OutboxRecord]] = []
            batch_failed: list[tuple[Sequence[OutboxRecord], RecordResult]] = []
            for group, result in zip(groups, results, strict=True):
                attempts = group[0].attempts + 1
                if result.outcome is Outcome.OK:
                    batch_done.append(group)
                elif result.outcome is Outcome.RETRY and attempts < self.outbox.max_attempts:
                    retry.append((group, result))
                else:
                    batch_failed.append((group, result))
            # Audit rows in the order batch by batch recording gave them.
            audits += self._clear_audits(groups, results, now, report.run_id)
            audits += [
                self._audit(r, AuditOutcome.APPLIED, now, report.run_id)
                for g in batch_done
                for r in g
            ]
            audits += [
                self._audit(r, AuditOutcome.FAILED, now, report.run_id, res)
                for g, res in batch_failed
                for r in g
            ]
            done += batch_done
            failed += batch_failed
        with self.store.begin() as conn:
            self._fence(conn)
            for attempts, ids in _by_attempts(done).items():
                self.store.set_change_state(conn, ids, OutboxState.DONE, now, attempts=attempts)
            for group, result in retry:
                attempts = group[0].attempts + 1
                delay = self.outbox.retry_base * (2 ** (attempts - 1))
                landed = {"may_have_landed": True} if group[0].may_have_landed else {}
                self.store.set_change_state(
                    conn,
                    [r.id for r in group],
                    OutboxState.PENDING,
                    now,
                    attempts=attempts,
                    next_attempt_at=now + delay,
                    error_code=result.error_code,
                    error_message=result.message,
                    **landed,
                )
            for group, result in failed:
                self.store.set_change_state(
                    conn,
                    [r.id for r in group],
                    OutboxState.FAILED,
                    now,
                    attempts=group[0].attempts + 1,
                    error_code=result.error_code,
                    error_message=result.message,
                )
            self.store.add_audit(conn, audits)
            self._apply_to_mirror(conn, done, failed, now, report.run_id)
            self._progress(
                conn,
                report,
                written=report.written + len(done),
                retrying=report.retrying + len(retry),
                failed=report.failed + len(failed),
            )
        report.written += len(done)
        report.retrying += len(retry)
        report.failed += len(failed)
        if self.metrics is not None:
            self.metrics.observe_written(
                self.crm, ok=len(done), retry=len(retry), failed=len(failed)
            )

    def _fence(self, conn: Connection) -> None:
        """In a writing transaction: raise LeaseLost unless this process holds the lease."""
        if self.lease is not None:
            self.lease.check(conn)

    def _apply_to_mirror(
        self,
        conn: Connection,
        done: Sequence[Sequence[OutboxRecord]],
        failed: Sequence[tuple[Sequence[OutboxRecord], RecordResult]],
        now: datetime,
        run_id: str,
    ) -> None:
        """Confirmed values become the mirror's; permanent failures stay visible on the lead."""
        # A lead's groups of one call (its field writes, its newsletter adds) are applied
        # together: its row is read and written once.
        by_lead: dict[str, list[OutboxRecord]] = {}
        for g in done:
            by_lead.setdefault(g[0].lead_id, []).extend(g)
        merged = list(by_lead.values())
        # A lead with newsletter changes alone moves only its newsletters: its fields' JSON is
        # neither read nor written again.
        writes = [g for g in merged if any(r.kind == "field" for r in g)]
        self._apply_memberships(conn, [g for g in merged if not any(r.kind == "field" for r in g)])
        leads = self.store.lead_bodies(conn, self.crm, [g[0].lead_id for g in writes])
        # Two statements at most: leads whose status moved, and the others. A confirmed field
        # write clears the error `syncd status` shows (these groups all hold one).
        moved: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        cleared = {"error_code": None, "error_message": None, "error_at": None}
        for group in writes:
            lead = leads.get(group[0].lead_id)
            if lead is None:
                continue
            history += ledger.written_rows(
                self.crm, lead, group, now, run_id, lifecycle_field=self._ledger_stage_field
            )
            fields = dict(lead.fields)
            newsletters = list(lead.newsletters or [])
            status_write: OutboxRecord | None = None
            for r in group:
                if r.kind == "membership" and r.value is False:
                    if r.field in newsletters:
                        newsletters.remove(r.field)
                elif r.kind == "membership":
                    if r.field not in newsletters:
                        newsletters.append(r.field)
                elif r.field == "status":
                    status_write = r
                    fields["status"] = r.value
                else:
                    fields[r.field] = r.value
            row = {**cleared, "fields": fields, "newsletters": newsletters, "lead_id": lead.lead_id}
            if status_write is None:
                kept.append(row)
            else:
                value = status_write.value
                moved.append(
                    {
                        **row,
                        "status": value,
                        "written_status": value,
                        "written_at": now,
                        "status_changed_at": now,
                    }
                )
        self.store.update_leads(conn, self.crm, moved)
        self.store.update_leads(conn, self.crm, kept)
        self.store.add_history(conn, history)
        for refused, result in failed:
            self.store.update_lead(
                conn,
                self.crm,
                refused[0].lead_id,
                error_code=result.error_code or "UNKNOWN",
                error_message=result.message,
                error_at=now,
            )

    def _apply_memberships(
        self, conn: Connection, groups: Sequence[Sequence[OutboxRecord]]
    ) -> None:
        """Confirmed newsletter adds and removals become the mirror's newsletters."""
        current = self.store.lead_newsletters(conn, self.crm, [g[0].lead_id for g in groups])
        updates = []
        for group in groups:
            lead_id = group[0].lead_id
            if lead_id not in current:
                continue
            newsletters = list(current[lead_id] or [])
            for r in group:
                if r.value is False:
                    if r.field in newsletters:
                        newsletters.remove(r.field)
                elif r.field not in newsletters:
                    newsletters.append(r.field)
            updates.append({"newsletters": newsletters, "lead_id": lead_id})
        self.store.update_leads(conn, self.crm, updates)

    def _clear_audits(
        self,
        groups: Sequence[Sequence[OutboxRecord]],
        results: Sequence[RecordResult],
        now: datetime,
        run_id: str,
    ) -> list[dict[str, Any]]:
        """An audit row for each field a connector cleared before setting it (a declared
        backward lifecycle move): the clear, then the set, are both on record."""
        rows = []
        for group, result in zip(groups, results, strict=True):
            for r in group:
                if r.kind == "field" and r.field in result.cleared:
                    row = audit_values(
                        r,
                        AuditOutcome.APPLIED,
                        now,
                        run_id,
                        message=f"cleared before moving {r.field} backward to "
                        f"'{r.value}' (declared in lifecycle.backward)",
                    )
                    rows.append({**row, "after": None})
        return rows

    def _audit(
        self,
        r: OutboxRecord,
        outcome: AuditOutcome,
        now: datetime,
        run_id: str,
        result: RecordResult | None = None,
    ) -> dict[str, Any]:
        return audit_values(
            r,
            outcome,
            now,
            run_id,
            error_code=result.error_code if result else None,
            message=result.message if result else None,
        )


#: The rule id of a write that puts back a person's status syncd overwrote (``syncd.races``).
RESTORE_RULE = "restore-rep-edit"


def _mark_may_have_landed(
    batches: Sequence[Batch], answers: Sequence[Sequence[RecordResult]]
) -> None:
    """The call was retried after an attempt that got no answer, which the CRM may have
    applied: a record the last answer refused may be in the CRM all the same (a newsletter add
    dropped after it landed, then refused with a lock on the retry). Its rows are marked so
    that however they end, their audit does not claim the CRM never got them
    (``syncd.state.audit_values``)."""
    for (_, groups), results in zip(batches, answers, strict=True):
        for group, result in zip(groups, results, strict=False):
            if result.outcome is not Outcome.OK:
                for row in group:
                    row.may_have_landed = True


def _membership_key(row: Any) -> str:
    """Adds and removals (value False, from a revert) of one newsletter go in separate calls."""
    return f"-{row.field}" if row.value is False else f"+{row.field}"


def _merged_away(by_id: Mapping[str, RemoteLead]) -> dict[str, str]:
    """Leads the CRM merged into one of the page's (old id -> the id it lives on in); a lead
    the page itself carries is left to its own row."""
    return {old: lead.id for lead in by_id.values() for old in lead.merged_ids if old not in by_id}


def _checked_rows(batches: Sequence[Batch], fields: Sequence[str]) -> list[OutboxRecord]:
    """The writes among the batches the race check covers: the status and ``fields`` (the race
    check reads their leads' history)."""
    return [
        r
        for kind, groups in batches
        if kind == "field"
        for g in groups
        for r in g
        if r.kind == "field" and (r.field == "status" or r.field in fields)
    ]


def _confirmed_writes(
    groups: Sequence[Sequence[OutboxRecord]],
    results: Sequence[RecordResult],
    fields: Sequence[str],
) -> list[OutboxRecord]:
    """The writes of the status and of ``fields`` the CRM confirmed."""
    return [
        r
        for g, res in zip(groups, results, strict=True)
        if res.outcome is Outcome.OK
        for r in g
        if r.kind == "field" and (r.field == "status" or r.field in fields)
    ]


def _newsletters(buffer: Mapping[tuple[str, str], Any]) -> int:
    return len({newsletter for newsletter, _ in buffer})


def _take(buffer: dict[tuple[str, str], list[OutboxRecord]], size: int) -> list[list[OutboxRecord]]:
    """Up to ``size`` groups off the front of ``buffer``, all of one newsletter."""
    first = next(iter(buffer))[0]
    keys: list[tuple[str, str]] = []
    for key in buffer:
        if key[0] != first or len(keys) == size:
            break
        keys.append(key)
    return [buffer.pop(k) for k in keys]


def _by_attempts(groups: Sequence[Sequence[OutboxRecord]]) -> dict[int, list[int]]:
    """Outbox ids by their new attempt count (one UPDATE per distinct count)."""
    out: dict[int, list[int]] = defaultdict(list)
    for group in groups:
        out[group[0].attempts + 1].extend(r.id for r in group)
    return out


def _current(row: PlanRecord, name: str) -> Any:
    return row.status if name == "status" else row.fields.get(name)


#: Value types stored as they come (most of a pulled lead's values): no conversion to judge.
_JSON_AS_IS = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and infinity are not JSON: PostgreSQL refuses the whole page
    return value


@dataclass(frozen=True, slots=True)
class _ReadPage:
    """A page read from the CRM with its new leads' history and its leads' columns, to store."""

    page: Page
    firsts: Mapping[str, list[HistoryEntry]]
    columns: _Columns


def _empty_page(read: _ReadPage) -> bool:
    return not read.page.leads


def _by_id(leads: Sequence[RemoteLead]) -> dict[str, RemoteLead]:
    return {lead.id: lead for lead in leads}  # a page may repeat a lead (overlap)


def _api_calls(connector: Connector) -> int:
    return connector.stats.calls


def _first_line(exc: BaseException) -> str:
    """The first line of an error (database errors append the whole SQL statement)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _fatal_reason(exc: FatalError) -> str:
    """The run's ``reason`` for a permanent connector error."""
    if isinstance(exc, AuthError):
        return "auth"
    return "configuration" if isinstance(exc, ConfigurationError) else "crm"
