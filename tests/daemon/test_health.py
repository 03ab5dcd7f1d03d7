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
