"""One cycle for one connector: pull, mirror, evaluate, plan, (breaker), write.

1. **Pull.** Pages of changed leads since the stored cursor go into the mirror; each page, its
   enrichment and the advanced cursor commit in one transaction. A status change syncd did not
   make is remembered as a person's edit (``rep_edit_at``).
2. **Plan.** Every live lead in the mirror is evaluated, not only the pulled ones, because
   time-based rules ("untouched for 90 days") change their verdict without any CRM change. Real
   differences become ``planned`` outbox rows; an open change that is still wanted is kept, one
   that is no longer wanted is superseded, and one the CRM already shows is marked done (that is
   how a write confirmed just before a crash is not sent twice).
3. **Breaker.** If the run would change more than the configured share of live leads, its plan is
   ``blocked`` and nothing is written.
4. **Write.** Pending rows are sent in batches of the CRM's maximum; every record's outcome is
   committed with its audit row before the next batch.

With a ``lease`` (``syncd.lease``), storing a page and recording a batch check the fencing token
in their transaction, and a batch is sent only after the lease was renewed: a process that lost
the connector's lease ends the cycle (outcome ``lease_lost``) and writes nothing more.

``Planner`` holds the per-lead decision (shared by the cycle and by ``syncd plan``/``explain``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Connector, Cursor, LeadChange, Outcome, RecordResult, RemoteLead
from connectors.errors import BudgetExhausted, ConnectorError, FatalError
from rules.fields import FieldType, STANDARD_FIELDS
from syncd.lease import Lease, LeaseLost
from syncd.settings import BreakerSettings, ConnectorSettings, OutboxSettings
from syncd.state import RunRow, StateStore, _utc

__all__ = ["CycleReport", "LeadVerdict", "Pipeline", "Planner", "iter_verdicts", "rule_lead"]

log = logging.getLogger("syncd.pipeline")

# Datetime fields stored in the mirror's JSON as ISO text (the derived ones are set separately).
_STORED_DATETIME_FIELDS = tuple(n for n, t in STANDARD_FIELDS.items()
                                if t is FieldType.DATETIME and n != "status_changed_at")


@dataclass(slots=True)
class PlannedChange:
    kind: str  # "field" | "membership"
    field: str  # canonical field name, or newsletter name
    value: Any
    before: Any


@dataclass(slots=True)
class LeadVerdict:
    """What the rules want for one lead, after guards, holds and the mirror's current values."""

    lead_id: str
    status: str | None  # current CRM value
    rule_id: str | None
    changes: list[PlannedChange] = field(default_factory=list)
    held: str | None = None  # why a person's edit is protected
    blocked: str | None = None  # why a guard refused the rule's target
    failed: str | None = None  # why a change that failed permanently is not sent again


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

    def summary(self) -> str:
        text = (f"{self.crm}: pulled {self.pulled}, changed {self.planned}, "
                f"written {self.written}, failed {self.failed}")
        extras = [f"{n} {k}" for k, n in (("retrying", self.retrying), ("held (rep edits)",
                  self.held), ("blocked by guards", self.blocked), ("deleted", self.deleted))
                  if n]
        if extras:
            text += " (" + ", ".join(extras) + ")"
        if self.outcome != "ok":
            text += f" — {self.outcome}" + (f": {self.message}" if self.message else "")
        return text


_from_iso = datetime.fromisoformat


# What a run row records of its report: every report field the run table also has, derived so a
# counter added to both cannot be forgotten here.
_RUN_FIELDS = tuple(f.name for f in dataclass_fields(CycleReport)
                    if f.name in RunRow.model_fields and f.name not in ("crm", "run_id"))


def rule_lead(row: Any, crm: str, to_rule_status: Mapping[str, str]) -> dict[str, Any]:
    """The plain mapping rules see for one mirror row."""
    lead: dict[str, Any] = dict(row.fields)
    for name in _STORED_DATETIME_FIELDS:  # hot path: a plain loop beats a set intersection
        value = lead.get(name)
        if value.__class__ is str:
            try:
                lead[name] = _from_iso(value)
            except ValueError:
                lead[name] = None
    lead.update(row.enrichment)
    status = row.status
    lead["status"] = to_rule_status.get(status, status) if status is not None else None
    lead["crm"] = crm
    lead["status_changed_at"] = _utc(row.status_changed_at)
    lead["newsletters"] = ",".join(row.newsletters) if row.newsletters else None
    return lead


class Planner:
    """Turns a rule decision into concrete changes for one mirror row."""

    def __init__(self, *, crm: str, book: Any, settings: ConnectorSettings,
                 now: datetime | None = None) -> None:
        self.crm = crm
        self.book = book
        # Thresholds of `older_than`/`within` are computed once per cycle, not once per lead.
        self._evaluate = book.bind(now) if now is not None else None
        self._bound_now = now
        self.to_crm_status = dict(settings.status_values)
        self.to_rule_status = {v: k for k, v in settings.status_values.items()}
        self.hold = settings.hold_rep_edits_for

    def verdict(self, row: Any, now: datetime) -> LeadVerdict:
        lead = rule_lead(row, self.crm, self.to_rule_status)
        if self._evaluate is not None and now == self._bound_now:
            decision = self._evaluate(lead)
        else:
            decision = self.book.evaluate(lead, now)
        verdict = LeadVerdict(row.lead_id, row.status, decision.rule_id)
        if decision.blocked is not None:
            verdict.blocked = str(getattr(decision.blocked, "reason", decision.blocked))
        if decision.status is not None:
            target = self.to_crm_status.get(decision.status, decision.status)
            if target != row.status:
                verdict.changes.append(PlannedChange("field", "status", target, row.status))
        for name, value in decision.field_sets.items():
            if row.fields.get(name) != value:
                verdict.changes.append(PlannedChange("field", name, value, row.fields.get(name)))
        for name in decision.newsletters:
            if name not in (row.newsletters or ()):
                verdict.changes.append(PlannedChange("membership", name, True, None))
        if row.error_code and row.error_at is not None and \
                _utc(row.modified_at) <= _utc(row.error_at):
            # The CRM refused a write permanently; sending it again would fail the same way.
            # Once someone changes the lead in the CRM, syncd tries again.
            kept = [c for c in verdict.changes if c.kind != "field"]
            if len(kept) != len(verdict.changes):
                verdict.failed = (f"last write failed ({row.error_code}: {row.error_message}); "
                                  "retried after the lead changes in the CRM")
                verdict.changes = kept
        if verdict.changes and row.rep_edit_at is not None:
            edited = _utc(row.rep_edit_at)
            if now - edited < self.hold:
                verdict.held = (f"status set to '{row.rep_edit_status}' by a person at "
                                f"{edited:%Y-%m-%d %H:%M} UTC; held until "
                                f"{edited + self.hold:%Y-%m-%d %H:%M} UTC")
                verdict.changes = []
        return verdict


def iter_verdicts(store: StateStore, crm: str, book: Any, settings: ConnectorSettings,
                  now: datetime) -> Iterator[tuple[Any, LeadVerdict]]:
    """Every live, unconverted mirror lead with its verdict, streamed in id order.

    Shared by the cycle and by ``syncd plan``, so a plan shows exactly what a cycle would do.
    """
    planner = Planner(crm=crm, book=book, settings=settings, now=now)
    for chunk in store.iter_live_leads(crm):
        for row in chunk:
            if not row.converted:
                yield row, planner.verdict(row, now)


class Pipeline:
    """Runs cycles for one connector against the state store."""

    def __init__(self, *, connector: Connector, store: StateStore, rules: Callable[[], Any],
                 enricher: Any, settings: ConnectorSettings, breaker: BreakerSettings,
                 outbox: OutboxSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Any = None, stop: threading.Event | None = None) -> None:
        self.connector = connector
        self.crm = connector.name
        self.store = store
        self.rules = rules
        self.enricher = enricher
        self.settings = settings
        self.breaker = breaker
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self.paused_until: datetime | None = None
        self.lease: Lease | None = None  # set by whoever holds the connector's lease

    # ---- the cycle -----------------------------------------------------------------------

    def run_cycle(self, *, approve_large_run: bool = False) -> CycleReport:
        now = self.clock()
        book = self.rules()
        report = CycleReport(self.crm, uuid.uuid4().hex[:12])
        run = RunRow(run_id=report.run_id, crm=self.crm, started_at=now,
                     ruleset_version=book.version)
        self.store.start_run(run)
        calls_before = _api_calls(self.connector)
        if self.paused_until and now < self.paused_until:
            report.outcome = "budget"
            report.message = f"paused until {self.paused_until:%Y-%m-%d %H:%M} UTC (API budget)"
            return self._finish(run, report, calls_before)
        try:
            self.store.discard_stale_plans(self.crm, now)
            self.pull(report, until=now)
            if self.lease is not None:
                self.lease.verify()  # a standby must not supersede the new leader's plan
            if not self.stop.is_set():
                self.plan(report, book, now, approve_large_run=approve_large_run)
            if report.outcome == "running" and not self.stop.is_set():
                self.drain(report)
            if report.outcome == "running":
                report.outcome = "stopped" if self.stop.is_set() else "ok"
        except BudgetExhausted as exc:
            report.outcome, report.message = "budget", str(exc)
            self.paused_until = exc.resume_at
            report.resume_at = exc.resume_at
        except FatalError as exc:
            report.outcome, report.message = "failed", str(exc)
        except ConnectorError as exc:
            report.outcome, report.message = "failed", f"{exc} (will retry next cycle)"
        except LeaseLost as exc:
            report.outcome, report.message = "lease_lost", str(exc)
        return self._finish(run, report, calls_before)

    def _finish(self, run: RunRow, report: CycleReport, calls_before: int) -> CycleReport:
        report.api_calls = _api_calls(self.connector) - calls_before
        for name in _RUN_FIELDS:
            setattr(run, name, getattr(report, name))
        run.finished_at = self.clock()
        self.store.finish_run(run)
        if self.metrics is not None:
            self.metrics.observe_cycle(report, run.finished_at - run.started_at)
        level = logging.INFO if report.outcome in ("ok", "stopped") else logging.WARNING
        log.log(level, "cycle %s %s", report.run_id, report.summary(),
                extra={"crm": self.crm, "run_id": report.run_id, "outcome": report.outcome})
        return report

    # ---- 1. pull -------------------------------------------------------------------------

    def pull(self, report: CycleReport, *, until: datetime) -> None:
        stored = self.store.cursor(self.crm)
        since = Cursor(*stored) if stored else None
        started = self.clock()
        for page in self.connector.iter_pages(since, until=until):
            self._store_page(page.leads, page.cursor, report)
            if self.stop.is_set():
                log.info("stop requested: page checkpointed, leaving the pull")
                return
        if getattr(self.connector, "last_pull_was_full_reconcile", False):
            # The cursor was older than the CRM's delete log: the pull was a full pass, so a
            # mirrored lead it did not yield was deleted and purged in the meantime.
            gone = self.store.mark_unseen_deleted(self.crm, started, self.clock())
            report.deleted += gone
            log.warning("%s: cursor older than the delete log; full reconcile marked %d "
                        "leads deleted", self.crm, gone)

    def _store_page(self, leads: Sequence[RemoteLead], cursor: Cursor | None,
                    report: CycleReport) -> None:
        now = self.clock()
        by_id = {lead.id: lead for lead in leads}  # a page may repeat a lead (overlap)
        with self.store.begin() as conn:
            self._fence(conn)  # a page read before the new leader's writes must not land
            existing = self.store.leads_by_id(conn, self.crm, list(by_id))
            # A status the outbox meant to write is syncd's own even when its confirmation was
            # lost in a crash (HubSpot does not say who made a change).
            queued = {(r.lead_id, r.value) for r in self.store.open_changes(
                conn, self.crm, list(by_id)) if r.kind == "field" and r.field == "status"}
            rows, gone = [], []
            for lead in by_id.values():
                ours = (lead.id, lead.fields.get("status")) in queued
                rows.append(self._mirror_row(lead, existing.get(lead.id), now, queued=ours))
                if lead.deleted or lead.converted:
                    gone.append(lead.id)
                report.deleted += lead.deleted
            if rows:
                self.store.upsert_leads(conn, rows)
            if gone:
                open_rows = self.store.open_changes(conn, self.crm, gone)
                self.store.set_change_state(conn, [r.id for r in open_rows], "superseded", now,
                                            error_message="lead deleted or converted in the CRM")
            if cursor is not None:
                stored = self.store.cursor(self.crm)
                old = Cursor(*stored) if stored else None
                # Save a position that moved forward, or the same one read again later (the
                # read time bounds how far the next pull must look back).
                if old is None or cursor > old or (
                        cursor == old and cursor.read_at is not None
                        and (old.read_at is None or cursor.read_at > old.read_at)):
                    self.store.save_cursor(conn, self.crm, cursor.modified_at, cursor.record_id,
                                           now, read_at=cursor.read_at)
        report.pulled += len(by_id)

    def _mirror_row(self, lead: RemoteLead, prev: Any, now: datetime, *,
                    queued: bool = False) -> dict[str, Any]:
        fields = {k: _jsonable(v) for k, v in lead.fields.items()}
        status = fields.get("status")
        enrichment = self.enricher.enrich(lead.fields)
        row: dict[str, Any] = {
            "crm": self.crm, "lead_id": lead.id, "modified_at": lead.modified_at,
            "fields": fields, "enrichment": enrichment.values, "reasons": enrichment.reasons,
            "status": status, "deleted": lead.deleted, "converted": lead.converted,
            "pulled_at": now, "first_seen_at": now,
        }
        if prev is None:
            # When the status was set is unknown on first sight; the last modification is the
            # latest it can have been, so time-based rules fire late rather than early.
            row.update(status_changed_at=lead.modified_at, written_status=None, written_at=None,
                       rep_edit_at=None, rep_edit_status=None, newsletters=[], error_code=None,
                       error_message=None, error_at=None)
            return row
        row.update(status_changed_at=prev.status_changed_at, written_status=prev.written_status,
                   written_at=prev.written_at, rep_edit_at=prev.rep_edit_at,
                   rep_edit_status=prev.rep_edit_status, newsletters=prev.newsletters or [],
                   error_code=prev.error_code, error_message=prev.error_message,
                   error_at=prev.error_at)
        if status != prev.status:
            row["status_changed_at"] = lead.modified_at
            ours = (status == prev.written_status or queued
                    or lead.modified_by_integration is True)
            if not ours:
                row["rep_edit_at"] = lead.modified_at
                row["rep_edit_status"] = status
                row["error_code"] = row["error_message"] = row["error_at"] = None
                log.info("lead %s: status changed to %r by a person; left alone until %s",
                         lead.id, status,
                         f"{lead.modified_at + self.settings.hold_rep_edits_for:%Y-%m-%d %H:%M} UTC")
        return row

    # ---- 2. plan -------------------------------------------------------------------------

    def verdicts(self, book: Any, now: datetime) -> Iterator[tuple[Any, LeadVerdict]]:
        return iter_verdicts(self.store, self.crm, book, self.settings, now)

    def plan(self, report: CycleReport, book: Any, now: datetime, *,
             approve_large_run: bool = False) -> None:
        changing_leads = 0
        batch: list[tuple[Any, LeadVerdict]] = []
        for item in self.verdicts(book, now):
            batch.append(item)
            if len(batch) >= 1000:
                changing_leads += self._record_plan(batch, report, book, now)
                batch = []
        if batch:
            changing_leads += self._record_plan(batch, report, book, now)
        live = self.store.count_live(self.crm)
        share = changing_leads / live if live else 0.0
        if (changing_leads >= self.breaker.min_changes
                and share > self.breaker.max_change_share and not approve_large_run):
            with self.store.begin() as conn:
                self._fence(conn)
                self.store.promote_planned(conn, self.crm, report.run_id, "blocked", now)
            report.outcome = "breaker"
            report.message = (f"this run would change {changing_leads} of {live} leads "
                              f"({share:.0%}), above breaker.max_change_share "
                              f"{self.breaker.max_change_share:.0%}; nothing was written. Review "
                              "it with `syncd plan`, then run `syncd sync --once "
                              "--approve-large-run` or raise the limit")
            if self.metrics is not None:
                self.metrics.breaker_trips.labels(self.crm).inc()
            return
        with self.store.begin() as conn:
            self._fence(conn)
            self.store.promote_planned(conn, self.crm, report.run_id, "pending", now)

    def _record_plan(self, items: Sequence[tuple[Any, LeadVerdict]], report: CycleReport,
                     book: Any, now: datetime) -> int:
        """Reconcile verdicts with open outbox rows; returns leads with field changes."""
        changing = 0
        with self.store.begin() as conn:
            self._fence(conn)
            open_rows: dict[str, list[Any]] = defaultdict(list)
            for r in self.store.open_changes(conn, self.crm, [row.lead_id for row, _ in items]):
                open_rows[r.lead_id].append(r)
            new_rows, superseded, done = [], [], []
            for row, verdict in items:
                report.held += verdict.held is not None
                report.blocked += verdict.blocked is not None
                wanted = {(c.kind, c.field): c for c in verdict.changes}
                for existing in open_rows.get(row.lead_id, ()):
                    key = (existing.kind, existing.field)
                    change = wanted.get(key)
                    if change is not None and change.value == existing.value:
                        del wanted[key]  # still wanted and already queued
                    elif existing.kind == "field" and _current(row, existing.field) == \
                            existing.value:
                        done.append(existing)  # the CRM already shows it (written before a crash)
                    else:
                        superseded.append(existing.id)
                if any(c.kind == "field" for c in verdict.changes):
                    changing += 1
                for change in wanted.values():
                    new_rows.append({
                        "crm": self.crm, "lead_id": row.lead_id, "kind": change.kind,
                        "field": change.field, "value": change.value, "before": change.before,
                        "rule_id": verdict.rule_id, "ruleset_version": book.version,
                        "run_id": report.run_id, "state": "planned", "attempts": 0,
                        "created_at": now, "updated_at": now})
            self.store.set_change_state(conn, superseded, "superseded", now,
                                        error_message="no longer wanted by the rules")
            self.store.set_change_state(conn, [r.id for r in done], "done", now)
            self.store.add_audit(conn, [self._audit(r, "already_in_place", now, report.run_id)
                                        for r in done])
            self.store.add_changes(conn, new_rows)
        report.planned += len(new_rows)
        return changing

    # ---- 4. write ------------------------------------------------------------------------

    def drain(self, report: CycleReport) -> None:
        """Send every due pending change in full batches of the CRM's maximum.

        Batches fill across the outbox chunks (a partial batch would cost a call the minimum
        does not need); only the last batch of a kind may be short.
        """
        now = self.clock()
        self._drain_kind("field", now, self.connector.max_batch_size, report)
        self._drain_kind("membership", now, self.connector.max_membership_batch, report)

    def _drain_kind(self, kind: str, now: datetime, size: int, report: CycleReport) -> None:
        # lead (or newsletter+lead) -> its rows, in outbox order; a lead's rows are adjacent
        buffer: dict[tuple[str, str], list[Any]] = {}
        for rows in self.store.iter_due_changes(self.crm, kind, now):
            for r in rows:
                key = (r.field if kind == "membership" else "", r.lead_id)
                buffer.setdefault(key, []).append(r)
            # Keep the last group open: its remaining rows may be in the next chunk.
            while len(buffer) > size or (buffer and _newsletters(buffer) > 1):
                if self.stop.is_set():
                    return
                self._send(kind, _take(buffer, size), report)
        while buffer and not self.stop.is_set():
            self._send(kind, _take(buffer, size), report)

    def _send(self, kind: str, groups: list[list[Any]], report: CycleReport) -> None:
        if self.lease is not None:
            self.lease.before_send()
        if kind == "field":
            changes = [LeadChange(g[0].lead_id, {r.field: r.value for r in g}) for g in groups]
            results = self.connector.write_batch(changes)
        else:
            results = self.connector.add_to_newsletter(groups[0][0].field,
                                                       [g[0].lead_id for g in groups])
        self._record_results(groups, results, report)

    def _record_results(self, groups: Sequence[Sequence[Any]], results: Sequence[RecordResult],
                        report: CycleReport) -> None:
        """Commit each record's outcome, its audit rows and the mirror, in one transaction.

        Set-based: a batch of 200 costs a handful of statements, not several per record.
        """
        if len(results) != len(groups):
            raise FatalError(f"{self.crm} returned {len(results)} results for {len(groups)} "
                             "records; refusing to guess which succeeded", crm=self.crm)
        now = self.clock()
        done: list[Sequence[Any]] = []
        retry: list[tuple[Sequence[Any], RecordResult]] = []
        failed: list[tuple[Sequence[Any], RecordResult]] = []
        for group, result in zip(groups, results, strict=True):
            if result.lead_id != group[0].lead_id:
                raise FatalError(f"{self.crm} answered for lead {result.lead_id} where "
                                 f"{group[0].lead_id} was sent", crm=self.crm)
            attempts = group[0].attempts + 1
            if result.outcome is Outcome.OK:
                done.append(group)
            elif result.outcome is Outcome.RETRY and attempts < self.outbox.max_attempts:
                retry.append((group, result))
            else:
                failed.append((group, result))
        with self.store.begin() as conn:
            self._fence(conn)
            for attempts, ids in _by_attempts(done).items():
                self.store.set_change_state(conn, ids, "done", now, attempts=attempts)
            for group, result in retry:
                attempts = group[0].attempts + 1
                delay = self.outbox.retry_base * (2 ** (attempts - 1))
                self.store.set_change_state(conn, [r.id for r in group], "pending", now,
                                            attempts=attempts, next_attempt_at=now + delay,
                                            error_code=result.error_code,
                                            error_message=result.message)
            for group, result in failed:
                self.store.set_change_state(conn, [r.id for r in group], "failed", now,
                                            attempts=group[0].attempts + 1,
                                            error_code=result.error_code,
                                            error_message=result.message)
            self.store.add_audit(conn, [self._audit(r, "applied", now, report.run_id)
                                        for g in done for r in g]
                                 + [self._audit(r, "failed", now, report.run_id, res)
                                    for g, res in failed for r in g])
            self._apply_to_mirror(conn, done, failed, now)
        report.written += len(done)
        report.retrying += len(retry)
        report.failed += len(failed)
        if self.metrics is not None:
            self.metrics.observe_results(self.crm, results)

    def _fence(self, conn: Any) -> None:
        """In a writing transaction: raise LeaseLost unless this process holds the lease."""
        if self.lease is not None:
            self.lease.check(conn)

    def _apply_to_mirror(self, conn: Any, done: Sequence[Sequence[Any]],
                         failed: Sequence[tuple[Sequence[Any], RecordResult]],
                         now: datetime) -> None:
        """Confirmed values become the mirror's; permanent failures stay visible on the lead."""
        ids = [g[0].lead_id for g in done] + [g[0].lead_id for g, _ in failed]
        leads = self.store.leads_by_id(conn, self.crm, ids)
        updates = []
        for group in done:
            lead = leads.get(group[0].lead_id)
            if lead is None:
                continue
            # A newsletter add succeeding says nothing about an earlier field write's failure;
            # only a confirmed field write clears the error shown by `syncd status`.
            cleared = any(r.kind == "field" for r in group)
            values: dict[str, Any] = {
                "status": lead.status, "written_status": lead.written_status,
                "written_at": lead.written_at, "status_changed_at": lead.status_changed_at,
                "error_code": None if cleared else lead.error_code,
                "error_message": None if cleared else lead.error_message,
                "error_at": None if cleared else lead.error_at}
            fields = dict(lead.fields)
            newsletters = list(lead.newsletters or [])
            for r in group:
                if r.kind == "membership":
                    if r.field not in newsletters:
                        newsletters.append(r.field)
                elif r.field == "status":
                    values.update(status=r.value, written_status=r.value, written_at=now,
                                  status_changed_at=now)
                    fields["status"] = r.value
                else:
                    fields[r.field] = r.value
            updates.append({**values, "fields": fields, "newsletters": newsletters,
                            "lead_id": lead.lead_id})
        self.store.update_leads(conn, self.crm, updates)
        for group, result in failed:
            self.store.update_lead(conn, self.crm, group[0].lead_id,
                                   error_code=result.error_code or "UNKNOWN",
                                   error_message=result.message, error_at=now)

    def _audit(self, r: Any, outcome: str, now: datetime, run_id: str,
               result: RecordResult | None = None) -> dict[str, Any]:
        return {"crm": self.crm, "lead_id": r.lead_id,
                "field": r.field if r.kind == "field" else f"newsletter:{r.field}",
                "before": r.before, "after": r.value, "rule_id": r.rule_id,
                "ruleset_version": r.ruleset_version, "run_id": run_id, "at": now,
                "outcome": outcome, "error_code": result.error_code if result else None,
                "message": result.message if result else None}


def _newsletters(buffer: Mapping[tuple[str, str], Any]) -> int:
    return len({newsletter for newsletter, _ in buffer})


def _take(buffer: dict[tuple[str, str], list[Any]], size: int) -> list[list[Any]]:
    """Up to ``size`` groups off the front of ``buffer``, all of one newsletter."""
    first = next(iter(buffer))[0]
    keys = []
    for key in buffer:
        if key[0] != first or len(keys) == size:
            break
        keys.append(key)
    return [buffer.pop(k) for k in keys]


def _by_attempts(groups: Sequence[Sequence[Any]]) -> dict[int, list[int]]:
    """Outbox ids by their new attempt count (one UPDATE per distinct count)."""
    out: dict[int, list[int]] = defaultdict(list)
    for group in groups:
        out[group[0].attempts + 1].extend(r.id for r in group)
    return out


def _current(row: Any, name: str) -> Any:
    return row.status if name == "status" else row.fields.get(name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _api_calls(connector: Connector) -> int:
    stats = getattr(connector, "stats", None)
    if isinstance(stats, Mapping):
        return int(stats.get("calls", 0))
    return 0
