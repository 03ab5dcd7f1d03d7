"""Read-only views for admins: the dry-run plan, one lead's explanation, the status page.

None of these writes to a CRM; ``build_plan(pull=True)`` reads from the CRMs into the mirror.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from rules.engine import Conflict, RuleBook
from syncd import due, enrichment_refresh, field_remap, newly_set_fields, retry_requests
from syncd.app import App
from syncd.business_clock import aware
from syncd.enrichment import Enricher
from syncd.holds import fields_rules_set, held_reason, held_since
from syncd.lead_refs import find_leads
from syncd.loop_guard import LoopGuard
from syncd.pipeline import CycleReport
from syncd.planner import LeadVerdict, Planner, drop_refused_memberships, iter_verdicts
from syncd.records import LeadRecord
from syncd.settings import BreakerSettings, ConnectorSettings
from syncd.state import StateStore, _utc
from syncd.views import (
    ConflictView,
    CrmPlan,
    Explanation,
    LeadNote,
    Plan,
    RulePlan,
    RuleTraceView,
    StatusReport,
)

__all__ = ["build_plan", "explain_lead", "status_report"]


def _remapped(app: App, name: str, cs: ConnectorSettings) -> list[str]:
    """Fields ``name``'s config maps otherwise than its mirror was read under: the next cycle
    reads every lead again before it plans (``syncd.field_remap``), which a plan without
    ``--pull`` cannot show."""
    from syncd.app import StartupError, connector_config

    try:
        mapping = getattr(connector_config(app.settings, name, cs), "fields", None)
    except StartupError:
        return []  # the config's own problem, reported by the commands that connect
    if not isinstance(mapping, dict):
        return []
    stored = app.store.get_meta(field_remap.map_key(name))
    return [
        f"{field}: {stored.get(field)} -> {mapping.get(field)}"
        for field in field_remap.changed_fields(stored, mapping)
    ]


def build_plan(
    app: App, *, pull: bool = False, book: RuleBook | None = None, at: datetime | None = None
) -> Plan:
    """What the next cycle would change, per CRM and per rule, from the mirror as it is.

    ``book`` evaluates a draft instead of the live rules (nothing else changes); ``at`` asks
    what the rules decide at that time (time-based rules: "what happens on Monday").
    """
    now = at or app.clock()
    book = book or app.rules.book
    result: Plan = {"now": now, "ruleset_version": book.version, "crms": {}}
    for name, cs in app.settings.connectors().items():
        if pull and name in app.pipelines:
            app.pipelines[name].pull_and_read_history(CycleReport(name, "plan"), until=now)
        rules: dict[str, RulePlan] = defaultdict(
            lambda: {"leads": 0, "moves": Counter(), "newsletters": Counter(), "fields": Counter()}
        )
        part: CrmPlan = {
            "live_leads": app.store.count_live(name),
            "changing_leads": 0,
            "memberships": 0,
            "held": [],
            "blocked": [],
            "failed": [],
            "loop_held": [],
            "conflicts": [],
            "leads": [],
            "breaker": None,
            "rules": {},
            "remapped": [] if pull else _remapped(app, name, cs),
            "remap_held": field_remap.active_holds(
                app.store.get_meta(field_remap.holds_key(name)), aware(now)
            ),
            "newly_set": _newly_set(app, name, cs, book),
        }
        guard = LoopGuard(app.store, name, app.settings.loop_guard)
        # The cycle's selection (syncd.due): every lead under other rules or settings (a draft).
        fingerprint = due.planning_fingerprint(
            book, cs, app.enricher.settings, app.settings.loop_guard
        )
        every = due.fingerprint_changed(app.store, name, fingerprint)
        # The mirror's enrichment derived under other settings: the next cycle derives it
        # again before it plans (syncd.enrichment_refresh), so the plan derives it too.
        stale = not enrichment_refresh.is_current(app.store, name, app.enricher)
        part["held"] = _held(app.store, name, cs.hold_rep_edits_for, now)
        verdicts = iter_verdicts(
            app.store,
            name,
            book,
            cs,
            now,
            loop_guard=guard,
            every=every or stale,
            remap_holds=part["remap_held"],
            enricher=app.enricher if stale else None,
        )
        for row, verdict in verdicts:
            _note_unsent(part, row.lead_id, verdict)
            if not verdict.changes:
                continue
            info = rules[verdict.rule_id or "(tagging)"]
            info["leads"] += 1
            after = row.status
            for change in verdict.changes:
                if change.kind == "membership":
                    info["newsletters"][change.field] += 1
                    part["memberships"] += 1
                elif change.field == "status":
                    info["moves"][f"{change.before} → {change.value}"] += 1
                    after = change.value
                else:
                    info["fields"][change.field] += 1
            if any(c.kind == "field" for c in verdict.changes):
                part["changing_leads"] += 1
            part["leads"].append(
                {
                    "lead_id": row.lead_id,
                    "before": row.status,
                    "after": after,
                    "rule_id": verdict.rule_id,
                    "changes": [(c.kind, c.field, c.value) for c in verdict.changes],
                }
            )
        part["breaker"] = _breaker(part["changing_leads"], part["live_leads"], app.settings.breaker)
        part["rules"] = {
            k: {
                "leads": v["leads"],
                "moves": dict(v["moves"]),
                "newsletters": dict(v["newsletters"]),
                "fields": dict(v["fields"]),
            }
            for k, v in rules.items()
        }
        result["crms"][name] = part
    return result


def _newly_set(app: App, name: str, cs: ConnectorSettings, book: RuleBook) -> list[str]:
    """Fields ``book`` sets that the rules did not at ``name``'s last cycle."""
    recorded = newly_set_fields.recorded_fields(app.store, name)
    if recorded is None:
        return []
    watched = fields_rules_set(book, cs.settable_fields, crm=cs.type, connector=name)
    return sorted(watched - recorded)


def _note_unsent(part: CrmPlan, lead_id: str, verdict: LeadVerdict) -> None:
    """What the plan shows beside the changes: blocked, failed and conflicts (held leads come
    from the store: not every one is evaluated)."""
    if verdict.blocked:
        part["blocked"].append({"lead_id": lead_id, "reason": verdict.blocked})
    if verdict.failed:
        part["failed"].append({"lead_id": lead_id, "reason": verdict.failed})
    if verdict.loop_held:
        part["loop_held"].append({"lead_id": lead_id, "reason": verdict.loop_held})
    for conflict in verdict.conflicts:
        view = conflict_view(conflict)
        part["conflicts"].append(
            {
                "lead_id": lead_id,
                "field": view["field"],
                "kept_value": view["kept_value"],
                "kept_rule": view["kept_rule"],
                "rejected_value": view["rejected_value"],
                "rejected_rule": view["rejected_rule"],
            }
        )


def _held(store: StateStore, crm: str, hold: timedelta, now: datetime) -> list[LeadNote]:
    """Every held lead (syncd.holds), as ``syncd status`` lists them."""
    held: list[LeadNote] = []
    for row in store.held_leads(crm, held_since(now, hold)):
        assert row.rep_edit_at is not None  # held_leads selects rep_edit_at > since
        edited = _utc(row.rep_edit_at)
        held.append(
            {
                "lead_id": row.lead_id,
                "reason": held_reason(row.rep_edit_status, edited, hold, row.rep_edit_field),
            }
        )
    return held


def _breaker(changing: int, live: int, breaker: BreakerSettings) -> str | None:
    """Why the change breaker would stop this plan, or None."""
    share = changing / live if live else 0.0
    if changing >= breaker.min_changes and share > breaker.max_change_share:
        return f"{share:.0%} of leads > max_change_share {breaker.max_change_share:.0%}"
    return None


class _Rederived:
    """A mirror row with its enrichment and reasons derived from its fields under the running
    settings (``explain``); every other column is the row's."""

    def __init__(self, row: LeadRecord, enricher: Enricher) -> None:
        derived = enricher.enrich(row.fields)
        self._row = row
        self.enrichment = derived.values
        self.reasons = derived.reasons

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def _rederived(row: LeadRecord, enricher: Enricher) -> LeadRecord:
    return cast(LeadRecord, _Rederived(row, enricher))


def explain_lead(app: App, ref: str, *, book: RuleBook | None = None) -> list[Explanation]:
    """For each mirrored lead matching ``ref`` (id or email): every rule and what decided it."""
    now = app.clock()
    book = book or app.rules.book
    found: list[Explanation] = []
    for found_row in find_leads(app.store, app.settings.connectors(), ref):
        cs = app.settings.connectors().get(found_row.crm)
        if cs is None:
            continue
        # The mirror keeps the enrichment's values, not the reasons: both derived again from
        # the stored fields, as the next cycle has them (syncd.enrichment_refresh).
        row = _rederived(found_row, app.enricher)
        planner = Planner(crm=row.crm, book=book, settings=cs)
        lead = planner.rule_input(row)
        traces: list[RuleTraceView] = [
            {
                "ruleset": t.ruleset,
                "rule_id": t.rule_id,
                "line": t.line,
                "matched": t.matched,
                "decided_by": t.decided_by,
            }
            for t in book.explain(lead, now)
        ]
        conflicts: list[ConflictView] = []
        if row.deleted:
            verdict = "deleted in the CRM: never written"
        elif row.converted:
            verdict = "converted: never written"
        else:
            v = planner.verdict(row, now)
            drop_refused_memberships(app.store, row.crm, [(row, v)])
            LoopGuard(app.store, row.crm, app.settings.loop_guard).hold([v], now)
            conflicts = [conflict_view(c) for c in v.conflicts]
            parts = [
                f"{c.field} → {c.value}" if c.kind == "field" else f"join {c.field}"
                for c in v.changes
            ]
            verdict = (", ".join(parts) + f" (rule {v.rule_id})") if parts else "no change"
            if v.held:
                verdict = f"held: {v.held}"
            elif v.loop_held:
                verdict = f"held by the loop guard: {v.loop_held}"
            elif v.blocked:
                verdict += f"; guard: {v.blocked}"
        found.append(
            {
                "crm": row.crm,
                "lead_id": row.lead_id,
                "status": row.status,
                "enrichment": row.enrichment,
                "reasons": row.reasons,
                "traces": traces,
                "conflicts": conflicts,
                "verdict": verdict,
            }
        )
    return found


def status_report(app: App) -> StatusReport:
    now = app.clock()
    report: StatusReport = {
        "rules_error": current_rules_error(app),
        "rules_version": app.rules.book.version if app.rules.loaded else None,
        "crms": {},
    }
    for name, cs in app.settings.connectors().items():
        held = _held(app.store, name, cs.hold_rep_edits_for, now)
        guard = LoopGuard(app.store, name, app.settings.loop_guard)
        loop_held: list[LeadNote] = [
            {"lead_id": lead_id, "reason": guard.reason(n, field)}
            for lead_id, (field, n) in sorted(guard.held_now(now).items())
        ]
        runs = [r._asdict() for r in app.store.last_runs(5, crm=name)]
        report["crms"][name] = {
            "pending": app.store.pending_count(name),
            # what is still to be sent: by change, with the last error of rows being retried
            "pending_by": [
                {
                    "change": f"newsletter:{f}" if kind == "membership" else f,
                    "retrying": code,
                    "count": n,
                }
                for kind, f, code, n in app.store.pending_summary(name)
            ],
            # what the shown runs decided not to send, and why
            "unsent": [
                {"outcome": outcome, "reason": reason, "count": n}
                for (outcome, reason), n in app.store.unsent_by_reason(
                    [r["run_id"] for r in runs]
                ).most_common()
            ],
            "failed": [
                {"lead_id": r.lead_id, "error_code": r.error_code, "error_message": r.error_message}
                for r in app.store.failed_leads(name)
            ],
            "held": held,
            "loop_held": loop_held,
            "quarantined": [
                {"lead_id": r.lead_id, "problems": list(r.quarantine)}
                for r in app.store.quarantined_leads(name)
            ],
            "runs": runs,
            "writer": _writer(app.store, name),
            "retries_waiting": [
                {
                    "request_id": r.request_id,
                    "requested_by": r.requested_by,
                    "requested_at": r.requested_at,
                }
                for r in retry_requests.pending(app.store, name)
            ],
        }
    return report


def current_rules_error(app: App) -> str | None:
    """The rules error that holds for the files as they are now.

    The files' own load error first; else the error the daemon stored, only while it is about
    these same files (a CRM refused what they write). An error stored about files since fixed
    is stale and not shown, even before the daemon reloads.
    """
    if app.rules.error:
        return str(app.rules.error)
    stored = app.store.get_meta("rules_error")
    if stored and app.store.get_meta("rules_error_files") == app.rules.files_digest():
        return str(stored)
    return None


def conflict_view(conflict: Conflict) -> ConflictView:
    """A reported ``all_match`` conflict as plain data (plan --json, explain)."""
    return {
        "field": conflict.field,
        "kept_value": conflict.kept_value,
        "kept_rule": conflict.kept_rule,
        "rejected_value": conflict.rejected_value,
        "rejected_rule": conflict.rejected_rule,
    }


def _writer(store: StateStore, name: str) -> str | None:
    """The process holding the connector's lease (the one that writes it), if any."""
    from syncd.lease import current_holder

    holder = current_holder(store, name)
    return holder.describe() if holder else None
