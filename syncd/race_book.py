"""Where the race check's awaiting writes are kept until their check is read (:mod:`syncd.races`).

In memory for the running process: the confirmed status and field writes' outbox ids (8 bytes each) and
the earliest time to read people's edits from. In the state store for the next process: a
``meta`` record per write call, stored with the call's rows leaving (``SENDING``), so a crash
after the CRM applied them still leaves their check to the process that comes next; it checks
those that ended up done.

One record a call, not one record rewritten whole at each call: the whole record grew with every
call of a cycle, so a first sync of a million leads (about 500 calls) wrote 125 million ids,
about 15 s of CPU. A record under the bare key is what earlier versions left; it is read, then
deleted, like the parts.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from connectors.base import HistoryEntry
from syncd import races
from syncd.records import OutboxRecord
from syncd.state import OutboxState, StateStore

__all__ = ["RaceBook"]

#: Awaiting status writes read back per statement batch when a race check finds edits.
_SUSPECT_CHUNK = 5000


class RaceBook:
    """One connector's race check awaiting its read."""

    def __init__(self, store: StateStore, crm: str) -> None:
        self._store = store
        self._crm = crm
        self._key = f"race_check:{crm}"
        self._pending: races.PendingCheck | None = None
        self._loaded = False

    @property
    def pending(self) -> races.PendingCheck | None:
        """The writes awaiting the check, or None."""
        return self._pending

    def load(self) -> races.PendingCheck | None:
        """The pending check, with what a previous process left unread on the first call (its
        status writes that were done, from the earliest start any of its records names)."""
        if self._loaded:
            return self._pending
        self._loaded = True
        parts = list(self._store.meta_with_prefix(f"{self._key}:").values())
        legacy = self._store.get_meta(self._key)
        if legacy:
            parts.append(legacy)
        if not parts:
            return self._pending
        wanted = sorted({i for part in parts for i in part["ids"]})
        done = self._store.change_ids_in(self._crm, wanted, OutboxState.DONE)
        if not done:
            self._delete_records()
            return self._pending
        since = min(datetime.fromisoformat(part["since"]) for part in parts)
        self._merge(array("q", done), since)
        return self._pending

    def record_sent(self, conn: Connection, sent: Sequence[int], since: datetime) -> None:
        """Store, in the caller's transaction, that the status writes ``sent`` leave in a call
        whose check reads people's edits from ``since`` (the records of earlier calls stay)."""
        if sent:
            record: dict[str, Any] = {"since": since.isoformat(), "ids": list(sent)}
            self._store.put_meta(conn, f"{self._key}:{uuid.uuid4().hex}", record)

    def confirm(self, written: Sequence[int], since: datetime) -> None:
        """Keep the call's confirmed status writes (outbox ids) for the next check."""
        if written:
            self._merge(array("q", written), since)

    def clear(self) -> None:
        """The check is read (or cannot be): forget it, here and in the store."""
        self._pending = None
        self._delete_records()

    def suspects(
        self, pending: races.PendingCheck, edits: Sequence[HistoryEntry]
    ) -> list[OutboxRecord]:
        """The awaiting writes people's ``edits`` may have raced, read back from the store a
        chunk at a time (none when no person edited a status or a written field since the
        check's start)."""
        if not any(e.actor != "integration" for e in edits):
            return []
        ids = pending.written.tolist()
        out: list[OutboxRecord] = []
        for start in range(0, len(ids), _SUSPECT_CHUNK):
            chunk = ids[start : start + _SUSPECT_CHUNK]
            done = self._store.changes_by_id(self._crm, chunk, OutboxState.DONE)
            out += races.suspects(done, edits)
        return out

    def _delete_records(self) -> None:
        with self._store.begin() as conn:
            self._store.delete_meta(conn, self._key, prefix=f"{self._key}:")

    def _merge(self, ids: array[int], since: datetime) -> None:
        pending = self._pending
        if pending is None:
            self._pending = races.PendingCheck(since, ids)
            return
        pending.written.extend(ids)  # ids only (races.PendingCheck): 8 bytes a write, not a row
        self._pending = races.PendingCheck(min(since, pending.since), pending.written)
