"""Working time of a :class:`rules.calendar.Calendar`: business hours between two instants and
when an activity counts as the first touch after a SAL.

The funnel report (:mod:`syncd.report`) and the KPIs kept between refreshes
(:mod:`syncd.kpi_incremental`) both measure the follow-up SLA in business hours; this is the
one clock they share.
"""

from __future__ import annotations

import bisect
import functools
from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

from rules.calendar import Calendar

__all__ = ["BusinessClock", "aware", "business_hours_between", "clock_for", "touch_at"]


def aware(value: datetime) -> datetime:
    """``value`` with UTC as its zone when it has none (naive times in the store are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def business_hours_between(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Working hours of ``calendar`` between two instants (0 when ``end`` <= ``start``).

    The first and last days are measured against the working hours; the whole days between
    them are counted (a week at a time), not walked: an open breach months old costs no more
    than a fresh one."""
    return clock_for(calendar).hours(aware(start), aware(end))


@functools.lru_cache(maxsize=8)
def clock_for(calendar: Calendar) -> BusinessClock:
    """The precomputed clock of ``calendar`` (a few calendars live at once: cached)."""
    return BusinessClock(calendar)


class BusinessClock:
    """One calendar's working time, precomputed: seconds of the working day, working
    weekdays and holidays as sets of ordinals (the report calls it several times a lead)."""

    __slots__ = (
        "calendar",
        "close",
        "day",
        "holiday_set",
        "holidays",
        "open",
        "partial_week",
        "per_week",
        "weekdays",
        "zone",
    )

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.zone: tzinfo = UTC if calendar.timezone == "UTC" else ZoneInfo(calendar.timezone)
        self.open = _seconds(calendar.start)
        self.close = _seconds(calendar.end)
        self.day = self.close - self.open
        self.weekdays = frozenset(d - 1 for d in calendar.workdays)  # date.weekday() numbers
        self.per_week = len(self.weekdays)
        self.holidays = sorted(
            h.toordinal() for h in calendar.holidays if h.weekday() in self.weekdays
        )
        self.holiday_set = frozenset(self.holidays)
        #: [first weekday][days]: working weekdays among ``days`` (< 7) from ``first`` on.
        self.partial_week = [
            [sum(1 for k in range(rest) if (first + k) % 7 in self.weekdays) for rest in range(7)]
            for first in range(7)
        ]

    def __reduce__(self) -> tuple[object, tuple[Calendar]]:
        # Rebuilt from its calendar (the report's worker processes send their sums, clock
        # included, pickled); compiled, the class has no instance dict for pickle's default.
        return clock_for, (self.calendar,)

    def hours(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        zone = self.zone
        if zone is not UTC or start.tzinfo is not UTC:
            start, end = start.astimezone(zone), end.astimezone(zone)
        d0, d1 = start.toordinal(), end.toordinal()
        s0 = start.hour * 3600 + start.minute * 60 + start.second + start.microsecond / 1e6
        s1 = end.hour * 3600 + end.minute * 60 + end.second + end.microsecond / 1e6
        if d0 == d1:
            if not self._works(d0):
                return 0.0
            return max(0.0, min(self.close, s1) - max(self.open, s0)) / 3600
        seconds = 0.0
        if self._works(d0):
            seconds += max(0.0, self.close - max(self.open, s0))
        if self._works(d1):
            seconds += max(0.0, min(self.close, s1) - self.open)
        if d1 - d0 > 1:
            seconds += self._workdays(d0 + 1, d1 - 1) * self.day
        return seconds / 3600

    def _works(self, ordinal: int) -> bool:
        # date.fromordinal(o).weekday() == (o - 1) % 7
        if (ordinal - 1) % 7 not in self.weekdays:
            return False
        return ordinal not in self.holiday_set

    def _workdays(self, lo: int, hi: int) -> int:
        """Working days from ordinal ``lo`` to ``hi``, both included."""
        weeks, rest = divmod(hi - lo + 1, 7)
        count = weeks * self.per_week
        count += self.partial_week[(lo - 1) % 7][rest]
        if self.holidays:
            count -= bisect.bisect_right(self.holidays, hi) - bisect.bisect_left(self.holidays, lo)
        return count


def _seconds(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def touch_at(activity: datetime | date | None, sal_at: datetime, cal: Calendar) -> datetime | None:
    """When the activity counts as the first touch after ``sal_at`` (None: not after it)."""
    if activity is None:
        return None
    if not isinstance(activity, datetime):  # a date: the day of the SAL counts as at once
        sal_day = cal.local_date(sal_at)
        if activity < sal_day:
            return None
        if activity == sal_day:
            return sal_at
        zone = UTC if cal.timezone == "UTC" else ZoneInfo(cal.timezone)
        return datetime.combine(activity, time(0), tzinfo=zone)
    touched = aware(activity)
    return touched if touched >= sal_at else None
