"""What `syncd rules check` and loading promise an admin: a regex that can stall the cycle is
refused and a harmless one is not; a rule an earlier rule makes unreachable is reported, and
one that is reachable never is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules import RuleLoadError, load_rulebook, load_ruleset
from rules.conditions import QUADRATIC_SEARCH_CHARS
from rules.schema import AllCondition, LeafCondition
from rules.shadowing import ShadowIndex, conjuncts

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


def _shadow_warnings(tmp_path: Path, conditions: list[str]) -> list[tuple[str | None, str]]:
    """(rule id, message) of the warnings a first_match set of rules r0, r1, ... gets."""
    rules = "".join(
        f"  - id: r{i}\n    when: {when}\n    then: [{{set_status: Open}}]\n"
        for i, when in enumerate(conditions)
    )
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nname: s\nstatuses: {New: {}, Open: {}}\nrules:\n" + rules)
    return [(w.rule_id, w.message) for w in load_ruleset(path).warnings]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{field: icp_score, gte: 40}", "{field: icp_score, gte: 50}"),
        ("{field: icp_score, gte: 50}", "{field: icp_score, gt: 50}"),
        ("{field: icp_score, gt: 40}", "{field: icp_score, gt: 50}"),
        ("{field: annual_revenue, lt: 10.5}", "{field: annual_revenue, lte: 5}"),
        ("{field: annual_revenue, lte: 10}", "{field: annual_revenue, lt: 10}"),
        ("{field: title, in: [CEO, CTO]}", "{field: title, eq: CEO}"),
        ("{field: title, eq: CEO}", "{field: title, in: [CEO]}"),
        ("{field: title, in: [CEO, CTO, CFO]}", "{field: title, in: [CFO, CEO]}"),
        ("{field: email, present: true}", "{field: email, contains: acme}"),
        ("{field: email, missing: false}", "{field: email, matches: 'x'}"),
        ("{field: icp_score, present: true}", "{field: icp_score, lt: 3}"),
        ("{field: title, present: true}", "{field: title, in: [CEO]}"),
        (
            "{field: icp_score, gte: 40}",
            "{all: [{field: title, eq: CEO}, {field: icp_score, gte: 45}]}",
        ),
        (
            "{all: [{field: annual_revenue, gt: 1.5}, {field: title, present: true}]}",
            "{all: [{field: title, eq: CEO}, {field: annual_revenue, gte: 2}]}",
        ),
        (
            "{all: [{field: title, in: [CEO, CTO]}, {field: country, eq: DE}]}",
            "{all: [{field: country, in: [DE]}, {field: title, eq: CTO}, {field: crm, eq: x}]}",
        ),
    ],
)
def test_a_later_rule_is_reported_unreachable_when_an_earlier_condition_on_the_field_implies_it(
    tmp_path: Path, earlier: str, later: str
) -> None:
    found = _shadow_warnings(tmp_path, [earlier, later])
    assert found == [
        (
            "r1",
            "this rule can never match: rule 'r0' (line 5) has a broader condition and comes "
            "first in this first_match set; move this rule above it or narrow the earlier rule",
        )
    ]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("{field: icp_score, gt: 50}", "{field: icp_score, gte: 50}"),  # 50 itself
        ("{field: icp_score, gte: 50}", "{field: employees, gte: 60}"),  # another field
        ("{field: icp_score, gte: 50}", "{field: icp_score, lte: 60}"),  # another direction
        ("{field: annual_revenue, lt: 10}", "{field: annual_revenue, lte: 10}"),  # 10 itself
        ("{field: annual_revenue, gte: .nan}", "{field: annual_revenue, gte: 50}"),  # nan: never
        ("{field: icp_score, gte: 5}", "{field: icp_score, gte: {field: employees}}"),
        ("{field: title, eq: CEO}", "{field: title, in: [CEO, CTO]}"),  # CTO
        ("{field: title, in: [CEO, CTO]}", "{field: country, eq: CEO}"),
        ("{field: title, in: [CEO]}", "{field: title, ne: CTO}"),  # ne: a missing title too
        ("{field: title, present: true}", "{field: title, not_in: [CEO]}"),
        ("{field: title, present: true}", "{field: email, eq: a@b.co}"),
        ("{field: last_activity_at, older_than: 1d}", "{field: last_activity_at, older_than: 24h}"),
        (
            "{field: last_activity_at, older_than: 30d}",
            "{field: last_activity_at, older_than: {business_days: 30}}",
        ),
        ("{field: last_activity_at, within: 2w}", "{field: last_activity_at, within: 14d}"),
        (
            "{all: [{field: icp_score, gte: 40}, {field: title, eq: CEO}]}",
            "{field: icp_score, gte: 50}",
        ),
        (
            "{all: [{field: title, in: [CEO, CTO]}, {field: country, eq: DE}]}",
            "{all: [{field: country, eq: FR}, {field: title, eq: CTO}]}",
        ),
    ],
)
def test_a_later_rule_is_not_reported_when_the_earlier_condition_does_not_imply_it(
    tmp_path: Path, earlier: str, later: str
) -> None:
    # (`gte: .nan` is warned about on its own: it contradicts itself.)
    assert [w for w in _shadow_warnings(tmp_path, [earlier, later]) if w[0] == "r1"] == []


def test_thousands_of_bounds_and_values_find_each_earliest_shadowing_rule() -> None:
    # Tiers written loosest-last (none shadows the next), then values, then rules an earlier
    # one shadows: each is answered by a binary search or by the rules listing one value.
    tiers = [{"field": "annual_revenue", "gte": 2000 - i} for i in range(2000)]
    values = [{"field": "country", "in": ["X1", "X2"]}] + [
        {"field": "country", "eq": f"C{i}"} for i in range(2000)
    ]
    shadowed = [
        {"field": "annual_revenue", "gte": 5000},  # r0's 2000 takes it
        {"field": "annual_revenue", "gt": 1500},  # r500's 1500
        {"field": "annual_revenue", "gte": 1500.5},  # r500's 1500 too
        {"field": "country", "eq": "X2"},  # r2000's list
        {"field": "country", "in": ["C1234"]},  # r3235's C1234
    ]
    reachable = [{"field": "annual_revenue", "gte": 0.5}, {"field": "country", "in": ["C7", "C8"]}]
    # Rules with two lists each, one of two values: found by their other, rarer, value.
    pairs = [
        {"all": [{"field": "title", "eq": f"T{i % 2}"}, {"field": "company", "eq": f"K{i}"}]}
        for i in range(1000)
    ]
    shadowed += [
        {"all": [{"field": "company", "in": ["K999"]}, {"field": "title", "eq": "T1"}]}
    ]  # r5000's pair
    reachable += [{"all": [{"field": "company", "eq": "K998"}, {"field": "title", "eq": "T1"}]}]
    index = ShadowIndex()
    found = {}
    for i, when in enumerate(tiers + values + pairs + shadowed + reachable):
        model = AllCondition if "all" in when else LeafCondition
        earlier = index.check(conjuncts(model.model_validate(when)), f"r{i}", i)
        if earlier is not None:
            found[f"r{i}"] = earlier[1]
    first = len(tiers) + len(values) + len(pairs)
    by = ["r0", "r500", "r500", "r2000", "r3235", "r5000"]
    assert found == {f"r{first + i}": rule for i, rule in enumerate(by)}


# Each tries about n**3 splits (or more) when it fails on n characters: `\d+\d+x` on '1'*1000
# + '!' took 1.8 s, on 2,000 25 s; `^\S+@\S+\.\S+$` on '@.'*2500 + ' ' 112 s.
@pytest.mark.parametrize(
    "regex",
    [
        r"\d+\d+x",  # two repeats, and every start position
        r"\d+\d+\d+\d+x",
        r"^\S+@\S+\.\S+$",  # `\S` takes the `@` and the `.` too
        r".*a.*b",
        r"^\d+-?\d+-?\d+x",  # what stands between them may match nothing
        r"\w+(?:\w+)\s*x",  # a group is no boundary
        r"\d+[a-z]*\d+x",  # a repeat between them that may match nothing
        r"(\d+)\1x",  # a back-reference is as long as its group
        r"\d+\d++x",  # the possessive repeat takes the rest of the run after each split
        r"(?:ab)*a+b[ab]+!",  # `(ab)*` may stop after any `ab`; `[ab]+` goes on to the end
        r"(?=.*\d+\d+x)",  # a lookahead searched at every start
        r"\d{0,500}\d{0,500}x",  # bounded, but each by hundreds
    ],
)
def test_repeats_side_by_side_are_refused_when_a_failing_search_takes_cubic_time(
    tmp_path: Path, regex: str
) -> None:
    [problem] = _load_regex(tmp_path, regex)
    assert problem.startswith("6:35: regular expression")
    assert "has repeats side by side that can take the same characters" in problem
    assert "put a character between them that they cannot match" in problem


# Each takes at most about n**2 steps: `.*foo.*` on 'fo'*5000 took 1.3 s, `^\S+@\S+$` on
# '@'*10000 1.7 s, `[^@]+@[^@]+$` on 'a'*10000 0.3 s.
@pytest.mark.parametrize(
    "regex",
    [
        r".*foo.*",  # the last `.*` ends the search: nothing after it can fail
        r"(?i)^(vp|head|director).*",
        r"\d{3}-\d{4}",
        r"[^@]+@[^@]+",  # `[^@]` cannot take the `@`: each run ends there
        r"^[^@\s]+@[^@\s]+\.[^@\s]+$",  # the email check, written without the third split
        r"^\S+@\S+$",
        r"^\d+\d+x",  # anchored: one start position
        r"\w+\s+\w+x",  # `\w` and `\s` have no character in common
        r"\d{1,5}\d{1,5}\d{1,5}x",  # at most six ways each
        r"\d++\d+x",  # the first repeat, possessive, is never split again
        r"^\w+\s*\w+$",  # two words, or one split in two: anchored
    ],
)
def test_repeats_side_by_side_are_accepted_when_a_failing_search_takes_at_most_square_time(
    tmp_path: Path, regex: str
) -> None:
    assert _load_regex(tmp_path, regex) == []


def _regex_holds(tmp_path: Path, regex: str, title: str) -> bool:
    path = tmp_path / "regex.yaml"
    path.write_text(
        RULE + f"    when: {{field: title, matches: '{regex}'}}\n    then: [{{set_status: New}}]\n"
    )
    book = load_rulebook([path], settable_fields=())
    return book.evaluate({"title": title}, datetime(2026, 3, 2, tzinfo=UTC)).status == "New"


def test_a_regex_taking_square_time_searches_only_the_first_characters_when_a_value_is_long(
    tmp_path: Path,
) -> None:
    # `.*needle` tries each start, and from each the rest of the text: n**2 steps.
    padding = "x" * (QUADRATIC_SEARCH_CHARS - len("needle"))
    assert _regex_holds(tmp_path, ".*needle", padding + "needle")
    assert not _regex_holds(tmp_path, ".*needle", padding + "xneedle")
    assert _regex_holds(tmp_path, "needle$", padding + "needle")  # a linear search sees it all
    assert _regex_holds(tmp_path, "needle", padding + "xneedle")
