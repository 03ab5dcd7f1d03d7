"""The per-lead decision: a mirror row's rule input, its verdict and its next due time.

:class:`Planner` turns the rule book's decision for one mirror row into concrete changes (the
status and field values the lead does not have yet, its newsletter joins), after the guards,
a person's recent edit (``syncd.holds``) and writes the CRM refused for good.
:func:`iter_verdicts` streams the verdicts of the leads a cycle evaluates (``syncd.due``). Both
the cycle (``syncd.pipeline``) and ``syncd plan``/``explain``/``rules diff`` use them, so a plan
shows exactly what a cycle would do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rules import Decision, RuleBook
from rules.fields import STANDARD_FIELDS, FieldType
from syncd import due, field_remap
from syncd.business_clock import aware
from syncd.enrichment import Enricher
from syncd.holds import held_reason, is_held
from syncd.lifecycle import policy_of
from syncd.loop_guard import LoopGuard
from syncd.records import PlanRecord
from syncd.settings import ConnectorSettings
from syncd.state import StateStore, _utc

__all__ = [
    "PLAN_CHUNK",
    "LeadVerdict",
    "PlannedChange",
    "Planner",
    "drop_refused_memberships",
    "due_updates",
    "iter_verdicts",
    "rule_lead",
]

# Datetime fields stored in the mirror's JSON as ISO text (the derived ones are set separately).
_STORED_DATETIME_FIELDS = tuple(
    n for n, t in STANDARD_FIELDS.items() if t is FieldType.DATETIME and n != "status_changed_at"
)


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
    loop_held: str | None = None  # why the loop guard holds it (syncd changed it too often)
    blocked: str | None = None  # why a guard refused the rule's target
    failed: str | None = None  # why a change that failed permanently is not sent again
    conflicts: tuple[Any, ...] = ()  # all_match rules that disagreed (rules.engine.Conflict)
    remap_held: tuple[str, ...] = ()  # fields the rules set, kept back (syncd.field_remap)
    # When time alone could next change this verdict (syncd.due); None: never.
    due: datetime | None = None


_from_iso = datetime.fromisoformat


def rule_lead(
    row: PlanRecord, crm: str, to_rule_status: Mapping[str, str], *, connector: str | None = None
) -> dict[str, Any]:
    """The plain mapping rules see for one mirror row.

    ``crm`` is the connector type (``salesforce``), what rules written before named instances
    test; ``connector`` the instance name (``salesforce/emea``), defaulting to the type.
    """
    return _rule_input(
        row.fields,
        row.enrichment,
        row.status,
        row.status_changed_at,
        row.newsletters,
        crm,
        to_rule_status,
        connector or crm,
    )


def _rule_input(
    fields: Mapping[str, Any],
    enrichment: Mapping[str, Any],
    status: str | None,
    status_changed_at: datetime | None,
    newsletters: Sequence[str] | None,
    crm: str,
    to_rule_status: Mapping[str, str],
    connector: str,
) -> dict[str, Any]:
    """``rule_lead`` from the row's values, read once by the caller (a mirror row's attribute
    access costs more than the dict work here)."""
    lead: dict[str, Any] = dict(fields)
    for name in _STORED_DATETIME_FIELDS:  # hot path: a plain loop beats a set intersection
        value = lead.get(name)
        if value.__class__ is str:
            try:
                lead[name] = _from_iso(value)
            except ValueError:
                lead[name] = None
    lead.update(enrichment)
    lead["status"] = to_rule_status.get(status, status) if status is not None else None
    lead["crm"] = crm
    lead["connector"] = connector
    # The mirror's datetimes are UTC already (``syncd.plan_read``): converting is for others.
    lead["status_changed_at"] = (
        status_changed_at
        if status_changed_at is None or status_changed_at.tzinfo is UTC
        else _utc(status_changed_at)
    )
    lead["newsletters"] = ",".join(newsletters) if newsletters else None
    return lead


_TICK = timedelta(microseconds=1)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def due_updates(
    items: Sequence[tuple[PlanRecord, LeadVerdict]],
) -> list[tuple[str, datetime, bool]]:
    """(lead, due time, blocked) of the evaluated leads where either changes (syncd.due)."""
    out = []
    for row, verdict in items:
        when = due.stored_due(verdict.due)
        blocked = verdict.blocked is not None
        if row.due_at != when or bool(row.guard_blocked) is not blocked:
            out.append((row.lead_id, when, blocked))
    return out


def _audited_rule(decision: Decision) -> str | None:
    """The rule_id outbox and audit rows name: a chain of rules (evaluation went on from the
    would-be state) as a whole, "sal-follow-up-breached -> stale-90d"."""
    return " -> ".join(decision.chain) if decision.chain else decision.rule_id


class Planner:
    """Turns a rule decision into concrete changes for one mirror row."""

    def __init__(
        self,
        *,
        crm: str,
        book: RuleBook,
        settings: ConnectorSettings,
        now: datetime | None = None,
        remap_holds: Mapping[str, datetime] | None = None,
    ) -> None:
        """``remap_holds``: fields not written until the time given (``syncd.field_remap``)."""
        self.crm = crm  # the instance name: mirror rows are keyed by it
        self.remap_holds = dict(remap_holds or {})
        self.kind = settings.type
        self.book = book
        # Thresholds of `older_than`/`within` are computed once per cycle, not once per lead.
        self._bound = (book.bind(now), book.bind_next_change(now)) if now is not None else None
        self._bound_now = now
        self.to_crm_status = dict(settings.status_values)
        self.to_rule_status = {v: k for k, v in settings.status_values.items()}
        self.hold = settings.hold_rep_edits_for
        self.lifecycle = policy_of(settings)

    def rule_input(self, row: PlanRecord) -> dict[str, Any]:
        lead = rule_lead(row, self.kind, self.to_rule_status, connector=self.crm)
        if self.lifecycle is not None and self.lifecycle.field in lead:
            lead[self.lifecycle.field] = self.lifecycle.to_rule(lead[self.lifecycle.field])
        return lead

    def verdict(self, row: PlanRecord, now: datetime) -> LeadVerdict:
        # Each row attribute is read once: on a mirror row every access costs a lookup.
        fields, status, newsletters = row.fields, row.status, row.newsletters
        lead = _rule_input(
            fields,
            row.enrichment,
            status,
            row.status_changed_at,
            newsletters,
            self.kind,
            self.to_rule_status,
            self.crm or self.kind,
        )
        lifecycle = self.lifecycle
        if lifecycle is not None and lifecycle.field in lead:
            lead[lifecycle.field] = lifecycle.to_rule(lead[lifecycle.field])
        bound = self._bound if now == self._bound_now else None
        if bound is not None:
            evaluate, next_change_of = bound
            decision = evaluate(lead)
        else:
            decision, next_change_of = self.book.evaluate(lead, now), None
        verdict = LeadVerdict(
            row.lead_id,
            status,
            " -> ".join(decision.chain) if decision.chain else decision.rule_id,  # _audited_rule
            conflicts=decision.conflicts,
        )
        if decision.blocked is not None:
            verdict.blocked = str(getattr(decision.blocked, "reason", decision.blocked))
        if decision.status is not None:
            target = self.to_crm_status.get(decision.status, decision.status)
            if target != status:
                verdict.changes.append(PlannedChange("field", "status", target, status))
        remapped = None
        if decision.field_sets or decision.newsletters:
            remapped = self._set_and_join(row, decision, verdict)
        # The rest is about failed writes and a person's edits: most leads have neither, so
        # the calls are skipped, not made to return nothing.
        if row.error_code:
            _drop_refused_writes(row, verdict)
        if next_change_of is not None:
            next_change = next_change_of(lead)
        else:
            next_change = self.book.next_change(lead, now)
        next_change = _earliest(next_change, remapped)  # evaluated again when a hold ends
        edited = row.rep_edit_at
        if edited is None:
            verdict.due = next_change
            return verdict
        verdict.held = self._held(row, now)
        if verdict.held:
            # Held whether or not the rules want a change now (syncd.holds): every surface
            # counts the same leads.
            verdict.changes = []
        verdict.due = _earliest(next_change, due.hold_expiry(edited, self.hold, aware(now)))
        return verdict

    def _set_and_join(
        self, row: PlanRecord, decision: Decision, verdict: LeadVerdict
    ) -> datetime | None:
        """The decision's field values and newsletter joins the lead does not have yet; the
        earliest end of a remap hold that kept a field back (``syncd.field_remap``), if any."""
        fields, newsletters = row.fields, row.newsletters
        remapped = None
        for name, wanted in decision.field_sets.items():
            if name in self.remap_holds:  # remapped lately: a person's earlier edit is unknown
                remapped = _earliest(remapped, self.remap_holds[name])
                verdict.remap_held += (name,)
                continue
            value = self._field_value(row, name, wanted, verdict)
            if value is not _BLOCKED and fields.get(name) != value:
                verdict.changes.append(PlannedChange("field", name, value, fields.get(name)))
        for name in decision.newsletters:
            if name not in (newsletters or ()):
                verdict.changes.append(PlannedChange("membership", name, True, None))
        return remapped

    def _held(self, row: PlanRecord, now: datetime) -> str | None:
        """Why syncd leaves the lead alone (syncd.holds): a person changed its status, or a
        field a rule sets, recently."""
        if row.rep_edit_at is None:
            return None
        edited = _utc(row.rep_edit_at)
        if not is_held(edited, now, self.hold):
            return None
        return held_reason(row.rep_edit_status, edited, self.hold, row.rep_edit_field)

    def _field_value(self, row: PlanRecord, name: str, value: Any, verdict: LeadVerdict) -> Any:
        """The CRM value a rule's ``set_field`` writes; a lifecycle stage is mapped to its
        CRM value and judged against the stage order (``_BLOCKED``, with the reason on the
        verdict, when it would move backward undeclared)."""
        if self.lifecycle is None or name != self.lifecycle.field:
            return value
        value = self.lifecycle.to_crm(value)
        move = self.lifecycle.judge(row.fields.get(name), value)
        if move.blocked is not None:
            verdict.blocked = move.blocked
            return _BLOCKED
        return value


#: A field change a guard refused (see ``Planner._field_value``).
_BLOCKED = object()


def _drop_refused_writes(row: PlanRecord, verdict: LeadVerdict) -> None:
    """The CRM refused a write permanently; sending it again would fail the same way. Once
    someone changes the lead in the CRM, or an operator asks (``syncd retry``, which clears the
    refusal: syncd.retry_requests), syncd tries again."""
    if _refused_since_change(row):
        kept = [c for c in verdict.changes if c.kind != "field"]
        if len(kept) != len(verdict.changes):
            verdict.failed = (
                f"last write failed ({row.error_code}: {row.error_message}); "
                "retried after the lead changes in the CRM, or after `syncd retry`"
            )
            verdict.changes = kept


def drop_refused_memberships(
    store: StateStore, crm: str, judged: Sequence[tuple[PlanRecord, LeadVerdict]]
) -> None:
    """A newsletter add the CRM refused permanently waits, like a refused field write, until
    the lead changes in the CRM: sent again every cycle, an add to a campaign deleted after
    start-up failed for every lead it ever wanted, every cycle. The lead's one error slot does
    not say which write failed, so the outbox's failed membership rows do; only leads with a
    failure since their last change are looked up (most leads have none)."""
    asked = [
        row.lead_id
        for row, verdict in judged
        if _refused_since_change(row) and any(c.kind == "membership" for c in verdict.changes)
    ]
    if not asked:
        return
    with store.reading() as conn:
        refused = store.refused_memberships(conn, crm, asked)
    for row, verdict in judged:
        kept = []
        for c in verdict.changes:
            when = refused.get((row.lead_id, c.field)) if c.kind == "membership" else None
            if when is None or _utc(row.modified_at) > _utc(when):
                kept.append(c)
        if len(kept) != len(verdict.changes):
            verdict.failed = verdict.failed or (
                f"last add to the newsletter failed ({row.error_code}: {row.error_message}); "
                "retried after the lead changes in the CRM, or after `syncd retry`"
            )
            verdict.changes = kept


def _refused_since_change(row: PlanRecord) -> bool:
    return bool(
        row.error_code and row.error_at is not None and _utc(row.modified_at) <= _utc(row.error_at)
    )


#: Leads iter_verdicts reads and judges at a time. Judged right after they are decoded, the
#: leads of a chunk this size are still in the CPU's caches: with 2,000 (the read's default)
#: the plan step took 10 % more CPU per lead (20.5 against 18.4 µs on 100,000 leads, one
#: process), for a keyset query per 500 leads instead of per 2,000.
PLAN_CHUNK = 500


def iter_verdicts(
    store: StateStore,
    crm: str,
    book: RuleBook,
    settings: ConnectorSettings,
    now: datetime,
    *,
    loop_guard: LoopGuard | None = None,
    every: bool = False,
    remap_holds: Mapping[str, datetime] | None = None,
    enricher: Enricher | None = None,
) -> Iterator[tuple[PlanRecord, LeadVerdict]]:
    """The live, unconverted mirror leads a cycle at ``now`` evaluates (``syncd.due``; every
    one with ``every``) with their verdicts, streamed in chunks (with ``loop_guard``, leads
    syncd changed too often are held).

    Shared by the cycle and by ``syncd plan``, so a plan shows exactly what a cycle would do.
    ``remap_holds``: the active ones (``syncd.field_remap``) when the caller read them already.
    ``enricher``: each lead's enrichment is derived again from its fields before it is judged,
    in memory (``syncd plan`` while the mirror's was derived under other settings, which the
    next cycle derives again first: ``syncd.enrichment_refresh``).
    """
    if remap_holds is None:
        stored = store.get_meta(field_remap.holds_key(crm))
        remap_holds = field_remap.active_holds(stored, aware(now))
    planner = Planner(crm=crm, book=book, settings=settings, now=now, remap_holds=remap_holds)
    for chunk in due.iter_plan_rows(store, crm, now, every=every, chunk=PLAN_CHUNK):
        if enricher is not None:
            for lead in chunk:
                lead.enrichment = enricher.values(lead.fields)
        judged = [(row, planner.verdict(row, now)) for row in chunk]
        drop_refused_memberships(store, crm, judged)
        if loop_guard is not None:
            loop_guard.hold([v for _, v in judged], now)
            for _, verdict in judged:
                if verdict.loop_held:
                    # Held until the audit's count drops: looked at again every cycle, so the
                    # plan, `status` and the metric list it as long as it lasts.
                    verdict.due = aware(now) + _TICK
        yield from judged
