"""The request journal every emulator keeps: what each API request was and what came of it.

One entry per API request (admin requests under ``/__emulator__/`` are not journaled), with a
sequence number so a harness can poll ``GET /__emulator__/journal?since=N`` for what is new.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Journal", "JournalEntry"]

_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(slots=True)
class JournalEntry:
    """One API request and its outcome.

    ``status`` is 0 when the connection was dropped without an answer. ``applied`` says whether
    the emulator executed the request (its writes, if any, took effect): a request dropped
    *after* it was applied has ``status == 0`` and ``applied``. ``record_ids`` are the records a
    write addressed, ``written`` those it changed. ``fault`` names the injected fault, if any.
    """

    method: str
    path: str
    query: str = ""
    status: int = 0
    seq: int = 0
    at: float = 0.0  # emulator clock, epoch seconds
    request_id: str = ""
    applied: bool = False
    fault: str | None = None
    records: int | None = None  # inputs of a batch call / rows returned by a read
    record_ids: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # the request headers worth keeping
    body: bytes = b""
    connection: int = 0  # client port: distinct values are distinct TCP connections
    soql: str | None = None
    policy: str | None = None  # the 429 policy name (HubSpot)
    #: The subrequests a composite request carried (Salesforce Composite), each journaled as
    #: it was served; they are part of this one request and are not counted as requests.
    subrequests: list[JournalEntry] = field(default_factory=list)

    @property
    def body_bytes(self) -> int:
        return len(self.body)

    @property
    def is_write(self) -> bool:
        """A request that changes (or tries to change) CRM data; token grants and searches are
        not writes."""
        return (
            self.method in _WRITE_METHODS
            and "oauth" not in self.path
            and not self.path.endswith(("/search", "/batch/read"))
            # A Composite request of queries only (Salesforce's chained query pages) reads.
            and not (self.subrequests and all(s.method == "GET" for s in self.subrequests))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": datetime.fromtimestamp(self.at, tz=UTC).isoformat(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "request_id": self.request_id,
            "applied": self.applied,
            "fault": self.fault,
            "write": self.is_write,
            "records": self.records,
            "record_ids": list(self.record_ids),
            "written": list(self.written),
            "policy": self.policy,
            "soql": self.soql,
            **(
                {"subrequests": [s.to_json() for s in self.subrequests]} if self.subrequests else {}
            ),
        }


class Journal:
    """Thread-safe, bounded log of requests (the oldest entries go beyond ``limit``)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque(maxlen=limit)
        self._seq = 0

    def append(self, entry: JournalEntry) -> JournalEntry:
        """Add ``entry``, giving it the next sequence number."""
        with self._lock:
            self._seq += 1
            entry.seq = self._seq
            self._entries.append(entry)
        return entry

    def entries(
        self,
        method: str | None = None,
        path_contains: str = "",
        status: int | None = None,
        *,
        since: int = 0,
    ) -> list[JournalEntry]:
        """Entries in order, filtered by method, a path substring, status and ``seq > since``."""
        with self._lock:
            found = list(self._entries)
        return [
            e
            for e in found
            if e.seq > since
            and (method is None or e.method == method)
            and path_contains in e.path
            and (status is None or e.status == status)
        ]

    def writes(self) -> list[JournalEntry]:
        """Entries that changed (or tried to change) data."""
        return [e for e in self.entries() if e.is_write]

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def clear(self) -> None:
        """Forget the entries (sequence numbers keep counting up)."""
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __getitem__(self, i: int) -> JournalEntry:
        return self.entries()[i]
