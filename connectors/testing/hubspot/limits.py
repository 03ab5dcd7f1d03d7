"""HubSpot's rate limits as the emulator enforces them (crm-api C2, C7).

Three buckets: a rolling ten-second window per app for ordinary calls, a per-second window for
search (search is exempt from the ten-second bucket: spec ``x-hubspot-rate-limit-exemptions``),
and a daily count per account that resets at midnight (UTC here; the account's time zone in real
portals). Requests refused with 429 do not count.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connectors.testing.hubspot.config import EmulatorConfig

__all__ = ["RateDecision", "RateLimiter"]

_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RateDecision:
    """``policy`` is None when the call may proceed; otherwise the 429 policy name."""

    policy: str | None
    retry_after_s: int | None
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, config: EmulatorConfig, now_ms: Callable[[], int]) -> None:
        self._config = config
        self._now_ms = now_ms
        self._lock = threading.Lock()
        self._general: deque[int] = deque()
        self._search: deque[int] = deque()
        self._day = -1
        self._day_count = 0

    def admit(self, *, search: bool, daily_headers: bool) -> RateDecision:
        """Count one request, or refuse it with the policy that is full."""
        cfg = self._config
        with self._lock:
            now = self._roll()
            _expire(self._general, now - 10_000)
            _expire(self._search, now - 1_000)
            if self._day_count >= cfg.daily_limit:
                return RateDecision("DAILY", None, self._headers(search, daily_headers))
            if search:
                if len(self._search) >= cfg.search_per_second:
                    wait = math.ceil((self._search[0] + 1_000 - now) / 1000)
                    return RateDecision(
                        "SECONDLY", max(wait, 1), self._headers(search, daily_headers)
                    )
                self._search.append(now)
            else:
                if len(self._general) >= cfg.ten_second_limit:
                    wait = math.ceil((self._general[0] + 10_000 - now) / 1000)
                    return RateDecision(
                        "TEN_SECONDLY_ROLLING", max(wait, 1), self._headers(search, daily_headers)
                    )
                self._general.append(now)
            self._day_count += 1
            return RateDecision(None, None, self._headers(search, daily_headers))

    def _roll(self) -> int:
        """Now, having started a new day's count if midnight passed (lock held): read before
        the next request, the count of a day that has ended is not today's."""
        now = self._now_ms()
        day = now // _DAY_MS
        if day != self._day:
            self._day, self._day_count = day, 0
        return now

    def headers(self, search: bool, daily_headers: bool) -> dict[str, str]:
        with self._lock:
            self._roll()
            return self._headers(search, daily_headers)

    def _headers(self, search: bool, daily_headers: bool) -> dict[str, str]:
        cfg = self._config
        if search and not cfg.rate_limit_headers_on_search:
            return {}
        headers = {
            "X-HubSpot-RateLimit-Max": str(cfg.ten_second_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(cfg.ten_second_limit - len(self._general), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        # "not sent for OAuth-authorised calls" (crm-api C7)
        if daily_headers:
            headers["X-HubSpot-RateLimit-Daily"] = str(cfg.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(cfg.daily_limit - self._day_count, 0)
            )
        return headers

    def exhaust_daily(self) -> None:
        """Spend today's budget (test helper)."""
        with self._lock:
            self._day = self._now_ms() // _DAY_MS
            self._day_count = self._config.daily_limit

    @property
    def daily_used(self) -> int:
        """Today's calls (the emulator clock's UTC day)."""
        with self._lock:
            self._roll()
            return self._day_count


def _expire(window: deque[int], cutoff: int) -> None:
    while window and window[0] <= cutoff:
        window.popleft()
