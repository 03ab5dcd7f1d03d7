"""The emulator's request journal and fault plan: what tests assert on and how they break things."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultPlan", "Journal", "JournalEntry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    method: str
    path: str  # without the query string
    query: str
    status: int  # 0 when the connection was dropped
    body: bytes  # request body
    records: int  # inputs in a batch/membership call, results returned by a read
    connection: int  # client port: distinct values = distinct TCP connections
    policy: str | None = None  # 429 policyName


class Journal:
    """Thread-safe append-only list of handled requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def append(self, entry: JournalEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._entries)

    def calls(self, method: str | None = None, path_contains: str = "",
              status: int | None = None) -> list[JournalEntry]:
        return [e for e in self.entries if (method is None or e.method == method)
                and path_contains in e.path and (status is None or e.status == status)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass
class Fault:
    """Fail the next ``count`` matching requests.

    ``status``/``body``/``headers`` give the response; ``delay`` (seconds, wall time) stalls before
    answering (to trip client timeouts); ``drop`` closes the socket with no response.
    """

    count: int = 1
    status: int = 503
    body: str | bytes | dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # regex searched in the path
    method: str | None = None
    delay: float = 0.0
    drop: bool = False
    respond: bool = True  # False with delay: stall, then serve the real response

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None)


class FaultPlan:
    """Queued faults; the first matching fault with count left is used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault | None = None, **kwargs: object) -> Fault:
        fault = fault or Fault(**kwargs)  # type: ignore[arg-type]
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    return fault
            return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
