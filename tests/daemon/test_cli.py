"""The admin's commands, run as an admin would (in-process through the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli
from tests.daemon.test_admin_workflow import REPO, _demo_config

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_rules_check_prints_every_error_with_its_location_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
version: 1
name: bad
mode: first_match
statuses: {Open: {}, Nurture: {}}
rules:
  - id: one
    when: {field: titel, eq: CEO}
    then: [{set_status: Nurture}]
  - id: two
    when: {field: last_activity_at, older_than: 90dd}
    then: [{set_status: Nurture}]
""")
    result = invoke("rules", "check", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:7:" in result.output and "did you mean 'title'" in result.output
    assert f"{bad}:10:" in result.output and "90dd" in result.output
    assert "Traceback" not in result.output


def test_rules_check_accepts_the_shipped_rule_sets(tmp_path: Path) -> None:
    assert invoke("rules", "check", str(REPO / "rules/default.yaml")).exit_code == 0
    # The tagging example writes fields, which the config must allow first.
    tagging = str(REPO / "rules/tagging.example.yaml")
    refused = invoke("rules", "check", tagging)
    assert refused.exit_code == 2 and "not on the settable allowlist" in refused.output
    config = tmp_path / "syncd.yaml"
    config.write_text("hubspot: {settable_fields: [lead_source, industry]}\n")
    result = invoke("rules", "check", tagging, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert ": ok (" in result.output


def test_rules_test_runs_the_default_fixtures_and_they_pass() -> None:
    result = invoke("rules", "test", "--config", str(REPO / "config.example.yaml"))
    assert result.exit_code == 0, result.output
    passed = int(result.output.strip().splitlines()[-1].split()[0])
    assert passed >= 15 and ", 0 failed" in result.output


def test_rules_test_reports_a_wrong_expectation_by_case_name(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "wrong.yaml").write_text(f"""\
ruleset: {REPO / "rules/default.yaml"}
now: 2026-06-01T00:00:00Z
cases:
  - name: a converted lead is left alone
    lead: {{status: Converted, last_activity_at: 2024-01-01T00:00:00Z}}
    expect: {{status: Archived}}
""")
    result = invoke("rules", "test", str(fixtures), "--config", str(REPO / "config.example.yaml"))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "a converted lead is left alone" in result.output
    assert "0 passed, 1 failed" in result.output


def test_rules_schema_prints_the_schema_shipped_for_editors() -> None:
    result = invoke("rules", "schema")
    assert result.exit_code == 0
    shipped = json.loads((REPO / "rules/ruleset.schema.json").read_text())
    assert json.loads(result.output) == shipped


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo config whose mirror holds one synced cycle."""
    config = _demo_config(tmp_path_factory.mktemp("cli"))
    result = invoke("sync", "--once", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "salesforce: pulled" in result.output and "hubspot: pulled" in result.output
    return config


def _one_audited_lead(config: Path) -> tuple[str, str, str]:
    from syncd.state import StateStore

    url = config.read_text().split("url: ", 1)[1].split()[0]
    store = StateStore(url)
    run = store.last_runs(1, crm="salesforce")[0]
    row = store.audit_of_run(run.run_id)[0]
    store.close()
    return row.lead_id, row.rule_id, run.run_id


def test_explain_shows_every_rule_and_what_decided_it(synced: Path) -> None:
    lead_id, _rule_id, _ = _one_audited_lead(synced)
    result = invoke("explain", lead_id, "--config", str(synced))
    assert result.exit_code == 0, result.output
    assert f"salesforce lead {lead_id}" in result.output
    assert "seniority" in result.output  # enrichment with its reason
    assert result.output.count("no match") + result.output.count("matched") >= 5
    assert "verdict:" in result.output


def test_audit_by_lead_and_by_run_name_rule_and_rules_version(synced: Path) -> None:
    lead_id, rule_id, run_id = _one_audited_lead(synced)
    by_lead = invoke("audit", lead_id, "--config", str(synced))
    assert by_lead.exit_code == 0 and rule_id in by_lead.output
    by_run = invoke("audit", "--run", run_id, "--config", str(synced))
    assert by_run.exit_code == 0 and lead_id in by_run.output and "applied" in by_run.output


def test_explain_finds_the_lead_when_given_its_15_character_salesforce_id(synced: Path) -> None:
    lead_id, _rule_id, _ = _one_audited_lead(synced)
    result = invoke("explain", lead_id[:15], "--config", str(synced))
    assert result.exit_code == 0, result.output
    assert f"salesforce lead {lead_id}" in result.output
    assert "verdict:" in result.output


def test_explain_says_no_lead_has_the_id_when_a_15_character_id_is_malformed(
    synced: Path,
) -> None:
    result = invoke("explain", "00Q5g0000000-Po", "--config", str(synced))
    assert result.exit_code == 1
    assert "no lead '00Q5g0000000-Po' in the mirror" in result.output
    assert "Traceback" not in result.output


def test_audit_shows_the_lead_s_changes_when_given_its_15_character_salesforce_id(
    synced: Path,
) -> None:
    lead_id, rule_id, run_id = _one_audited_lead(synced)
    result = invoke("audit", lead_id[:15], "--config", str(synced))
    assert result.exit_code == 0, result.output
    assert f"salesforce  {lead_id}  " in result.output
    assert rule_id in result.output and run_id in result.output


def test_status_lists_runs_per_crm(synced: Path) -> None:
    result = invoke("status", "--config", str(synced))
    assert result.exit_code == 0, result.output
    assert "salesforce:" in result.output and "hubspot:" in result.output
    assert " ok: pulled " in result.output


def test_plan_json_is_machine_readable_and_never_writes(synced: Path) -> None:
    result = invoke("plan", "--json", "--config", str(synced))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert set(plan["crms"]) == {"salesforce", "hubspot"}
    for part in plan["crms"].values():
        assert part["live_leads"] == 300
        assert set(part) >= {"changing_leads", "memberships", "rules", "held", "blocked", "breaker"}
