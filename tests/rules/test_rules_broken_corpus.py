"""Every broken rule file in tests/rules/broken/ gets its own precise error: line, column, a
plain-English message and, for typos, the right did-you-mean suggestion. Nothing but
RuleLoadError ever leaves the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleIssue, RuleLoadError, load_ruleset

BROKEN = Path(__file__).with_name("broken")
SETTABLE = ["lead_source"]
NEWSLETTERS = ["newsletter", "webinar"]

# file -> (line, column, part of the message, suggestion)
EXPECTED: dict[str, tuple[int, int, str, str | None]] = {
    "key_typo_wen": (6, 5, "unknown key 'wen' in the rule", "when"),
    "field_typo_titel": (6, 19, "unknown field 'titel'", "title"),
    "operator_typo_older_then": (6, 37, "unknown operator 'older_then'", "older_than"),
    "status_typo_in_set_status": (8, 21, "unknown status 'Nurtur' in set_status", "Nurture"),
    "action_typo_set_stauts": (8, 9, "unknown action 'set_stauts'", "set_status"),
    "unknown_action": (8, 9, "unknown action 'send_email'", None),
    "bad_regex": (
        6,
        35,
        "invalid regular expression '(intern|student': missing ), unterminated subpattern",
        None,
    ),
    "regex_matching_empty": (6, 35, "also matches empty text", None),
    "bad_duration": (
        6,
        49,
        "'90dd' is not a duration; use a number followed by m, h, d or w",
        None,
    ),
    "integer_field_compared_with_text": (
        6,
        35,
        "'employees' is a whole-number field; got text",
        None,
    ),
    "boolean_field_compared_with_text": (6, 34, "'free_mail' is a true/false field", None),
    "contains_on_number_field": (6, 30, "operator 'contains' needs a text field", None),
    "older_than_on_text_field": (6, 26, "operator 'older_than' needs a date/time field", None),
    "bad_iso_date": (6, 35, "'created_at' is a date/time field; compare it with an ISO date", None),
    "empty_text_value": (6, 30, "use `missing: true` instead", None),
    "duplicate_rule_id": (
        9,
        9,
        "duplicate rule id 'stale' (first used by the rule at line 5)",
        None,
    ),
    "duplicate_yaml_key": (9, 5, "duplicate key 'when' (first at line 6)", None),
    "yaml_syntax_unclosed_flow": (7, 9, "YAML syntax error: expected ',' or '}'", None),
    "tab_indentation": (6, 1, "YAML does not allow tabs for indentation; use spaces", None),
    "empty": (1, 1, "the file is empty", None),
    "not_a_mapping": (1, 1, "the top level of a rule file must be a mapping", None),
    "missing_rule_id": (5, 5, "missing required key 'id' in the rule", None),
    "missing_field_key": (6, 11, "missing required key 'field' in a condition", None),
    "missing_version_and_name": (1, 1, "missing required key 'version'", None),
    "set_field_not_allowed": (8, 28, "field 'industry' is not on the settable allowlist", None),
    "set_field_on_status": (8, 28, "use `set_status` (or `archive`) to change the status", None),
    "unknown_newsletter": (9, 28, "unknown newsletter 'newsleter'", "newsletter"),
    "two_operators_in_leaf": (6, 38, "exactly one operator, found 2: gt, lt", None),
    "empty_then": (7, 11, "the rule has no actions", None),
    "empty_in_list": (6, 32, "'in' needs at least one value", None),
    "archive_without_archive_status": (8, 9, "`archive` needs an archive status", None),
    "unknown_status_in_transitions": (5, 30, "unknown status 'Unqualfied' in transitions", None),
    "unknown_status_in_protected": (4, 13, "unknown status 'Convertd' in protected", "Converted"),
    "unknown_status_in_condition": (8, 37, "unknown status 'Opne' in a condition", "Open"),
    "unsupported_version": (1, 10, "unsupported version 2", None),
    "unknown_mode": (3, 7, "unknown mode 'first-match'", "first_match"),
    "condition_is_text": (6, 11, "a condition must be a mapping", None),
    "leaf_next_to_all": (9, 7, "'field' cannot sit next to `all`", None),
    "two_actions_in_one_item": (8, 9, "an action has exactly one key, found 2", None),
    "two_statuses_in_one_rule": (9, 9, "a rule sets at most one status", None),
    "bad_rule_id": (5, 9, "rule id 'stale leads' may contain only letters", None),
    "stop_with_argument": (9, 15, "`stop` takes no arguments; write `stop: {}`", None),
    "unknown_field_reference": (
        6,
        49,
        "unknown field 'status_changed' to compare",
        "status_changed_at",
    ),
    "rules_not_a_list": (5, 3, "'rules' must be a list, not a mapping", None),
}


def _load_issues(name: str) -> list[RuleIssue]:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(BROKEN / f"{name}.yaml", settable_fields=SETTABLE, newsletters=NEWSLETTERS)
    return caught.value.issues


def test_corpus_is_large_and_every_file_has_an_expectation() -> None:
    files = {p.stem for p in BROKEN.glob("*.yaml")}
    assert len(files) >= 30
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_reports_its_error_at_the_offending_line_and_column(name: str) -> None:
    line, column, text, suggestion = EXPECTED[name]
    errors = [i for i in _load_issues(name) if i.severity == "error"]
    first = errors[0]
    assert (first.line, first.column) == (line, column), str(first)
    assert text in first.message
    assert first.suggestion == suggestion
    assert first.file == str(BROKEN / f"{name}.yaml")
    rendered = str(first)
    assert rendered.startswith(f"{BROKEN / name}.yaml:{line}:{column}: ")
    if suggestion:
        assert rendered.endswith(f"(did you mean '{suggestion}'?)")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_names_the_rule_the_error_is_in(name: str) -> None:
    first = next(i for i in _load_issues(name) if i.severity == "error")
    text = (BROKEN / f"{name}.yaml").read_text()
    lines = text.splitlines()
    rule_ids = [
        ln.split("id:", 1)[1].strip()
        for ln in lines[: first.line]
        if ln.strip().startswith("- id:")
    ]
    inside_rules = any(ln.startswith("rules:") for ln in lines[: first.line - 1])
    if first.rule_id is not None:
        assert rule_ids and first.rule_id == rule_ids[-1]
        assert f"rule '{first.rule_id}': " in str(first)
    elif inside_rules and rule_ids and name != "missing_rule_id":
        pytest.fail(f"error inside rule '{rule_ids[-1]}' does not name it: {first}")


def test_typo_error_names_the_rule_and_suggests_the_field() -> None:
    (issue,) = _load_issues("field_typo_titel")
    assert str(issue) == (
        f"{BROKEN / 'field_typo_titel.yaml'}:6:19: rule 'stale': unknown field 'titel'; "
        "conditions can use the canonical lead fields (rules/fields.py) and custom fields "
        "declared in config (did you mean 'title'?)"
    )


def test_all_errors_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "version: 1\n"
        "name: many\n"
        "mod: first_match\n"
        "statuses: {New: {}, Nurture: {}}\n"
        "rules:\n"
        "  - id: one\n"
        "    when: {field: titel, eq: x}\n"
        "    then:\n"
        "      - set_stauts: New\n"
        "  - id: two\n"
        "    when:\n"
        "      all:\n"
        "        - {field: last_activity_at, older_then: 90d}\n"
        "        - {field: created_at, older_than: 90dd}\n"
        "    then:\n"
        "      - set_status: Nurtue\n"
    )
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(path)
    found = [(i.line, i.column, i.rule_id, i.suggestion) for i in caught.value.issues]
    assert found == [
        (3, 1, None, "mode"),
        (7, 19, "one", "title"),
        (9, 9, "one", "set_status"),
        (13, 37, "two", "older_than"),
        (14, 43, "two", None),
        (16, 21, "two", "Nurture"),
    ]
    assert str(caught.value).startswith("6 errors in rule files:\n")


def test_unreadable_path_is_a_load_error_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(tmp_path / "missing.yaml")
    assert "cannot read the rule file" in caught.value.issues[0].message


def test_non_utf8_file_is_a_load_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\nname: x\n# caf\xe9\n")
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(path)
    issue = caught.value.issues[0]
    assert (issue.line, "UTF-8") == (3, "UTF-8") and "UTF-8" in issue.message


def test_warnings_alone_do_not_stop_a_load_and_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(
        "version: 1\nname: s\nstatuses: {New: {}, Nurture: {}}\nrules:\n"
        "  - id: catch-all\n    then: [{set_status: Nurture}]\n"
        "  - id: never\n    when: {field: title, eq: x}\n    then: [{set_status: New}]\n"
    )
    ruleset = load_ruleset(path)
    (warning,) = ruleset.warnings
    assert warning.severity == "warning" and warning.rule_id == "never"
    assert (warning.line, warning.column) == (7, 5)
    assert "can never match: rule 'catch-all' (line 5) matches every lead" in warning.message
    assert str(warning).startswith(f"{path}:7:5: warning: rule 'never': ")


@pytest.mark.timeout(30)
def test_self_referencing_yaml_anchor_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "anchor.yaml"
    path.write_text(
        "version: 1\nname: x\nrules:\n  - id: r\n    when: &w {all: [*w]}\n    then: [{stop: {}}]\n"
    )
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(path)
    assert caught.value.issues[0].rule_id == "r"


def test_structure_errors_in_the_header_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "header.yaml"
    path.write_text(
        "version: 1\nname: x\nstatuses: [New]\ntransitions: [New]\n"
        "protected: {New: 1}\nstatuses2: {}\n"
        "rules:\n  - id: r\n    then: [{archive: {}}]\n"
    )
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(path)
    assert [(i.line, i.message.split(",")[0]) for i in caught.value.issues] == [
        (3, "'statuses' must be a mapping"),
        (4, "'transitions' must be a mapping"),
        (5, "'protected' must be a list"),
        (6, "unknown key 'statuses2' at the top level of the rule set"),
        (
            9,
            "`archive` needs an archive status: this set has no 'Archived' status and no "
            "`archive_status`; add one",
        ),
    ]
