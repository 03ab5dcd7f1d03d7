"""The report's arithmetic at scale: percentiles in bounded memory, business hours counted
rather than walked day by day, both agreeing with the plain computation."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from rules.calendar import Calendar
from syncd.business_clock import business_hours_between
from syncd.distribution import Distribution
from syncd.report import percentile


def test_percentiles_are_exact_up_to_the_cap_and_within_half_a_minute_past_it() -> None:
    rng = random.Random(7)
    values = [rng.expovariate(1 / 3) for _ in range(5_000)]  # days
    small = Distribution(1 / 1440, values, exact_max=10_000)
    capped = Distribution(1 / 1440, values, exact_max=1_000)
    assert small.exact and not capped.exact
    for q in (10, 50, 75, 90, 99):
        exact = percentile(values, q)
        assert exact is not None
        assert small.percentile(q) == exact
        got = capped.percentile(q)
        assert got is not None and abs(got - exact) <= 0.5 / 1440 + 1e-12
    assert len(capped) == 5_000 and capped.max == max(values)
    # Past the cap memory is the distinct minutes, not the values.
    assert len(capped._counts) < len(values)


def _walked(cal: Calendar, start: datetime, end: datetime) -> float:
    """Day by day, as the report computed it before."""
    total = timedelta()
    day, last = cal.local_date(start), cal.local_date(end)
    zone = UTC if cal.timezone == "UTC" else ZoneInfo(cal.timezone)
    while day <= last:
        if cal.is_workday(day):
            lo = max(datetime.combine(day, cal.start, tzinfo=zone), start)
            hi = min(datetime.combine(day, cal.end, tzinfo=zone), end)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total.total_seconds() / 3600


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_business_hours_counted_by_weeks_equal_the_day_by_day_walk_with_holidays(
    zone: str,
) -> None:
    cal = Calendar.build(
        zone, ["mon", "tue", "wed", "thu", "sat"], (time(8), time(16, 30)),
        holidays=[date(2026, 3, 3), date(2026, 3, 7), date(2026, 4, 5)],
    )  # fmt: skip
    rng = random.Random(3)
    base = datetime(2026, 2, 20, tzinfo=UTC)
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 40))
        end = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 90))
        assert abs(business_hours_between(cal, start, end) - _walked(cal, start, end)) < 1e-9


def test_open_breaches_keep_the_oldest_and_count_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd import report
    from syncd.report import LeadInfo, ReportOptions, Transition, compute

    monkeypatch.setattr(report, "OPEN_BREACHES_KEPT", 3)
    now = datetime(2026, 10, 30, 12, tzinfo=UTC)
    leads = [
        (LeadInfo("hubspot", f"s{d:02d}"), [Transition(now - timedelta(days=d), "SAL", "MQL")])
        for d in range(3, 13)
    ]  # ten SAL leads, never touched, accepted 3..12 days ago
    options = ReportOptions(since=now - timedelta(days=30), until=now, now=now)
    result = compute(leads, options)[0]
    assert result.open_breach_count == 10
    assert [b.lead_id for b in result.open_breaches] == ["s12", "s11", "s10"]


@pytest.mark.parametrize("cut", [0, 300, 700, 1_000, 1_500])
def test_distributions_merged_in_parts_equal_one_over_all_values(cut: int) -> None:
    """Exact on both sides, counted on one or both, crossing the cap only when merged."""
    rng = random.Random(cut)
    values = [rng.expovariate(1 / 3) for _ in range(1_500)]
    whole = Distribution(1 / 1440, values, exact_max=1_000)
    merged = Distribution(1 / 1440, values[:cut], exact_max=1_000)
    merged.merge(Distribution(1 / 1440, values[cut:], exact_max=1_000))
    assert len(merged) == len(whole) and merged.exact == whole.exact and merged.max == whole.max
    qs = (1, 10, 50, 75, 90, 99, 100)
    assert merged.percentiles(qs) == whole.percentiles(qs)
    small = Distribution(1 / 1440, values[:400], exact_max=1_000)
    small.merge(Distribution(1 / 1440, values[400:900], exact_max=1_000))
    assert small.exact and small.percentiles(qs) == Distribution(
        1 / 1440, values[:900]
    ).percentiles(qs)
