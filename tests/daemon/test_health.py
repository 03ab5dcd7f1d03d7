"""What an operator's probes and Prometheus see."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from syncd.health import HealthServer
from syncd.scheduler import Daemon
from tests.daemon.harness import running_app, sf_lead, write_config


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_only_after_every_connector_finished_a_cycle_and_metrics_count_it(
    tmp_path: Path,
) -> None:
    with running_app(write_config(tmp_path)) as app:
        app.embedded.salesforce.add_leads(
            [sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)]
        )
        daemon = Daemon(app)
        server = HealthServer(
            "127.0.0.1", 0, registry=app.metrics.registry, readiness=daemon.readiness
        )
        server.start()
        try:
            assert _get(server.port, "/healthz")[0] == 200
            status, body = _get(server.port, "/readyz")
            assert status == 503 and json.loads(body)["ready"] is False
            for name in app.pipelines:
                daemon._cycle(name)
            status, body = _get(server.port, "/readyz")
            assert status == 200, body
            assert json.loads(body)["connectors"]["salesforce"]["outcome"] == "ok"
            status, metrics = _get(server.port, "/metrics")
            assert status == 200
            assert 'syncd_cycles_total{crm="salesforce",outcome="ok"} 1.0' in metrics
            assert 'syncd_records_written_total{crm="salesforce",outcome="ok"} 2.0' in metrics
            assert "syncd_rules_valid 1.0" in metrics
        finally:
            server.stop()


def test_a_broken_rule_edit_makes_the_daemon_unready_and_is_reported(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        daemon = Daemon(app)
        daemon._cycle("salesforce")
        assert daemon.readiness()[0] is True
        (tmp_path / "rules.yaml").write_text("version: 1\nrules: [\n")
        daemon._cycle("salesforce")
        ready, detail = daemon.readiness()
        assert ready is False
        assert f"{tmp_path / 'rules.yaml'}:" in detail["rules_error"]
        assert app.metrics.rules_valid._value.get() == 0


def test_healthz_fails_once_the_scheduler_died_or_the_main_loop_stalled_not_while_stopping(
    tmp_path: Path,
) -> None:
    """A wedged leader keeps renewing its lease from its own thread, so only liveness can hand
    it to a standby: /healthz answered 200 whatever became of the scheduler."""
    import time

    from syncd import scheduler

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        daemon = Daemon(app)
        server = HealthServer(
            "127.0.0.1", 0, registry=app.metrics.registry, readiness=daemon.readiness
        )
        server.liveness = daemon.alive
        server.start()
        try:
            assert _get(server.port, "/healthz")[0] == 200, "starting"
            daemon._scheduler.start()
            daemon._loop_started, daemon._last_tick = True, time.monotonic()
            assert _get(server.port, "/healthz")[0] == 200, "running"
            daemon._last_tick -= scheduler.LOOP_STALL_SECONDS + 1
            status, body = _get(server.port, "/healthz")
            assert status == 503 and json.loads(body)["status"] == "wedged"
            daemon._last_tick = time.monotonic()
            daemon._scheduler.shutdown(wait=False)
            assert _get(server.port, "/healthz")[0] == 503, "the scheduler died"
            app.stop.set()
            assert _get(server.port, "/healthz")[0] == 200, "stopping is not wedged"
        finally:
            server.stop()


def test_readyz_marks_a_connector_whose_last_cycle_is_three_intervals_old_stale(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        daemon = Daemon(app)
        daemon._cycle("salesforce")
        ready, detail = daemon.readiness()
        assert ready and "stale" not in detail["connectors"]["salesforce"]
        at, report = daemon.last["salesforce"]
        daemon.last["salesforce"] = (at - timedelta(minutes=3), report)  # interval 60s
        ready, detail = daemon.readiness()
        assert not ready and detail["connectors"]["salesforce"]["stale"] is True
        assert detail["connectors"]["salesforce"]["last_cycle"] < datetime.now(UTC)
