"""The funnel's KPI gauges, kept current after each cycle rather than on every scrape.

After a connector's cycle, the CRM's funnel report (:mod:`syncd.report`) over the ledger rows
of the last :data:`KPI_WINDOW` gives three gauges, equal to what ``syncd report --by crm``
shows for the same window and time: leads entering each stage (any-order), the sales
acceptance rate, and the open SAL follow-up breaches. A scrape reads the gauges and never
touches the store.

The first refresh reads the whole window (40 s at a million leads with five ledger rows each,
as long as ``syncd report``); each later one costs what changed since
(:mod:`syncd.kpi_incremental`): the ledger rows added, the leads whose contribution moved with
the clock (rows leaving the window, SLA deadlines passed, leads turned stale) and the leads a
pull stored again, so about 0.13 ms of CPU per such lead (1.3 s after a 1 % cycle at 1M, 0.2 s
for the clock alone; ``bench/kpi_refresh.py``). A change of the report settings reads the
window again.

When: after a cycle that grew the ledger or moved rows of it (a HubSpot merge gives the
merged lead its originals' rows: the next refresh reads the window again), or when the gauges
are :data:`KPI_MAX_AGE` old (what they show also moves with time), so an idle cycle costs no
read. The next refresh waits
:data:`KPI_SPACING` times as long as the last one took: kept because a full refresh (the first,
or after a settings change) still takes seconds at a million leads and must not be repeated
back to back; after an incremental one it is seconds at most, under a cycle's interval, so
each cycle that grew the ledger refreshes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.kpi_incremental import FunnelState
from syncd.report import Report, ReportOptions, compute
from syncd.report_read import read_inputs
from syncd.settings import Settings

__all__ = ["KPI_SPACING", "KPI_WINDOW", "FunnelKpis"]

log = logging.getLogger("syncd.kpi")

#: The gauges' window: the report's default period.
KPI_WINDOW = timedelta(days=90)
#: Gauges are recomputed after a cycle only when the ledger grew since, or when they are this
#: old (what they show also moves with time: the window's start, SLA breaches). An idle cycle
#: then costs no read of the ledger, whatever its size.
KPI_MAX_AGE = timedelta(minutes=15)
#: After a refresh, the next waits this many times as long as it took (at most KPI_MAX_AGE):
#: a full one (40 s at 1M leads) is then not repeated within 15 min; an incremental one (1.3 s
#: after a 1 % cycle at 1M, milliseconds at 10k) delays the next by under a cycle's interval.
KPI_SPACING = 20


class FunnelKpis:
    """Computes one CRM's KPIs and hands them to ``publish`` (the metrics' setter)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        publish: Callable[[str, Report], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        incremental: bool = True,
    ) -> None:
        self.engine = engine
        #: Keep each CRM's per-lead state between refreshes (:mod:`syncd.kpi_incremental`:
        #: about 80 MiB at a million leads). A process that refreshes once (``sync --once``)
        #: streams the window through the report instead and keeps nothing.
        self.incremental = incremental
        self.settings = settings
        self.publish = publish
        self.clock = clock
        #: Per CRM: the ledger's newest row id, when, and the report of the last refresh.
        self._last: dict[str, tuple[int | None, datetime, Report]] = {}
        #: Per CRM: how long the last refresh took (``KPI_SPACING``).
        self._took: dict[str, timedelta] = {}
        #: Per CRM: the report kept between refreshes (updated by what changed).
        self._states: dict[str, FunnelState] = {}
        #: CRMs whose ledger rows a cycle moved between leads since their last refresh (a
        #: merge): their ledger changed though its newest id did not.
        self._moved: set[str] = set()
        self.status_maps: Mapping[str, Mapping[str, str]] = {
            name: {crm_value: status for status, crm_value in cs.status_values.items()}
            for name, cs in settings.connectors().items()
        }

    def options(self, now: datetime) -> ReportOptions:
        rs = self.settings.report
        return ReportOptions(
            since=now - KPI_WINDOW,
            until=now,
            now=now,
            stages=tuple(rs.stages),
            rejected=tuple(rs.rejected),
            acceptance=rs.acceptance,
            acceptance_target=rs.acceptance_target,
            accept_within_hours=rs.accept_within_business_hours,
            sla_hours=rs.sla_business_hours,
            stale_after=rs.stale_after,
            calendar=self.settings.calendar.calendar(),
        )

    def compute(self, crm: str, mark: int | None = None) -> Report:
        """``crm``'s report over the window ending now and the ledger rows up to ``mark`` (the
        ledger's newest when None): updated from the last one by what changed since."""
        now = self.clock()
        if mark is None:
            mark = self._ledger_mark() or 0
        if not self.incremental:
            leads = read_inputs(
                self.engine, self.status_maps, crm=crm, since=now - KPI_WINDOW, max_id=mark
            )
            return compute(leads, self.options(now))[0]
        state = self._states.get(crm)
        if state is None:
            state = self._states[crm] = FunnelState(self.engine, crm, self.status_maps)
        return state.refresh(self.options(now), mark).report

    def ledger_moved(self, crm: str) -> None:
        """A cycle moved ``crm``'s ledger rows between leads (``CycleReport.ledger_moved``): the
        next refresh is due as if the ledger had grown."""
        self._moved.add(crm)

    def refresh(self, crm: str, ledger_mark: int | None = None) -> Report | None:
        """Bring ``crm``'s gauges up to date (unless nothing changed lately: ``KPI_MAX_AGE``); a
        store error keeps the last values (and is logged). ``ledger_mark``: the ledger's newest row
        id as the cycle's last statement read it (``CycleReport.ledger_mark``), else read."""
        try:
            mark = self._ledger_mark() if ledger_mark is None else ledger_mark
            last = self._last.get(crm)
            now = self.clock()
            if last is not None:
                age = now - last[1]
                spacing = min(KPI_MAX_AGE, KPI_SPACING * self._took.get(crm, timedelta(0)))
                same = last[0] == mark and crm not in self._moved
                if age < spacing or (same and age < KPI_MAX_AGE):
                    return last[2]
            started = time.perf_counter()
            report = self.compute(crm, mark)
        except SQLAlchemyError as exc:
            log.warning("%s: funnel KPIs not refreshed (%s)", crm, str(exc).splitlines()[0])
            return None
        self._took[crm] = timedelta(seconds=time.perf_counter() - started)
        self._last[crm] = (mark, now, report)
        self._moved.discard(crm)
        self.publish(crm, report)
        return report

    def _ledger_mark(self) -> int | None:
        """The ledger's newest row id (its primary key: one index probe)."""
        from sqlalchemy import func, select

        from syncd.state import StatusHistoryRow

        # One statement: in autocommit on PostgreSQL, no BEGIN/ROLLBACK round trips per cycle.
        engine = self.engine
        if engine.dialect.name == "postgresql":
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            value = conn.execute(select(func.max(StatusHistoryRow.__table__.c.id))).scalar()
        return 0 if value is None else int(value)  # 0 when empty, as syncd.run_books reads it
