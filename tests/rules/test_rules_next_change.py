"""``RuleBook.next_change``: until the instant it returns, evaluating a lead again decides the
same, whatever the calendar, the durations (wall-clock and business), date-only values and
chains of rules. Checked against brute-force evaluation at many instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import RuleBook, load_rulebook
from rules.calendar import Calendar

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

RULES = """version: 1
name: timed
mode: first_match
statuses: {New: {}, MQL: {}, SAL: {}, Working: {}, Nurture: {}, Archived: {}}
rules:
  - id: sal-breached
    when:
      all:
        - {field: status, eq: SAL}
        - {field: status_changed_at, older_than: {business_hours: 16}}
        - any:
            - {field: last_activity_at, missing: true}
            - {field: last_activity_at, lt: {field: status_changed_at}}
    then: [{set_status: MQL}]
  - id: stale-mql
    when:
      all:
        - {field: status, eq: MQL}
        - {field: last_activity_at, older_than: 3d}
    then: [{set_status: Nurture}]
  - id: recent-activity
    when:
      all:
        - {field: status, in: [New, Nurture]}
        - {field: last_activity_at, within: 2d}
        - {field: created_at, older_than: {business_days: 1}}
    then: [{set_status: Working}]
  - id: nurture-after-status
    when:
      all:
        - {field: status, eq: Working}
        - {field: status_changed_at, gt: "2026-03-04T12:00:00Z"}
    then: [{set_status: Archived}]
  - id: old-new
    when:
      all:
        - {field: status, eq: New}
        - {field: created_at, older_than: 36h}
    then: [{set_status: MQL}]
"""

CALENDARS = [
    None,
    Calendar.build("UTC"),
    Calendar.build("America/New_York", ["mon", "tue", "wed", "thu", "fri"], (time(8), time(18))),
    Calendar.build(
        "Asia/Tokyo",
        ["mon", "tue", "wed", "thu", "sat"],
        (time(9), time(17)),
        holidays=[date(2026, 3, 3)],
    ),
]

_BOOKS: dict[int, RuleBook] = {}


def book_for(tmp: Path, k: int) -> RuleBook:
    if k not in _BOOKS:
        path = tmp / f"timed-{k}.yaml"
        path.write_text(RULES)
        _BOOKS[k] = load_rulebook([path], calendar=CALENDARS[k])
    return _BOOKS[k]


offsets = st.integers(-6 * 86400, 6 * 86400)  # seconds around NOW
instants = offsets.map(lambda s: NOW + timedelta(seconds=s))
midnights = st.integers(-6, 6).map(lambda d: datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=d))
activity = st.one_of(
    st.none(),
    instants,
    midnights,
    midnights.map(lambda d: d.date()),
    midnights.map(lambda d: d.date().isoformat()),
)
leads = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["New", "MQL", "SAL", "Working", "Nurture", None]),
        "status_changed_at": instants,
        "last_activity_at": activity,
        "created_at": st.one_of(st.none(), instants),
    }
)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("next-change")


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    k=st.integers(0, len(CALENDARS) - 1),
    lead=leads,
    start=offsets,
    probes=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=12),
)
def test_no_decision_changes_before_the_next_change_instant(
    tmp: Path, k: int, lead: dict[str, Any], start: int, probes: list[float]
) -> None:
    book = book_for(tmp, k)
    now = NOW + timedelta(seconds=start)
    due = book.next_change(lead, now)
    before = book.evaluate(lead, now)
    if due is not None:
        assert due > now
    horizon = due if due is not None else now + timedelta(days=30)
    span = horizon - now
    checks = [now + span * p for p in probes] + [horizon - timedelta(microseconds=1)]
    for at in checks:
        if at < now or at >= horizon:  # span * p may round up to the whole span
            continue
        assert book.evaluate(lead, at) == before, (lead, now, due, at)


def test_a_lead_untouched_by_time_based_rules_never_comes_due(tmp: Path) -> None:
    book = book_for(tmp, 0)
    lead = {"status": "Archived", "status_changed_at": None, "created_at": None}
    # after the one fixed instant a rule compares with (status_changed_at gt 2026-03-04T12:00)
    assert book.next_change(lead, datetime(2026, 3, 5, tzinfo=UTC)) is None


def test_following_the_due_instants_reaches_a_wall_clock_change_exactly_when_it_happens(
    tmp: Path,
) -> None:
    book = book_for(tmp, 0)
    created = NOW - timedelta(hours=10)
    lead = {"status": "New", "created_at": created}
    at: datetime | None = NOW
    while at is not None and book.evaluate(lead, at).status is None:
        at = book.next_change(lead, at)
    assert at == created + timedelta(hours=36, microseconds=1)
    assert book.evaluate(lead, at).status == "MQL"


def test_business_duration_comes_due_after_the_weekend(tmp: Path) -> None:
    book = book_for(tmp, 1)  # UTC, Mon-Fri 9-17
    friday_17 = datetime(2026, 2, 27, 17, 0, tzinfo=UTC)
    lead = {"status": "SAL", "status_changed_at": friday_17, "last_activity_at": None}
    due = book.next_change(lead, datetime(2026, 2, 28, 12, 0, tzinfo=UTC))
    assert due is not None and datetime(2026, 3, 3, 16, 59, tzinfo=UTC) < due
    assert due <= datetime(2026, 3, 3, 17, 0, 1, tzinfo=UTC)


_INSTANTS = st.datetimes(
    min_value=datetime(2026, 2, 20), max_value=datetime(2026, 3, 10), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        _INSTANTS,
        _INSTANTS.map(lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0)),
        _INSTANTS.map(lambda d: d.date().isoformat()),
        _INSTANTS.map(lambda d: d.isoformat()),
        st.just(NOW),
        st.just("not a date"),
    ),
    calendar=st.sampled_from(CALENDARS),
    constants=st.lists(_INSTANTS, max_size=2),
    now=st.sampled_from([NOW, NOW + timedelta(microseconds=1), datetime(2026, 3, 5, tzinfo=UTC)]),
)
def test_the_next_now_breakpoint_is_the_first_earliest_of_all_breakpoints(
    value: object, calendar: Calendar | None, constants: list[datetime], now: datetime
) -> None:
    from rules.timing import _next_now_breakpoint, _now_breakpoints, _NowLeaf

    for other in ("last_activity_at", "created_at", None):
        leaf = _NowLeaf(tuple(constants), other, calendar)
        lead = {"last_activity_at": value, "created_at": value}
        best = None
        for at in _now_breakpoints(leaf, lead):  # the reference: every breakpoint, in order
            if at > now and (best is None or at < best):
                best = at
        fast = _next_now_breakpoint(leaf, lead, now)
        assert fast == best
        assert getattr(fast, "tzinfo", None) == getattr(best, "tzinfo", None)
        assert _next_now_breakpoint(leaf, lead, now) == best  # again, from the day-start cache


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(k=st.integers(0, len(CALENDARS) - 1), lead=leads, start=offsets, naive=st.booleans())
def test_next_change_bound_for_a_cycle_is_next_change_at_its_now(
    tmp: Path, k: int, lead: dict[str, Any], start: int, naive: bool
) -> None:
    # What the planner asks per lead (bound once per cycle) is what next_change answers.
    book = book_for(tmp, k)
    now = NOW + timedelta(seconds=start)
    if naive:
        now = now.replace(tzinfo=None)  # taken as UTC
    assert book.bind_next_change(now)(lead) == book.next_change(lead, now)
