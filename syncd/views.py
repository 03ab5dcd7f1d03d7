"""The shapes of the admin views :mod:`syncd.plan` builds and ``syncd plan`` / ``explain`` /
``status`` print (as text, or as JSON with ``--json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

__all__ = [
    "ConflictView",
    "CrmPlan",
    "CrmStatus",
    "Explanation",
    "FailedLead",
    "LeadConflict",
    "LeadNote",
    "PendingGroup",
    "Plan",
    "PlannedLead",
    "QuarantinedLead",
    "RulePlan",
    "RuleTraceView",
    "StatusReport",
    "UnsentGroup",
]


class LeadNote(TypedDict):
    """A lead the plan leaves alone, and why (held, blocked by a guard, failed before)."""

    lead_id: str
    reason: str


class PlannedLead(TypedDict):
    lead_id: str
    before: str | None
    after: str | None
    rule_id: str | None
    changes: list[tuple[str, str, Any]]  # (kind, field, value)


class RulePlan(TypedDict):
    """What one rule would do in the next cycle."""

    leads: int
    moves: dict[str, int]  # "before → after" -> leads
    newsletters: dict[str, int]
    fields: dict[str, int]


class ConflictView(TypedDict):
    """Two ``all_match`` rules set one field to different values; the first one's is kept."""

    field: str
    kept_value: Any
    kept_rule: str
    rejected_value: Any
    rejected_rule: str


class LeadConflict(ConflictView):
    lead_id: str


class CrmPlan(TypedDict):
    live_leads: int
    changing_leads: int
    memberships: int
    held: list[LeadNote]
    blocked: list[LeadNote]
    failed: list[LeadNote]
    loop_held: list[LeadNote]  # held by the loop guard (syncd changed the lead too often)
    conflicts: list[LeadConflict]
    leads: list[PlannedLead]
    breaker: str | None  # why the change breaker would stop the run, if it would
    rules: dict[str, RulePlan]
    #: fields the config maps otherwise than the mirror was read under, as "tier: A -> B"
    #: (the next cycle reads every lead again first: syncd.field_remap)
    remapped: list[str]
    #: remapped fields syncd writes none of yet, with the instant it will
    remap_held: dict[str, datetime]
    #: fields the rules set that they did not at the last cycle: the next cycle reads their
    #: history first and holds the leads a person set one on lately (syncd.newly_set_fields)
    newly_set: list[str]


class Plan(TypedDict):
    now: datetime
    ruleset_version: str
    crms: dict[str, CrmPlan]


class RuleTraceView(TypedDict):
    ruleset: str
    rule_id: str
    line: int
    matched: bool
    decided_by: str


class Explanation(TypedDict):
    """One mirrored lead: its enrichment, every rule in order, and the verdict."""

    crm: str
    lead_id: str
    status: str | None
    enrichment: dict[str, Any]
    reasons: dict[str, str]
    traces: list[RuleTraceView]
    conflicts: list[ConflictView]
    verdict: str


class PendingGroup(TypedDict):
    change: str
    retrying: str | None  # the last error code of rows being retried
    count: int


class UnsentGroup(TypedDict):
    outcome: str
    reason: str
    count: int


class FailedLead(TypedDict):
    lead_id: str
    error_code: str | None
    error_message: str | None


class QuarantinedLead(TypedDict):
    lead_id: str
    problems: list[dict[str, str]]  # {field, excerpt, reason}


class WaitingRetry(TypedDict):
    """A ``syncd retry`` request its connector's leader has not applied yet."""

    request_id: int
    requested_by: str
    requested_at: datetime


class CrmStatus(TypedDict):
    pending: int
    pending_by: list[PendingGroup]
    unsent: list[UnsentGroup]
    failed: list[FailedLead]
    held: list[LeadNote]
    loop_held: list[LeadNote]  # held by the loop guard (syncd.loop_guard)
    quarantined: list[QuarantinedLead]
    runs: list[dict[str, Any]]  # the run table's columns (syncd.state.RunRow)
    writer: str | None  # the process holding the connector's lease, if any
    retries_waiting: list[WaitingRetry]  # syncd.retry_requests


class StatusReport(TypedDict):
    rules_error: str | None
    rules_version: str | None
    crms: dict[str, CrmStatus]
