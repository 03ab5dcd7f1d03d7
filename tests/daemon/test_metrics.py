"""What Prometheus scrapes from /metrics: backlog, quota, request counters, process, build."""

from __future__ import annotations

import platform
import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from syncd.health import HealthServer
from syncd.metrics import StoreCollector
from syncd.pipeline import CycleReport
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not exposed"
    return float(match[1])


def test_metrics_expose_outbox_quota_retries_process_build_and_rules_series(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        app.embedded.salesforce.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst", activity_days=200)
                for i in range(3)
            ]
        )
        app.embedded.hubspot.add_contacts(
            [hs_contact("H", "h@acme.com", title="Analyst", activity_days=200)]
        )
        # One transient failure: the connector retries it and counts the retry.
        app.embedded.hubspot.faults.fail_next(1, status=503)
        # Plan without writing: the salesforce changes wait in the outbox.
        pipeline = app.pipelines["salesforce"]
        now = datetime.now(UTC)
        report = CycleReport("salesforce", "r1")
        pipeline.pull(report, until=now)
        pipeline.plan(report, app.rules.current(), now)
        app.pipelines["hubspot"].run_cycle()
        server = HealthServer(
            "127.0.0.1", 0, registry=app.metrics.registry, readiness=lambda: (True, {})
        )
        server.start()
        try:
            text = _scrape(server.port)
        finally:
            server.stop()

    assert _value(text, 'syncd_outbox_pending{crm="salesforce"}') == 6  # status + newsletter
    assert _value(text, 'syncd_outbox_failed{crm="salesforce"}') == 0
    assert _value(text, 'syncd_outbox_pending{crm="hubspot"}') == 0
    assert 0 <= _value(text, 'syncd_outbox_oldest_pending_age_seconds{crm="salesforce"}') < 60
    assert _value(text, 'syncd_outbox_oldest_pending_age_seconds{crm="hubspot"}') == 0
    assert _value(text, 'syncd_api_quota_limit{crm="salesforce"}') > 0
    assert _value(text, 'syncd_api_quota_used{crm="salesforce"}') > 0
    assert _value(text, 'syncd_api_retries_total{crm="hubspot"}') >= 1
    assert "# TYPE syncd_api_rate_limited_total counter" in text
    assert "# TYPE syncd_api_errors_total counter" in text
    assert _value(text, 'syncd_table_rows{table="lead"}') == 4
    assert _value(text, 'syncd_table_rows{table="run"}') == 1
    assert _value(text, 'syncd_table_rows{table="status_history"}') > 0  # the status ledger
    assert _value(text, 'syncd_table_rows{table="retry_request"}') == 0
    assert "process_cpu_seconds_total " in text
    assert "process_resident_memory_bytes " in text
    assert "python_gc_objects_collected_total{" in text
    python = re.escape(platform.python_version())
    assert re.search(rf'^python_info\{{.*version="{python}"', text, re.MULTILINE)
    assert re.search(
        rf'^syncd_build_info\{{python="{python}",version="[^"]+"\}} 1\.0$', text, re.MULTILINE
    )
    version = app.rules.book.version
    assert _value(text, f'syncd_rules_info{{version="{version}"}}') == 1
    assert _value(text, 'syncd_rep_edits_held{crm="hubspot"}') == 0


def test_rules_info_names_only_the_version_in_use_after_a_reload(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        first = app.rules.book.version
        rules = tmp_path / "rules.yaml"
        rules.write_text(rules.read_text().replace("older_than: 90d", "older_than: 91d"))
        second = app.rules.current().version
        assert second != first
        samples = {
            s.labels["version"]: s.value
            for m in app.metrics.registry.collect()
            if m.name == "syncd_rules_info"
            for s in m.samples
        }
    assert samples == {second: 1.0}


def test_store_figures_are_cached_between_close_scrapes(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        ticks = iter([0.0, 1.0, 20.0])
        collector = StoreCollector(app.store.engine, ["salesforce"], clock=lambda: next(ticks))

        def rows() -> float:
            return next(
                s.value
                for m in collector.collect()
                if m.name == "syncd_table_rows"
                for s in m.samples
                if s.labels["table"] == "lead"
            )

        assert rows() == 0
        app.embedded.salesforce.add_leads([sf_lead("A", "a@acme.com", title="Analyst")])
        app.pipelines["salesforce"].pull(CycleReport("salesforce", "r"), until=datetime.now(UTC))
        assert rows() == 0  # one second later: the cached figure
        assert rows() == 1  # past the refresh interval: read again
