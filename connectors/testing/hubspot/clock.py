"""A controllable clock for the emulator: real time by default, frozen or shifted on demand.

HubSpot stamps ``lastmodifieddate`` in milliseconds, and a mass update stamps thousands of
contacts with the same millisecond; freezing the clock is how tests reproduce such ties.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Milliseconds since the epoch, either following wall time (plus an offset) or frozen.

    The emulator's rate-limit windows, token expiry, index lag and record timestamps all read this
    clock, so a test can move all of them together with :meth:`advance` instead of sleeping.
    """

    def __init__(self, *, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset_ms = 0
        self._frozen_ms: int | None = None if frozen_at is None else _to_ms(frozen_at)

    def now_ms(self) -> int:
        """The current emulator time in epoch milliseconds."""
        with self._lock:
            if self._frozen_ms is not None:
                return self._frozen_ms
            return int(time.time() * 1000) + self._offset_ms

    def now(self) -> datetime:
        """The current emulator time as a tz-aware UTC datetime (for a connector's ``clock=``)."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (default: now). Every write then shares one millisecond."""
        target = self.now_ms() if at is None else _to_ms(at)
        with self._lock:
            self._frozen_ms = target

    def unfreeze(self) -> None:
        """Resume following wall time from the frozen instant."""
        with self._lock:
            if self._frozen_ms is not None:
                self._offset_ms = self._frozen_ms - int(time.time() * 1000)
                self._frozen_ms = None

    def advance(self, seconds: float) -> None:
        """Move the clock forward; usable as a connector's ``sleep=`` so waits cost no wall time."""
        delta = int(round(float(seconds) * 1000))
        with self._lock:
            if self._frozen_ms is not None:
                self._frozen_ms += delta
            else:
                self._offset_ms += delta

    @property
    def frozen(self) -> bool:
        return self._frozen_ms is not None


def _to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("EmulatorClock needs a tz-aware datetime")
    return int(round(value.timestamp() * 1000))
