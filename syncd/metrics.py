"""Prometheus metrics. The registry is passed in, so tests use a private one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cycles = Counter("syncd_cycles", "Cycles run, by how they ended.",
                              ["crm", "outcome"], registry=r)
        self.cycle_seconds = Histogram("syncd_cycle_duration_seconds", "Wall time of a cycle.",
                                       ["crm"], registry=r,
                                       buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
        self.pulled = Counter("syncd_leads_pulled", "Leads read from the CRM.", ["crm"],
                              registry=r)
        self.planned = Counter("syncd_changes_planned", "Changes put in the outbox.", ["crm"],
                               registry=r)
        self.records = Counter("syncd_records_written", "Records sent, by outcome.",
                               ["crm", "outcome"], registry=r)
        self.held = Gauge("syncd_rep_edits_held", "Leads whose hand-set status is being left "
                          "alone in the last cycle.", ["crm"], registry=r)
        self.blocked = Gauge("syncd_guard_blocked", "Rule targets refused by the lifecycle "
                             "guards in the last cycle.", ["crm"], registry=r)
        self.breaker_trips = Counter("syncd_breaker_trips", "Runs stopped by the change breaker.",
                                     ["crm"], registry=r)
        self.api_calls = Counter("syncd_api_calls", "CRM API calls made by cycles.", ["crm"],
                                 registry=r)
        self.quarantined = Counter("syncd_quarantined_values", "CRM values syncd could not "
                                   "parse or store, stored as empty (see `syncd status`).",
                                   ["connector", "field"], registry=r)
        self.last_success = Gauge("syncd_last_success_timestamp_seconds",
                                  "Unix time of the last cycle that ended ok.", ["crm"],
                                  registry=r)
        self.cycle_failures = Counter(
            "syncd_cycle_failures", "Cycles that failed, by connector and reason (auth, "
            "configuration, crm, crm_unavailable, preflight, database, internal).",
            ["connector", "reason"], registry=r)
        self.rules_valid = Gauge("syncd_rules_valid", "1 when the rule files on disk loaded; 0 "
                                 "when the daemon keeps older rules after a bad edit.",
                                 registry=r)
        self.rules_valid.set(1)
        self.lease_leader = Gauge("syncd_lease_leader", "1 while this process holds the "
                                  "connector's lease and runs its cycles; 0 while it is a "
                                  "standby.", ["connector"], registry=r)
        self.lease_holder = Gauge("syncd_lease_holder_info", "1 for the process that holds the "
                                  "connector's lease, as this process last saw it.",
                                  ["connector", "host", "pid"], registry=r)
        self._holders: dict[str, tuple[str, str]] = {}

    def observe_lease(self, connector: str, leader: bool, host: str | None,
                      pid: int | None) -> None:
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
        self.api_calls.labels(report.crm).inc(report.api_calls)
        self.held.labels(report.crm).set(report.held)
        self.blocked.labels(report.crm).set(report.blocked)
        if report.outcome == "failed":
            self.cycle_failures.labels(report.crm, report.reason or "internal").inc()
        if report.outcome == "ok":
            self.last_success.labels(report.crm).set(time.time())

    def observe_results(self, crm: str, results: Sequence[Any]) -> None:
        for result in results:
            self.records.labels(crm, result.outcome.value).inc()
