"""README.md lines 1-633, continued (tests/test_readme_promises_setup_and_config.py is the first
part). Ctrl-C stopping `make run` is tests/daemon/test_daemon_process.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.harness import write_config

# --------------------------------------------------------------------------------------------
# HubSpot lifecycle stage: the rule vocabulary in conditions, unmapped values as named, and
# without a lifecycle block the stage is set like any field.

STAGE_RULES = """\
version: 1
name: stages
mode: first_match
statuses:
  New: {}
rules:
  - id: sal-to-opportunity
    when: {field: lifecycle_stage, eq: SAL}
    then:
      - set_field: {field: lifecycle_stage, value: opportunity}
  - id: back-to-lead
    when: {field: title, eq: Demoted}
    then:
      - set_field: {field: lifecycle_stage, value: lead}
"""


def _stage_config(tmp_path: Path, lifecycle: str) -> Path:
    from tests.daemon.test_lifecycle_stage import stage_config

    return stage_config(tmp_path, rules=STAGE_RULES, lifecycle=lifecycle)


def test_lifecycle_conditions_see_rule_values_and_unmapped_values_are_written_as_named(
    tmp_path: Path,
) -> None:
    from tests.daemon.harness import hs_contact, running_app

    block = "  lifecycle:\n    values: {MQL: marketingqualifiedlead, SAL: salesqualifiedlead}\n"
    with running_app(_stage_config(tmp_path, block)) as app:
        hs = app.embedded.hubspot
        accepted, other = hs.add_contacts(
            [
                hs_contact(
                    "Sal", "sal@acme.com", title="Buyer", lifecyclestage="salesqualifiedlead"
                ),
                hs_contact(
                    "Mql", "mql@acme.com", title="Buyer", lifecyclestage="marketingqualifiedlead"
                ),
            ]
        )
        report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok" and report.written == 1, report
        assert hs.contact(accepted)["lifecyclestage"] == "opportunity"
        assert hs.contact(other)["lifecyclestage"] == "marketingqualifiedlead"


def test_without_a_lifecycle_block_a_backward_stage_is_sent_like_any_field_not_blocked(
    tmp_path: Path,
) -> None:
    from tests.daemon.harness import hs_contact, hs_write_calls, running_app

    with running_app(_stage_config(tmp_path, "")) as app:
        hs = app.embedded.hubspot
        [demoted] = hs.add_contacts(
            [hs_contact("Dem", "dem@acme.com", title="Demoted", lifecyclestage="customer")]
        )
        report = app.pipelines["hubspot"].run_cycle()
        sent = [e for e in hs_write_calls(app) if demoted in e.record_ids]
        audit = app.store.audit_of_lead(demoted, "hubspot")
        # HubSpot keeps a backward stage that was not cleared first: the README's error row.
        assert hs.contact(demoted)["lifecyclestage"] == "customer"
    assert report.blocked == 0
    assert len(sent) == 1  # one request: not cleared first, not blocked
    assert [(a.field, a.after, a.outcome, a.error_code) for a in audit] == [
        ("lifecycle_stage", "lead", "failed", "LIFECYCLE_NOT_APPLIED")
    ]


# --------------------------------------------------------------------------------------------
# server.enabled / server.port


def _with_server(tmp_path: Path, server: str) -> Path:
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(config.read_text().replace("server: {enabled: false}", f"server: {server}"))
    return config


def test_server_enabled_false_serves_nothing_and_never_binds_its_port(tmp_path: Path) -> None:
    import socket

    from syncd.app import App, StartupError
    from syncd.settings import load_settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        off = load_settings(_with_server(tmp_path, f"{{enabled: false, port: {port}}}"), env={})
        app = App.build(off, serve_health=True)
        try:
            assert app.health is None
        finally:
            app.close()
        on = load_settings(_with_server(tmp_path, f"{{enabled: true, port: {port}}}"), env={})
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
            App.build(on, serve_health=True).close()


# --------------------------------------------------------------------------------------------
# `syncd plan --leads --json`: per lead, machine-readable, conflicts included

TAGGING = """\
version: 1
name: tags
mode: all_match
statuses:
  New: {}
  MQL: {}
  Nurture: {}
rules:
  - id: vp-to-mql
    when: {field: title, eq: VP Sales}
    then:
      - set_status: MQL
  - id: big-to-nurture
    when: {field: employees, gt: 100}
    then:
      - set_status: Nurture
"""


def test_plan_leads_json_lists_each_changing_lead_and_the_rule_conflicts(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from syncd.cli import app as cli
    from syncd.pipeline import CycleReport
    from tests.daemon.harness import running_app, sf_lead

    config = write_config(tmp_path, rules=TAGGING, crms=("salesforce",))
    with running_app(config) as app:
        both, vp = app.embedded.salesforce.add_leads(
            [
                sf_lead("Both", "both@acme.com", title="VP Sales", NumberOfEmployees=500),
                sf_lead("Vp", "vp@acme.com", title="VP Sales", NumberOfEmployees=20),
            ]
        )
        app.pipelines["salesforce"].pull(CycleReport("salesforce", "t"), until=datetime.now(UTC))
    result = CliRunner().invoke(
        cli, ["plan", "--leads", "--json", "-c", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    part = json.loads(result.output)["crms"]["salesforce"]
    assert {(lead["lead_id"], lead["after"], lead["rule_id"]) for lead in part["leads"]} == {
        (both, "MQL", "vp-to-mql"),
        (vp, "MQL", "vp-to-mql"),
    }
    assert part["conflicts"] == [
        {
            "lead_id": both,
            "field": "status",
            "kept_value": "MQL",
            "kept_rule": "vp-to-mql",
            "rejected_value": "Nurture",
            "rejected_rule": "big-to-nurture",
        }
    ]


# --------------------------------------------------------------------------------------------
# `--rules` given several times: a book of several files, for that command only

EXTRA_SET = """\
version: 1
name: extra
mode: all_match
rules:
  - id: ceo-newsletter
    when: {field: title, eq: CEO}
    then:
      - add_to_newsletter: newsletter
"""


def test_several_rules_options_plan_with_a_book_of_all_those_files(tmp_path: Path) -> None:
    import json
    import re

    from typer.testing import CliRunner

    from syncd.cli import app as cli

    config = write_config(tmp_path, crms=("salesforce",))
    status_set, extra = tmp_path / "rules.yaml", tmp_path / "extra.yaml"
    extra.write_text(EXTRA_SET)
    runner = CliRunner()

    def plan_version(*files: Path) -> str:
        args = [a for f in files for a in ("--rules", str(f))]
        result = runner.invoke(
            cli, ["plan", "--json", "-c", str(config), *args], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return str(json.loads(result.output)["ruleset_version"])

    checked = runner.invoke(cli, ["rules", "check", "-c", str(config), str(status_set), str(extra)])
    assert checked.exit_code == 0, checked.output
    both = re.search(r"rules version (\S+)", checked.output)
    assert both is not None
    assert plan_version(status_set, extra) == both[1]
    assert plan_version(status_set) != both[1]
    assert plan_version() == plan_version(status_set)  # the config's rules.files


# --------------------------------------------------------------------------------------------
# Settings from the environment: the path's parts in any case


def test_an_override_variables_path_parts_match_in_any_case(tmp_path: Path) -> None:
    from syncd.settings import load_settings

    config = write_config(tmp_path, crms=("salesforce",))
    settings = load_settings(
        config, env={"SYNCD_log__Format": "json", "SYNCD_Salesforce__INTERVAL": "2m"}
    )
    assert settings.log.format == "json"
    assert settings.connectors()["salesforce"].interval.total_seconds() == 120


def test_a_reference_given_by_a_variable_is_resolved_as_in_the_file(tmp_path: Path) -> None:
    from syncd.settings import load_settings
    from syncd.yamlfile import YamlFileError

    config = write_config(tmp_path, crms=("salesforce",))
    url = f"sqlite:///{tmp_path / 'other.db'}"
    reference = {"SYNCD_STATE__URL": "{env: DATABASE_URL}"}
    settings = load_settings(config, env={**reference, "DATABASE_URL": url})
    assert settings.state.url.get_secret_value() == url
    with pytest.raises(YamlFileError) as caught:
        load_settings(config, env=reference)
    assert str(caught.value).startswith(
        "environment variable SYNCD_STATE__URL: state.url: environment variable DATABASE_URL "
        "is not set"
    )


# --------------------------------------------------------------------------------------------
# Logs: pull progress as JSON fields, every 10 % or 30 s


def test_pull_progress_records_carry_done_total_percent_rate_every_10_percent_or_30_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from syncd.logs import JsonFormatter
    from syncd.progress import LogProgress

    now = [0.0]
    progress = LogProgress("salesforce", clock=lambda: now[0])
    with caplog.at_level("INFO", logger="syncd.progress"):
        for _ in range(10):  # 1,000 of 10,000 leads a second: a line per 10 %
            now[0] += 1
            progress.advance(1_000, 10_000)
        fast = len(caplog.records)
        progress = LogProgress("hubspot", clock=lambda: now[0])
        for _ in range(3):  # 1 % each 31 s: a line every 30 s though under 10 % apart
            now[0] += 31
            progress.advance(100, 10_000)
    records = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert [r["percent"] for r in records[:fast]] == [10.0 * i for i in range(1, 11)]
    assert all(r["total"] == 10_000 and r["rate"] == 1_000.0 for r in records[:fast])
    assert [r["done"] for r in records[:fast]] == [1_000 * i for i in range(1, 11)]
    assert [r["percent"] for r in records[fast:]] == [1.0, 2.0, 3.0]
    assert all(r["logger"] == "syncd.progress" for r in records)


def test_each_change_of_a_cycle_is_a_json_record_with_its_fields_and_outcome(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from syncd.cli import _log_cycle
    from syncd.logs import JsonFormatter
    from tests.daemon.harness import running_app, sf_lead

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        [stale] = app.embedded.salesforce.add_leads(
            [sf_lead("Stale", "stale@acme.com", title="Analyst", activity_days=200)]
        )
        report = app.pipelines["salesforce"].run_cycle()
        with caplog.at_level("INFO", logger="syncd.changes"):
            _log_cycle(app, report, summary=False)  # what `syncd run` logs with json logs
    records = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    status = [r for r in records if r.get("field") == "status"]
    assert [
        {k: r[k] for k in ("crm", "run_id", "lead_id", "before", "after", "rule", "outcome")}
        for r in status
    ] == [
        {
            "crm": "salesforce",
            "run_id": report.run_id,
            "lead_id": stale,
            "before": "Open - Not Contacted",
            "after": "Nurture",
            "rule": "stale-nurture",
            "outcome": "applied",
        }
    ]
    assert all(r["logger"] == "syncd.changes" for r in records)


# --------------------------------------------------------------------------------------------
# `make run`: the daemon on the embedded default, no credentials


def test_make_run_is_the_daemon_on_the_embedded_default_with_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re

    from syncd.settings import load_settings
    from syncd.store_open import state_dir

    repo = Path(__file__).resolve().parents[1]
    makefile = (repo / "Makefile").read_text()
    assert re.search(r"^CONFIG \?= config\.example\.yaml$", makefile, re.M)
    assert re.search(r"^run: .*\n\t\$\(BIN\)/syncd run --config \$\(CONFIG\)$", makefile, re.M)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    settings = load_settings(repo / "config.example.yaml", env={})  # no secret to give
    assert settings.embedded.enabled and settings.embedded.leads == 300
    assert {n: cs.type for n, cs in settings.connectors().items()} == {
        "salesforce": "salesforce",
        "hubspot": "hubspot",
    }
    assert settings.state.url.get_secret_value() == "sqlite:///var/syncd-state.db"
    assert state_dir(settings) == repo  # so the state file is var/syncd-state.db


# --------------------------------------------------------------------------------------------
# `syncd plan`: a changed setting or a new syncd version makes it (and the next cycle)
# evaluate every lead, as a draft rule file does


def test_a_changed_setting_or_syncd_version_changes_the_planning_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    import syncd.due as due
    from rules import load_rulebook
    from syncd.enrichment import EnrichmentSettings
    from syncd.settings import ConnectorSettings, LoopGuardSettings

    repo = Path(__file__).resolve().parents[1]
    book = load_rulebook([repo / "rules/default.yaml"])
    connector = ConnectorSettings(type="salesforce")

    def fingerprint(
        cs: ConnectorSettings = connector,
        enrichment: EnrichmentSettings | None = None,
        loop_guard: LoopGuardSettings | None = None,
    ) -> str:
        return due.planning_fingerprint(
            book, cs, enrichment or EnrichmentSettings(), loop_guard or LoopGuardSettings()
        )

    base = fingerprint()
    assert fingerprint() == base  # nothing changed: only due leads are evaluated
    changed = [
        fingerprint(connector.model_copy(update={"hold_rep_edits_for": timedelta(days=7)})),
        fingerprint(connector.model_copy(update={"status_values": {"New": "Open"}})),
        fingerprint(enrichment=EnrichmentSettings.model_validate({"icp": {"strong_at": 80}})),
        fingerprint(loop_guard=LoopGuardSettings(max_changes=5)),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    monkeypatch.setattr(due, "_version", lambda: "99.0.0")  # a new syncd version
    assert fingerprint() != base


# --------------------------------------------------------------------------------------------
# Connector instances: rules see the type as `crm`, the instance name as `connector`

BY_TYPE_RULES = """\
version: 1
name: by-type
mode: first_match
statuses:
  New: {}
  MQL: {}
  Archived: {}
rules:
  - id: crm-is-never-an-instance-name
    when: {field: crm, eq: salesforce/us}
    then:
      - set_status: Archived
  - id: every-salesforce-ceo
    when:
      all:
        - {field: crm, eq: salesforce}
        - {field: title, eq: CEO}
    then:
      - set_status: MQL
"""


def test_rules_field_crm_is_the_type_and_matches_every_instance_of_it(tmp_path: Path) -> None:
    from tests.daemon.harness import running_app, sf_lead

    (tmp_path / "rules.yaml").write_text(BY_TYPE_RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
embedded: {{enabled: true, leads: 0, rep_activity: false, fresh_state: false}}
connectors:
  salesforce/emea: {{type: salesforce, interval: 60s, connector: {{lag_seconds: 0}}}}
  salesforce/us: {{type: salesforce, interval: 60s, connector: {{lag_seconds: 0}}}}
""")
    with running_app(config) as app:
        ceos = {}
        for name in ("salesforce/emea", "salesforce/us"):
            [ceos[name]] = app.embedded.server(name).add_leads(
                [sf_lead("Boss", f"boss@{name.split('/')[1]}.com", title="CEO")]
            )
            report = app.pipelines[name].run_cycle()
            assert report.outcome == "ok" and report.written == 1, report
        for name, lead_id in ceos.items():
            assert app.embedded.server(name).lead(lead_id)["Status"] == "MQL"
            audit = app.store.audit_of_lead(lead_id, name)
            assert [(a.after, a.rule_id) for a in audit] == [("MQL", "every-salesforce-ceo")]


# --------------------------------------------------------------------------------------------
# Configuration: every problem at once, each at file:line:column; exit 2


def test_every_problem_in_the_config_is_reported_at_once_at_its_place(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from syncd.cli import app as cli

    config = tmp_path / "syncd.yaml"
    config.write_text(
        "breaker:\n"
        "  max_change_share: 3\n"
        "log:\n"
        "  level: LOUD\n"
        "salesforce:\n"
        "  interval: 1s\n"
        "retention:\n"
        "  audit: 30d\n"
    )
    rules = Path(__file__).resolve().parents[1] / "rules/default.yaml"
    result = CliRunner().invoke(
        cli, ["rules", "check", "-c", str(config), str(rules)], catch_exceptions=False
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "4 problems" in result.output
    for line, col, setting in [
        (2, 3, "breaker.max_change_share"),
        (4, 3, "log.level"),
        (6, 3, "salesforce.interval"),
        (8, 3, "retention.audit"),
    ]:
        assert f"{config}:{line}:{col}: {setting}: " in result.output, result.output


@pytest.mark.parametrize(("size", "ok"), [(199, False), (200, True), (2000, True), (2001, False)])
def test_salesforce_page_size_is_between_200_and_2000(size: int, ok: bool) -> None:
    from pydantic import ValidationError

    from connectors.salesforce.config import SalesforceConfig

    base = {
        "instance_url": "https://x.my.salesforce.com",
        "token_url": "https://x.my.salesforce.com/services/oauth2/token",
        "auth": {"type": "session", "session_id": "s"},
    }
    if ok:
        assert SalesforceConfig.model_validate({**base, "page_size": size}).page_size == size
    else:
        with pytest.raises(ValidationError, match="page_size"):
            SalesforceConfig.model_validate({**base, "page_size": size})
