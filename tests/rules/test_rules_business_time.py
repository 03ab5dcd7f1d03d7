"""Business time in rules: working-day durations by the configured calendar, and date-only
activity dates compared on the calendar's local date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from rules import RuleBook, load_rulebook
from rules.calendar import Calendar, CalendarError

FRIDAY_17 = datetime(2026, 2, 27, 17, 0, tzinfo=UTC)
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TUESDAY_1659 = datetime(2026, 3, 3, 16, 59, tzinfo=UTC)
TUESDAY_1701 = datetime(2026, 3, 3, 17, 1, tzinfo=UTC)
BUSINESS = Calendar.build("UTC", ["mon", "tue", "wed", "thu", "fri"], (time(9), time(17)))


def sla_book(tmp_path: Path, duration: str, calendar: Calendar | None = BUSINESS) -> RuleBook:
    path = tmp_path / "sla.yaml"
    path.write_text(f"""version: 1
name: sla
statuses: {{MQL: {{}}, SAL: {{}}}}
rules:
  - id: sal-not-followed-up
    when:
      all:
        - {{field: status, eq: SAL}}
        - {{field: status_changed_at, older_than: {duration}}}
        - any:
            - {{field: last_activity_at, missing: true}}
            - {{field: last_activity_at, lt: {{field: status_changed_at}}}}
    then: [{{set_status: MQL}}]
""")
    return load_rulebook([path], calendar=calendar)


@pytest.mark.parametrize("duration", ["{business_days: 2}", "{business_hours: 16}"])
def test_sal_accepted_friday_evening_is_breached_after_two_working_days_not_over_the_weekend(
    tmp_path: Path, duration: str
) -> None:
    book = sla_book(tmp_path, duration)
    lead = {"status": "SAL", "status_changed_at": FRIDAY_17}
    assert book.evaluate(lead, MONDAY_10).status is None
    assert book.evaluate(lead, TUESDAY_1659).status is None
    assert book.evaluate(lead, TUESDAY_1701).status == "MQL"


def test_wall_clock_48h_would_have_breached_on_monday(tmp_path: Path) -> None:
    book = sla_book(tmp_path, "48h")
    assert (
        book.evaluate({"status": "SAL", "status_changed_at": FRIDAY_17}, MONDAY_10).status == "MQL"
    )


def test_a_holiday_is_not_a_working_day(tmp_path: Path) -> None:
    calendar = Calendar.build("UTC", holidays=[date(2026, 3, 2)])  # Monday off
    book = sla_book(tmp_path, "{business_days: 2}", calendar)
    lead = {"status": "SAL", "status_changed_at": FRIDAY_17}
    assert book.evaluate(lead, TUESDAY_1701).status is None
    assert book.evaluate(lead, datetime(2026, 3, 4, 17, 1, tzinfo=UTC)).status == "MQL"


def test_working_hours_are_local_to_the_calendars_zone(tmp_path: Path) -> None:
    # 9-17 in New York is 14:00-22:00 UTC (EST): accepted Friday 20:00 UTC is 15:00 there, two
    # working hours before the weekend; 16 are over Tuesday 15:00 New York time (20:00 UTC).
    lead = {"status": "SAL", "status_changed_at": datetime(2026, 2, 27, 20, 0, tzinfo=UTC)}
    new_york = sla_book(tmp_path, "{business_hours: 16}", Calendar.build("America/New_York"))
    assert new_york.evaluate(lead, datetime(2026, 3, 3, 19, 59, tzinfo=UTC)).status is None
    assert new_york.evaluate(lead, datetime(2026, 3, 3, 20, 1, tzinfo=UTC)).status == "MQL"
    utc = sla_book(tmp_path, "{business_hours: 16}")
    assert utc.evaluate(lead, datetime(2026, 3, 3, 19, 59, tzinfo=UTC)).status == "MQL"


def test_same_day_activity_on_a_date_only_field_counts_as_follow_up(tmp_path: Path) -> None:
    book = sla_book(tmp_path, "{business_days: 2}")
    accepted = datetime(2026, 2, 20, 15, 0, tzinfo=UTC)
    late = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    # Salesforce's LastActivityDate, as a date and as the connector reads it (midnight UTC).
    for same_day in (date(2026, 2, 20), datetime(2026, 2, 20, tzinfo=UTC), "2026-02-20"):
        lead = {"status": "SAL", "status_changed_at": accepted, "last_activity_at": same_day}
        assert book.evaluate(lead, late).status is None, same_day
    day_before = {
        "status": "SAL",
        "status_changed_at": accepted,
        "last_activity_at": date(2026, 2, 19),
    }
    assert book.evaluate(day_before, late).status == "MQL"


def test_an_activity_with_a_time_of_day_still_compares_as_an_instant(tmp_path: Path) -> None:
    book = sla_book(tmp_path, "{business_days: 2}")
    accepted = datetime(2026, 2, 20, 15, 0, tzinfo=UTC)
    earlier = {
        "status": "SAL",
        "status_changed_at": accepted,
        "last_activity_at": datetime(2026, 2, 20, 14, 0, tzinfo=UTC),
    }
    assert book.evaluate(earlier, MONDAY_10).status == "MQL"


def test_date_only_values_are_compared_on_the_calendars_local_date(tmp_path: Path) -> None:
    # Accepted 23:30 UTC on the 20th: already the 21st in Berlin. An activity dated the 20th
    # is the same day in UTC but the day before in Berlin.
    accepted = datetime(2026, 2, 20, 23, 30, tzinfo=UTC)
    lead = {"status": "SAL", "status_changed_at": accepted, "last_activity_at": date(2026, 2, 20)}
    utc = sla_book(tmp_path, "{business_days: 2}")
    berlin = sla_book(tmp_path, "{business_days: 2}", Calendar.build("Europe/Berlin"))
    assert utc.evaluate(lead, datetime(2026, 3, 4, 12, tzinfo=UTC)).status is None
    assert berlin.evaluate(lead, datetime(2026, 3, 4, 12, tzinfo=UTC)).status == "MQL"


def test_a_calendar_that_cannot_work_says_why() -> None:
    with pytest.raises(CalendarError, match="unknown time zone 'Mars/Olympus'"):
        Calendar.build("Mars/Olympus")
    with pytest.raises(CalendarError, match="unknown working day 'funday'"):
        Calendar.build("UTC", ["mon", "funday"])
    with pytest.raises(CalendarError, match="must be after they start"):
        Calendar.build("UTC", hours=(time(17), time(9)))


def test_a_business_duration_must_be_one_positive_amount(tmp_path: Path) -> None:
    from rules import RuleLoadError

    for bad in (
        "{business_days: 0}",
        "{business_days: 1, business_hours: 2}",
        "{business_weeks: 1}",
    ):
        with pytest.raises(RuleLoadError) as caught:
            sla_book(tmp_path, bad)
        assert all(i.line == 9 for i in caught.value.issues), caught.value


def test_the_daemon_loads_rules_with_the_configured_calendar(tmp_path: Path) -> None:
    from syncd.app import _book_loader
    from syncd.settings import Settings

    settings = Settings.model_validate(
        {
            "calendar": {
                "timezone": "Europe/Berlin",
                "workdays": ["mon", "tue", "wed", "thu"],
                "hours": ["08:00", "16:00"],
                "holidays": ["2026-12-24"],
            }
        }
    )
    book = _book_loader(settings)([Path(__file__).resolve().parents[2] / "rules/default.yaml"])
    calendar = book.sets[0].calendar
    assert calendar is not None
    assert (calendar.timezone, calendar.workdays, calendar.start, calendar.end) == (
        "Europe/Berlin",
        frozenset({1, 2, 3, 4}),
        time(8),
        time(16),
    )
    assert calendar.holidays == frozenset({date(2026, 12, 24)})
