"""README promises of "Alerts" to "Retention" that no other test pinned down (continued from
tests/test_readme_promises_rules_and_operations.py)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner

from syncd.app import App
from syncd.cli import app as cli
from syncd.scheduler import Daemon
from syncd.settings import load_settings
from syncd.state import StateStore
from tests.daemon.harness import running_app, sf_lead, write_config
from tests.test_readme_promises_rules_and_operations import synced_cli

runner = CliRunner()
T = TypeVar("T")


def test_an_alert_channels_webhook_url_comes_from_env_or_file_and_never_shows_in_settings(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "oncall-webhook"
    secret.write_text("https://hooks.example/T0/ONCALL-TOKEN\n")
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""
hubspot: {{}}
alerts:
  channels:
    - {{name: sales-ops, url: {{env: SALES_OPS_WEBHOOK}}, events: [sla_breach]}}
    - {{name: oncall, url: {{file: {secret}}}, events: [no_leader]}}
""")
    settings = load_settings(config, env={"SALES_OPS_WEBHOOK": "https://hooks.example/SALES-TOKEN"})
    sales, oncall = settings.alerts.channels
    assert sales.url.get_secret_value() == "https://hooks.example/SALES-TOKEN"
    assert oncall.url.get_secret_value() == "https://hooks.example/T0/ONCALL-TOKEN"
    shown = repr(settings.alerts) + str(settings.alerts.model_dump())
    assert "TOKEN" not in shown


# -- Reverting a run -------------------------------------------------------------------------


def test_revert_without_yes_asks_first_and_a_no_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.testing.salesforce import SalesforceEmulator

    with SalesforceEmulator() as emu:
        config, run_id, _ = synced_cli(tmp_path, emu, monkeypatch)
        writes = len(emu.journal.writes())
        result = runner.invoke(cli, ["revert", run_id, "-c", config], input="n\n")
        assert result.exit_code == 0, result.output
        assert "Write these 4 changes to salesforce?" in result.output
        assert result.output.rstrip().endswith("nothing was written")
        assert len(emu.journal.writes()) == writes


def test_revert_since_takes_a_duration_ago_or_an_iso_time_and_names_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from connectors.testing.salesforce import SalesforceEmulator

    with SalesforceEmulator() as emu:
        config, run_id, _ = synced_cli(tmp_path, emu, monkeypatch)

        def restores(since: str) -> int:
            result = runner.invoke(
                cli, ["revert", run_id, "--dry-run", "--json", "--since", since, "-c", config]
            )
            assert result.exit_code == 0, result.output
            return len(json.loads(result.output)["restores"])

        assert restores("2h") == 4  # the run was moments ago
        hour_ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        assert restores(hour_ahead) == 0
        day_ago = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        assert restores(day_ago) == 4
        bad = runner.invoke(cli, ["revert", run_id, "--since", "yesterday", "-c", config])
        assert bad.exit_code == 2 and "--since 'yesterday'" in bad.output


def test_revert_reports_a_value_the_crm_does_not_show_after_writing_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-back: a person edits a lead between the revert's write and its read."""
    from connectors.testing.salesforce import SalesforceEmulator
    from syncd.pipeline import Pipeline

    with SalesforceEmulator() as emu:
        config, run_id, ids = synced_cli(tmp_path, emu, monkeypatch)
        edited = ids[0]
        drain = Pipeline.drain

        def drain_then_a_person_edits(self: Pipeline, *args: object, **kwargs: object) -> object:
            done = drain(self, *args, **kwargs)
            emu.update_lead(edited, {"Status": "Unqualified"})
            return done

        monkeypatch.setattr(Pipeline, "drain", drain_then_a_person_edits)
        result = runner.invoke(cli, ["revert", run_id, "--yes", "-c", config])
        assert result.exit_code == 1, result.output
        assert (
            f"differs {edited} status: wrote 'Working - Contacted', the CRM shows 'Unqualified'"
            in result.output
        )


# -- Retention -------------------------------------------------------------------------------


def _run_daemon_through_first_cycle(app: App, look: Callable[[Daemon], T | None]) -> T | None:
    """Run ``Daemon(app).run()`` until its first cycle is done (60 s at most); what ``look``
    first returned other than None, called while the daemon runs (None if it never did)."""
    daemon = Daemon(app)
    crm = next(iter(app.pipelines))
    seen: list[T] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            if daemon._scheduler.running:
                found = look(daemon)
                if found is not None:
                    seen.append(found)
                elif crm in daemon.last:  # looked once more after the first cycle: done
                    break
            time.sleep(0.01)
        while time.monotonic() < deadline and crm not in daemon.last:
            time.sleep(0.01)
        app.stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert daemon.run() == 0  # signal handlers: run() needs the main thread
    finally:
        app.stop.set()
        watcher.join()
    assert crm in daemon.last, "the daemon's first cycle never ended"
    return seen[0] if seen else None


def _old_audit_rows(app: App) -> None:
    from syncd.state import AuditRow
    from tests.test_retention import _audit

    with app.store.begin() as conn:
        rows = _audit(3, timedelta(0))
        for row in rows:
            row["at"] = datetime.now(UTC) - timedelta(days=400)
        conn.execute(AuditRow.__table__.insert(), rows)


def test_the_daemon_prunes_nothing_at_start_its_first_retention_pass_is_one_interval_later(
    tmp_path: Path,
) -> None:
    """A restart loop never prunes: 400-day-old audit rows outlive the daemon's first cycle."""
    config = write_config(tmp_path, crms=("hubspot",), extra="retention: {interval: 2h}\n")
    with running_app(config) as app:
        _old_audit_rows(app)
        started = datetime.now(UTC)
        job = _run_daemon_through_first_cycle(app, lambda d: d._scheduler.get_job("retention"))
        assert len(app.store.audit_of_run("run")) == 3
    assert job is not None and job.next_run_time is not None
    assert (
        started + timedelta(hours=2) <= job.next_run_time <= datetime.now(UTC) + timedelta(hours=2)
    )


def test_with_retention_enabled_false_the_daemon_schedules_no_pruning_pass(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("hubspot",), extra="retention: {enabled: false}\n")
    with running_app(config) as app:
        jobs = _run_daemon_through_first_cycle(app, lambda d: d._scheduler.get_jobs() or None)
    assert jobs is not None and [job.id for job in jobs] == ["hubspot"]


@pytest.mark.parametrize("enabled", [True, False], ids=["server-enabled", "server-disabled"])
def test_the_daemon_serves_healthz_only_when_server_enabled(tmp_path: Path, enabled: bool) -> None:
    """``syncd run`` binds the health server before the CRM is contacted (``App.build``); a
    daemon given an app built without it starts one itself, unless ``server.enabled`` is false."""
    import urllib.request

    config = write_config(tmp_path, crms=("hubspot",))
    text = config.read_text().replace(
        "server: {enabled: false}",
        f"server: {{enabled: {str(enabled).lower()}, host: 127.0.0.1, port: 0}}",
    )
    config.write_text(text)

    def healthz(daemon: Daemon) -> str | None:
        if daemon._health is None:
            return None
        url = f"http://127.0.0.1:{daemon._health.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return f"{response.status}"

    with running_app(config) as app:
        assert app.health is None
        answer = _run_daemon_through_first_cycle(app, healthz)
    assert answer == ("200" if enabled else None)


# -- Deploying -------------------------------------------------------------------------------


def test_sigterm_while_a_request_waits_on_the_crm_exits_0_within_5_seconds(tmp_path: Path) -> None:
    """The 30 s grace period of Kubernetes (and TimeoutStopSec=20) is enough."""
    import signal

    from connectors.testing.hubspot import EmulatorConfig, HubSpotEmulator
    from tests.daemon.test_lease import RULES, TOKEN_ENV, Daemon, seed

    emu = HubSpotEmulator(EmulatorConfig(extra_status_options=["NURTURE"])).start()
    daemon: Daemon | None = None
    try:
        seed(emu, 20, slow_writes=0)
        held = emu.faults.slow_next(1, delay=20, path=r"batch/update", method="POST")
        (tmp_path / "rules.yaml").write_text(RULES)
        config = tmp_path / "syncd.yaml"
        config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
hubspot:
  interval: 60s
  status_values: {{New: NEW, Nurture: NURTURE}}
  connector:
    base_url: {emu.base_url}
    timeout_seconds: 30   # the held write is still waiting when the signal comes
    auth: {{type: private_app, access_token: {{env: {TOKEN_ENV}}}}}
""")
        daemon = Daemon(config, emu, "stopped")
        deadline = time.monotonic() + 60
        while held.count and time.monotonic() < deadline and daemon.proc.poll() is None:
            time.sleep(0.05)
        assert held.count == 0, daemon.output()  # the batch write is in the emulator's hands
        daemon.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = daemon.proc.wait(timeout=30)
        took = time.monotonic() - sent
        assert code == 0, daemon.output()
        assert took < 5.0, (took, daemon.output())
    finally:
        if daemon is not None:
            daemon.stop()
        emu.stop()


# -- Funnel report at scale ------------------------------------------------------------------


def test_the_report_runs_in_parts_from_50000_leads_one_per_core_at_most_8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from syncd import report_parallel
    from tests.daemon.test_report import _seed as seed_40_leads
    from tests.daemon.test_report_parallel import MAPS, _options

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert report_parallel.default_workers() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert report_parallel.default_workers() == 2

    url = f"sqlite:///{tmp_path / 'state.db'}"
    seed_40_leads(url)
    started: list[object] = []
    start = report_parallel._start

    def counted(*args: object) -> object:
        started.append(args)
        return start(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(report_parallel, "_start", counted)
    store = StateStore(url)
    try:
        one_pass = report_parallel.compute_from_store(store.engine, MAPS, _options())
        assert started == []  # 40 leads: one pass, no worker process
        monkeypatch.setattr(report_parallel, "PARALLEL_MIN_LEADS", 40)
        in_parts = report_parallel.compute_from_store(store.engine, MAPS, _options())
        assert len(started) == 1  # two cores: this process and one worker
    finally:
        store.close()
    from syncd.report_render import json_text

    assert json_text(in_parts, {}) == json_text(one_pass, {})


def test_a_revert_skips_a_status_a_person_set_since_even_to_the_value_syncd_wrote(
    tmp_path: Path,
) -> None:
    from sqlalchemy import update

    from syncd.pipeline import CycleReport
    from syncd.revert import plan_revert
    from syncd.state import AuditRow

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", status="Working - Contacted",
                    activity_days=200)
            for i in range(2)
        )  # fmt: skip
        pipeline = app.pipelines["salesforce"]
        run_id = pipeline.run_cycle().run_id
        assert sf.lead(ids[0])["Status"] == "Nurture"
        with app.store.begin() as conn:  # the run was a minute ago (CRM times are to the second)
            audit = AuditRow.__table__
            conn.execute(
                update(audit)
                .where(audit.c.run_id == run_id)
                .values(at=datetime.now(UTC) - timedelta(minutes=1))
            )
        sf.update_lead(ids[0], {"Status": "Unqualified"})  # a rep moves it, then back again
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        sf.update_lead(ids[0], {"Status": "Nurture"})
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        plan = plan_revert(app.store, pipeline, run_id, app.rules.current(), app.clock())
        reasons = {(s.lead_id, s.field): s.reason for s in plan.skipped}
        assert reasons[(ids[0], "status")].startswith("status set by a person at ")
        assert (ids[1], "status") in {(r.lead_id, r.field) for r in plan.restores}


def test_every_repository_file_the_readme_sections_name_exists() -> None:
    """Paths named from "The rule language" to "Retention" (rules/…, deploy/…, syncd/…)."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    start = readme.index("\n## The rule language\n")
    end = readme.find("\n## ", readme.index("\n## Retention\n") + 1)
    section = readme[start : end if end != -1 else len(readme)]
    named = set(re.findall(r"[`(]((?:rules|deploy|docs|syncd|tests|bench)/[\w./*-]+)[`)]", section))
    named |= set(re.findall(r"`(requirements\.lock|Dockerfile)`", section))
    assert len(named) > 10
    missing = sorted(p for p in named if not any(repo.glob(p.rstrip("/"))))
    assert not missing, missing
