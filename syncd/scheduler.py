"""Runs the cycles on a schedule: APScheduler 3.x, one job per connector, graceful stop.

APScheduler keeps its jobs in memory only; everything that must survive a restart (cursors,
outbox, audit) lives in syncd's own tables, so a restart loses nothing and needs no job store.
``max_instances=1`` and ``coalesce`` mean a slow cycle delays the next one instead of stacking
cycles of the same connector. SIGTERM and SIGINT set the stop event: the running cycle finishes
the batch in flight, commits its checkpoint, and the process exits 0.

Each connector's job runs only while this process holds that connector's lease
(``syncd.lease``); otherwise the process is a hot standby for it: the lease's heartbeat tries to
take it every ``lease.renew_every`` and, once it does, the connector's first cycle starts at
once. Stopping releases the leases, so a standby takes over without waiting for them to expire.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.app import App
from syncd.health import HealthServer
from syncd.lease import Lease, connector_lease

__all__ = ["Daemon"]

log = logging.getLogger("syncd.scheduler")


class Daemon:
    def __init__(self, app: App, *, on_cycle: Any = None) -> None:
        self.app = app
        self.on_cycle = on_cycle
        self.last: dict[str, Any] = {}
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(1, len(app.pipelines)))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC)
        self._health: HealthServer | None = None
        self.leases: dict[str, Lease] = {}
        self._recovered: dict[str, int] = {}  # connector -> lease token its recovery ran under

    def _open_leases(self) -> None:
        for name, pipeline in self.app.pipelines.items():
            lease = connector_lease(self.app.store, self.app.settings, name,
                                    on_change=self._lease_changed)
            self.leases[name] = lease
            pipeline.lease = lease
            if not lease.try_acquire():
                self._lease_changed(lease)
            lease.start(standby=True)

    def _lease_changed(self, lease: Lease) -> None:
        if lease.leader:
            me = lease.identity
            self.app.metrics.observe_lease(lease.connector, True, me.host, me.pid)
            if self._scheduler.running:  # take over now, not at the next interval
                try:
                    self._scheduler.modify_job(lease.connector, next_run_time=datetime.now(UTC))
                except JobLookupError:
                    pass
            return
        holder = lease.last_holder
        self.app.metrics.observe_lease(lease.connector, False,
                                       holder.host if holder else None,
                                       holder.pid if holder else None)
        log.info("%s: standby; %s holds the lease; taking over when it stops or its lease "
                 "expires", lease.connector, holder.describe() if holder else "another process")

    def _cycle(self, name: str) -> None:
        if self.app.stop.is_set():
            return
        lease = self.leases.get(name)
        if lease is not None:
            token = lease.token
            if token is None:
                return  # standby: another process runs this connector's cycles
            if self._recovered.get(name) != token:
                # Only now may runs left "running" be called interrupted: no live process
                # other than this one can be running a cycle of this connector.
                self.app.recover_interrupted_runs(name)
                self._recovered[name] = token
        if self.app.embedded is not None:
            self.app.embedded.before_cycle(name)
        try:
            report = self.app.pipelines[name].run_cycle()
        except Exception:  # noqa: BLE001 - one bad cycle must not kill the scheduler thread
            log.exception("cycle of %s failed unexpectedly; the next one runs on schedule", name)
            return
        self.last[name] = (datetime.now(UTC), report)
        if self.on_cycle is not None:
            self.on_cycle(report)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = datetime.now(UTC)
        detail: dict[str, Any] = {"rules_error": self.app.rules.error, "connectors": {}}
        ready = self.app.rules.error is None
        leading = 0
        for name, cs in self.app.settings.connectors().items():
            lease = self.leases.get(name)
            if lease is not None and not lease.leader:
                # A standby answers ready (HTTP 200): in a Kubernetes rolling update the new pod
                # starts as a standby while the old pod still leads, and an unready new pod
                # would stall the rollout before the old pod is ever stopped.
                holder = lease.last_holder
                detail["connectors"][name] = {"lease": "standby",
                                              "holder": holder.describe() if holder else None}
                continue
            leading += 1
            at, report = self.last.get(name, (None, None))
            fresh = at is not None and (now - at) < cs.interval * 3 and report.outcome in (
                "ok", "breaker", "budget", "stopped")
            detail["connectors"][name] = {"lease": "leader", "last_cycle": at, "outcome":
                                          report.outcome if report else None}
            ready = ready and fresh
        detail["status"] = "leader" if leading else "standby"
        return ready, detail

    def run(self) -> int:
        """Block until SIGTERM/SIGINT; returns the exit status."""
        server = self.app.settings.server
        if server.enabled:
            self._health = HealthServer(server.host, server.port,
                                        registry=self.app.metrics.registry,
                                        readiness=self.readiness)
            self._health.start()
            log.info("health and metrics on http://%s:%d/ (healthz, readyz, metrics)",
                     server.host, self._health.port)
        self._open_leases()
        for name, pipeline in self.app.pipelines.items():
            cs = self.app.settings.connectors()[name]
            self._scheduler.add_job(self._cycle, "interval", args=[name], id=name, name=name,
                                    seconds=cs.interval.total_seconds(),
                                    next_run_time=datetime.now(UTC))
            log.info("%s: a cycle every %ds", name, cs.interval.total_seconds())
        done = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            log.info("%s received: finishing the batch in flight, then stopping",
                     signal.Signals(signum).name)
            self.app.stop.set()
            done.set()

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        self._scheduler.start()
        try:
            done.wait()
        finally:
            self._scheduler.shutdown(wait=True)  # waits for the running cycle to checkpoint
            for lease in self.leases.values():
                lease.close()  # releases: a standby takes over at its next try
            if self._health:
                self._health.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        log.info("stopped cleanly")
        return 0
