"""The emulator's request journal: what each request was and how it was answered."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Journal", "JournalEntry"]

#: Request headers worth remembering (the rest, Authorization above all, are not kept).
HEADERS_OF_INTEREST = ("sforce-auto-assign", "sforce-duplicate-rule-header",
                       "sforce-query-options")


@dataclass(slots=True)
class JournalEntry:
    method: str
    path: str
    status: int
    body_bytes: int
    records: int | None = None  # records in a collections call / returned by a query page
    headers: dict[str, str] = field(default_factory=dict)
    soql: str | None = None
    record_ids: tuple[str, ...] = ()  # ids written by a collections PATCH (for exactly-once checks)

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PATCH", "PUT", "DELETE") and "/oauth2/" not in self.path


class Journal:
    """Thread-safe, bounded, list-like log of requests."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque(maxlen=limit)

    def append(self, entry: JournalEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> JournalEntry:
        return self.entries()[i]

    def writes(self) -> list[JournalEntry]:
        """Entries that changed (or tried to change) data."""
        return [e for e in self.entries() if e.is_write]
