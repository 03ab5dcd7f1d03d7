"""README promises of "The rule language" to "Retention" that no other test pinned down.

Each test names the promise it holds the code to; the emulators and the daemon harness are the
real ones (tests/daemon/harness.py), the webhook receiver a loopback HTTP server.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from connectors.testing.salesforce import SalesforceEmulator
from syncd.cli import app as cli
from syncd.pipeline import CycleReport
from syncd.revert import execute_revert, plan_revert
from syncd.settings import AlertSettings, BreakerSettings, RetentionSettings
from syncd.state import AuditRow, StateStore
from tests.daemon.harness import E2E_RULES, running_app, sf_lead, write_config
from tests.daemon.test_report import seeded_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
runner = CliRunner()


# -- The rule language -----------------------------------------------------------------------


def test_the_readme_rule_excerpt_is_what_rules_default_yaml_ships() -> None:
    """Each statement of the excerpt under "The rule language" is in the shipped file as is."""
    import yaml

    section = README[
        README.index("\n## The rule language\n") : README.index("\n## Funnel report\n")
    ]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    excerpt = yaml.safe_load(block[1])
    shipped = yaml.safe_load((REPO / "rules/default.yaml").read_text())
    for key in ("version", "name", "mode", "protected"):
        assert excerpt[key] == shipped[key], key
    for status, spec in excerpt["statuses"].items():
        assert status in shipped["statuses"], status
        assert spec.get("converted") == shipped["statuses"][status].get("converted"), status
        if "description" in spec:
            assert spec["description"] == shipped["statuses"][status]["description"], status
    for target, guard in excerpt["transitions"].items():
        assert shipped["transitions"][target] == guard, target
    rules = {r["id"]: r for r in shipped["rules"]}
    for rule in excerpt["rules"]:
        assert rule["id"] in rules, rule["id"]
        for key in ("when", "then"):
            assert rule[key] == rules[rule["id"]][key], (rule["id"], key)


def test_rules_test_enriches_a_fixtures_lead_before_the_rules_see_it(tmp_path: Path) -> None:
    """free_mail is not in the fixture's lead: enrichment derives it from the email."""
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nname: mail\nmode: first_match\nstatuses: {New: {}, Archived: {}}\n"
        "rules:\n  - id: free-mail\n    when: {field: free_mail, eq: true}\n"
        "    then: [{set_status: Archived}]\n"
    )
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "mail.yaml").write_text(
        "ruleset: ../rules.yaml\nnow: 2026-06-01T00:00:00Z\ncases:\n"
        "  - name: a gmail address is free mail\n"
        "    lead: {status: New, email: jo@gmail.com}\n"
        "    expect: {status: Archived, rule: free-mail}\n"
        "  - name: a company address is not\n"
        "    lead: {status: New, email: jo@acme-industrial.com}\n"
        "    expect: {status: null}\n"
    )
    config = tmp_path / "syncd.yaml"
    config.write_text("rules: {files: [rules.yaml], fixtures: null}\nhubspot: {}\n")
    result = runner.invoke(cli, ["rules", "test", str(fixtures), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output


def test_a_status_the_transitions_forbid_is_blocked_shown_by_plan_and_explain_never_written(
    tmp_path: Path,
) -> None:
    from syncd.plan import build_plan, explain_lead

    guarded = E2E_RULES.replace(
        "protected: [Converted]", "protected: [Converted]\ntransitions: {Nurture: {from: [New]}}"
    )
    assert guarded != E2E_RULES
    with running_app(write_config(tmp_path, rules=guarded, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        [working] = sf.add_leads(
            [sf_lead("W", "w@acme.com", title="Analyst", status="Working - Contacted",
                     activity_days=200)]
        )  # fmt: skip
        pipeline = app.pipelines["salesforce"]
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        blocked = build_plan(app)["crms"]["salesforce"]["blocked"]
        assert [b["lead_id"] for b in blocked] == [working]
        [explained] = explain_lead(app, "w@acme.com")
        assert "guard" in explained["verdict"] and "Nurture" in explained["verdict"]
        report = pipeline.run_cycle()
        assert report.outcome == "ok" and report.blocked == 1 and report.written == 0
        assert sf.lead(working)["Status"] == "Working - Contacted"
        assert app.store.audit_of_lead(working, "salesforce") == []


# -- Funnel report ---------------------------------------------------------------------------


@pytest.fixture
def report_config(tmp_path: Path) -> Path:
    """The 40-lead ledger of tests/daemon/test_report.py (transitions in September 2026)."""
    return seeded_config(tmp_path)


def _report_json(config: Path, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["report", "--config", str(config), "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_report_period_is_the_90_days_before_the_report_time_when_no_since_or_until(
    report_config: Path,
) -> None:
    inside = _report_json(report_config, "--at", "2026-10-12T12:00:00Z")
    assert inside["meta"]["since"] == "2026-07-14T12:00:00+00:00"
    assert inside["meta"]["until"] == "2026-10-12T12:00:00+00:00"
    assert inside["groups"][0]["stages"][0]["any_order"] == 40
    # The last transition is on 2026-09-16: 95 days before, it is outside the default period.
    outside = _report_json(report_config, "--at", "2026-12-20T12:00:00Z")
    assert outside["meta"]["since"] == "2026-09-21T12:00:00+00:00"
    assert all(s["any_order"] == 0 for g in outside["groups"] for s in g["stages"])


def test_the_readme_report_example_is_the_first_lines_the_command_prints(
    report_config: Path,
) -> None:
    block = re.search(r"<!-- example: report -->\n```\n(.*?)```", README, re.S)
    assert block
    command, *expected = block[1].splitlines()
    args = command.removeprefix("$ syncd ").split()
    result = runner.invoke(cli, [*args, "--config", str(report_config)])
    assert result.exit_code == 0, result.output
    printed = [line.rstrip() for line in result.output.splitlines()]
    assert printed[: len(expected)] == [line.rstrip() for line in expected]


def test_json_and_html_reports_carry_the_definitions_the_table_prints(
    report_config: Path, tmp_path: Path
) -> None:
    from syncd.report import DEFINITIONS

    period = ("--since", "2026-09-01", "--until", "2026-10-01", "--at", "2026-10-12T12:00:00Z")
    assert _report_json(report_config, *period)["definitions"] == DEFINITIONS
    page = tmp_path / "report.html"
    result = runner.invoke(
        cli, ["report", "--config", str(report_config), *period, "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    html = page.read_text()
    for key, text in DEFINITIONS.items():
        assert f"<dt>{key}</dt>" in html
        assert text.split()[0] in html


# -- Alerts ----------------------------------------------------------------------------------


class _Hook:
    """A loopback webhook: records each JSON POST; answers ``fail_next`` POSTs with HTTP 500."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_next = 0
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail_next:
                    hook.fail_next -= 1
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/TOKEN"


@pytest.fixture
def hook() -> Iterator[_Hook]:
    h = _Hook()
    thread = threading.Thread(target=h.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield h
    finally:
        h.server.shutdown()
        h.server.server_close()


class _Meta(dict[str, Any]):
    """The ``meta`` table's two calls, in memory."""

    def get_meta(self, key: str) -> Any:
        return self.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self[key] = value


class _Cycle:
    def __init__(self, run_id: str, outcome: str = "ok", failed: int = 0) -> None:
        self.crm, self.run_id, self.outcome, self.failed = "salesforce", run_id, outcome, failed
        self.written, self.planned = 0, 50


def _alerter(hook: _Hook, events: list[str], clock: list[float], now: list[datetime]) -> Any:
    from syncd.alerts import Alerter

    settings = AlertSettings.model_validate(
        {"channels": [{"name": "ops", "url": hook.url, "events": events}], "repeat_after": "24h"}
    )
    return Alerter(settings, _Meta(), clock=lambda: clock[0], now=lambda: now[0])


def test_breaker_tripped_is_sent_once_per_run_when_the_breaker_stops_runs(hook: _Hook) -> None:
    clock, now = [0.0], [datetime(2026, 10, 1, tzinfo=UTC)]
    alerter = _alerter(hook, ["breaker_tripped"], clock, now)
    alerter.after_cycle(_Cycle("run1", "breaker"), None)
    alerter.after_cycle(_Cycle("run1", "breaker"), None)  # the same run again: said already
    alerter.after_cycle(_Cycle("run2", "ok"), None)
    alerter.after_cycle(_Cycle("run3", "breaker"), None)
    assert [(m["event"], m["run_id"]) for m in hook.received] == [
        ("breaker_tripped", "run1"),
        ("breaker_tripped", "run3"),
    ]
    assert "stopped by the change breaker" in hook.received[0]["text"]


def test_writes_failing_is_sent_when_it_starts_and_again_only_after_repeat_after(
    hook: _Hook,
) -> None:
    clock, now = [0.0], [datetime(2026, 10, 1, tzinfo=UTC)]
    alerter = _alerter(hook, ["writes_failing"], clock, now)
    alerter.after_cycle(_Cycle("r1", failed=3), None)
    now[0] += timedelta(hours=23)
    alerter.after_cycle(_Cycle("r2", failed=2), None)  # still failing, within repeat_after
    assert [m["run_id"] for m in hook.received] == ["r1"]
    now[0] += timedelta(hours=2)
    alerter.after_cycle(_Cycle("r3", failed=1), None)
    assert [m["run_id"] for m in hook.received] == ["r1", "r3"]
    alerter.after_cycle(_Cycle("r4"), None)  # writes go through: the condition ends
    now[0] += timedelta(minutes=5)
    alerter.after_cycle(_Cycle("r5", failed=4), None)  # starts again: sent at once
    assert [(m["event"], m["run_id"], m["failed"]) for m in hook.received][-1] == (
        "writes_failing",
        "r5",
        4,
    )
    assert len(hook.received) == 3


def test_an_alert_a_channel_refused_is_sent_by_a_later_cycle_after_the_channel_rests(
    hook: _Hook,
) -> None:
    clock, now = [0.0], [datetime(2026, 10, 1, tzinfo=UTC)]
    alerter = _alerter(hook, ["breaker_tripped"], clock, now)
    hook.fail_next = 1
    alerter.after_cycle(_Cycle("run1", "breaker"), None)  # HTTP 500: not delivered
    clock[0] = 30.0
    alerter.after_cycle(_Cycle("run1", "breaker"), None)  # resting: not even tried
    assert hook.received == [] and hook.fail_next == 0
    clock[0] = 61.0
    alerter.after_cycle(_Cycle("run1", "breaker"), None)
    assert [(m["event"], m["run_id"]) for m in hook.received] == [("breaker_tripped", "run1")]


# -- Metrics ---------------------------------------------------------------------------------


def _metrics_section() -> str:
    return README[README.index("\n## Metrics\n") : README.index("\n## Retention\n")]


def test_every_series_the_readme_metrics_table_names_is_exported_with_its_labels(
    tmp_path: Path,
) -> None:
    """Both ways: tests/test_readme.py checks each exported series is in the table."""
    from prometheus_client.metrics import MetricWrapperBase

    with running_app(write_config(tmp_path)) as app:
        for pipeline in app.pipelines.values():
            pipeline.run_cycle()
        exported: dict[str, set[tuple[str, ...]]] = {}
        for value in vars(app.metrics).values():  # labels even of series without samples yet
            if isinstance(value, MetricWrapperBase):
                exported[value._name] = {tuple(value._labelnames)}
        for family in app.metrics.registry.collect():  # the scrape-time collectors too
            labels = exported.setdefault(family.name, set())
            labels |= {tuple(s.labels) for s in family.samples}
    rows = [line for line in _metrics_section().splitlines() if line.startswith("| `syncd_")]
    named = [
        (m[1], tuple(m[2].split(",")) if m[2] else ())
        for row in rows
        for m in re.finditer(r"`(syncd_\w+)(?:\{([\w,]*)\})?`", row.split("|")[1])
    ]
    assert len(named) > 30
    for name, labels in named:
        family = name.removesuffix("_total")
        assert family in exported, f"README names {name}; syncd does not export it"
        assert not exported[family] or labels in exported[family], (name, exported[family])


# -- Reverting a run -------------------------------------------------------------------------


def _sf_run(app: Any, n: int) -> tuple[list[str], str]:
    """``n`` stale Salesforce leads, moved to Nurture (and the newsletter) by one cycle."""
    sf = app.embedded.salesforce
    ids = sf.add_leads(
        sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", status="Working - Contacted",
                activity_days=200)
        for i in range(n)
    )  # fmt: skip
    report = app.pipelines["salesforce"].run_cycle()
    assert report.outcome == "ok" and {sf.lead(i)["Status"] for i in ids} == {"Nurture"}
    return ids, report.run_id


def _plan(app: Any, run_id: str) -> Any:
    pipeline = app.pipelines["salesforce"]
    now = app.clock()
    pipeline.pull(CycleReport("salesforce", "plan"), until=now)
    return plan_revert(app.store, pipeline, run_id, app.rules.current(), now)


def test_a_large_revert_is_stopped_by_the_change_breaker_unless_approved(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        ids, run_id = _sf_run(app, 6)
        pipeline = app.pipelines["salesforce"]
        pipeline.breaker = BreakerSettings(max_change_share=0.2, min_changes=1)
        book = app.rules.current()
        stopped = execute_revert(pipeline, _plan(app, run_id), book)
        assert stopped.report.outcome == "breaker"
        assert "--approve-large-run" in (stopped.report.message or "")
        assert {app.embedded.salesforce.lead(i)["Status"] for i in ids} == {"Nurture"}
        approved = execute_revert(pipeline, _plan(app, run_id), book, approve_large_run=True)
        assert approved.report.outcome == "ok", approved.report.message
        sf = app.embedded.salesforce
        assert {sf.lead(i)["Status"] for i in ids} == {"Working - Contacted"}


def test_a_revert_skips_deleted_and_converted_leads_and_leaves_them_alone(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        ids, run_id = _sf_run(app, 3)
        sf = app.embedded.salesforce
        sf.delete_lead(ids[0])
        sf.convert_lead(ids[1])
        plan = _plan(app, run_id)
        reasons = {(s.lead_id, s.field): s.reason for s in plan.skipped}
        assert reasons[(ids[0], "status")] == "lead deleted in the CRM"
        assert reasons[(ids[1], "status")] == "lead converted in the CRM"
        assert {r.lead_id for r in plan.restores} == {ids[2]}


def test_a_revert_skips_a_restore_the_rule_sets_transition_guards_forbid(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        ids, run_id = _sf_run(app, 2)
        guarded = E2E_RULES.replace(
            "protected: [Converted]", "protected: [Converted]\ntransitions: {Open: {from: [New]}}"
        )
        assert guarded != E2E_RULES
        time.sleep(0.01)  # a new mtime, so the holder reloads the file
        (tmp_path / "rules.yaml").write_text(guarded)
        plan = _plan(app, run_id)
        status = [s for s in plan.skipped if s.field == "status"]
        assert {s.lead_id for s in status} == set(ids)
        assert all(s.reason.startswith("blocked by the rules' guards") for s in status)
        assert all(r.field != "status" for r in plan.restores)


def test_a_revert_skips_a_field_with_a_newer_change_waiting_in_the_outbox(tmp_path: Path) -> None:
    from sqlmodel import Session

    from syncd.state import OutboxRow, OutboxState

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        ids, run_id = _sf_run(app, 2)
        now = datetime.now(UTC)
        with Session(app.store.engine) as session:  # what a later plan queued, not yet sent
            session.add(
                OutboxRow(crm="salesforce", lead_id=ids[0], kind="field", field="status",
                          value="Unqualified", before="Nurture", rule_id="later", run_id="later",
                          intent_id=f"later.{ids[0]}", state=OutboxState.PENDING,
                          created_at=now, updated_at=now)
            )  # fmt: skip
            session.commit()
        plan = _plan(app, run_id)
        reasons = {(s.lead_id, s.field): s.reason for s in plan.skipped}
        assert reasons == {(ids[0], "status"): "a newer change for it is waiting in the outbox"}
        assert (ids[1], "status") in {(r.lead_id, r.field) for r in plan.restores}


def synced_cli(
    tmp_path: Path, emu: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch, leads: int = 2
) -> tuple[str, str, list[str]]:
    """(config, run id, lead ids): ``leads`` stale leads in the Salesforce emulator and one
    `sync --once` run that nurtured them."""
    from tests.daemon.test_revert import _cli_config

    monkeypatch.setenv("SF_SECRET", emu.client_secret)
    campaign = emu.add_campaign("Newsletter")
    ids: list[str] = emu.add_leads(
        sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", status="Working - Contacted",
                activity_days=200)
        for i in range(leads)
    )  # fmt: skip
    config = str(_cli_config(tmp_path, emu, campaign))
    assert runner.invoke(cli, ["sync", "--once", "-c", config]).exit_code == 0
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        run_id = store.last_runs()[0].run_id
    finally:
        store.close()
    return config, run_id, ids


def test_revert_of_a_run_whose_audit_rows_were_pruned_says_it_is_past_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SalesforceEmulator() as emu:
        config, run_id, _ = synced_cli(tmp_path, emu, monkeypatch, leads=1)
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            assert store.audit_of_run(run_id)
            with store.engine.begin() as conn:  # what retention does past `retention.audit`
                conn.execute(delete(AuditRow).where(AuditRow.run_id == run_id))  # type: ignore[arg-type]
        finally:
            store.close()
        writes = len(emu.journal.writes())
        result = runner.invoke(cli, ["revert", run_id, "--yes", "-c", config])
        assert result.exit_code == 0, result.output
        assert f"no applied changes of run {run_id} are in the audit" in result.output
        assert len(emu.journal.writes()) == writes


# -- Retention -------------------------------------------------------------------------------


def test_retention_defaults_are_the_readme_table_audit_180d_runs_180d_outbox_30d() -> None:
    defaults = RetentionSettings()
    assert defaults.audit == timedelta(days=180)
    assert defaults.runs == timedelta(days=180)
    assert defaults.outbox == timedelta(days=30)
    assert defaults.batch_rows == 5000


# -- Deploying -------------------------------------------------------------------------------


def _rendered(path: str) -> list[dict[str, Any]]:
    from tests.deploy.test_kubernetes_manifests import _render

    return _render(path)


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_the_base_pod_requests_192mi_limits_512mi_and_mounts_no_api_token() -> None:
    docs = _rendered("base")
    (container,) = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["memory"] == "192Mi"
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert _one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert _one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {d["kind"] for d in docs} >= {"Namespace", "ConfigMap", "Service", "PodDisruptionBudget"}


def test_the_ha_overlay_reads_its_database_url_from_the_secret_and_a_job_upgrades_the_schema(
    tmp_path: Path,
) -> None:
    from ruamel.yaml import YAML

    from syncd.settings import load_settings

    k8s = REPO / "deploy" / "kubernetes"
    cm = _one(_rendered("overlays/postgres-ha"), "ConfigMap")
    (tmp_path / "config.yaml").write_text(cm["data"]["config.yaml"])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "default.yaml").write_text(cm["data"]["default.yaml"])
    url = "postgresql+psycopg://syncd:pw@db.example/syncd"
    env = {"SF_CLIENT_SECRET": "y", "HUBSPOT_TOKEN": "z"}  # the Secret's keys
    settings = load_settings(tmp_path / "config.yaml", env={**env, "SYNCD_DATABASE_URL": url})
    assert settings.state.url.get_secret_value() == url
    job = YAML(typ="safe").load(k8s / "overlays" / "postgres-ha" / "db-upgrade-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["db", "upgrade"]
    secret = YAML(typ="safe").load(k8s / "secret.example.yaml")
    assert set(secret["stringData"]) >= {"SF_CLIENT_SECRET", "HUBSPOT_TOKEN", "SYNCD_DATABASE_URL"}


def test_the_monitoring_kit_scrapes_syncd_and_alerts_on_each_condition_the_readme_lists() -> None:
    from ruamel.yaml import YAML

    docs = _rendered("monitoring")
    assert {d["kind"] for d in docs} >= {"ServiceMonitor", "PrometheusRule"}
    service = _one(_rendered("base"), "Service")
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    plain = YAML(typ="safe").load(REPO / "deploy/kubernetes/monitoring/alerts.rules.yaml")
    exprs = {r["alert"]: r for g in plain["groups"] for r in g["rules"]}
    wanted = {  # README: "no successful cycle for 3 intervals, cycles failing, ..."
        "SyncdNoSuccessfulCycle": "syncd_last_success_timestamp_seconds",
        "SyncdCyclesFailing": "syncd_cycle_failures_total",
        "SyncdBreakerTripped": "syncd_breaker_trips_total",
        "SyncdWritesFailing": "syncd_records_written_total",
        "SyncdApiQuotaHigh": "syncd_api_quota_used / syncd_api_quota_limit > 0.8",
        "SyncdRulesInvalid": "syncd_rules_valid == 0",
        "SyncdNoLeader": "syncd_lease_leader",
        "SyncdAcceptanceRateLow": "syncd_acceptance_rate < 0.9",
        "SyncdSalFollowUpBreached": "syncd_sla_open_breaches > 0",
    }
    for alert, expr in wanted.items():
        assert expr in exprs[alert]["expr"], alert
    assert "3 * 300" in exprs["SyncdNoSuccessfulCycle"]["expr"]  # 3 default intervals
    assert exprs["SyncdAcceptanceRateLow"]["for"] == "1h"
    assert exprs["SyncdSalFollowUpBreached"]["for"] == "30m"


def test_the_image_installs_the_locked_dependencies_first_and_keeps_state_in_var_lib_syncd() -> (
    None
):
    lines = (REPO / "Dockerfile").read_text().splitlines()
    lock = next(i for i, line in enumerate(lines) if "--requirement requirements.lock" in line)
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY syncd "))
    assert lock < code  # the dependency layer survives a code change
    assert any("SYNCD_STATE__DIR=/var/lib/syncd" in line for line in lines)
    assert "USER 10001:10001" in lines
    assert lines[-2:] == ['ENTRYPOINT ["syncd"]', 'CMD ["run"]']  # never the demo by default


def test_the_systemd_unit_does_not_restart_after_exit_2_and_filters_system_calls() -> None:
    unit = (REPO / "deploy" / "systemd" / "syncd.service").read_text().splitlines()
    for line in (
        "RestartPreventExitStatus=2",
        "TimeoutStopSec=20",
        "SystemCallFilter=@system-service",
        "EnvironmentFile=-/etc/syncd/secrets.env",
        "ExecStart=/opt/syncd/.venv/bin/syncd run --config /etc/syncd/config.yaml",
    ):
        assert line in unit, line


def test_db_current_shows_the_stores_revision_and_the_one_this_syncd_needs(tmp_path: Path) -> None:
    from syncd.schema import schema_status

    url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "syncd.yaml"
    config.write_text(f"state: {{url: '{url}'}}\nhubspot: {{}}\n")
    empty = runner.invoke(cli, ["db", "current", "-c", str(config)])
    assert empty.exit_code == 0, empty.output
    assert "current: empty" in empty.output and "run `syncd db upgrade`" in empty.output
    StateStore(url).close()  # SQLite: upgraded at start (state.auto_upgrade)
    store = StateStore(url)
    try:
        head = schema_status(store.engine).head
    finally:
        store.close()
    assert f"needed:  {head}" in empty.output
    done = runner.invoke(cli, ["db", "current", "-c", str(config)])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [f"current: {head}", f"needed:  {head}"]


def test_a_sqlite_leader_holds_an_os_file_lock_beside_the_database_until_it_releases(
    tmp_path: Path,
) -> None:
    import fcntl
    import os

    from syncd.lease import Identity, Lease

    db = tmp_path / "state.db"
    store = StateStore(f"sqlite:///{db}")
    ttl = timedelta(seconds=30)
    lease = Lease(store, "hubspot", ttl=ttl, renew_every=ttl / 3, identity=Identity("a", 1, "a"))

    def locked() -> bool:
        fd = os.open(tmp_path / "state.db.lease-hubspot.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock this probe took
        return False

    try:
        assert lease.try_acquire()
        assert locked()
        lease.release()
        assert not locked()
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_connections_never_prepare_statements_on_the_server(postgres_url: str) -> None:
    """So a transaction-pooling proxy (PgBouncer) can carry syncd's statements."""
    from tests.pgdb import empty_database

    store = StateStore(empty_database(postgres_url, "readme_prepare"))
    try:
        with store.engine.connect() as conn:
            assert conn.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
    finally:
        store.close()
