"""What a loaded rule book decides: null semantics, first-match vs all-match, conflicts, stop,
guards, time-relative conditions, unreachable-rule warnings, the version hash and explain."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rules import (
    STANDARD_FIELDS,
    FieldType,
    RuleBook,
    RuleLoadError,
    load_rulebook,
    load_ruleset,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VOCAB = """\
statuses: {New: {}, Open: {}, MQL: {}, SAL: {}, Nurture: {}, Archived: {},
           Converted: {converted: true}}
"""


def write(
    tmp_path: Path, body: str, *, name: str = "set", mode: str = "first_match", header: str = VOCAB
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"version: 1\nname: {name}\nmode: {mode}\n{header}" + textwrap.dedent(body))
    return path


def book(tmp_path: Path, body: str, **kwargs: Any) -> RuleBook:
    settable = kwargs.pop("settable_fields", ("lead_source", "industry", "employees"))
    return load_rulebook([write(tmp_path, body, **kwargs)], settable_fields=settable)


def one_leaf_book(tmp_path: Path, leaf: str) -> RuleBook:
    return book(
        tmp_path,
        f"""\
        rules:
          - id: r
            when: {leaf}
            then: [{{set_status: Open}}]
        """,
    )


# -- null semantics -----------------------------------------------------------------------

LEAVES_ON_MISSING = [
    ("{field: title, eq: CEO}", False),
    ("{field: title, ne: CEO}", True),
    ("{field: title, in: [CEO, CTO]}", False),
    ("{field: title, not_in: [CEO, CTO]}", True),
    ("{field: title, contains: ceo}", False),
    ("{field: title, matches: '^C'}", False),
    ("{field: title, present: true}", False),
    ("{field: title, present: false}", True),
    ("{field: title, missing: true}", True),
    ("{field: title, missing: false}", False),
    ("{field: employees, gt: 10}", False),
    ("{field: employees, gte: 10}", False),
    ("{field: employees, lt: 10}", False),
    ("{field: employees, lte: 10}", False),
    ("{field: employees, eq: 10}", False),
    ("{field: employees, ne: 10}", True),
    ("{field: free_mail, eq: false}", False),
    ("{field: free_mail, ne: true}", True),
    ("{field: last_activity_at, older_than: 90d}", False),
    ("{field: last_activity_at, within: 90d}", False),
    ("{field: last_activity_at, lt: 2026-01-01}", False),
    ("{field: last_activity_at, eq: 2026-01-01}", False),
    ("{field: last_activity_at, ne: 2026-01-01}", True),
    ("{field: last_activity_at, lt: {field: created_at}}", False),
    ("{not: {field: title, eq: CEO}}", True),
]


@pytest.mark.parametrize(("leaf", "expected"), LEAVES_ON_MISSING)
@pytest.mark.parametrize("missing", ["absent", None, ""], ids=["absent", "none", "empty"])
def test_missing_value_is_false_for_every_operator_except_the_documented_ones(
    tmp_path: Path, leaf: str, expected: bool, missing: Any
) -> None:
    rules = one_leaf_book(tmp_path, leaf)
    lead: dict[str, Any] = {"created_at": NOW - timedelta(days=1)}
    if missing != "absent":
        for name in ("title", "employees", "free_mail", "last_activity_at"):
            lead[name] = missing
    assert (rules.evaluate(lead, NOW).status == "Open") is expected


@pytest.mark.parametrize(
    ("leaf", "value", "expected"),
    [
        ("{field: employees, gt: 10}", "many", False),
        ("{field: employees, gt: 10}", True, False),
        ("{field: employees, eq: 1}", True, False),
        ("{field: employees, ne: 1}", True, True),
        ("{field: employees, in: [1, 2]}", [1], False),
        ("{field: employees, not_in: [1, 2]}", {"a": 1}, True),
        ("{field: title, contains: ceo}", 42, False),
        ("{field: title, matches: '^C'}", 42, False),
        ("{field: last_activity_at, older_than: 90d}", "not a date", False),
        ("{field: last_activity_at, within: 90d}", 12345, False),
        ("{field: free_mail, eq: true}", 1, False),
    ],
)
def test_wrong_typed_value_matches_nothing_and_never_raises(
    tmp_path: Path, leaf: str, value: Any, expected: bool
) -> None:
    field = leaf.split("field: ")[1].split(",")[0]
    decision = one_leaf_book(tmp_path, leaf).evaluate({field: value}, NOW)
    assert (decision.status == "Open") is expected


def test_contains_ignores_case_and_eq_does_not(tmp_path: Path) -> None:
    contains = one_leaf_book(tmp_path, "{field: title, contains: CHIEF}")
    assert contains.evaluate({"title": "Chief Marketing Officer"}, NOW).status == "Open"
    eq = one_leaf_book(tmp_path, "{field: title, eq: CEO}")
    assert eq.evaluate({"title": "ceo"}, NOW).status is None


def test_custom_fields_from_config_can_be_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        rules:
          - id: r
            when: {field: partner_tier, in: [gold, platinum]}
            then: [{set_status: Open}]
        """,
    )
    with pytest.raises(RuleLoadError):
        load_ruleset(path)
    fields = {**STANDARD_FIELDS, "partner_tier": FieldType.STRING}
    rules = load_rulebook([path], fields=fields)
    assert rules.evaluate({"partner_tier": "gold"}, NOW).status == "Open"


# -- first_match / all_match, conflicts, stop ----------------------------------------------

TWO_MATCHING = """\
    rules:
      - id: first
        when: {field: title, contains: vp}
        then:
          - set_status: MQL
          - add_to_newsletter: a
          - set_field: {field: lead_source, value: one}
      - id: second
        when: {field: employees, gt: 100}
        then:
          - set_status: Nurture
          - add_to_newsletter: b
          - set_field: {field: lead_source, value: two}
          - set_field: {field: industry, value: Software}
    """
BOTH = {"title": "VP Sales", "employees": 500}


def test_first_match_set_applies_only_the_first_matching_rule(tmp_path: Path) -> None:
    decision = book(tmp_path, TWO_MATCHING).evaluate(BOTH, NOW)
    assert decision.rule_id == "first"
    assert decision.status == "MQL"
    assert decision.newsletters == ("a",)
    assert dict(decision.field_sets) == {"lead_source": "one"}
    assert decision.matched_rules == ("first",)
    assert decision.conflicts == ()


def test_all_match_set_applies_every_rule_and_records_conflicts_without_applying_them(
    tmp_path: Path,
) -> None:
    decision = book(tmp_path, TWO_MATCHING, mode="all_match").evaluate(BOTH, NOW)
    assert decision.matched_rules == ("first", "second")
    assert decision.status == "MQL" and decision.rule_id == "first"
    assert decision.newsletters == ("a", "b")
    assert dict(decision.field_sets) == {"lead_source": "one", "industry": "Software"}
    assert [
        (c.field, c.kept_value, c.kept_rule, c.rejected_value, c.rejected_rule)
        for c in decision.conflicts
    ] == [
        ("status", "MQL", "first", "Nurture", "second"),
        ("lead_source", "one", "first", "two", "second"),
    ]


def test_all_match_rules_agreeing_on_a_value_are_no_conflict(tmp_path: Path) -> None:
    rules = book(
        tmp_path,
        """\
        rules:
          - id: a
            when: {field: title, present: true}
            then: [{set_field: {field: industry, value: Software}}, {add_to_newsletter: n}]
          - id: b
            when: {field: title, contains: cto}
            then: [{set_field: {field: industry, value: Software}}, {add_to_newsletter: n}]
        """,
        mode="all_match",
    )
    decision = rules.evaluate({"title": "CTO"}, NOW)
    assert decision.conflicts == () and decision.newsletters == ("n",)
    assert dict(decision.field_sets) == {"industry": "Software"}


def test_stop_ends_evaluation_of_later_rules_and_later_sets(tmp_path: Path) -> None:
    status_set = write(
        tmp_path,
        """\
        rules:
          - id: archive-misfit
            when: {field: free_mail, eq: true}
            then: [{archive: {}}, {stop: {}}]
          - id: stale
            when: {field: title, present: true}
            then: [{set_status: Nurture}]
        """,
        name="status",
    )
    tagging = write(
        tmp_path,
        """\
        rules:
          - id: tag
            when: {field: title, present: true}
            then: [{add_to_newsletter: webinar}]
        """,
        name="tagging",
        mode="all_match",
        header="",
    )
    rules = load_rulebook([status_set, tagging])
    stopped = rules.evaluate({"free_mail": True, "title": "CEO", "status": "New"}, NOW)
    assert stopped.matched_rules == ("archive-misfit",)
    assert stopped.archived and stopped.status == "Archived" and stopped.newsletters == ()
    both = rules.evaluate({"free_mail": False, "title": "CEO", "status": "New"}, NOW)
    assert both.matched_rules == ("stale", "tag")
    assert both.status == "Nurture" and both.newsletters == ("webinar",)


def test_later_set_does_not_override_an_earlier_sets_status(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        """\
        rules:
          - id: to-nurture
            then: [{set_status: Nurture}]
        """,
        name="a",
    )
    second = write(
        tmp_path,
        """\
        rules:
          - id: to-open
            then: [{set_status: Open}]
        """,
        name="b",
    )
    decision = load_rulebook([first, second]).evaluate({"status": "New"}, NOW)
    assert decision.status == "Nurture" and decision.rule_id == "to-nurture"
    assert [(c.kept_rule, c.rejected_rule) for c in decision.conflicts] == [
        ("to-nurture", "to-open")
    ]


def test_no_matching_rule_is_an_empty_decision(tmp_path: Path) -> None:
    decision = book(tmp_path, TWO_MATCHING).evaluate({}, NOW)
    assert (
        decision.rule_id,
        decision.status,
        decision.newsletters,
        decision.matched_rules,
        dict(decision.field_sets),
        decision.archived,
        decision.blocked,
    ) == (None, None, (), (), {}, False, None)


# -- guards -------------------------------------------------------------------------------

GUARDED = """\
    transitions:
      Archived: {from: [New, Nurture]}
    protected: [SAL]
    rules:
      - id: archive-free-mail
        when: {field: free_mail, eq: true}
        then: [{archive: {}}, {add_to_newsletter: goodbye}]
      - id: nurture
        when: {field: title, present: true}
        then: [{set_status: Nurture}]
    """


def test_transition_guard_blocks_a_target_and_withholds_the_rule(tmp_path: Path) -> None:
    decision = book(tmp_path, GUARDED).evaluate(
        {"status": "MQL", "free_mail": True, "title": "CEO"}, NOW
    )
    assert decision.status is None and not decision.archived
    assert decision.newsletters == ()
    assert decision.rule_id == "archive-free-mail"
    assert decision.blocked is not None
    assert decision.blocked.target == "Archived" and decision.blocked.current == "MQL"
    assert "'Archived' can only be reached from New, Nurture" in decision.blocked.reason
    assert "the lead is 'MQL'" in decision.blocked.reason


def test_allowed_transition_is_applied(tmp_path: Path) -> None:
    decision = book(tmp_path, GUARDED).evaluate({"status": "New", "free_mail": True}, NOW)
    assert decision.status == "Archived" and decision.archived and decision.blocked is None
    assert decision.newsletters == ("goodbye",)
    assert decision.changes_status("New") and not decision.changes_status("Archived")


def test_protected_status_is_never_changed(tmp_path: Path) -> None:
    decision = book(tmp_path, GUARDED).evaluate({"status": "SAL", "title": "CEO"}, NOW)
    assert decision.status is None
    assert decision.blocked is not None and "'SAL' is protected" in decision.blocked.reason


def test_nothing_leaves_a_converted_status(tmp_path: Path) -> None:
    rules = book(tmp_path, GUARDED)
    decision = rules.evaluate({"status": "Converted", "title": "CEO"}, NOW)
    assert decision.status is None
    assert decision.blocked is not None and "converted status" in decision.blocked.reason
    assert rules.check_transition("Converted", "Open") is not None


def test_check_transition_rules(tmp_path: Path) -> None:
    rules = book(tmp_path, GUARDED)
    assert rules.check_transition("Nurture", "Archived") is None
    assert rules.check_transition("Open", "Nurture") is None  # no guard on Nurture
    assert rules.check_transition("SAL", "SAL") is None  # staying put is always allowed
    reason = rules.check_transition(None, "Archived")
    assert reason is not None and "the lead has no status" in reason


def test_blocked_first_match_rule_does_not_fall_through_to_the_next(tmp_path: Path) -> None:
    decision = book(tmp_path, GUARDED).evaluate(
        {"status": "Open", "free_mail": True, "title": "CEO"}, NOW
    )
    assert decision.status is None and decision.matched_rules == ("archive-free-mail",)


# -- time ---------------------------------------------------------------------------------

TIMED = """\
    rules:
      - id: stale
        when: {field: last_activity_at, older_than: 48h}
        then: [{set_status: Nurture}]
      - id: recent
        when: {field: last_activity_at, within: 7d}
        then: [{set_status: MQL}]
    """


def test_older_than_and_within_are_relative_to_the_given_now(tmp_path: Path) -> None:
    rules = book(tmp_path, TIMED)
    lead = {"last_activity_at": datetime(2026, 3, 1, 9, 0, tzinfo=UTC)}
    assert rules.evaluate(lead, NOW).status == "MQL"  # 24 h ago
    assert rules.evaluate(lead, NOW + timedelta(days=1)).status == "MQL"  # exactly 48 h
    assert rules.evaluate(lead, NOW + timedelta(days=1, seconds=1)).status == "Nurture"
    assert rules.evaluate(lead, NOW).status == "MQL"  # going back in time re-binds too
    # `within` means "not older than": a future value (a future-dated task) counts as within.
    assert rules.evaluate(lead, NOW - timedelta(days=2)).status == "MQL"
    assert rules.evaluate({"last_activity_at": NOW - timedelta(days=8)}, NOW).status == "Nurture"


def test_bound_evaluator_agrees_with_evaluate(tmp_path: Path) -> None:
    rules = book(tmp_path, TIMED)
    evaluate = rules.bind(NOW)
    for days in (0, 1, 3, 8, 400):
        lead = {"last_activity_at": NOW - timedelta(days=days)}
        assert evaluate(lead) == rules.evaluate(lead, NOW)


def test_datetimes_as_iso_text_or_naive_are_read_as_utc(tmp_path: Path) -> None:
    rules = book(tmp_path, TIMED)
    assert rules.evaluate({"last_activity_at": "2026-02-27T09:00:00Z"}, NOW).status == "Nurture"
    assert rules.evaluate({"last_activity_at": datetime(2026, 3, 1, 9, 0)}, NOW).status == "MQL"
    naive_now = datetime(2026, 3, 2, 9, 0)
    assert (
        rules.evaluate({"last_activity_at": "2026-03-01T09:00:00+00:00"}, naive_now).status == "MQL"
    )


def test_datetime_comparison_with_iso_value_and_with_another_field(tmp_path: Path) -> None:
    rules = book(
        tmp_path,
        """\
        rules:
          - id: before-2026
            when: {field: created_at, lt: 2026-01-01}
            then: [{set_status: Archived}]
          - id: no-activity-since-change
            when: {field: last_activity_at, lt: {field: status_changed_at}}
            then: [{set_status: MQL}]
        """,
    )
    assert rules.evaluate({"created_at": "2025-12-31T23:59:59Z"}, NOW).status == "Archived"
    assert rules.evaluate({"created_at": "2026-01-01T00:00:00Z"}, NOW).status is None
    changed = {"status_changed_at": NOW - timedelta(days=3)}
    assert (
        rules.evaluate({**changed, "last_activity_at": NOW - timedelta(days=4)}, NOW).status
        == "MQL"
    )
    assert (
        rules.evaluate({**changed, "last_activity_at": NOW - timedelta(days=2)}, NOW).status is None
    )
    assert rules.evaluate(changed, NOW).status is None


# -- warnings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "later", "why"),
    [
        (None, "{field: title, eq: CEO}", "matches every lead"),
        ("{field: title, eq: CEO}", "{field: title, eq: CEO}", "has the same condition"),
        (
            "{all: [{field: title, eq: CEO}]}",
            "{all: [{field: employees, gt: 10}, {field: title, eq: CEO}]}",
            "has a broader condition",
        ),
    ],
)
def test_rule_shadowed_by_an_earlier_rule_is_warned_about(
    tmp_path: Path, earlier: str | None, later: str, why: str
) -> None:
    when = f"\n    when: {earlier}" if earlier else ""
    path = write(
        tmp_path,
        f"""\
rules:
  - id: early{when}
    then: [{{set_status: Open}}]
  - id: late
    when: {later}
    then: [{{set_status: MQL}}]
""",
    )
    (warning,) = load_ruleset(path).warnings
    assert warning.rule_id == "late" and why in warning.message
    assert warning.line == (10 if earlier else 9)


def test_narrower_earlier_rule_and_all_match_sets_give_no_warning(tmp_path: Path) -> None:
    body = """\
        rules:
          - id: early
            when: {all: [{field: employees, gt: 10}, {field: title, eq: CEO}]}
            then: [{set_status: Open}]
          - id: late
            when: {field: title, eq: CEO}
            then: [{set_status: MQL}]
        """
    assert load_ruleset(write(tmp_path, body)).warnings == ()
    catch_all = body.replace(
        "when: {all: [{field: employees, gt: 10}, {field: title, eq: CEO}]}", ""
    )
    assert load_ruleset(write(tmp_path, catch_all, mode="all_match")).warnings == ()
    assert len(load_ruleset(write(tmp_path, catch_all)).warnings) == 1


# -- book ---------------------------------------------------------------------------------


def test_version_is_stable_and_changes_with_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, TIMED)
    first = load_rulebook([path]).version
    assert load_rulebook([path]).version == first
    copy = tmp_path / "elsewhere" / "copy.yaml"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert load_rulebook([copy]).version == first, "only the contents count"
    path.write_text(path.read_text() + "# a comment is a change too\n")
    assert load_rulebook([path]).version != first
    assert len(first) == 12 and int(first, 16) >= 0


def test_book_lists_statuses_targets_newsletters_and_fields(tmp_path: Path) -> None:
    rules = book(
        tmp_path,
        GUARDED.rstrip(" ")
        + """\
      - id: tag
        when: {field: lead_source, eq: web}
        then: [{set_field: {field: industry, value: Software}}]
    """,
    )
    assert rules.statuses == {"New", "Open", "MQL", "SAL", "Nurture", "Archived", "Converted"}
    assert rules.target_statuses == {"Archived", "Nurture"}
    assert rules.newsletters_used == {"goodbye"}
    assert rules.fields_written == {"industry"}


def test_errors_of_all_files_and_duplicate_ids_across_files_are_collected(tmp_path: Path) -> None:
    good = write(tmp_path, "rules:\n  - id: same\n    then: [{set_status: Open}]\n", name="a")
    dup = write(tmp_path, "rules:\n  - id: same\n    then: [{set_status: MQL}]\n", name="b")
    bad = write(tmp_path, "rules:\n  - id: x\n    then: [{set_stauts: MQL}]\n", name="c")
    with pytest.raises(RuleLoadError) as caught:
        load_rulebook([good, dup, bad])
    messages = [(Path(i.file).name, i.message) for i in caught.value.issues]
    assert ("c.yaml", messages[0][1]) == messages[0] and "set_stauts" in messages[0][1]
    assert any(name == "b.yaml" and "duplicate rule id 'same'" in text for name, text in messages)


def test_set_field_values_are_type_checked_against_the_field(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        book(
            tmp_path,
            """\
            rules:
              - id: r
                then: [{set_field: {field: employees, value: lots}}]
            """,
        )
    assert "'employees' is a whole-number field" in caught.value.issues[0].message


def test_explain_names_the_deciding_leaf_with_the_leads_value(tmp_path: Path) -> None:
    rules = book(
        tmp_path,
        """\
        rules:
          - id: sal-breach
            when:
              all:
                - {field: status, eq: SAL}
                - {field: last_activity_at, older_than: 90d}
            then: [{set_status: MQL}]
          - id: stale
            when: {field: last_activity_at, older_than: 90d}
            then: [{set_status: Nurture}]
          - id: always
            then: [{set_status: Open}]
        """,
    )
    lead = {"status": "New", "last_activity_at": datetime(2025, 11, 2, 8, 0, tzinfo=UTC)}
    traces = rules.explain(lead, NOW)
    assert [(t.rule_id, t.matched) for t in traces] == [
        ("sal-breach", False),
        ("stale", True),
        ("always", True),
    ]
    assert traces[0].decided_by == "status eq SAL (value 'New')"
    assert (
        traces[1].decided_by == "last_activity_at older_than 90d (value 2025-11-02T08:00:00+00:00)"
    )
    assert traces[1].effect == "applied" and traces[1].line == 13
    assert traces[2].effect == "not reached: rule 'stale' matched first"
    assert traces[2].decided_by == "always (the rule has no `when`)"
    assert traces[0].ruleset == "set"
    missing = rules.explain({"status": "SAL"}, NOW)[0]
    assert missing.decided_by == "last_activity_at older_than 90d (value missing)"
