"""A rule file with 10,000 rules loads completely and correctly: every rule compiled, in order,
at its line, its durations shared, a shadowed rule found, and a typo near the end located."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rules import RuleBook, RuleLoadError, load_rulebook

N = 10_000
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _rule(i: int) -> list[str]:
    """Rule i; four kinds of rule, every one with its own `employees` bound."""
    kind = i % 4
    extra = [
        [
            f"        - {{field: last_activity_at, older_than: {i % 400 + 1}d}}",
            "        - {field: status, in: [New, Open]}",
        ],
        [
            f"        - {{field: title, matches: '(?i)intern{i}'}}",
            "        - {field: email, present: true}",
        ],
        ["        - any:", f"            - {{field: country, eq: C{i}}}"],
        [
            f"        - {{field: created_at, within: {i % 50 + 1}w}}",
            "        - {field: free_mail, eq: false}",
        ],
    ][kind]
    action = [
        "set_status: Nurture",
        "archive: {}",
        "set_status: Unqualified",
        "add_to_newsletter: newsletter",
    ][kind]
    return [
        f"  - id: rule-{i}",
        "    when:",
        "      all:",
        f"        - {{field: employees, gt: {i}}}",
        *extra,
        "    then:",
        f"      - {action}",
    ]


def _durations() -> set[timedelta]:
    return {timedelta(days=i % 400 + 1) for i in range(0, N, 4)} | {
        timedelta(weeks=i % 50 + 1) for i in range(3, N, 4)
    }


LINES_PER_RULE = len(_rule(0))
HEADER = [
    "version: 1",
    "name: big",
    "mode: first_match",
    "statuses: {New: {}, Open: {}, Nurture: {}, Unqualified: {}, Archived: {}}",
    # Without guards, archiving and disqualifying any lead would undo each other (a loop
    # `rules check` rejects).
    "transitions: {Unqualified: {from: [New, Open]}}",
    "rules:",
]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    lines = list(HEADER)
    for i in range(N):
        lines += _rule(i)
    # shadowed: rule-0's three conditions and one more, later in a first_match set
    lines += [
        "  - id: shadowed",
        "    when:",
        "      all:",
        "        - {field: status, in: [New, Open]}",
        "        - {field: employees, gt: 0}",
        "        - {field: title, eq: CEO}",
        "        - {field: last_activity_at, older_than: 1d}",
        "    then:",
        "      - set_status: Open",
    ]
    return _write(tmp_path_factory.mktemp("scale"), lines), lines


@pytest.fixture(scope="module")
def big_book(big_file: tuple[Path, list[str]]) -> RuleBook:
    return load_rulebook([big_file[0]], newsletters=["newsletter"])


@pytest.mark.slow
def test_ten_thousand_rules_load_in_order_at_their_lines(
    big_file: tuple[Path, list[str]], big_book: RuleBook
) -> None:
    lines, book = big_file[1], big_book
    (ruleset,) = book.sets
    assert len(ruleset.rules) == N + 1
    for i in (0, 1, 2, 3, 4_999, N - 1):
        rule = ruleset.rules[i]
        assert rule.id == f"rule-{i}"
        assert rule.line == len(HEADER) + 1 + i * LINES_PER_RULE
        assert lines[rule.line - 1] == f"  - id: rule-{i}"
    assert set(ruleset.durations) == _durations()
    assert len(ruleset.durations) == len(_durations())  # each duration stored once
    assert book.target_statuses == {"Nurture", "Archived", "Unqualified"} | {"Open"}
    assert book.newsletters_used == {"newsletter"}


@pytest.mark.slow
def test_ten_thousand_rules_evaluate_as_written(big_book: RuleBook) -> None:
    evaluate = big_book.bind(NOW)
    stale = evaluate({"employees": 5, "status": "New", "last_activity_at": NOW - timedelta(2)})
    assert (stale.rule_id, stale.status) == ("rule-0", "Nurture")
    intern = evaluate({"employees": 9_000, "title": "Intern8001", "email": "a@b.co"})
    assert (intern.rule_id, intern.status, intern.archived) == ("rule-8001", "Archived", True)
    foreign = evaluate({"employees": 9_999, "country": "C9998", "status": "New"})
    assert (foreign.rule_id, foreign.status) == ("rule-9998", "Unqualified")
    recent = evaluate({"employees": 7_500, "free_mail": False, "created_at": NOW - timedelta(1)})
    assert recent.rule_id == "rule-3" and recent.newsletters == ("newsletter",)
    assert evaluate({"employees": 0}).rule_id is None


@pytest.mark.slow
def test_shadowed_rule_among_ten_thousand_names_the_earliest_broader_rule(
    big_book: RuleBook,
) -> None:
    warnings = {w.rule_id: w for w in big_book.warnings}
    warning = warnings.pop("shadowed")
    assert warning.line == len(HEADER) + 1 + N * LINES_PER_RULE
    assert f"rule 'rule-0' (line {len(HEADER) + 1}) has a broader condition" in warning.message
    # A larger `employees` bound implies a smaller one: a rule is also shadowed by the first
    # rule of its kind with the same other conditions (`older_than` repeats every 400 rules,
    # `within` every 50 of its kind).
    expected = {f"rule-{i}": i % 400 for i in range(400, N, 4)} | {
        f"rule-{i}": i % 100 for i in range(103, N, 4)
    }
    assert set(warnings) == set(expected)
    for rule_id, first in expected.items():
        assert f"rule 'rule-{first}' (line {len(HEADER) + 1 + first * LINES_PER_RULE})" in (
            warnings[rule_id].message
        )


@pytest.mark.slow
def test_typo_near_the_end_of_ten_thousand_rules_is_located(
    tmp_path: Path, big_file: tuple[Path, list[str]]
) -> None:
    lines = list(big_file[1])
    at = len(HEADER) + (N - 2) * LINES_PER_RULE + 3  # rule 9998's `employees` line
    lines[at] = lines[at].replace("employees", "employes")
    lines.append("      - set_stauts: Open")
    with pytest.raises(RuleLoadError) as caught:
        load_rulebook([_write(tmp_path, lines)], newsletters=["newsletter"])
    errors = [i for i in caught.value.issues if i.severity == "error"]
    assert [(i.line, i.rule_id, i.suggestion) for i in errors] == [
        (at + 1, "rule-9998", "employees"),
        (len(lines), "shadowed", "set_status"),
    ]
