"""Client-side pacing for HubSpot's three rate buckets (crm-api C2, C7).

* search: at most ``search_per_second`` (HubSpot allows 5/s per account), evenly spaced;
* ordinary calls: a rolling ten-second window, kept ``headroom`` below the limit and narrowed by
  the ``X-HubSpot-RateLimit-*`` headers when HubSpot reports less room than we counted;
* daily: a per-day budget, and once HubSpot says DAILY, nothing until the next midnight.

Time comes from an injected ``clock`` and waits go through an injected ``sleep`` so tests can run
on a simulated clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from connectors.base import ApiQuota
from connectors.errors import BudgetExhausted

__all__ = ["DailyBudget", "SearchPacer", "TenSecondWindow"]

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


def _seconds(clock: Clock) -> float:
    return clock().timestamp()


class SearchPacer:
    """Spaces search calls ``1/rate`` seconds apart (a token bucket of capacity one).

    Capacity one keeps every sliding one-second window at or under ``rate`` calls, which is how
    HubSpot counts (a burst allowance could put 2*rate calls in one second).
    """

    def __init__(self, rate: float, clock: Clock, sleep: Sleep) -> None:
        self._interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None
        self.waited = 0.0

    def acquire(self) -> None:
        now = _seconds(self._clock)
        if self._next is not None and self._next > now:
            self.waited += self._next - now
            self._sleep(self._next - now)
            now = _seconds(self._clock)
        self._next = max(now, self._next or now) + self._interval

    def defer(self, seconds: float) -> None:
        """Push the next call out (after a search 429)."""
        self._next = max(self._next or 0.0, _seconds(self._clock) + seconds)


class TenSecondWindow:
    """Our own calls in the last ten seconds, kept under the limit minus headroom."""

    WINDOW = 10.0

    def __init__(self, limit: int, headroom: int, clock: Clock, sleep: Sleep) -> None:
        self._limit, self._headroom = limit, headroom
        self._clock, self._sleep = clock, sleep
        self._calls: deque[float] = deque()
        self._blocked_until = 0.0
        self.waited = 0.0

    @property
    def allowance(self) -> int:
        return max(self._limit - self._headroom, 1)

    def acquire(self) -> None:
        while True:
            now = _seconds(self._clock)
            while self._calls and self._calls[0] <= now - self.WINDOW:
                self._calls.popleft()
            wait = self._blocked_until - now
            if len(self._calls) >= self.allowance:
                wait = max(wait, self._calls[0] + self.WINDOW - now)
            if wait <= 0:
                self._calls.append(now)
                return
            self.waited += wait
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt HubSpot's view of the window (it also counts other clients of the app)."""
        max_ = _int(headers.get("X-HubSpot-RateLimit-Max"))
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")) or 10_000
        if max_ is not None and max_ < self._limit:
            self._limit = max_
        if remaining is not None and remaining <= self._headroom:
            self._blocked_until = max(self._blocked_until, _seconds(self._clock) + interval / 1000)

    def defer(self, seconds: float) -> None:
        """Make no call for ``seconds`` (after a TEN_SECONDLY_ROLLING 429)."""
        self._blocked_until = max(self._blocked_until, _seconds(self._clock) + seconds)


class DailyBudget:
    """Counts calls per day; raises BudgetExhausted without calling once the day is spent."""

    def __init__(self, limit: int | None, timezone: str, clock: Clock) -> None:
        self._limit, self._tz, self._clock = limit, ZoneInfo(timezone), clock
        self._day: object = None
        self.used = 0
        self._resume_at: datetime | None = None
        self._reported: ApiQuota | None = None  # the account's, from the last headers

    def next_reset(self) -> datetime:
        """The next midnight in the account's time zone (HubSpot's daily reset, crm-api C7)."""
        local = self._clock().astimezone(self._tz)
        midnight = datetime.combine(
            local.date() + timedelta(days=1), datetime.min.time(), tzinfo=self._tz
        )
        return midnight.astimezone(ZoneInfo("UTC"))

    def check(self) -> None:
        now = self._clock()
        if self._resume_at is not None:
            if now < self._resume_at:
                raise BudgetExhausted(
                    f"HubSpot daily API limit reached; no calls until "
                    f"{self._resume_at:%Y-%m-%d %H:%M} UTC",
                    resume_at=self._resume_at,
                    crm="hubspot",
                    code="DAILY",
                )
            self._resume_at = None
        day = now.astimezone(self._tz).date()
        if day != self._day:
            self._day, self.used = day, 0
        if self._limit is not None and self.used >= self._limit:
            self._resume_at = self.next_reset()
            raise BudgetExhausted(
                f"HubSpot connector spent its configured daily_limit of {self._limit} calls; "
                f"resuming at {self._resume_at:%Y-%m-%d %H:%M} UTC (raise daily_limit to go on)",
                resume_at=self._resume_at,
                crm="hubspot",
                code="DAILY",
            )

    def spend(self) -> None:
        self.used += 1

    def exhaust(self) -> datetime:
        """HubSpot said DAILY: stop until the next reset; returns when that is."""
        self._resume_at = self.next_reset()
        return self._resume_at

    def observe(self, headers: Mapping[str, str]) -> None:
        daily = _int(headers.get("X-HubSpot-RateLimit-Daily"))
        remaining = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily is not None and remaining is not None:
            self._reported = ApiQuota(used=max(daily - remaining, 0), limit=daily)
        if remaining == 0:
            self.exhaust()

    def quota(self) -> ApiQuota | None:
        """The account's daily use as HubSpot last reported it, else this connector's own
        ``daily_limit`` budget, else None."""
        if self._reported is not None:
            return self._reported
        if self._limit is not None:
            return ApiQuota(used=self.used, limit=self._limit)
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
