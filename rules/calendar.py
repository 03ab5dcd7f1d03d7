"""Working time: a calendar of working days, working hours and holidays in one time zone.

Pure: no I/O beyond :mod:`zoneinfo`'s time-zone data. The rule book uses a calendar for two
things:

* business durations in conditions (``older_than: {business_hours: 16}``,
  ``within: {business_days: 2}``): the threshold is the instant that lies that much *working*
  time before the cycle's now (:meth:`Calendar.before`); one business day is one working day's
  hours (9-17: 8 h, so ``business_days: 2`` and ``business_hours: 16`` give the same instant);
* date-only values (Salesforce ``LastActivityDate``): a date is compared with a date/time on
  the calendar's local date of the date/time (:meth:`Calendar.local_date`).

Without a configured calendar: UTC, Monday to Friday, 09:00-17:00, no holidays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_CALENDAR", "BusinessDuration", "Calendar", "CalendarError"]

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A walk back through working time never looks further than this (about 30 years).
_MAX_DAYS = 11_000


class CalendarError(ValueError):
    """A calendar that cannot be built; ``str()`` is the admin's message."""


@dataclass(frozen=True, slots=True)
class Calendar:
    """Working time in one zone.

    Attributes:
        timezone: IANA name (``Europe/Berlin``).
        workdays: ISO weekday numbers (1 = Monday) that are working days.
        start: Start of the working day (local).
        end: End of the working day (local), after ``start``.
        holidays: Local dates that are not working days.
    """

    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    start: time = time(9)
    end: time = time(17)
    holidays: frozenset[date] = frozenset()
    _zone: tzinfo = field(default=UTC, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone: tzinfo = UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(
                f"unknown time zone {self.timezone!r}; use an IANA name such "
                "as Europe/Berlin or America/New_York"
            ) from None
        if not self.workdays or not self.workdays <= set(range(1, 8)):
            raise CalendarError("working days must be a non-empty list of mon..sun")
        if self.end <= self.start:
            raise CalendarError(
                f"working hours end ({self.end:%H:%M}) must be after they "
                f"start ({self.start:%H:%M})"
            )
        object.__setattr__(self, "_zone", zone)

    @classmethod
    def build(
        cls,
        timezone: str = "UTC",
        workdays: Iterable[str] = _DAY_NAMES[:5],
        hours: tuple[time, time] = (time(9), time(17)),
        holidays: Iterable[date] = (),
    ) -> Calendar:
        """A calendar from names: ``workdays`` as ``mon``..``sun``.

        Raises:
            CalendarError: unknown zone or day name, or hours that end before they start.
        """
        days: set[int] = set()
        for name in workdays:
            key = name.strip().lower()[:3]
            if key not in _DAY_NAMES:
                raise CalendarError(
                    f"unknown working day {name!r}; use mon, tue, wed, thu, fri, sat, sun"
                )
            days.add(_DAY_NAMES.index(key) + 1)
        return cls(timezone, frozenset(days), hours[0], hours[1], frozenset(holidays))

    @property
    def day_length(self) -> timedelta:
        """Working time of one working day (what ``business_days: 1`` means)."""
        today = date(2000, 1, 1)
        return datetime.combine(today, self.end) - datetime.combine(today, self.start)

    def local_date(self, instant: datetime) -> date:
        """The calendar date of ``instant`` in the calendar's zone (naive = UTC)."""
        aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
        return aware.astimezone(self._zone).date()

    def is_workday(self, day: date) -> bool:
        return day.isoweekday() in self.workdays and day not in self.holidays

    def before(self, now: datetime, amount: timedelta) -> datetime:
        """The latest instant from which ``amount`` of working time has passed by ``now``.

        Walks back through the working hours of working days; outside them no working time
        passes (a lead accepted Friday 17:00 has had one working hour by Monday 10:00).
        """
        aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        local = aware.astimezone(self._zone)
        left = amount
        day = local.date()
        for _ in range(_MAX_DAYS):
            if self.is_workday(day):
                opens = self._at(day, self.start)
                closes = self._at(day, self.end)
                upto = min(closes, local) if day == local.date() else closes
                if upto > opens:
                    worked = upto - opens
                    if worked >= left:
                        return self._instant(upto - left)
                    left -= worked
            day -= timedelta(days=1)
        return datetime(1, 1, 2, tzinfo=UTC)  # further back than any lead

    def after(self, start: datetime, amount: timedelta) -> datetime | None:
        """The earliest instant by which ``amount`` of working time has passed since ``start``:
        :meth:`before` walked forward, with the same local-time arithmetic (None: not within
        about 30 years)."""
        aware = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        local = aware.astimezone(self._zone)
        left = amount
        day = local.date()
        for _ in range(_MAX_DAYS):
            if self.is_workday(day):
                opens = self._at(day, self.start)
                closes = self._at(day, self.end)
                since = max(opens, local) if day == local.date() else opens
                if closes > since:
                    available = closes - since
                    if available >= left:
                        return self._instant(since + left)
                    left -= available
            if day == date.max:
                return None
            day += timedelta(days=1)
        return None

    def day_start(self, day: date) -> datetime:
        """The first instant (UTC) whose local date is ``day``: the earlier reading of an
        ambiguous midnight."""
        return min(
            datetime.combine(day, time(0), tzinfo=self._zone).replace(fold=f).astimezone(UTC)
            for f in (0, 1)
        )

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self._zone)

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant of ``wall``, a local time reached by local-clock arithmetic. A time
        the clocks skipped (spring forward inside working hours) is the instant they jumped:
        every earlier instant reads before it on the clock, every later one after. Read as
        either offset instead, it lands up to an hour off that jump, and a threshold for one
        working hour could fall on the cycle's own now."""
        early = wall.replace(fold=0).astimezone(UTC)
        if early.astimezone(self._zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
            return early
        # The jump lies between the time read at the new offset and at the old one.
        lo, hi = sorted((wall.replace(fold=1).astimezone(UTC), early))
        after = hi.astimezone(self._zone).utcoffset()
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(self._zone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return hi.replace(microsecond=0) if hi.microsecond else hi


DEFAULT_CALENDAR = Calendar()


@dataclass(frozen=True, slots=True)
class BusinessDuration:
    """``{business_days: N}`` or ``{business_hours: N}`` in a condition."""

    days: float = 0
    hours: float = 0

    def amount(self, calendar: Calendar) -> timedelta:
        return self.days * calendar.day_length + timedelta(hours=self.hours)

    def before(self, now: datetime, calendar: Calendar | None) -> datetime:
        """The threshold for ``now`` (see :meth:`Calendar.before`)."""
        cal = calendar or DEFAULT_CALENDAR
        return cal.before(now, self.amount(cal))

    def __str__(self) -> str:
        if self.days:
            return f"{self.days:g} business day{'s' if self.days != 1 else ''}"
        return f"{self.hours:g} business hour{'s' if self.hours != 1 else ''}"
