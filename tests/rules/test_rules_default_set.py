"""The shipped rule content: the default lifecycle set passes its fixtures, a wrong fixture is
reported by name, the shipped JSON schema is the generated one and the YAML files follow it."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rules import (
    RuleBook,
    load_rulebook,
    load_ruleset,
    ruleset_json_schema,
    run_fixtures,
)
from rules.schema import SCHEMA_PATH
from rules.yamlread import round_trip_yaml

RULES = Path(__file__).resolve().parents[2] / "rules"
DEFAULT = RULES / "default.yaml"
FIXTURES = sorted((RULES / "fixtures" / "default").glob("*.yaml"))
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def default_book() -> RuleBook:
    return load_rulebook([DEFAULT], newsletters=["newsletter"])


def test_default_set_loads_without_warnings_but_its_re_engagement_cycle(
    default_book: RuleBook,
) -> None:
    # Nurture -> MQL (engaged again) -> Nurture (quiet for 90 days) is the lifecycle working;
    # it needs time and new CRM activity, so `rules check` lists it as a warning, nothing else.
    assert [w.rule_id for w in default_book.warnings] == ["marketing-qualified"]
    assert (
        "'marketing-qualified' and 'stale-90d' can undo each other"
        in default_book.warnings[0].message
    )
    assert default_book.statuses == {
        "New",
        "Open",
        "MQL",
        "SAL",
        "SQL",
        "Nurture",
        "Unqualified",
        "Archived",
        "Converted",
    }
    assert default_book.newsletters_used == {"newsletter"}
    assert default_book.fields_written == set()


def test_default_set_leaves_sales_acceptance_and_qualification_to_people(
    default_book: RuleBook,
) -> None:
    assert default_book.target_statuses == {"MQL", "Nurture", "Unqualified", "Archived"}
    for current in ("SQL", "Converted"):
        for target in default_book.target_statuses:
            assert default_book.check_transition(current, target) is not None


def test_every_default_rule_target_is_reachable_from_somewhere(default_book: RuleBook) -> None:
    (ruleset,) = default_book.sets
    for rule in ruleset.rules:
        assert rule.status is not None
        sources = ruleset.transitions.get(rule.status, ruleset.statuses)
        assert any(
            default_book.check_transition(s, rule.status) is None
            for s in sources
            if s != rule.status
        ), rule.id


def test_default_fixtures_all_pass(default_book: RuleBook) -> None:
    report = run_fixtures(FIXTURES, default_book)
    assert report.failures == [], str(report)
    assert report.passed >= 15 and report.ok


def test_default_fixtures_cover_every_rule_and_the_guards(default_book: RuleBook) -> None:
    expected_rules: set[str] = set()
    blocked = 0
    nulls = 0
    for path in FIXTURES:
        for case in round_trip_yaml().load(path.read_text())["cases"]:
            expect = case["expect"]
            expected_rules.add(expect.get("rule"))
            blocked += bool(expect.get("blocked"))
            nulls += expect.get("status", "x") is None
    assert {r.id for r in default_book.sets[0].rules} <= expected_rules
    assert blocked >= 3 and nulls >= 5


def test_a_wrong_fixture_is_reported_as_a_failure_with_its_case_name(
    tmp_path: Path, default_book: RuleBook
) -> None:
    fixture = tmp_path / "wrong.yaml"
    fixture.write_text(f"""\
ruleset: {DEFAULT}
now: 2026-03-02T09:00:00Z
cases:
  - name: right
    lead: {{status: New, created_at: 2025-10-01T10:00:00Z}}
    expect: {{status: Nurture, rule: stale-90d}}
  - name: stale SAL stays SAL (wrong on purpose)
    lead: {{status: SAL, status_changed_at: 2026-02-20T10:00:00Z}}
    expect: {{status: SAL, rule: sal-follow-up-breached, newsletters: [newsletter]}}
  - name: typo in a lead field
    lead: {{titel: CEO}}
    expect: {{status: null}}
""")
    report = run_fixtures([fixture], default_book)
    assert report.passed == 1 and not report.ok
    wrong, typo = report.failures
    assert wrong.name == "stale SAL stays SAL (wrong on purpose)" and wrong.line == 7
    assert wrong.problems == (
        "status: expected 'SAL', got 'MQL'",
        "newsletters: expected ['newsletter'], got []",
    )
    assert "FAIL stale SAL stays SAL (wrong on purpose)" in str(report)
    assert typo.problems == ("lead field 'titel' is not a known field (did you mean 'title'?)",)
    assert str(report).endswith("1 passed, 2 failed")


def test_fixture_for_a_rule_file_outside_the_book_is_a_failure_not_a_pass(
    tmp_path: Path, default_book: RuleBook
) -> None:
    fixture = tmp_path / "other.yaml"
    fixture.write_text("ruleset: other.yaml\nnow: 2026-03-02T09:00:00Z\ncases: []\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ruleset: [\n")
    report = run_fixtures([fixture, broken], default_book)
    assert [f.name for f in report.failures] == ["<file>", "<file>"]
    assert "not in the loaded rule book" in report.failures[0].problems[0]
    assert "YAML syntax error" in report.failures[1].problems[0]


def test_prepare_hook_enriches_fixture_leads_before_evaluation(
    tmp_path: Path, default_book: RuleBook
) -> None:
    fixture = tmp_path / "raw.yaml"
    fixture.write_text(f"""\
ruleset: {DEFAULT}
now: 2026-03-02T09:00:00Z
cases:
  - name: free mail derived by the daemon
    lead: {{status: New, email: jo@gmail.com}}
    expect: {{status: Archived, archived: true}}
""")
    seen: list[dict[str, Any]] = []

    def prepare(lead: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(lead))
        return {**lead, "free_mail": lead["email"].endswith("@gmail.com"), "icp_fit": "weak"}

    assert not run_fixtures([fixture], default_book).ok
    assert run_fixtures([fixture], default_book, prepare=prepare).ok
    assert seen == [{"status": "New", "email": "jo@gmail.com"}]


def test_fixtures_run_against_a_book_with_more_sets(tmp_path: Path) -> None:
    book = load_rulebook(
        [DEFAULT, RULES / "tagging.example.yaml"], settable_fields=["lead_source", "industry"]
    )
    report = run_fixtures(FIXTURES, book)
    assert report.ok, str(report)


def test_tagging_example_is_an_all_match_set_that_tags_and_invites() -> None:
    book = load_rulebook(
        [RULES / "tagging.example.yaml"], settable_fields=["lead_source", "industry"]
    )
    decision = book.evaluate(
        {
            "lead_source": "Zoom webinar",
            "industry": "Enterprise Software",
            "decision_maker": True,
            "icp_score": 70,
            "status": "Open",
        },
        NOW,
    )
    assert decision.matched_rules == (
        "tag-webinar-source",
        "tag-software-industry",
        "invite-decision-makers",
    )
    assert dict(decision.field_sets) == {"lead_source": "Webinar", "industry": "Software"}
    assert decision.newsletters == ("webinar",)


def test_shipped_schema_file_equals_the_generated_schema() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text())
    assert shipped == ruleset_json_schema(), "regenerate with: python -m rules.schema"


@pytest.mark.parametrize("path", [DEFAULT, RULES / "tagging.example.yaml"], ids=lambda p: p.name)
def test_shipped_rule_files_validate_against_the_schema_and_point_editors_to_it(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./ruleset.schema.json\n")
    document = json.loads(json.dumps(round_trip_yaml().load(text)))
    jsonschema.Draft202012Validator(ruleset_json_schema()).validate(document)


def test_schema_rejects_what_the_loader_rejects_structurally() -> None:
    validator = jsonschema.Draft202012Validator(ruleset_json_schema())
    base: dict[str, Any] = {
        "version": 1,
        "name": "x",
        "rules": [{"id": "a", "then": [{"set_status": "New"}]}],
    }
    assert validator.is_valid(base)
    for broken in (
        {**base, "mod": "first_match"},
        {**base, "rules": [{"id": "a", "wen": {}, "then": [{"set_status": "New"}]}]},
        {**base, "rules": [{"id": "a", "then": [{"set_stauts": "New"}]}]},
        {**base, "rules": [{"id": "a", "then": []}]},
        {
            **base,
            "rules": [
                {"id": "a", "when": {"field": "x", "older_then": "9d"}, "then": [{"stop": {}}]}
            ],
        },
    ):
        assert not validator.is_valid(broken), broken


def test_default_set_copied_elsewhere_has_the_same_version(
    tmp_path: Path, default_book: RuleBook
) -> None:
    copy = tmp_path / "default.yaml"
    shutil.copy(DEFAULT, copy)
    assert load_rulebook([copy]).version == default_book.version
    assert load_ruleset(copy).version == default_book.sets[0].version
