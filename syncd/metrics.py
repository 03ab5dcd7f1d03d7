"""Prometheus metrics. The registry is passed in, so tests use a private one.

Two kinds of series:

* those the daemon updates as it works (cycles, records written, held leads, ...), below in
  :class:`Metrics`;
* those read when Prometheus scrapes, by collectors registered once the state store and the
  connectors exist (:meth:`Metrics.watch`): the outbox backlog and table sizes (index-bounded
  queries, cached for :data:`STORE_REFRESH_SECONDS` so frequent scrapes cost nothing more), and
  each connector's API quota and request counters (read from ``connector.stats``).

Every series about one connector instance carries its name as the ``crm`` label.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Connector
from syncd.store_stats import OutboxBacklog, outbox_backlog, table_rows

__all__ = [
    "STORE_REFRESH_SECONDS",
    "ConnectorCollector",
    "Metrics",
    "StoreCollector",
    "syncd_version",
]

log = logging.getLogger("syncd.metrics")

#: Scrapes closer together than this reuse the last store figures.
STORE_REFRESH_SECONDS = 15.0


def syncd_version() -> str:
    try:
        return metadata.version("syncd")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cycles = Counter(
            "syncd_cycles", "Cycles run, by how they ended.", ["crm", "outcome"], registry=r
        )
        self.cycle_seconds = Histogram(
            "syncd_cycle_duration_seconds",
            "Wall time of a cycle.",
            ["crm"],
            registry=r,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
        )
        self.pulled = Counter("syncd_leads_pulled", "Leads read from the CRM.", ["crm"], registry=r)
        self.planned = Counter(
            "syncd_changes_planned", "Changes put in the outbox.", ["crm"], registry=r
        )
        self.evaluated = Counter(
            "syncd_leads_evaluated",
            "Leads the plan step evaluated (changed, with open writes, or come due).",
            ["crm"],
            registry=r,
        )
        self.records = Counter(
            "syncd_records_written", "Records sent, by outcome.", ["crm", "outcome"], registry=r
        )
        self.held = Gauge(
            "syncd_rep_edits_held",
            "Live leads whose status, or a field a rule sets, a person set within "
            "hold_rep_edits_for, left alone by the last cycle (the count `syncd "
            "status` and the cycle summary show).",
            ["crm"],
            registry=r,
        )
        self.blocked = Gauge(
            "syncd_guard_blocked",
            "Rule targets refused by the lifecycle guards in the last cycle.",
            ["crm"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "syncd_breaker_trips", "Runs stopped by the change breaker.", ["crm"], registry=r
        )
        self.api_calls = Counter(
            "syncd_api_calls", "CRM API calls made by cycles.", ["crm"], registry=r
        )
        self.quarantined = Counter(
            "syncd_quarantined_values",
            "CRM values syncd could not parse or store, stored as empty (see `syncd status`).",
            ["connector", "field"],
            registry=r,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "Unix time of the last cycle that ended ok.",
            ["crm"],
            registry=r,
        )
        self.cycle_failures = Counter(
            "syncd_cycle_failures",
            "Cycles that failed, by connector and reason (auth, "
            "configuration, crm, crm_unavailable, preflight, database, internal).",
            ["connector", "reason"],
            registry=r,
        )
        self.rules_valid = Gauge(
            "syncd_rules_valid",
            "1 when the rule files on disk loaded; 0 "
            "when the daemon keeps older rules after a bad edit.",
            registry=r,
        )
        self.rules_valid.set(1)
        self.loop_held = Gauge(
            "syncd_loop_held_leads",
            "Leads held in the last plan because "
            "syncd changed their status loop_guard.max_changes times within "
            "loop_guard.window (a likely rule loop).",
            ["crm"],
            registry=r,
        )
        self.rules_info = Gauge(
            "syncd_rules_info",
            "The rule-set version (hash) in use: 1 for the current version.",
            ["version"],
            registry=r,
        )
        self.build_info = Gauge(
            "syncd_build_info",
            "syncd's version and Python's: always 1.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(syncd_version(), platform.python_version()).set(1)
        self.pruned = Counter(
            "syncd_retention_pruned_rows",
            "Rows deleted by retention, by table.",
            ["table"],
            registry=r,
        )
        self.lease_leader = Gauge(
            "syncd_lease_leader",
            "1 while this process holds the "
            "connector's lease and runs its cycles; 0 while it is a "
            "standby.",
            ["connector"],
            registry=r,
        )
        self.funnel_leads = Gauge(
            "syncd_funnel_leads",
            "Leads entering each funnel stage in the last 90 days (any order; syncd report).",
            ["crm", "stage"],
            registry=r,
        )
        self.acceptance_rate = Gauge(
            "syncd_acceptance_rate",
            "Sales acceptance rate over the last 90 days (report.acceptance; NaN: none decided).",
            ["crm"],
            registry=r,
        )
        self.sla_open_breaches = Gauge(
            "syncd_sla_open_breaches",
            "Leads in SAL, not followed up, past report.sla_business_hours.",
            ["crm"],
            registry=r,
        )
        self.alerts_sent = Counter(
            "syncd_alerts_sent",
            "Alerts delivered, by channel and event.",
            ["channel", "event"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "syncd_alerts_failed",
            "Alerts a channel did not accept (see syncd.alerts).",
            ["channel"],
            registry=r,
        )
        #: Called with each cycle's report after it ends (funnel KPIs and alerts, app.py).
        self.after_cycle: Callable[[Any], None] | None = None
        self.lease_holder = Gauge(
            "syncd_lease_holder_info",
            "1 for the process that holds the connector's lease, as this process last saw it.",
            ["connector", "host", "pid"],
            registry=r,
        )
        self._holders: dict[str, tuple[str, str]] = {}
        # The process (CPU, memory, open files) and the interpreter (version, GC): on the
        # private registry, as prometheus_client puts them on its default one.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._watched = False

    def publish_funnel(self, crm: str, report: Any) -> None:
        """The funnel KPIs of ``crm`` (a :class:`syncd.report.Report`), see syncd.kpi."""
        for stage in report.stages:
            self.funnel_leads.labels(crm, stage.stage).set(stage.any_order)
        if report.acceptance_rate is None:
            self.acceptance_rate.labels(crm).set(float("nan"))  # nothing decided in the window
        else:
            self.acceptance_rate.labels(crm).set(report.acceptance_rate)
        self.sla_open_breaches.labels(crm).set(report.open_breach_count)

    def watch(
        self,
        *,
        engine: Engine,
        connectors: Mapping[str, Connector],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Serve the store and connector series from now on (once per registry)."""
        if self._watched:
            return
        self._watched = True
        self.registry.register(StoreCollector(engine, list(connectors), clock=clock))
        self.registry.register(ConnectorCollector(connectors))

    def set_rules_version(self, version: str) -> None:
        """The rule set in use changed (start-up or a reload): one series, the current one."""
        self.rules_info.clear()
        self.rules_info.labels(version).set(1)

    def observe_lease(
        self, connector: str, leader: bool, host: str | None, pid: int | None
    ) -> None:
        """Whether this process leads ``connector``, and who holds its lease (if known)."""
        self.lease_leader.labels(connector).set(1 if leader else 0)
        previous = self._holders.pop(connector, None)
        if previous is not None:
            self.lease_holder.remove(connector, *previous)
        if host is not None and pid is not None:
            self._holders[connector] = (host, str(pid))
            self.lease_holder.labels(connector, host, str(pid)).set(1)

    def observe_cycle(self, report: Any, duration: timedelta) -> None:
        self.cycles.labels(report.crm, report.outcome).inc()
        self.cycle_seconds.labels(report.crm).observe(duration.total_seconds())
        self.pulled.labels(report.crm).inc(report.pulled)
        self.planned.labels(report.crm).inc(report.planned)
        self.evaluated.labels(report.crm).inc(getattr(report, "evaluated", 0))
        self.api_calls.labels(report.crm).inc(report.api_calls)
        if report.outcome not in ("budget", "failed") or report.held:
            # A cycle that never reached planning says nothing about holds: keep the last count.
            self.held.labels(report.crm).set(report.held)
            self.blocked.labels(report.crm).set(report.blocked)
        if report.outcome == "failed":
            self.cycle_failures.labels(report.crm, report.reason or "internal").inc()
        if report.outcome == "ok":
            self.last_success.labels(report.crm).set(time.time())
        if self.after_cycle is not None:
            try:
                self.after_cycle(report)
            except Exception as exc:  # noqa: BLE001 - a KPI never fails the cycle it follows
                log.warning(
                    "%s: funnel KPIs not refreshed (%s: %s)", report.crm, type(exc).__name__, exc
                )

    def observe_written(self, crm: str, *, ok: int, retry: int, failed: int) -> None:
        """Records one call answered, as the outbox recorded them: a retriable refusal on its
        last attempt (``outbox.max_attempts``) failed for good, and counts as ``failed``."""
        # One labelled increment per outcome: a label lookup per record (under the metric's
        # lock) cost a write-back call of 1,000 records a millisecond.
        for outcome, n in (("ok", ok), ("retry", retry), ("failed", failed)):
            if n:
                self.records.labels(crm, outcome).inc(n)


class StoreCollector(Collector):
    """Outbox backlog per connector and table sizes, read at scrape time (cached briefly)."""

    def __init__(
        self,
        engine: Engine,
        crms: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = STORE_REFRESH_SECONDS,
    ) -> None:
        self._engine = engine
        self._crms = list(crms)
        self._clock = clock
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._at: float | None = None
        self._backlog: dict[str, OutboxBacklog] = {}
        self._rows: dict[str, int] = {}

    def _read(self) -> None:
        with self._lock:
            now = self._clock()
            if self._at is not None and now - self._at < self._refresh:
                return
            try:
                self._backlog = {crm: outbox_backlog(self._engine, crm) for crm in self._crms}
                self._rows = table_rows(self._engine)
            except SQLAlchemyError as exc:
                # A scrape must not fail because the store is briefly busy or gone; the
                # series are left out until it answers again.
                log.debug("store metrics unavailable: %s", exc)
                self._backlog, self._rows = {}, {}
            self._at = now

    def collect(self) -> Iterator[Metric]:
        self._read()
        pending = GaugeMetricFamily(
            "syncd_outbox_pending",
            "Outbox rows approved and not yet confirmed by the CRM.",
            labels=["crm"],
        )
        failed = GaugeMetricFamily(
            "syncd_outbox_failed",
            "Outbox rows the CRM refused permanently (kept until retention prunes them).",
            labels=["crm"],
        )
        oldest = GaugeMetricFamily(
            "syncd_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row; 0 when none is pending.",
            labels=["crm"],
        )
        wall = datetime.now(UTC)
        for crm, backlog in self._backlog.items():
            pending.add_metric([crm], backlog.pending)
            failed.add_metric([crm], backlog.failed)
            age = (
                (wall - backlog.oldest_pending_at).total_seconds()
                if backlog.oldest_pending_at is not None
                else 0.0
            )
            oldest.add_metric([crm], max(age, 0.0))
        rows = GaugeMetricFamily(
            "syncd_table_rows",
            "Rows in each state-store table (an "
            "estimate: the planner's on PostgreSQL, the id span on "
            "SQLite).",
            labels=["table"],
        )
        for table, n in self._rows.items():
            rows.add_metric([table], n)
        yield from (pending, failed, oldest, rows)


class ConnectorCollector(Collector):
    """Each connector's API quota and request counters, read from the connector."""

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self._connectors = connectors

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "syncd_api_quota_used",
            "The CRM's daily API calls used, as it last reported them.",
            labels=["crm"],
        )
        limit = GaugeMetricFamily(
            "syncd_api_quota_limit",
            "The CRM's daily API call limit, as it last reported it.",
            labels=["crm"],
        )
        limited = CounterMetricFamily(
            "syncd_api_rate_limited",
            "Requests the CRM answered with a rate limit (429), by limit kind.",
            labels=["crm", "kind"],
        )
        retries = CounterMetricFamily(
            "syncd_api_retries", "Whole-request retries after a transient failure.", labels=["crm"]
        )
        errors = CounterMetricFamily(
            "syncd_api_errors", "Whole-request errors, by code.", labels=["crm", "code"]
        )
        for crm, connector in list(self._connectors.items()):
            quota = connector.api_quota()
            if quota is not None:
                used.add_metric([crm], quota.used)
                limit.add_metric([crm], quota.limit)
            stats = connector.stats
            retries.add_metric([crm], stats.retries)
            for kind, n in _snapshot(stats.rate_limited):
                limited.add_metric([crm, kind], n)
            for code, n in _snapshot(stats.errors):
                errors.add_metric([crm, code], n)
        yield from (used, limit, limited, retries, errors)


def _snapshot(counts: Mapping[str, int]) -> Iterable[tuple[str, int]]:
    """The items of a counter another thread may be adding to (a cycle runs meanwhile)."""
    for _ in range(5):
        try:
            return list(counts.items())
        except RuntimeError:  # "dictionary changed size during iteration": read it again
            continue
    return []
