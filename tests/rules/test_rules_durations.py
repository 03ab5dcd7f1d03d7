"""One duration grammar: the config file and the rule language accept the same forms, reject the
same bad ones with the same message, and an absurdly long duration is a located error on either
side, never an OverflowError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rules import RuleBook, RuleLoadError, load_ruleset
from rules.durations import MAX_DURATION
from syncd.settings import load_settings, parse_duration
from syncd.yamlfile import YamlFileError

GOOD = {
    "30s": timedelta(seconds=30),
    "15m": timedelta(minutes=15),
    "48h": timedelta(hours=48),
    "90d": timedelta(days=90),
    "2w": timedelta(weeks=2),
    "1.5h": timedelta(minutes=90),
    " 90 d ": timedelta(days=90),
    "0d": timedelta(0),
    "365000d": MAX_DURATION,
}
BAD = ["90dd", "30", "d", "-5m", "5 minutes", "1e3s", "", "5M", "2y", "1,5h", "P1D"]
TOO_LONG = ["365001d", "99999999999999999999d", "100000000000w"]


def _rule_file(tmp_path: Path, duration: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nname: d\nstatuses: {New: {}}\nrules:\n"
        "  - id: r\n"
        f"    when: {{field: last_activity_at, older_than: '{duration}'}}\n"
        "    then: [{set_status: New}]\n"
    )
    return path


def _rule_error(tmp_path: Path, duration: str) -> tuple[int, int, str]:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(_rule_file(tmp_path, duration))
    (issue,) = caught.value.issues
    return issue.line, issue.column, issue.message


def _config_error(tmp_path: Path, duration: str) -> tuple[int, int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(f"outbox:\n  retry_base: '{duration}'\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(path)
    (problem,) = caught.value.problems
    return problem.line, problem.column, problem.message


@pytest.mark.parametrize("text", sorted(GOOD))
def test_config_and_rules_accept_the_same_duration_forms(tmp_path: Path, text: str) -> None:
    assert parse_duration(text) == GOOD[text]
    ruleset = load_ruleset(_rule_file(tmp_path, text))
    assert ruleset.durations == (GOOD[text],)


@pytest.mark.parametrize("text", BAD + TOO_LONG)
def test_config_and_rules_reject_the_same_bad_durations_with_the_same_message(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(ValueError, match=r".") as direct:  # the message is compared below
        parse_duration(text)
    line, column, rule_message = _rule_error(tmp_path, text)
    assert (line, column) == (6, 49)  # the value after `older_than:`
    assert rule_message == str(direct.value)
    config_line, config_column, config_message = _config_error(tmp_path, text)
    assert (config_line, config_column) == (2, 3)
    assert config_message.endswith(rule_message)


@pytest.mark.parametrize("text", TOO_LONG)
def test_overlong_duration_says_it_is_too_long(tmp_path: Path, text: str) -> None:
    assert "is too long: a duration may be at most 365000d" in _rule_error(tmp_path, text)[2]


def test_bad_duration_message_names_every_unit() -> None:
    with pytest.raises(
        ValueError,
        match=r"'90dd' is not a duration; use a number followed by "
        r"m, h, d or w, or s for seconds",
    ):
        parse_duration("90dd")


@pytest.mark.parametrize("written", ["1e300", ".inf", ".nan", "-5", "1" + "0" * 30])
def test_config_number_of_seconds_out_of_range_is_a_located_error(
    tmp_path: Path, written: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"outbox:\n  retry_base: {written}\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (2, 3)
    assert "duration" in problem.message


def test_config_still_takes_plain_seconds_and_rejects_true(tmp_path: Path) -> None:
    assert parse_duration(45) == timedelta(seconds=45)
    assert parse_duration(2.5) == timedelta(seconds=2.5)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(True)


def test_longest_duration_evaluates_without_overflow(tmp_path: Path) -> None:
    book = RuleBook([load_ruleset(_rule_file(tmp_path, "365000d"))])
    ancient = datetime(1020, 1, 1, tzinfo=UTC)
    assert book.evaluate({"last_activity_at": ancient}, datetime(2026, 1, 1)).status == "New"
    assert (
        book.evaluate(
            {"last_activity_at": datetime(2025, 1, 1, tzinfo=UTC)}, datetime(2026, 1, 1)
        ).status
        is None
    )
