"""Runs the cycles on a schedule: APScheduler 3.x, one job per connector, bounded stop.

APScheduler keeps its jobs in memory only; everything that must survive a restart (cursors,
outbox, audit) lives in syncd's own tables, so a restart loses nothing and needs no job store.
``max_instances=1`` and ``coalesce`` mean a slow cycle delays the next one instead of stacking
cycles of the same connector. SIGTERM and SIGINT set the stop event: retry and pacing waits
wake up at once, the running cycle stops after the batch in flight, and the process exits 0
within :data:`SHUTDOWN_GRACE_SECONDS` even when a request is still waiting on a CRM (see
:meth:`Daemon.run` for why leaving it is safe).

Each connector's job runs only while this process holds that connector's lease
(``syncd.lease``); otherwise the process is a hot standby for it: the lease's heartbeat tries to
take it every ``lease.renew_every`` and, once it does, the connector's first cycle starts at
once. Stopping releases the leases, so a standby takes over without waiting for them to expire.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.app import App
from syncd.health import HealthServer
from syncd.lease import Lease, connector_lease
from syncd.notify import Notifier
from syncd.pipeline import CycleReport

__all__ = ["SHUTDOWN_GRACE_SECONDS", "Daemon"]

log = logging.getLogger("syncd.scheduler")

#: The main loop ticks every second: one silent this long is wedged (``Daemon.alive``).
LOOP_STALL_SECONDS = 30.0

#: How long a stop waits for running cycles before the process exits anyway. Kubernetes
#: sends SIGKILL 30 s after SIGTERM by default; an HTTP request can wait its whole timeout.
SHUTDOWN_GRACE_SECONDS = 4.0


class _DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """Runs each cycle in its own daemon thread.

    A pool's worker threads are joined when the interpreter exits, so a cycle blocked in an
    HTTP read would hold the process past its grace period; a daemon thread does not.
    """

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def target() -> None:
            try:
                # APScheduler 3 keeps the store alias only privately; its own executors read it.
                alias = job._jobstore_alias  # noqa: SLF001
                events = run_job(job, alias, run_times, self._logger.name)
            except BaseException:  # noqa: BLE001 - reported to the scheduler, as pools do
                _, exc, tb = sys.exc_info()
                self._run_job_error(job.id, exc, tb)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"cycle-{job.id}", daemon=True).start()


class _FoldSkippedStarts(logging.Filter):
    """Drops APScheduler's "maximum number of running instances reached" warning, repeated at
    every interval while a long cycle runs; the daemon logs one line per streak instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


_FOLD = _FoldSkippedStarts()


class Daemon:
    def __init__(
        self,
        app: App,
        *,
        on_cycle: Callable[[CycleReport], None] | None = None,
        shutdown_grace: float = SHUTDOWN_GRACE_SECONDS,
        notifier: Notifier | None = None,
    ) -> None:
        self.app = app
        self.on_cycle = on_cycle
        self.shutdown_grace = shutdown_grace
        #: systemd's notify socket (a no-op outside systemd): STATUS, WATCHDOG, STOPPING.
        self.notifier = notifier or Notifier({})
        self._skipped: dict[str, int] = {}
        self.last: dict[str, tuple[datetime, CycleReport]] = {}
        #: True when the process stopped with a cycle still running (waiting on a CRM).
        self.abandoned = False
        self._running: set[str] = set()
        self._idle = threading.Condition()
        self._scheduler = BackgroundScheduler(
            executors={"default": _DaemonThreadExecutor()},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._scheduler.add_listener(self._skipped_start, EVENT_JOB_MAX_INSTANCES)
        if _FOLD not in logging.getLogger("apscheduler.scheduler").filters:
            logging.getLogger("apscheduler.scheduler").addFilter(_FOLD)
        self._health: HealthServer | None = None
        #: The main loop's last tick (time.monotonic) and whether it ever ran (``alive``).
        self._last_tick = time.monotonic()
        self._loop_started = False
        self.leases: dict[str, Lease] = {}
        self._recovered: dict[str, int] = {}  # connector -> lease token its recovery ran under

    def _open_leases(self) -> None:
        for name, pipeline in self.app.pipelines.items():
            lease = connector_lease(
                self.app.store, self.app.settings, name, on_change=self._lease_changed
            )
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
                with contextlib.suppress(JobLookupError):
                    self._scheduler.modify_job(lease.connector, next_run_time=datetime.now(UTC))
            return
        holder = lease.last_holder
        self.app.metrics.observe_lease(
            lease.connector, False, holder.host if holder else None, holder.pid if holder else None
        )
        log.info(
            "%s: standby; %s holds the lease; taking over when it stops or its lease expires",
            lease.connector,
            holder.describe() if holder else "another process",
        )

    def _skipped_start(self, event: Any) -> None:
        with self._idle:
            self._skipped[event.job_id] = self._skipped.get(event.job_id, 0) + 1

    def _cycle(self, name: str) -> None:
        if self.app.stop.is_set():
            return
        with self._idle:
            self._running.add(name)
        try:
            self._run_one(name)
        finally:
            with self._idle:
                self._running.discard(name)
                skipped = self._skipped.pop(name, 0)
                self._idle.notify_all()
            if skipped:
                log.warning(
                    "%s: cycle still running; skipped %d scheduled start%s (the cycle "
                    "took longer than its interval)",
                    name,
                    skipped,
                    "" if skipped == 1 else "s",
                    extra={"crm": name, "skipped": skipped},
                )

    def _run_one(self, name: str) -> None:
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
        try:
            report = self.app.pipelines[name].run_cycle()
        except Exception as exc:  # noqa: BLE001 - run_cycle reports failures; belt and braces
            log.error(
                "cycle of %s failed unexpectedly (%s: %s); the next one runs on schedule",
                name,
                type(exc).__name__,
                exc,
            )
            report = CycleReport(
                name,
                "-",
                outcome="failed",
                reason="internal",
                message=f"{type(exc).__name__}: {exc}",
            )
            if self.app.metrics is not None:
                self.app.metrics.observe_cycle(report, timedelta(0))
        self.last[name] = (datetime.now(UTC), report)
        self.notifier.status(report.summary())
        if self.on_cycle is not None and report.run_id != "-":
            try:
                self.on_cycle(report)
            except Exception as exc:  # noqa: BLE001 - showing a cycle must not fail it
                log.warning("could not show the cycle of %s: %s", name, exc)
        if self.app.embedded is not None:
            self.app.embedded.after_cycle(name)

    def _watch_leaders(self) -> None:
        """The ``no_leader`` alert (syncd.leader_watch), checked every lease renewal period by
        every replica, when a channel listens for it."""
        from syncd.leader_watch import LeaderWatch

        alerter = self.app.alerter
        if alerter is None or not any(
            "no_leader" in c.events for c in self.app.settings.alerts.channels
        ):
            return
        watch = LeaderWatch(
            self.app.store,
            alerter,
            list(self.app.pipelines),
            grace=self.app.settings.alerts.no_leader_after,
        )
        self._scheduler.add_job(
            watch.check,
            "interval",
            id="leader-watch",
            name="leader-watch",
            seconds=self.app.settings.lease.renewal.total_seconds(),
        )

    def _prune(self) -> None:
        """One bounded retention pass (syncd.retention), pausing between batches so cycles
        waiting for the database get in; it never fails a cycle or the daemon."""
        from sqlalchemy.exc import SQLAlchemyError

        from syncd.retention import prune

        if self.leases and not any(lease.leader for lease in self.leases.values()):
            return  # a standby: the leader's process prunes the shared store
        metrics = self.app.metrics
        try:
            results = prune(
                self.app.store.engine,
                self.app.settings.retention,
                datetime.now(UTC),
                stop=self.app.stop,
                pause=0.05,
                on_batch=lambda table, n: metrics.pruned.labels(table).inc(n),
            )
        except SQLAlchemyError as exc:
            log.warning(
                "retention pass failed (%s); the next pass tries again", str(exc).splitlines()[0]
            )
            return
        if any(p.rows for p in results):
            log.info(
                "retention deleted %s",
                ", ".join(
                    f"{p.rows} {p.table} rows older than {p.cutoff:%Y-%m-%d}" for p in results
                ),
            )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the rules load and every connector's last cycle is recent and did not
        fail. A connector paused by its API budget is ready (nothing is wrong, it waits), and
        says until when."""
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
                detail["connectors"][name] = {
                    "lease": "standby",
                    "holder": holder.describe() if holder else None,
                }
                continue
            leading += 1
            at, report = self.last.get(name, (None, None))
            outcome = report.outcome if report is not None else None
            fresh = (
                at is not None
                and (now - at) < cs.interval * 3
                and outcome in ("ok", "breaker", "budget", "stopped")
            )
            entry: dict[str, Any] = {"lease": "leader", "last_cycle": at, "outcome": outcome}
            if at is not None and (now - at) >= cs.interval * 3:
                entry["stale"] = True  # no cycle ended for three intervals: one hangs, or none ran
            if report is not None and outcome == "failed":
                entry["error"] = report.message
            pipeline = self.app.pipelines.get(name)
            if pipeline is not None and pipeline.paused_until and pipeline.paused_until > now:
                entry["paused_until"] = pipeline.paused_until
                entry["paused_because"] = pipeline.pause_reason
            detail["connectors"][name] = entry
            ready = ready and fresh
        detail["status"] = "leader" if leading else "standby"
        return ready, detail

    def run(self) -> int:
        """Block until SIGTERM/SIGINT; returns the exit status."""
        server = self.app.settings.server
        self._health = self.app.health
        if self._health is None and server.enabled:
            self._health = HealthServer(
                server.host,
                server.port,
                registry=self.app.metrics.registry,
                readiness=self.readiness,
            )
            self._health.start()
        if self._health is not None:
            self._health.readiness = self.readiness
            self._health.liveness = self.alive
            log.info(
                "health and metrics on http://%s:%d/ (healthz, readyz, metrics)",
                server.host,
                self._health.port,
            )
        self._open_leases()
        self._schedule_jobs()
        self._watch_leaders()

        def _stop(signum: int, _frame: Any) -> None:
            log.info(
                "%s received: finishing the batch in flight, then stopping",
                signal.Signals(signum).name,
            )
            self.notifier.stopping()
            self.app.stop.set()

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not self.app.stop.is_set():  # a signal during start-up already asked to stop
                self._scheduler.start()
                self._main_loop()
        finally:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            self._wait_for_cycles()
            for lease in self.leases.values():
                lease.close()  # releases: a standby takes over at its next try
            if self._health is not None and self._health is not self.app.health:
                self._health.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        log.info("stopped cleanly")
        return 0

    def _schedule_jobs(self) -> None:
        """A cycle job per connector (the first now) and the retention job."""
        for name in self.app.pipelines:
            cs = self.app.settings.connectors()[name]
            self._scheduler.add_job(
                self._cycle,
                "interval",
                args=[name],
                id=name,
                name=name,
                seconds=cs.interval.total_seconds(),
                next_run_time=datetime.now(UTC),
            )
            log.info("%s: a cycle every %ds", name, cs.interval.total_seconds())
        retention = self.app.settings.retention
        if retention.enabled:
            # Its own job, first run one interval after start: a restart loop never prunes,
            # and start-up's first cycles have the database to themselves.
            self._scheduler.add_job(
                self._prune,
                "interval",
                id="retention",
                name="retention",
                seconds=retention.interval.total_seconds(),
            )

    def _main_loop(self) -> None:
        """Wait for the stop event; ping systemd's watchdog from here.

        The ping comes from the thread that would wedge (this loop) and only while the
        scheduler's thread is alive, so a stuck loop or a dead scheduler stops the pings and
        systemd restarts the service.
        """
        interval = self.notifier.watchdog_interval
        tick = min(interval, 1.0) if interval else 1.0
        last_ping = float("-inf")
        self._loop_started = True
        while True:
            self._last_tick = time.monotonic()
            if interval and self._scheduler_alive():
                now = time.monotonic()
                if now - last_ping >= interval - tick / 2:
                    self.notifier.watchdog()
                    last_ping = now
            if self.app.stop.wait(tick):
                return

    def alive(self) -> bool:
        """``/healthz``: false once the scheduler thread died or the main loop stopped ticking
        (the same test as systemd's watchdog pings): a Kubernetes liveness probe then restarts
        the pod, and its lease goes to a standby. True before the scheduler starts."""
        if self.app.stop.is_set():
            return True  # stopping: finishing the batch in flight is not being wedged
        if not self._scheduler.running:
            return not self._loop_started
        stalled = time.monotonic() - self._last_tick > LOOP_STALL_SECONDS
        return self._scheduler_alive() and not stalled

    def _scheduler_alive(self) -> bool:
        # APScheduler 3 has no public "is its thread alive": a crashed scheduler thread
        # leaves ``running`` set, so the thread itself is asked.
        thread = getattr(self._scheduler, "_thread", None)
        return bool(self._scheduler.running and thread is not None and thread.is_alive())

    def _wait_for_cycles(self) -> None:
        """Wait up to the grace period for running cycles to reach a checkpoint.

        A cycle still running after it is waiting on a CRM request (an HTTP call can take its
        whole timeout). Leaving it is safe because of what is durable when:

        * pulled pages commit with their cursor, so an unfinished page is read again;
        * a batch whose response never arrived leaves its outbox rows ``pending``. If the CRM
          applied it, the next cycle pulls the lead showing the value; the row is then
          recognised as syncd's own write (``queued`` in ``Pipeline._store_page``, not a
          rep edit) and ``Pipeline._record_plan`` marks it done as already in place, with no
          second write. If the CRM did not apply it, it is sent again;
        * a membership add is idempotent in both connectors: Salesforce's DUPLICATE_VALUE for
          an existing CampaignMember and HubSpot's ignored ids of existing list members are
          reported as OK, so re-sending it adds nothing twice;
        * result recording commits per batch in one transaction, which an exit rolls back
          whole.
        """
        deadline = datetime.now(UTC) + timedelta(seconds=self.shutdown_grace)
        with self._idle:
            while self._running:
                left = (deadline - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    self.abandoned = True
                    log.warning(
                        "%s still waiting on the CRM after %.0fs; exiting without it "
                        "(its batch stays in the outbox and the next start completes "
                        "it)",
                        ", ".join(sorted(self._running)),
                        self.shutdown_grace,
                    )
                    return
                self._idle.wait(left)
