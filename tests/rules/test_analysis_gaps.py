"""What `syncd rules check` and loading promise an admin: a regex that can stall the cycle is
refused and a harmless one is not; a rule an earlier rule makes unreachable is reported, and
one that is reachable never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleLoadError, load_ruleset

RULE = "version: 1\nname: h\nstatuses: {New: {}}\nrules:\n  - id: r\n"


def _load_regex(tmp_path: Path, regex: str) -> list[str]:
    """The problems loading a rule with ``matches: regex`` reports (none: it loaded)."""
    path = tmp_path / "regex.yaml"
    quoted = "'" + regex.replace("'", "''") + "'"
    path.write_text(
        RULE + f"    when: {{field: title, matches: {quoted}}}\n    then: [{{set_status: New}}]\n"
    )
    try:
        load_ruleset(path)
    except RuleLoadError as exc:
        return [f"{i.line}:{i.column}: {i.message}" for i in exc.issues]
    return []


# Each of these doubles (or more) its search time every few letters in Python's `re` on the
# text shown: (a|aa)+$ on 'a'*24+'!' 0.06 s, *4 letters ~x6.5; (.|\s)*x on ' '*24+'!' 11.7 s.
@pytest.mark.parametrize(
    "regex",
    [
        r"(a|aa)+$",  # 'a'*n + '!'
        r"(ab|a|b)*c",  # 'ab'*n + '!'
        r"(.|\s)*x",  # ' '*n + '!'
        "(?i)(?:k|\u212ak)+$",  # 'k' and the Kelvin sign are one letter when case is ignored
    ],
)
def test_a_repeated_choice_whose_branches_can_match_the_same_text_is_refused_when_loaded(
    tmp_path: Path, regex: str
) -> None:
    [problem] = _load_regex(tmp_path, regex)
    assert problem.startswith("6:35: regular expression")
    assert "repeats a choice whose branches can start with the same character" in problem
    assert "make the branches start differently" in problem


@pytest.mark.parametrize(
    "regex",
    [
        r"(a?a)+$",
        r"(a{1,3})+$",
        r"(?:[^,]+;)+x",
        r"([a-z]+\.?)+@",
        r"^(?:[a-z]+|[0-9]+)+!",
        r"(?:(a+)+b)++",  # possessive outside, but the inside still splits each run
    ],
)
def test_a_repeat_inside_a_repeat_is_refused_when_what_follows_it_may_continue_its_run(
    tmp_path: Path, regex: str
) -> None:
    # `[^,]` takes the `;` too, so a run can end at any `;` of the text.
    [problem] = _load_regex(tmp_path, regex)
    assert "repeats a part that itself repeats" in problem


@pytest.mark.parametrize(
    "regex",
    [
        r"(\d{1,3}\.){3}\d{1,3}",  # an IPv4 address
        r"^(?:[a-z]+\.)+[a-z]+@",  # dotted local part
        r"(\d+,)*\d+$",  # a list of numbers
        r"(?:[a-z]+(?:-[a-z]+)*\.)+com$",  # a domain with hyphenated labels
        r"(?i)(?:[a-z]+\.)+x",  # ignoring case changes nothing for '.'
        r"(?:[a-z]\.?)+x",  # the '.' is followed by a letter or the x, never a '.'
        r"(?:Mr|Ms|Dr)\.?\s",  # branches that differ at their second letter
        r"(?:Mr|Ms|Dr)+$",
        r"(a|ab)*c",  # Python reads it as a(|b): an empty branch, then a or c
        r"(\w|\d)+x",  # Python reads the choice as the one-letter class [\w\d]
        r"^([a-z0-9]++\.?)+@acme\.com$",  # possessive: never split again
    ],
)
def test_a_repeat_with_one_way_to_match_is_accepted_when_loaded(tmp_path: Path, regex: str) -> None:
    # Each ran in linear time per start position on runs of 800 letters, digits, dots, 'Mr's.
    assert _load_regex(tmp_path, regex) == []
