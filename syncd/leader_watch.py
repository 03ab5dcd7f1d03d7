"""The ``no_leader`` alert: a connector whose lease nobody has held for a while.

Prometheus' ``SyncdNoLeader`` needs a Prometheus; this reaches people through the alert channels.
Every replica runs the check (the daemon schedules it every lease renewal period), the standbys
too: when the leader is gone and no standby could take over (say every standby's database
connection is refused by the leader's stale lock, or each one crashes on start), a standby is
the process still running to tell. A lease counts as unheld from its expiry (a clean stop
expires it at once); one never taken counts from when this process first looked. After
``alerts.no_leader_after`` (5 minutes by default: a standby normally takes over within a ttl and
a renewal period) the alert is sent, again every ``alerts.repeat_after`` while it lasts, and a
short "resolved" message once a leader holds the lease again.

Replicas share the alert state in the store's ``meta`` table: the first replica to send it
records it, the others see it sent. Two replicas checking within the same instant may both send
the first message; that is the price of not locking for an alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from syncd.alerts import Alerter
from syncd.lease import Holder, recorded_holder
from syncd.state import StateStore

__all__ = ["LeaderWatch"]

log = logging.getLogger("syncd.leader_watch")


class LeaderWatch:
    def __init__(
        self,
        store: StateStore,
        alerter: Alerter,
        connectors: Sequence[str],
        *,
        grace: timedelta,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.alerter = alerter
        self.connectors = list(connectors)
        self.grace = grace
        # Expiry is judged by the database's clock, as the lease code judges it (syncd.lease).
        self.now = now or self._database_now
        self._first_look: dict[str, datetime] = {}

    def check(self) -> None:
        """One look at every connector's lease; never raises (a failed look is logged)."""
        for name in self.connectors:
            try:
                holder = recorded_holder(self.store, name)
                now = self.now()
            except SQLAlchemyError as exc:
                log.warning(
                    "%s: could not read the lease to check for a leader (%s); trying again "
                    "at the next check",
                    name,
                    type(exc).__name__,
                )
                continue
            self._judge(name, holder, now)

    def _judge(self, name: str, holder: Holder | None, now: datetime) -> None:
        if holder is not None and holder.expires_at > now:
            self._first_look.pop(name, None)
            since = None
        elif holder is not None:
            since = holder.expires_at
        else:
            since = self._first_look.setdefault(name, now)
        unheld = since is not None and now - since >= self.grace
        minutes = 0 if since is None else int((now - since).total_seconds() // 60)
        last = f"; it was last held by {holder.describe()}" if holder is not None and since else ""
        self.alerter.condition(
            "no_leader",
            name,
            unheld,
            {
                "connector": name,
                "unheld_since": since.isoformat() if since is not None else None,
                "minutes": minutes,
                "text": f"{name}: no syncd process has led this connector for {minutes} "
                f"minutes (since {since:%Y-%m-%d %H:%M} UTC){last}; no cycles run and no "
                "changes are written until one does. Check that a `syncd run` is up "
                "(`syncd status` names the lease holder)."
                if since is not None
                else "",
            },
            resolved={
                "connector": name,
                "text": f"{name}: a syncd process leads this connector again"
                + (f" ({holder.describe()})" if holder is not None else ""),
            },
        )

    def _database_now(self) -> datetime:
        if self.store.engine.dialect.name != "postgresql":
            return datetime.now(UTC)  # SQLite: one host, one clock
        with self.store.engine.connect() as conn:
            value: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
        return value.astimezone(UTC)
