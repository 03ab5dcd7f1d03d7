"""The twin of ``bench/rules20.yaml`` for the ``rule-engine`` package (zeroSteiner/rule-engine).

Same 20 rules, same order, same null semantics as syncd's rule language (a missing value is
``null``; text fields also treat ``''`` as missing; ``ne`` is true on a missing value), so both
engines pick the same first-matching rule for every lead. The benchmark verifies that agreement
on every lead it times before reporting a speed.

Written the way a rule-engine user would: one expression per rule, ``$now`` for the current time
and ISO-8601 duration literals (``t'P90D'``), typed-free ``Context(default_value=None)`` so absent
keys resolve to ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rule_engine

__all__ = ["RULES", "compile_twin", "first_match"]

_OPEN = "status in ['New', 'Open']"

#: (rule id, rule-engine expression), in the order of bench/rules20.yaml.
RULES: tuple[tuple[str, str], ...] = (
    (
        "sal-sla-breach",
        "status == 'SAL' and status_changed_at != null and status_changed_at < $now - t'PT48H'"
        " and (last_activity_at == null or last_activity_at < status_changed_at)",
    ),
    (
        "test-address",
        f"{_OPEN} and email != null and email =~~ '(?i)^(test|fake|asdf|noreply)[^@]*@'",
    ),
    (
        "misfit-free-mail",
        "status in ['New', 'Open', 'Nurture', 'Unqualified'] and icp_fit == 'weak'"
        " and free_mail == true",
    ),
    ("student", f"{_OPEN} and title != null and 'student' in title.as_lower"),
    (
        "competitor",
        f"{_OPEN} and email_domain in"
        " ['salesforce.com', 'hubspot.com', 'pipedrive.com', 'zoho.com']",
    ),
    ("one-person-company", f"{_OPEN} and employees != null and employees < 5"),
    (
        "misfit-no-authority",
        f"{_OPEN} and icp_fit == 'weak' and decision_maker != true"
        " and seniority in ['individual', 'unknown']",
    ),
    (
        "nurture-untouched-180d",
        "status == 'Nurture' and status_changed_at != null"
        " and status_changed_at < $now - t'P180D'"
        " and (last_activity_at == null or last_activity_at < $now - t'P180D')",
    ),
    (
        "unqualified-untouched-90d",
        "status == 'Unqualified' and status_changed_at != null"
        " and status_changed_at < $now - t'P90D'"
        " and (last_activity_at == null or last_activity_at < $now - t'P90D')",
    ),
    (
        "mql-gone-cold",
        "status == 'MQL' and status_changed_at != null and status_changed_at < $now - t'P30D'"
        " and (last_activity_at == null or last_activity_at < $now - t'P30D')",
    ),
    (
        "marketing-qualified",
        "status in ['New', 'Open', 'Nurture'] and icp_fit in ['strong', 'medium']"
        " and bant_complete == true and last_activity_at != null"
        " and last_activity_at >= $now - t'P30D'",
    ),
    (
        "engaged-executive",
        f"{_OPEN} and icp_fit == 'strong' and decision_maker == true"
        " and last_activity_at != null and last_activity_at >= $now - t'P14D'",
    ),
    (
        "high-score-bant3",
        f"{_OPEN} and icp_score != null and icp_score >= 80"
        " and bant_score != null and bant_score >= 3"
        " and last_activity_at != null and last_activity_at >= $now - t'P30D'",
    ),
    (
        "webinar-attendee",
        "status == 'New' and lead_source == 'Webinar' and last_activity_at != null"
        " and last_activity_at >= $now - t'P7D'",
    ),
    (
        "new-and-touched",
        "status == 'New' and last_activity_at != null and last_activity_at >= $now - t'P14D'"
        " and created_at != null and created_at < $now - t'P2D'",
    ),
    (
        "fit-not-buying",
        f"{_OPEN} and icp_fit in ['strong', 'medium'] and bant_complete != true"
        " and (timeline == null or timeline == '') and created_at != null"
        " and created_at < $now - t'P14D'",
    ),
    (
        "unqualified-reengaged",
        "status == 'Unqualified' and icp_fit in ['strong', 'medium'] and last_activity_at != null"
        " and last_activity_at >= $now - t'P7D'"
        " and not (title != null and 'student' in title.as_lower)"
        " and not (employees != null and employees < 5)",
    ),
    (
        "nurture-reengaged",
        "status == 'Nurture' and last_activity_at != null and last_activity_at >= $now - t'P7D'"
        " and not (icp_fit == 'weak')"
        " and (bant_complete == true or (timeline != null and timeline != ''))",
    ),
    (
        "big-company-unowned",
        "status == 'New' and (owner == null or owner == '')"
        " and ((employees != null and employees >= 1000)"
        " or (annual_revenue != null and annual_revenue > 100000000))",
    ),
    (
        "stale-90d",
        "status in ['New', 'Open', 'MQL'] and ((last_activity_at != null"
        " and last_activity_at < $now - t'P90D') or (last_activity_at == null"
        " and created_at != null and created_at < $now - t'P90D'))",
    ),
)


def compile_twin() -> list[tuple[str, rule_engine.Rule]]:
    """Parse every rule once (as rule-engine users do), in file order."""
    context = rule_engine.Context(default_value=None, default_timezone="UTC")
    return [(rule_id, rule_engine.Rule(text, context=context)) for rule_id, text in RULES]


def first_match(
    rules: Sequence[tuple[str, rule_engine.Rule]], lead: Mapping[str, Any]
) -> str | None:
    """Id of the first rule matching ``lead`` (first_match semantics), or None."""
    for rule_id, rule in rules:
        if rule.matches(lead):
            return rule_id
    return None
