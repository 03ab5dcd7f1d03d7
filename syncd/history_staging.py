"""Where a pull gets the CRM's status history of the leads it sees for the first time.

Reading it per lead costs one call per ``status_history_batch`` new leads (Salesforce 200): a
first sync of 1M leads would spend 5,000 calls on history beside a few dozen on the leads. When
a pull meets more new leads than one such call covers, the connector is asked once for the
whole org's history as one stream (``Connector.org_status_history``; Salesforce: 2,000 rows a
call). It is staged in a temporary SQLite file (flat memory whatever the org's size, removed
when the pull ends) and each page's new leads take theirs from it: the same entries, in the same
order, as ``status_history`` of those leads returns, so the ledger rows and the first-sight
holds do not depend on the path. Steady-state pulls (a few new leads) keep the per-lead read.
A connector without such a stream whose history reads would slow the pull itself
(``Connector.history_after_pull``: HubSpot) defers them instead: the pull marks its new leads
and the cycle reads their history after it, before planning (``syncd.history_pending``).

History written while the pull runs may be missing from the staging; those leads changed after
the pull's upper bound, so the next pull reads them again and records the change as observed.
"""

from __future__ import annotations

import enum
import logging
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from connectors.base import Connector, HistoryActorKind, HistoryEntry
from connectors.errors import AuthError, ConfigurationError, FatalError

__all__ = ["FirstSightHistory", "StagedHistory"]

log = logging.getLogger("syncd.pipeline")

#: Lead ids bound in one ``IN (...)`` read of the staging (SQLite's host parameter limit is
#: 32,766 since 3.32, 999 before).
_LOOKUP = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StagedHistory:
    """Status history entries in a temporary SQLite file, read back by lead.

    About 50 bytes a row on disk: values (statuses, user ids, fields, actor kinds) are few
    distinct texts, stored as numbers into a table kept in memory; times as microseconds.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="syncd-history-"))
        self._db = sqlite3.connect(self._dir / "history.sqlite3")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        # seq keeps the CRM's order, which decides between entries of the same instant.
        self._db.execute(
            "CREATE TABLE entry (lead_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "field INTEGER, from_value INTEGER, to_value INTEGER, at INTEGER NOT NULL, "
            "actor INTEGER, actor_id INTEGER, PRIMARY KEY (lead_id, seq)) WITHOUT ROWID"
        )
        self._codes: dict[str | None, int] = {}
        self._texts: list[str | None] = []
        self.rows = 0

    def _code(self, text: str | None) -> int:
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self._texts)
            self._texts.append(text)
        return code

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        code, first = self._code, self.rows
        self._db.executemany(
            "INSERT INTO entry VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    e.lead_id,
                    first + n,
                    code(e.field),
                    code(e.from_value),
                    code(e.to_value),
                    (e.at - _EPOCH) // _MICROSECOND,
                    code(e.actor),
                    code(e.actor_id),
                )
                for n, e in enumerate(entries)
            ),
        )
        self.rows += len(entries)

    def of(self, lead_ids: Sequence[str]) -> dict[str, list[HistoryEntry]]:
        """The staged entries of ``lead_ids`` by lead, oldest first (ties in the CRM's order),
        as ``Connector.status_history`` orders them."""
        text = self._texts
        out: dict[str, list[HistoryEntry]] = defaultdict(list)
        for start in range(0, len(lead_ids), _LOOKUP):
            chunk = list(lead_ids[start : start + _LOOKUP])
            marks = ", ".join("?" * len(chunk))
            for lead_id, field, old, new, at, actor, actor_id in self._db.execute(
                "SELECT lead_id, field, from_value, to_value, at, actor, actor_id FROM entry "
                f"WHERE lead_id IN ({marks}) ORDER BY lead_id, seq",
                chunk,
            ):
                out[lead_id].append(
                    HistoryEntry(
                        lead_id=lead_id,
                        field=str(text[field]),
                        from_value=text[old],
                        to_value=text[new],
                        at=_EPOCH + timedelta(microseconds=at),
                        actor=cast(HistoryActorKind, text[actor]),
                        actor_id=text[actor_id],
                    )
                )
        for entries in out.values():
            entries.sort(key=lambda e: e.at)  # stable: ties stay in the CRM's order
        return out

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Source(enum.Enum):
    UNDECIDED = "undecided"
    PER_LEAD = "per_lead"  # the caller reads each page's new leads from the CRM
    STAGED = "staged"
    REFUSED = "refused"  # the CRM will not show its history: first sight goes without it
    DEFERRED = "deferred"  # read after the pull, before the plan (syncd.history_pending)


class FirstSightHistory:
    """One pull's source of first-sight history: the org's staged once, or per lead.

    ``first_sync``: the connector's mirror is empty, so the pull's expected size (``expect``)
    is the number of new leads it will meet; otherwise each page's new leads are counted.
    ``also``: the fields whose history first sight reads beside the status
    (``Connector.status_history``): the org's stream carries them too, so that a person's edit
    of one holds the lead whichever way its history came.
    """

    def __init__(
        self, connector: Connector, crm: str, *, first_sync: bool, also: Sequence[str] = ()
    ) -> None:
        self.connector = connector
        self.crm = crm
        self.first_sync = first_sync
        self.also = tuple(also)
        self.expected: int | None = None
        self._source = _Source.UNDECIDED
        self._staged: StagedHistory | None = None

    def expect(self, total: int | None) -> None:
        """The pull's expected size, as the CRM reported it with a page."""
        if total is not None:
            self.expected = total

    def history_of(self, new: Sequence[str]) -> dict[str, list[HistoryEntry]] | None:
        """The history of a page's ``new`` leads by lead; None: read it per lead."""
        if self._source is _Source.UNDECIDED:
            self._decide(len(new))
        if self._source is _Source.STAGED:
            assert self._staged is not None
            return self._staged.of(new)
        if self._source in (_Source.REFUSED, _Source.DEFERRED):
            return {}
        return None

    @property
    def deferred(self) -> bool:
        """The pull's new leads are mirrored first, their history read after it."""
        return self._source is _Source.DEFERRED

    def _decide(self, page_new: int) -> None:
        leads = page_new
        if self.first_sync and self.expected is not None:
            leads = max(leads, self.expected)
        batch = self.connector.status_history_batch
        if batch <= 0 or leads <= batch:
            return  # one per-lead call covers it: asked again for a later, bigger page
        try:
            stream = self.connector.org_status_history(leads=leads, also=self.also)
            if stream is None:
                deferred = self.connector.history_after_pull
                self._source = _Source.DEFERRED if deferred else _Source.PER_LEAD
                return
            staged = StagedHistory()
            try:
                for entries in stream:
                    staged.add(entries)
            except BaseException:
                staged.close()
                raise
        except (ConfigurationError, FatalError) as exc:
            if isinstance(exc, AuthError):
                raise
            # As Pipeline._crm_history: the ledger and first-sight holds lose this source,
            # the pull goes on.
            log.warning(
                "%s: the CRM's status history could not be read (%s); %s",
                self.crm,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "new leads are mirrored without it",
            )
            self._source = _Source.REFUSED
            return
        log.info(
            "%s: read the org's status history once (%d entries) for %d new leads",
            self.crm,
            staged.rows,
            leads,
        )
        self._staged, self._source = staged, _Source.STAGED

    def close(self) -> None:
        if self._staged is not None:
            self._staged.close()
            self._staged = None
