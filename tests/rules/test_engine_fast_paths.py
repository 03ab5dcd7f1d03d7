"""The rule book's shortcuts decide exactly what evaluating every rule in full decides.

Per status, a rule is run without its top-level status tests (known true for that status), and a
decision moving a lead to a status no rule can match is not evaluated again. The reference here
runs every rule's whole condition in file order and always evaluates the would-be state.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from bench.realistic import realistic_leads
from rules import Decision, RuleBook, load_rulebook
from rules.engine import CompiledRule, _would_be
from syncd.enrichment import Enricher, EnrichmentSettings

_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_ROOT = Path(__file__).resolve().parents[2]
_BOOKS = {
    "bench20": (_ROOT / "bench" / "rules20.yaml", {"newsletter"}),
    "default": (_ROOT / "rules" / "default.yaml", None),
}
_STATUSES = ("New", "Open", "MQL", "SAL", "SQL", "Nurture", "Unqualified", "Archived")


def _leads(n: int) -> list[dict[str, Any]]:
    """Rule inputs as the planner builds them: typed fields, enrichment, a status (sometimes
    one outside the vocabulary, missing or not text), when it was set."""
    rng = random.Random(4)
    enricher = Enricher(EnrichmentSettings())
    out = []
    for lead in realistic_leads(n, seed=8, now=_NOW):
        changed = lead.pop("_status_changed_at")
        rule_input = {**lead, **enricher.enrich(lead).values}
        rule_input["status"] = rng.choice((*_STATUSES, lead["status"], "Weird", None, 7))
        rule_input["status_changed_at"] = changed
        rule_input["newsletters"] = rng.choice((None, "newsletter"))
        out.append(rule_input)
    return out


def _reference_matching(book: RuleBook, lead: dict[str, Any]) -> list[CompiledRule]:
    th = book._thresholds(_NOW)
    matched: list[CompiledRule] = []
    for k, rs in enumerate(book.sets):
        for rule in rs.rules:
            if rule.cond(lead, th[k]):
                matched.append(rule)
                if rs.mode == "first_match" or rule.stop:
                    break
        if matched and matched[-1].stop:
            break
    return matched


@pytest.mark.parametrize("name", sorted(_BOOKS))
def test_status_scoped_rules_match_what_the_full_conditions_match(name: str) -> None:
    path, newsletters = _BOOKS[name]
    book = load_rulebook([path], newsletters=newsletters)
    th = book._thresholds(_NOW)
    for lead in _leads(3000):
        assert book._matching(lead, th) == _reference_matching(book, lead), lead


@pytest.mark.parametrize("name", sorted(_BOOKS))
def test_settled_shortcut_decides_what_evaluating_the_would_be_state_decides(name: str) -> None:
    path, newsletters = _BOOKS[name]
    fast = load_rulebook([path], newsletters=newsletters)
    full = load_rulebook([path], newsletters=newsletters)
    full._inert = frozenset()  # always evaluate the would-be state
    if name == "bench20":  # the shortcut is exercised: no rule matches an archived lead
        assert "Archived" in fast._inert
    for lead in _leads(3000):
        assert fast.evaluate(lead, _NOW) == full.evaluate(lead, _NOW), lead


def _reference_would_be(lead: dict[str, Any], decision: Decision, now: datetime) -> dict[str, Any]:
    """The would-be state as written before its fast paths (every step, every lead)."""
    state = dict(lead)
    if decision.status is not None and decision.status != lead.get("status"):
        state["status"] = decision.status
        state["status_changed_at"] = now
    state.update(decision.field_sets)
    if decision.newsletters:
        joined = [n for n in str(lead.get("newsletters") or "").split(",") if n]
        joined += [n for n in decision.newsletters if n not in joined]
        state["newsletters"] = ",".join(joined)
    return state


@pytest.mark.parametrize("joined", [None, "", "a", "a,,b", "b,a", 0, False])
@pytest.mark.parametrize(
    "decision",
    [
        Decision(rule_id="r", status="Nurture", newsletters=("a", "c")),
        Decision(rule_id="r", newsletters=("c",), field_sets=MappingProxyType({"x": 1})),
        Decision(rule_id="r", status="New", field_sets=MappingProxyType({"newsletters": "z"})),
        Decision(rule_id="r", status="New"),
    ],
)
def test_would_be_state_is_the_reference_state_for_any_joined_newsletters(
    joined: object, decision: Decision
) -> None:
    lead = {"status": "New", "status_changed_at": None, "newsletters": joined, "x": 0}
    got = _would_be(lead, decision, _NOW)
    want = _reference_would_be(lead, decision, _NOW)
    assert got == want and list(got) == list(want)
