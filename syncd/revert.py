"""Undo a run (``syncd revert RUN``): the inverse of what syncd wrote in it, as a run of its own.

**What is reverted.** Only what syncd itself wrote in that run: its audit rows with outcome
``applied``. Each field goes back to the audit row's ``before``; each newsletter join is undone
(an outbox row of kind ``membership`` with value ``False`` removes the lead). A revert of a
revert joins again and restores the original run's values.

**What is left alone, and listed.** A value someone changed since: the mirror's current value
differs from what the run wrote (a person, the CRM's automation), a later audit row shows syncd
wrote the field again, a person's status edit is recorded after the write, or a newer change for
the field waits in the outbox. Deleted and converted leads, and targets the rule set's guards
refuse (protected, converted, transitions), are skipped with the reason too.

**How it is written.** Through the same outbox, change breaker, batching and audit as any cycle:
the revert has its own run id, its outbox rows carry ``rule_id = "revert:<original run>"``, and
``syncd status`` lists the run. Afterwards the written values are read back from the CRM (a SOQL
query by Id, a HubSpot batch read) and any that differ are reported.

The revert window is the audit's retention: a run whose audit rows were pruned cannot be
reverted.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import ConnectorError
from syncd.lease import LeaseLost
from syncd.open_changes import CLOCK_SKEW
from syncd.pipeline import CycleReport, Pipeline
from syncd.planner import Planner
from syncd.state import (
    AuditOutcome,
    AuditRow,
    LeadRow,
    OutboxState,
    RunRow,
    StateStore,
    _utc,
)

__all__ = [
    "CANNOT_UNDO",
    "REVERT_PREFIX",
    "Restore",
    "RevertError",
    "RevertFilter",
    "RevertPlan",
    "RevertResult",
    "Skip",
    "execute_revert",
    "plan_revert",
]

#: ``rule_id`` of a revert's outbox and audit rows: ``revert:<original run id>``.
REVERT_PREFIX = "revert:"

#: Shown with every plan: what restoring a value cannot take back.
CANNOT_UNDO = (
    "A revert restores values; it cannot undo what the CRM did because of the "
    "original write: workflows and flows it triggered, owner assignment, emails or "
    "sequences sent, tasks created, and list or campaign automation. Restoring a "
    "value may trigger such automation again."
)

_CHUNK = 500


class RevertError(Exception):
    """The revert cannot be planned as asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RevertFilter:
    """Which of the run's changes to revert (all when every part is None)."""

    rule_id: str | None = None
    lead_id: str | None = None
    since: datetime | None = None  # only changes applied at or after this time


@dataclass(frozen=True, slots=True)
class Restore:
    """One value to put back: ``kind`` field (a canonical field) or membership (a newsletter)."""

    lead_id: str
    kind: str
    field: str
    current: Any  # the value now (a membership: True when the lead is a member)
    restored: Any  # the value to write (a membership: False removes, True joins)
    rule_id: str | None  # the rule that made the original change

    @property
    def label(self) -> str:
        return self.field if self.kind == "field" else f"newsletter:{self.field}"


@dataclass(frozen=True, slots=True)
class Skip:
    lead_id: str
    field: str  # canonical field, or ``newsletter:<name>``
    reason: str


@dataclass(slots=True)
class RevertPlan:
    crm: str
    run_id: str  # the run being reverted
    restores: list[Restore] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    live_leads: int = 0
    #: leads the current rules would change again on the next cycle, by rule id
    rules_again: dict[str, int] = field(default_factory=dict)

    @property
    def changing_leads(self) -> int:
        """Leads whose fields the revert writes (what the change breaker counts)."""
        return len({r.lead_id for r in self.restores if r.kind == "field"})

    def as_dict(self) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "run_id": self.run_id,
            "live_leads": self.live_leads,
            "changing_leads": self.changing_leads,
            "restores": [
                {
                    "lead_id": r.lead_id,
                    "field": r.label,
                    "current": r.current,
                    "restored": r.restored,
                    "rule_id": r.rule_id,
                }
                for r in self.restores
            ],
            "skipped": [
                {"lead_id": s.lead_id, "field": s.field, "reason": s.reason} for s in self.skipped
            ],
            "rules_again": dict(self.rules_again),
            "cannot_undo": CANNOT_UNDO,
        }


@dataclass(slots=True)
class RevertResult:
    report: CycleReport
    #: (lead, field, expected, found) of values the read-back found different
    mismatches: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    read_back: int = 0  # leads read back


# ---- planning ----------------------------------------------------------------------------


def find_run(store: StateStore, run_id: str) -> Any:
    """The run row of ``run_id``.

    Raises:
        RevertError: no such run (with what to do).
    """
    table = RunRow.__table__
    with store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.run_id == run_id)).first()
    if row is None:
        raise RevertError(
            f"no run {run_id!r} in the state store; `syncd status` lists recent "
            "runs and `syncd audit LEAD` shows the run of each change"
        )
    return row


def plan_revert(
    store: StateStore,
    pipeline: Pipeline,
    run_id: str,
    book: Any,
    now: datetime,
    only: RevertFilter | None = None,
) -> RevertPlan:
    """The inverse of what run ``run_id`` wrote, from the mirror as it is now.

    Raises:
        RevertError: the run does not exist, or belongs to another connector.
    """
    run = find_run(store, run_id)
    crm = pipeline.crm
    if run.crm != crm:
        raise RevertError(f"run {run_id} belongs to connector {run.crm!r}, not {crm!r}")
    only = only or RevertFilter()
    plan = RevertPlan(crm=crm, run_id=run_id, live_leads=store.count_live(crm))
    groups = _applied_changes(store, crm, run_id, only)
    if not groups:
        return plan
    lead_ids = sorted({lead for lead, _ in groups})
    later = _later_writes(store, crm, lead_ids, min(g[0].id for g in groups.values()))
    with store.begin() as conn:
        mirror = store.leads_by_id(conn, crm, lead_ids)
        pending = {(r.lead_id, r.kind, r.field) for r in store.open_changes(conn, crm, lead_ids)}
    planner = Planner(crm=crm, book=book, settings=pipeline.settings, now=now)
    # The CRM stamps a person's edit by its own clock: as far as its answers showed it behind
    # syncd's (the pull before the plan read them), an edit stamped before the write may be after.
    skew = CLOCK_SKEW + pipeline.connector.clock_behind
    for (lead_id, label), rows in groups.items():
        item = _inverse(
            rows, mirror.get(lead_id), later.get((lead_id, label), []), pending, book, planner, skew
        )
        if isinstance(item, Skip):
            plan.skipped.append(item)
        else:
            plan.restores.append(item)
    plan.restores.sort(key=lambda r: (r.lead_id, r.kind != "field", r.field))
    plan.skipped.sort(key=lambda s: (s.lead_id, s.field))
    plan.rules_again = _rules_again(plan.restores, mirror, planner, now)
    return plan


def _applied_changes(
    store: StateStore, crm: str, run_id: str, only: RevertFilter
) -> dict[tuple[str, str], list[Any]]:
    """The run's applied audit rows by (lead, audit field), in the order they were written."""
    table = AuditRow.__table__
    stmt = select(table).where(
        table.c.run_id == run_id, table.c.crm == crm, table.c.outcome == AuditOutcome.APPLIED
    )
    if only.rule_id is not None:
        # A chain's change is audited as "a -> b" (rules/README.md, "One write per lead"):
        # it is a change of each rule on it, so `--rule a` and `--rule b` both take it.
        stmt = stmt.where(table.c.rule_id.contains(only.rule_id, autoescape=True))
    if only.lead_id is not None:
        stmt = stmt.where(table.c.lead_id == only.lead_id)
    if only.since is not None:
        stmt = stmt.where(table.c.at >= only.since)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    with store.engine.connect() as conn:
        for row in conn.execute(stmt.order_by(table.c.id)):
            if only.rule_id is None or only.rule_id in (row.rule_id or "").split(" -> "):
                groups[(row.lead_id, row.field)].append(row)
    return groups


def _later_writes(
    store: StateStore, crm: str, lead_ids: Sequence[str], after_id: int
) -> dict[tuple[str, str], list[Any]]:
    """syncd's writes to these leads after audit row ``after_id``, by (lead, audit field)."""
    table = AuditRow.__table__
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    with store.engine.connect() as conn:
        for start in range(0, len(lead_ids), _CHUNK):
            for row in conn.execute(
                select(table)
                .where(
                    table.c.crm == crm,
                    table.c.lead_id.in_(lead_ids[start : start + _CHUNK]),
                    table.c.id > after_id,
                    table.c.outcome.in_((AuditOutcome.APPLIED, AuditOutcome.ALREADY_IN_PLACE)),
                )
                .order_by(table.c.id)
            ):
                out[(row.lead_id, row.field)].append(row)
    return out


def _inverse(
    rows: Sequence[Any],
    lead: Any,
    later: Iterable[Any],
    pending: set[tuple[str, str, str]],
    book: Any,
    planner: Planner,
    skew: timedelta = CLOCK_SKEW,
) -> Restore | Skip:
    """The value to restore for one field the run wrote, or why it is left alone (``skew``: how
    much earlier than syncd's write a person's edit may be stamped and still have come after)."""
    first, last = rows[0], rows[-1]
    label = first.field
    membership = label.startswith("newsletter:")
    name = label.split(":", 1)[1] if membership else label
    kind = "membership" if membership else "field"

    def skip(reason: str) -> Skip:
        return Skip(first.lead_id, label, reason)

    newer = [r for r in later if r.id > last.id and r.run_id != last.run_id]
    if newer:
        r = newer[-1]
        what = "its newsletter membership" if membership else f"it to {_show(r.after)!s}"
        return skip(f"changed since by syncd: run {r.run_id} (rule {r.rule_id}) set {what}")
    if lead is None:
        return skip("no longer in the mirror")
    if lead.deleted:
        return skip("lead deleted in the CRM")
    if lead.converted:
        return skip("lead converted in the CRM")
    if (lead.lead_id, kind, name) in pending:
        return skip("a newer change for it is waiting in the outbox")
    if membership:
        member = name in (lead.newsletters or ())
        wrote = last.after is not False
        if member != wrote:
            return skip("left the newsletter since" if wrote else "joined the newsletter since")
        return Restore(lead.lead_id, kind, name, member, not wrote, first.rule_id)
    return _field_inverse(rows, lead, name, book, planner, skew)


def _field_inverse(
    rows: Sequence[Any],
    lead: Any,
    name: str,
    book: Any,
    planner: Planner,
    skew: timedelta = CLOCK_SKEW,
) -> Restore | Skip:
    first, last = rows[0], rows[-1]

    def skip(reason: str) -> Skip:
        return Skip(first.lead_id, name, reason)

    current = lead.status if name == "status" else lead.fields.get(name)
    if current != last.after:
        return skip(
            f"changed since by a person or the CRM: now {_show(current)}, syncd wrote "
            f"{_show(last.after)}"
        )
    restored = first.before
    if name == "status":
        edited, wrote = _utc(lead.rep_edit_at), _utc(last.at)
        # The CRM stamps a person's edit by its own clock, Salesforce to the second, and syncd
        # stamped its write by its own after the answer: an edit within ``skew`` before the
        # write may have come after it, and a person's status wins when it cannot be told.
        if edited is not None and edited > wrote - skew:
            when = "since" if edited > wrote else "at about the time syncd wrote it"
            # A person's edit of a field a rule sets holds the lead as a status edit does.
            what = lead.rep_edit_field or "status"
            return skip(f"{what} set by a person at {edited:%Y-%m-%d %H:%M:%S} UTC {when}")
        if restored is None:
            return skip("had no status before; syncd does not empty a status")
        reason = book.check_transition(
            planner.to_rule_status.get(current, current),
            planner.to_rule_status.get(restored, restored),
        )
        if reason is not None:
            return skip(f"blocked by the rules' guards: {reason}")
    return Restore(lead.lead_id, "field", name, current, restored, first.rule_id)


def _rules_again(
    restores: Sequence[Restore], mirror: Mapping[str, Any], planner: Planner, now: datetime
) -> dict[str, int]:
    """Leads the current rules would change again once restored, by rule: the plan warns, as
    the next cycle would undo the revert unless the rule is fixed first."""
    by_lead: dict[str, list[Restore]] = defaultdict(list)
    for r in restores:
        by_lead[r.lead_id].append(r)
    counts: dict[str, int] = defaultdict(int)
    for lead_id, items in by_lead.items():
        row = mirror[lead_id]
        view = {name: getattr(row, name) for name in LeadRow.model_fields}
        fields = dict(view["fields"])
        newsletters = list(view["newsletters"] or [])
        for r in items:
            if r.kind == "membership":
                newsletters = [n for n in newsletters if n != r.field]
                if r.restored:
                    newsletters.append(r.field)
            else:
                fields[r.field] = r.restored
                if r.field == "status":
                    view["status"] = r.restored
        view.update(fields=fields, newsletters=newsletters)
        verdict = planner.verdict(SimpleNamespace(**view), now)
        if verdict.changes:
            counts[verdict.rule_id or "(tagging)"] += 1
    return dict(counts)


def _show(value: Any) -> str:
    return "(empty)" if value is None else repr(value) if isinstance(value, str) else str(value)


# ---- writing -----------------------------------------------------------------------------


def execute_revert(
    pipeline: Pipeline,
    plan: RevertPlan,
    book: Any,
    *,
    approve_large_run: bool = False,
    read_back: bool = True,
) -> RevertResult:
    """Write ``plan`` as a run of its own: outbox, breaker, batches, audit, then read back.

    Never raises for a CRM or database failure: the run's outcome and message say what
    happened, as a cycle's do.
    """
    store = pipeline.store
    now = pipeline.clock()
    report = CycleReport(pipeline.crm, uuid.uuid4().hex[:12])
    result = RevertResult(report)
    run = RunRow(
        run_id=report.run_id,
        crm=pipeline.crm,
        started_at=now,
        ruleset_version=book.version,
        message=f"revert of run {plan.run_id}",
    )
    calls_before = pipeline.connector.stats.calls
    store.start_run(run)
    try:
        _queue(pipeline, plan, report, book, now)
        if _breaker_trips(pipeline, plan) and not approve_large_run:
            with store.begin() as conn:
                _fence(pipeline, conn)
                store.promote_planned(conn, pipeline.crm, report.run_id, OutboxState.BLOCKED, now)
            share = plan.changing_leads / plan.live_leads if plan.live_leads else 0.0
            report.outcome = "breaker"
            report.message = (
                f"revert of run {plan.run_id} would change {plan.changing_leads} "
                f"of {plan.live_leads} leads ({share:.0%}), above "
                "breaker.max_change_share; nothing was written. Run it again with "
                "--approve-large-run"
            )
        else:
            with store.begin() as conn:
                _fence(pipeline, conn)
                store.promote_planned(conn, pipeline.crm, report.run_id, OutboxState.PENDING, now)
            pipeline.drain(report)
            report.outcome = "stopped" if pipeline.stop.is_set() else "ok"
            if read_back and report.outcome == "ok":
                _read_back(pipeline, plan, report.run_id, result)
            report.message = _summary(plan, report, result)
    except ConnectorError as exc:
        report.outcome, report.message = "failed", f"revert of run {plan.run_id}: {exc}"
    except LeaseLost as exc:
        report.outcome, report.message = "lease_lost", f"revert of run {plan.run_id}: {exc}"
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        report.outcome = "failed"
        report.message = (
            f"revert of run {plan.run_id}: the state store failed "
            f"({first[0] if first else type(exc).__name__})"
        )
    report.api_calls = pipeline.connector.stats.calls - calls_before
    for name in ("outcome", "planned", "written", "failed", "retrying", "api_calls", "message"):
        setattr(run, name, getattr(report, name))
    run.finished_at = pipeline.clock()
    store.finish_run(run)
    return result


def _queue(
    pipeline: Pipeline, plan: RevertPlan, report: CycleReport, book: Any, now: datetime
) -> None:
    rows = [
        {
            "crm": pipeline.crm,
            "lead_id": r.lead_id,
            "kind": r.kind,
            "field": r.field,
            "value": r.restored,
            "before": r.current,
            "rule_id": f"{REVERT_PREFIX}{plan.run_id}",
            "ruleset_version": book.version,
            "run_id": report.run_id,
            "intent_id": f"{report.run_id}.{r.lead_id}",
            "state": OutboxState.PLANNED,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for r in plan.restores
    ]
    with pipeline.store.begin() as conn:
        _fence(pipeline, conn)
        pipeline.store.add_changes(conn, rows)
    report.planned = len(rows)


def _fence(pipeline: Pipeline, conn: Any) -> None:
    """In a writing transaction: raise LeaseLost unless this process holds the lease (a revert
    run from the CLI holds it; one built in a test without a lease writes unfenced)."""
    if pipeline.lease is not None:
        pipeline.lease.check(conn)


def _breaker_trips(pipeline: Pipeline, plan: RevertPlan) -> bool:
    """The change breaker of a cycle, counted the same way (leads with field changes)."""
    changing, live = plan.changing_leads, plan.live_leads
    share = changing / live if live else 0.0
    return changing >= pipeline.breaker.min_changes and share > pipeline.breaker.max_change_share


def _read_back(pipeline: Pipeline, plan: RevertPlan, run_id: str, result: RevertResult) -> None:
    """Read the restored fields from the CRM; list every value that differs from the plan."""
    done = {
        (r.lead_id, r.field)
        for r in pipeline.store.changes_of_run(pipeline.crm, run_id, [OutboxState.DONE])
        if r.kind == "field"
    }
    wanted = [r for r in plan.restores if r.kind == "field" and (r.lead_id, r.field) in done]
    ids = sorted({r.lead_id for r in wanted})
    if not ids:
        return
    found = {lead.id: lead for lead in pipeline.connector.read_leads(ids)}
    result.read_back = len(ids)
    for r in wanted:
        lead = found.get(r.lead_id)
        value = None if lead is None else lead.fields.get(r.field)
        if lead is None or not _same(value, r.restored):
            result.mismatches.append(
                (r.lead_id, r.field, r.restored, "(lead not found)" if lead is None else value)
            )


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, datetime) and isinstance(expected, str):
        return found.isoformat() == datetime.fromisoformat(expected).isoformat()
    return bool(found == expected)


def _summary(plan: RevertPlan, report: CycleReport, result: RevertResult) -> str:
    text = (
        f"revert of run {plan.run_id}: {report.written} written, {report.failed} failed, "
        f"{len(plan.skipped)} skipped"
    )
    if result.read_back:
        text += (
            f"; read back {result.read_back} leads, {len(result.mismatches)} differ"
            if result.mismatches
            else f"; read back {result.read_back} leads, all match"
        )
    return text
