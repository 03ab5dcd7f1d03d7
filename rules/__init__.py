"""The syncd rule language: admin-written YAML rule sets, compiled once, evaluated per lead.

Pure code: no HTTP, no database; a lead is a plain mapping of canonical field names
(:mod:`rules.fields`) to values. The daemon wires exactly this API::

    book = load_rulebook(
        [Path("rules/default.yaml")],
        settable_fields=...,
        newsletters=...,
        calendar=Calendar.build("Europe/Berlin"),
    )  # business time, dates
    decision = book.evaluate(lead, now)  # or: evaluate = book.bind(now); evaluate(lead)
    decision.status, decision.chain  # final state of the chain: one write
    book.explain(lead, now)  # per-rule trace for `syncd rules explain`
    run_fixtures(paths, book, prepare=enrich)  # `syncd rules test`

Errors: :class:`RuleLoadError` (``.issues``: every :class:`RuleIssue` of every file; loops and
rules that can never fire: :mod:`rules.analysis`). Semantics of evaluation and convergence:
:mod:`rules.engine`; null semantics: :mod:`rules.conditions`; working time: :mod:`rules.calendar`.
"""

from __future__ import annotations

from rules.calendar import Calendar, CalendarError
from rules.engine import (
    Conflict,
    Decision,
    GuardBlock,
    RuleBook,
    RuleSet,
    RuleTrace,
)
from rules.fields import STANDARD_FIELDS, FieldType
from rules.fixtures import CaseResult, FixtureReport, run_fixtures
from rules.issues import RuleIssue, RuleLoadError
from rules.loader import load_rulebook, load_ruleset
from rules.schema import ruleset_json_schema
from rules.scope import can_apply

__all__ = [
    "STANDARD_FIELDS",
    "Calendar",
    "CalendarError",
    "CaseResult",
    "Conflict",
    "Decision",
    "FieldType",
    "FixtureReport",
    "GuardBlock",
    "RuleBook",
    "RuleIssue",
    "RuleLoadError",
    "RuleSet",
    "RuleTrace",
    "can_apply",
    "load_rulebook",
    "load_ruleset",
    "ruleset_json_schema",
    "run_fixtures",
]
