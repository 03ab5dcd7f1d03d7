"""Property tests of the condition compiler: whatever an admin (or a fuzzer) writes either loads
or raises RuleLoadError, and loaded rules evaluate any lead without raising."""

from __future__ import annotations

import json
import operator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rules import Decision, RuleBook, RuleLoadError, load_rulebook

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIELDS = [
    "status",
    "title",
    "employees",
    "annual_revenue",
    "free_mail",
    "last_activity_at",
    "created_at",
    "icp_fit",
    "titel",
    "nope",
]
OPS = [
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "present",
    "missing",
    "contains",
    "matches",
    "older_than",
    "within",
    "older_then",
    "equals",
]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "Open",
            "New",
            "CEO",
            "90d",
            "48h",
            "2w",
            "90dd",
            "2026-01-31",
            "2026-01-31T09:00:00Z",
            "2026-13-45",
            "(",
            "^C.*O$",
            "a*",
            "[a-z]+",
        ]
    ),
    st.text(max_size=8),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.fixed_dictionaries({"field": st.sampled_from(FIELDS)}),
)


texts = st.sampled_from(["CEO", "vp", "Open", "New", "strong", "weak", "x y"])
ints = st.integers(-10, 10**5)
durations = st.builds(lambda n, u: f"{n}{u}", st.integers(0, 500), st.sampled_from("mhdw"))
iso = st.sampled_from(["2026-01-31", "2025-06-01T10:00:00Z", "2026-03-01T08:00:00+02:00"])


def _leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, op: value}


# Type-correct leaves, so that a good share of generated rule sets load and get evaluated.
valid_leaves = st.one_of(
    st.builds(
        _leaf,
        st.sampled_from(["title", "icp_fit"]),
        st.sampled_from(["eq", "ne", "contains"]),
        texts,
    ),
    st.builds(
        _leaf,
        st.sampled_from(["title", "icp_fit"]),
        st.sampled_from(["in", "not_in"]),
        st.lists(texts, min_size=1, max_size=3),
    ),
    st.builds(_leaf, st.just("title"), st.just("matches"), st.sampled_from(["^C", "o$", "x"])),
    st.builds(
        _leaf,
        st.just("status"),
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(["New", "Open", "Archived"]),
    ),
    st.builds(
        _leaf,
        st.sampled_from(["employees", "annual_revenue"]),
        st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]),
        ints,
    ),
    st.builds(
        _leaf,
        st.just("employees"),
        st.sampled_from(["in", "not_in"]),
        st.lists(ints, min_size=1, max_size=3),
    ),
    st.builds(_leaf, st.just("free_mail"), st.sampled_from(["eq", "ne"]), st.booleans()),
    st.builds(
        _leaf, st.sampled_from(FIELDS[:7]), st.sampled_from(["present", "missing"]), st.booleans()
    ),
    st.builds(
        _leaf,
        st.sampled_from(["last_activity_at", "created_at"]),
        st.sampled_from(["older_than", "within"]),
        durations,
    ),
    st.builds(
        _leaf,
        st.sampled_from(["last_activity_at", "created_at"]),
        st.sampled_from(["gt", "lt", "eq", "ne", "gte"]),
        iso,
    ),
    st.builds(
        _leaf,
        st.sampled_from(["last_activity_at", "created_at"]),
        st.sampled_from(["gt", "lt", "lte", "gte"]),
        st.just({"field": "status_changed_at"}),
    ),
)


def leaves() -> st.SearchStrategy[Any]:
    one_op = st.builds(
        lambda f, op, v: {"field": f, op: v}, st.sampled_from(FIELDS), st.sampled_from(OPS), values
    )
    messy = st.dictionaries(
        st.sampled_from(["field", *OPS, "wen", "all"]),
        st.one_of(values, st.sampled_from(FIELDS)),
        max_size=3,
    )
    return st.one_of(*[valid_leaves] * 8, one_op, messy, scalars)


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
        # rarer shapes that are wrong: an empty list, a mapping where a list belongs
        st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=1)),
        st.builds(lambda x: {"all": x}, inner),
    ),
    max_leaves=6,
)
valid_conditions = st.recursive(
    valid_leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=8,
)
actions = st.one_of(
    st.just({"set_status": "Open"}),
    st.just({"set_status": "Open"}),
    st.just({"add_to_newsletter": "newsletter"}),
    st.just({"archive": {}}),
    st.just({"stop": {}}),
    st.just({"add_to_newsletter": "newsletter"}),
    st.builds(lambda v: {"set_field": {"field": "lead_source", "value": v}}, scalars),
    st.builds(
        lambda k, v: {k: v}, st.sampled_from(["set_stauts", "set_status", "archive"]), scalars
    ),
)
lead_values = st.one_of(
    scalars,
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.dates(),
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=2), scalars, max_size=2),
)
leads = st.dictionaries(st.sampled_from([*FIELDS[:-2], "status_changed_at"]), lead_values)


def write_rules(
    tmp_path: Path, when: Any, then: list[Any], mode: str, fallback: Any = None
) -> Path:
    doc = {
        "version": 1,
        "name": "fuzz",
        "mode": mode,
        "statuses": {"New": {}, "Open": {}, "Archived": {}},
        "rules": [
            {"id": "r1", "when": when, "then": then},
            {"id": "r2", "then": [fallback or {"add_to_newsletter": "newsletter"}]},
        ],
    }
    path = tmp_path / "fuzz.yaml"
    path.write_text(json.dumps(doc, default=str))  # JSON is YAML
    return path


def load_or_none(path: Path) -> RuleBook | None:
    try:
        return load_rulebook([path], settable_fields=["lead_source"], newsletters=["newsletter"])
    except RuleLoadError as exc:
        # A helper sorting outcomes for the properties, not a test expecting this error.
        assert exc.issues, "a load error always carries at least one issue"  # noqa: PT017
        for issue in exc.issues:
            assert issue.line >= 1 and issue.column >= 1 and issue.message
            assert "internal error" not in issue.message, str(issue)
        return None


@SETTINGS
@given(
    when=conditions,
    then=st.lists(actions, min_size=1, max_size=2),
    mode=st.sampled_from(["first_match", "all_match"]),
    lead_list=st.lists(leads, min_size=1, max_size=4),
)
def test_any_condition_tree_loads_or_raises_rule_load_error_and_never_raises_on_leads(
    tmp_path: Path, when: Any, then: list[Any], mode: str, lead_list: list[dict[str, Any]]
) -> None:
    book = load_or_none(write_rules(tmp_path, when, then, mode))
    event("loaded" if book is not None else "rejected")
    if book is None:
        return
    for lead in lead_list:
        assert isinstance(book.evaluate(lead, NOW), Decision)
        assert len(book.explain(lead, NOW)) == 2


@SETTINGS
@given(when=valid_conditions, lead_list=st.lists(leads, min_size=1, max_size=5))
def test_well_typed_condition_trees_always_load_and_evaluate_any_lead(
    tmp_path: Path, when: Any, lead_list: list[dict[str, Any]]
) -> None:
    # r2 adds a newsletter, not a status: "anything else to New" and r1's "... to Open" would
    # undo each other, a loop the loader rejects.
    book = load_rulebook(
        [
            write_rules(
                tmp_path,
                when,
                [{"set_status": "Open"}],
                "first_match",
                {"add_to_newsletter": "newsletter"},
            )
        ]
    )
    evaluate = book.bind(NOW)
    for lead in lead_list:
        decision = evaluate(lead)
        # r2 always sets New and r1 may set Open: evaluation goes on from the would-be state,
        # so the first step of the chain is the rule that matched the lead as read.
        first = decision.chain[0] if decision.chain else decision.rule_id
        assert first in ("r1", "r2")
        assert decision == book.evaluate(lead, NOW)
        trace = book.explain(lead, NOW)[0]
        assert trace.matched is (first == "r1")
        assert trace.decided_by


@SETTINGS
@given(
    text=st.text(alphabet=st.sampled_from(list("abc:-{}[]\t\n #'\"0129,.*&!|>%@`")), max_size=80)
)
def test_arbitrary_text_never_escapes_as_anything_but_rule_load_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "text.yaml"
    path.write_text("version: 1\nname: t\nrules:\n" + text)
    load_or_none(path)


def reference(op: str, arg: Any, value: Any) -> bool:
    """The documented semantics of rules.compiler, written the slow, obvious way."""
    missing = value is None or value == ""
    if op == "present":
        return (not missing) is arg
    if op == "missing":
        return missing is arg
    wrong_type = isinstance(value, bool) or not isinstance(value, int)
    if op == "ne":
        return missing or wrong_type or value != arg
    if op == "not_in":
        return missing or wrong_type or value not in arg
    if missing or wrong_type:
        return False
    if op == "in":
        return value in arg
    return {
        "eq": operator.eq,
        "gt": operator.gt,
        "gte": operator.ge,
        "lt": operator.lt,
        "lte": operator.le,
    }[op](value, arg)


@SETTINGS
@given(
    op=st.sampled_from(
        ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present", "missing"]
    ),
    number=st.integers(-5, 5),
    numbers=st.lists(st.integers(-5, 5), min_size=1, max_size=3),
    flag=st.booleans(),
    value=st.one_of(
        st.none(),
        st.just(""),
        st.integers(-6, 6),
        st.booleans(),
        st.sampled_from(["3", "x"]),
        st.floats(-6, 6, allow_nan=False),
    ),
)
def test_integer_leaf_agrees_with_the_documented_semantics(
    tmp_path: Path, op: str, number: int, numbers: list[int], flag: bool, value: Any
) -> None:
    arg: Any = (
        numbers if op in ("in", "not_in") else flag if op in ("present", "missing") else number
    )
    book = load_rulebook(
        [
            write_rules(
                tmp_path, {"field": "employees", op: arg}, [{"set_status": "Open"}], "first_match"
            )
        ]
    )
    if isinstance(value, float) and op not in ("present", "missing"):
        # a float in an integer field still compares as a number
        expected = {
            "eq": operator.eq,
            "ne": operator.ne,
            "gt": operator.gt,
            "gte": operator.ge,
            "lt": operator.lt,
            "lte": operator.le,
            "in": lambda v, a: v in a,
            "not_in": lambda v, a: v not in a,
        }[op](value, arg)
    else:
        expected = reference(op, arg, value)
    decision = book.evaluate({"employees": value}, NOW)
    assert (decision.rule_id == "r1") is expected


@SETTINGS
@given(
    days=st.integers(0, 400), age=st.integers(-30, 400), as_text=st.booleans(), naive=st.booleans()
)
def test_older_than_and_within_partition_the_time_line(
    tmp_path: Path, days: int, age: int, as_text: bool, naive: bool
) -> None:
    older = load_rulebook(
        [
            write_rules(
                tmp_path,
                {"field": "last_activity_at", "older_than": f"{days}d"},
                [{"set_status": "Open"}],
                "first_match",
            )
        ]
    )
    within = load_rulebook(
        [
            write_rules(
                tmp_path,
                {"field": "last_activity_at", "within": f"{days}d"},
                [{"set_status": "Open"}],
                "first_match",
            )
        ]
    )
    when = NOW - timedelta(days=age)
    value: Any = when.replace(tzinfo=None) if naive else when
    if as_text:
        value = value.isoformat()
    is_older = older.evaluate({"last_activity_at": value}, NOW).rule_id == "r1"
    is_within = within.evaluate({"last_activity_at": value}, NOW).rule_id == "r1"
    assert is_older != is_within, "every present date is either older than d or within d"
    assert is_older is (age > days)


def test_dates_without_time_are_midnight_utc(tmp_path: Path) -> None:
    book = load_rulebook(
        [
            write_rules(
                tmp_path,
                {"field": "created_at", "lt": "2026-02-01"},
                [{"set_status": "Open"}],
                "first_match",
            )
        ]
    )
    assert book.evaluate({"created_at": date(2026, 1, 31)}, NOW).rule_id == "r1"
    assert book.evaluate({"created_at": date(2026, 2, 1)}, NOW).rule_id == "r2"
