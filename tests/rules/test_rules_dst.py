"""Working time across daylight-saving changes (Europe/Berlin: clocks go forward from 02:00 to
03:00 on 2026-03-29 and back from 03:00 to 02:00 on 2026-10-25).

Working time is read on the calendar's local clock (README, calendar settings): the rules'
thresholds (``rules.calendar``) and the report's SLA clock (``syncd.business_clock``) must count
the same working time, and elapsed durations (``24h``) stay elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from rules import RuleBook, load_rulebook
from rules.calendar import Calendar
from syncd.business_clock import business_hours_between

BERLIN = Calendar.build("Europe/Berlin")
#: Every hour of every day counts: a support desk's calendar, whose working hours hold 02:00.
ROUND_THE_CLOCK = Calendar.build(
    "Europe/Berlin", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], (time(0), time(23, 59))
)
SPRING_JUMP = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 CET becomes 03:00 CEST
FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 03:00 CEST becomes 02:00 CET
SECOND = timedelta(seconds=1)


def book(tmp_path: Path, older_than: str, calendar: Calendar) -> RuleBook:
    path = tmp_path / "dst.yaml"
    path.write_text(f"""version: 1
name: dst
statuses: {{MQL: {{}}, SAL: {{}}}}
rules:
  - id: sal-waited
    when:
      all:
        - {{field: status, eq: SAL}}
        - {{field: status_changed_at, older_than: {older_than}}}
    then: [{{set_status: MQL}}]
""")
    return load_rulebook([path], calendar=calendar)


def breached(rules: RuleBook, changed: datetime, now: datetime) -> bool:
    return rules.evaluate({"status": "SAL", "status_changed_at": changed}, now).status == "MQL"


@pytest.mark.parametrize("duration", ["{business_hours: 16}", "{business_days: 2}"])
@pytest.mark.parametrize(
    ("accepted", "monday_10"),
    [
        # Thursday 10:00 CET; Monday 10:00 CEST: the clocks went forward on Sunday.
        (datetime(2026, 3, 26, 9, 0, tzinfo=UTC), datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),
        # Thursday 10:00 CEST; Monday 10:00 CET: the clocks went back on Sunday.
        (datetime(2026, 10, 22, 8, 0, tzinfo=UTC), datetime(2026, 10, 26, 9, 0, tzinfo=UTC)),
    ],
    ids=["spring", "fall"],
)
def test_two_working_days_are_the_same_local_hours_when_the_clocks_change_over_the_weekend(
    tmp_path: Path, duration: str, accepted: datetime, monday_10: datetime
) -> None:
    # Thursday 10-17 (7 h), Friday 9-17 (8 h), Monday 9-10 (1 h): 16 working hours by the
    # local clock, whatever the offset on either side of the change.
    rules = book(tmp_path, duration, BERLIN)
    assert not breached(rules, accepted, monday_10 - timedelta(minutes=1))
    assert breached(rules, accepted, monday_10 + timedelta(minutes=1))
    assert business_hours_between(BERLIN, accepted, monday_10) == 16


@pytest.mark.parametrize("change", [SPRING_JUMP, FALL_BACK], ids=["spring", "fall"])
def test_older_than_24h_is_24_elapsed_hours_when_the_clocks_change(
    tmp_path: Path, change: datetime
) -> None:
    rules = book(tmp_path, "24h", BERLIN)
    changed = change - timedelta(hours=12)
    assert not breached(rules, changed, changed + timedelta(hours=24) - SECOND)
    assert breached(rules, changed, changed + timedelta(hours=24, seconds=1))


def test_a_lead_changed_a_minute_ago_has_not_waited_a_working_hour_when_the_clocks_went_forward(
    tmp_path: Path,
) -> None:
    """Six minutes after the spring jump (03:06 CEST), one working hour back by the local clock
    is 02:06, a time the clocks skipped. Read at the old offset that was the cycle's own now:
    every lead counted as having waited a working hour, one changed a minute before too."""
    rules = book(tmp_path, "{business_hours: 1}", ROUND_THE_CLOCK)
    now = SPRING_JUMP + timedelta(minutes=6)
    assert not breached(rules, now - timedelta(minutes=1), now)
    assert not breached(rules, SPRING_JUMP + SECOND, now)
    assert breached(rules, SPRING_JUMP - timedelta(minutes=1), now), "01:59 CET: 1 h 7 min"


def test_a_lead_comes_due_when_its_working_hour_passes_across_the_spring_jump(
    tmp_path: Path,
) -> None:
    # Changed 01:30 CET: one working hour on the local clock is over when it reads 02:30,
    # i.e. at the jump itself. Read at the old offset, the due time was half an hour late.
    rules = book(tmp_path, "{business_hours: 1}", ROUND_THE_CLOCK)
    lead = {"status": "SAL", "status_changed_at": SPRING_JUMP - timedelta(minutes=30)}
    due = rules.next_change(lead, SPRING_JUMP - timedelta(minutes=20))
    assert due is not None and due <= SPRING_JUMP + SECOND
    assert rules.evaluate(lead, due).status == "MQL"
    assert rules.evaluate(lead, due - SECOND).status is None


@pytest.mark.parametrize("calendar", [BERLIN, ROUND_THE_CLOCK], ids=["9-17", "round-the-clock"])
@pytest.mark.parametrize("change", [SPRING_JUMP, FALL_BACK], ids=["spring", "fall"])
def test_the_rules_and_the_report_count_the_same_working_time_when_the_clocks_change(
    calendar: Calendar, change: datetime
) -> None:
    """The threshold for N working hours before now is where the report's clock counts N: a
    second earlier it counts at least N, a second later at most N; and walking N forward from
    just before it arrives no later than now."""
    for minutes in range(-30 * 60, 30 * 60, 17):
        now = change + timedelta(minutes=minutes)
        for hours in (1, 3, 16):
            amount = timedelta(hours=hours)
            at = calendar.before(now, amount)
            assert business_hours_between(calendar, at - SECOND, now) >= hours, (now, hours, at)
            assert business_hours_between(calendar, at + SECOND, now) <= hours, (now, hours, at)
            forward = calendar.after(at - SECOND, amount)
            assert forward is not None and forward <= now, (now, hours, at, forward)
