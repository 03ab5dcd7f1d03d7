"""One controllable clock for every emulator: real time (plus an offset) or simulated.

A *real* clock follows wall time; :meth:`EmulatorClock.advance` shifts it forward. A
*simulated* (frozen) clock stands still until advanced, so thousands of writes can share one
instant (Salesforce stamps ``SystemModstamp`` to the second, HubSpot ``lastmodifieddate`` to the
millisecond) and waits cost no wall time. Token expiry, rate-limit windows, index lag and record
timestamps all read this clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Thread-safe emulator time; ``freeze`` makes it simulated, ``unfreeze`` real again."""

    def __init__(self, *, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None if frozen_at is None else _epoch(frozen_at)

    def now_epoch(self) -> float:
        """Current emulator time in epoch seconds (fractional)."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now_second(self) -> int:
        """Whole epoch seconds (what Salesforce's SystemModstamp stores)."""
        return int(self.now_epoch())

    def now_ms(self) -> int:
        """Epoch milliseconds (what HubSpot's timestamps store)."""
        return round(self.now_epoch() * 1000)

    def now(self) -> datetime:
        """Current emulator time as a tz-aware UTC datetime (usable as a connector's clock)."""
        return datetime.fromtimestamp(self.now_epoch(), tz=UTC)

    @property
    def frozen(self) -> bool:
        """True when the clock is simulated: it moves only when advanced."""
        with self._lock:
            return self._frozen is not None

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (tz-aware) or at the current emulator time."""
        target = self.now_epoch() if at is None else _epoch(at)
        with self._lock:
            self._frozen = target

    def unfreeze(self) -> None:
        """Follow wall time again, from the frozen instant on."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None

    def advance(self, seconds: float) -> None:
        """Move the clock forward (frozen or running); usable as a connector's ``sleep``."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += float(seconds)
            else:
                self._offset += float(seconds)


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError("EmulatorClock needs a tz-aware datetime, e.g. datetime.now(UTC)")
    return value.timestamp()
