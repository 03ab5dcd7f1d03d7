"""A controllable clock for the emulator: real time by default, frozen or shifted on demand.

Salesforce stamps SystemModstamp at whole-second precision (facts A3.3), so the emulator reads
its clock as integer epoch seconds; freezing it lets thousands of records share one second.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Thread-safe clock; ``freeze`` pins it, ``advance`` moves it, ``unfreeze`` resumes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen: float | None = None
        self._offset = 0.0

    def now_epoch(self) -> float:
        """Current emulator time in epoch seconds (fractional)."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now_second(self) -> int:
        """Current emulator time truncated to the whole second (what SystemModstamp stores)."""
        return int(self.now_epoch())

    def now(self) -> datetime:
        """Current emulator time as a tz-aware UTC datetime."""
        return datetime.fromtimestamp(self.now_epoch(), tz=UTC)

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (tz-aware) or at the current emulator time."""
        with self._lock:
            if at is None:
                base = self._frozen if self._frozen is not None else time.time() + self._offset
            else:
                if at.tzinfo is None:
                    raise ValueError("freeze(at=...) needs a tz-aware datetime")
                base = at.timestamp()
            self._frozen = base

    def advance(self, seconds: float) -> None:
        """Move the clock forward (frozen or running) by ``seconds``."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def unfreeze(self) -> None:
        """Let the clock run again from where it was frozen."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
