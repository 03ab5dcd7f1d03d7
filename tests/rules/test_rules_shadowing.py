"""A first_match rule that an earlier rule makes unreachable is found however the conditions are
written, and the warning names the earliest rule that takes its leads."""

from __future__ import annotations

from pathlib import Path

from rules import load_ruleset


def _warnings(tmp_path: Path, rules: str) -> list[tuple[str | None, str]]:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nname: s\nstatuses: {New: {}, Open: {}}\nrules:\n" + rules)
    return [(w.rule_id, w.message) for w in load_ruleset(path).warnings]


def test_warning_names_the_earliest_broader_rule_not_the_closest(tmp_path: Path) -> None:
    found = _warnings(
        tmp_path,
        (
            "  - id: wide\n    when: {all: [{field: title, eq: CEO}, {field: email, present: true}]}\n"
            "    then: [{set_status: New}]\n"
            "  - id: wider\n    when: {field: title, eq: CEO}\n    then: [{set_status: Open}]\n"
            "  - id: narrow\n"
            "    when: {all: [{field: email, present: true}, {field: title, eq: CEO},"
            " {field: crm, eq: hubspot}]}\n"
            "    then: [{set_status: Open}]\n"
        ),
    )
    assert [rule for rule, _ in found] == ["narrow"]
    assert "rule 'wide' (line 5) has a broader condition" in found[0][1]


def test_same_condition_written_in_another_key_order_is_found(tmp_path: Path) -> None:
    found = _warnings(
        tmp_path,
        (
            "  - id: first\n    when: {field: title, eq: CEO}\n    then: [{set_status: New}]\n"
            "  - id: again\n    when: {eq: CEO, field: title}\n    then: [{set_status: Open}]\n"
        ),
    )
    assert found == [
        (
            "again",
            "this rule can never match: rule 'first' (line 5) has the same "
            "condition and comes first in this first_match set; move this "
            "rule above it or narrow the earlier rule",
        )
    ]


def test_text_and_boolean_values_are_different_conditions(tmp_path: Path) -> None:
    assert (
        _warnings(
            tmp_path,
            (
                "  - id: text\n    when: {field: title, eq: 'true'}\n    then: [{set_status: New}]\n"
                "  - id: number\n    when: {field: employees, eq: 1}\n    then: [{set_status: New}]\n"
                "  - id: decimal\n    when: {field: annual_revenue, eq: 1.0}\n"
                "    then: [{set_status: Open}]\n"
                "  - id: whole\n    when: {field: annual_revenue, eq: 1}\n"
                "    then: [{set_status: Open}]\n"
            ),
        )
        == []
    )


def test_text_with_a_lone_surrogate_is_a_condition_like_any_other(tmp_path: Path) -> None:
    found = _warnings(
        tmp_path,
        (
            '  - id: odd\n    when: {field: title, eq: "\\ud800x"}\n'
            "    then: [{set_status: New}]\n"
            '  - id: again\n    when: {field: title, eq: "\\ud800x"}\n'
            "    then: [{set_status: Open}]\n"
        ),
    )
    assert [rule for rule, _ in found] == ["again"]
