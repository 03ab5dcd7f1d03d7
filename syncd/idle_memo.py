"""An idle cycle's answers, kept by the leader for its next cycles: one statement a cycle.

An idle cycle asks the state store three things before and after an empty pull: where the pull
stopped (the cursor), whether anything is due or open (``syncd.plan_probe``), and, before
planning, whether it still holds the lease. Every answer is the same as the last cycle's unless
something wrote since, or time made a lead due or ended a hold. On PostgreSQL each question is
a round trip to the server; kept here, an idle cycle costs the run's own row and nothing else.

A cycle that stored a pull or planned but sent nothing to the CRM (it settled the echo of
syncd's own writes, say) reads the same answers at its end (``Pipeline._settled_answers``), so
the first idle cycle after it runs on them too; one that wrote does not (its echo comes with the
next pull, which would spend them).

The kept answers stand while all of these hold, and the cycle then asks nothing before its pull:

* **the same lease token.** Only the lease holder writes a connector's mirror and outbox (every
  command that writes them takes the lease: ``syncd.lease``). A token that changed, even back to
  this process, means another process may have written in between.
* **no write of this process since.** ``StateStore.writes`` counts every transaction that may
  change what a plan reads: not the lease's, nor a run's start and end (``syncd.run_books``),
  so another connector's idle cycles leave them standing; its pages, plans and batches do not.
* **no retry request waits.** ``syncd retry`` queues a request for the leader from another
  process (``syncd.retry_requests``); each lease renewal's statement also says whether one waits
  (``Lease.watch``), and the pipeline's cycle after a renewal that said yes reads the store.
* **time has not reached ``until``**: the first due time or the first hold's end the probe read
  (``PlanProbe.changes_at``), and at most :data:`LIFE` after the answers were read, so a store
  edited by hand (or a bug that writes without the lease) is seen within the hour, not never.

The rule set, the connector's settings and the calendar are the planning fingerprint, which the
plan compares with the kept answer's on every cycle, as with a fresh one. A pull that brings any
lead writes it, which spends the kept answers: that cycle goes on as a full one.

What it costs: the run row is written once, at the cycle's end, or with the first page the pull
stores; a process killed during such a cycle's pull leaves no run row for it (nor anything else:
it had written nothing yet). A cycle on kept answers that wrote nothing ends with the run's
insert and the cursor's new read time alone (``run_books.finish_quiet``): the status ledger's
newest id, which a cycle's end otherwise reads for the funnel KPIs, is the kept one, since only
this process's writes (which spend the answers) or another lease holder's (a new token) add
this connector's rows (at 2,000 leads, with the two stores' idle cycles run turn about by
``bench/lockstep.py``, PostgreSQL's idle cycle went from 1.24 to 1.11 times SQLite's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.plan_probe import PlanProbe
from syncd.run_books import Position

__all__ = ["LIFE", "IdleMemo"]

#: How long kept answers stand at most, whatever the probe said.
LIFE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class IdleMemo:
    token: int  # the lease's fencing token when the answers were read
    writes: int  # ``StateStore.writes`` after the cycle that read them ended
    probe: PlanProbe  # the plan probe's answer (idle under its fingerprint)
    cursor: Position | None  # the lead pull's stored position after that cycle
    ledger_mark: int  # the status ledger's newest row id at that cycle's end (syncd.kpi)
    read_at: datetime  # when the store was last asked for them (a cycle's start, UTC)
    until: datetime  # the answers stand strictly before this instant (UTC)

    @classmethod
    def of(
        cls,
        *,
        token: int,
        writes: int,
        probe: PlanProbe,
        cursor: Position | None,
        ledger_mark: int,
        read_at: datetime,
        hold: timedelta,
    ) -> IdleMemo:
        """The answers ``probe`` (read at ``read_at``), ``cursor`` and ``ledger_mark`` give,
        under ``token``."""
        until = min(probe.changes_at(hold), read_at + LIFE)
        return cls(token, writes, probe, cursor, ledger_mark, read_at, until)

    def stands(self, *, token: int | None, writes: int, now: datetime) -> bool:
        """Whether a cycle starting at ``now`` may use these answers instead of asking."""
        return token == self.token and writes == self.writes and now < self.until
