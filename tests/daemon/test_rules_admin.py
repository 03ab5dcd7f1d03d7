"""The admin's workflow around rule edits: drafts planned before they go live, read-only
commands while a file is broken, one version hash, and the diff between two rule versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.pipeline import CycleReport
from tests.daemon.harness import E2E_RULES, running_app, sf_lead, write_config

runner = CliRunner()

CEO_RULE = """\
  - id: ceo-to-mql
    when: {field: title, eq: CEO}
    then:
      - set_status: MQL
"""
DRAFT = E2E_RULES.replace("rules:\n", "rules:\n" + CEO_RULE)


def invoke(*args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def _mirrored(tmp_path: Path) -> Path:
    """A config whose mirror holds a stale lead, a CEO and a fresh lead (nothing written)."""
    config = write_config(tmp_path, crms=("salesforce",))
    with running_app(config) as app:
        app.embedded.server("salesforce").add_leads(
            [
                sf_lead("Stale", "stale@acme.com", title="Buyer", activity_days=120),
                sf_lead("Boss", "boss@acme.com", title="CEO"),
                sf_lead("Fresh", "fresh@acme.com", title="Buyer"),
            ]
        )
        app.pipelines["salesforce"].pull(CycleReport("salesforce", "test"), until=datetime.now(UTC))
    return config


def _plan(*args: str) -> dict[str, Any]:
    result = invoke("plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _moves(plan: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (lead["lead_id"], lead["after"], lead["rule_id"])
        for lead in plan["crms"]["salesforce"]["leads"]
    }


def test_plan_of_a_draft_differs_by_the_drafts_changes_and_live_rules_stay(tmp_path: Path) -> None:
    config = _mirrored(tmp_path)
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    live_bytes = (tmp_path / "rules.yaml").read_bytes()
    with running_app(config) as daemon:
        live_version = daemon.rules.current().version
        live = _plan("-c", str(config))
        drafted = _plan("-c", str(config), "--rules", str(draft))
        assert daemon.rules.current().version == live_version  # the daemon did not reload
    assert (tmp_path / "rules.yaml").read_bytes() == live_bytes
    added = _moves(drafted) - _moves(live)
    assert [(after, rule) for _, after, rule in added] == [("MQL", "ceo-to-mql")]
    assert _moves(live) - _moves(drafted) == set()
    assert drafted["ruleset_version"] != live["ruleset_version"] == live_version


def test_plan_at_a_later_time_sees_time_based_rules_fire(tmp_path: Path) -> None:
    config = _mirrored(tmp_path)
    now = _plan("-c", str(config))
    later = _plan("-c", str(config), "--at", "+100d")
    assert len(later["crms"]["salesforce"]["leads"]) > len(now["crms"]["salesforce"]["leads"])
    assert invoke("plan", "-c", str(config), "--at", "next monday").exit_code == 2


def test_read_only_commands_work_on_broken_rules_and_a_fixed_file_clears_the_error(
    tmp_path: Path,
) -> None:
    config = _mirrored(tmp_path)
    rules = tmp_path / "rules.yaml"
    with running_app(config) as daemon:  # the daemon sees the broken edit and stores it
        rules.write_text(E2E_RULES.replace("older_than: 90d", "older_than: 90dd"))
        daemon.rules.current()
        assert daemon.rules.error
    status = invoke("status", "-c", str(config))
    assert status.exit_code == 0 and "do not load" in status.output and "90dd" in status.output
    plan = invoke("plan", "-c", str(config))
    assert plan.exit_code == 2 and "do not load" in plan.output and "90dd" in plan.output
    assert invoke("explain", "boss@acme.com", "-c", str(config)).exit_code == 2
    assert "no audit rows" in invoke("audit", "--run", "nope", "-c", str(config)).output
    rules.write_text(E2E_RULES)  # fixed; the daemon has not reloaded yet
    status = invoke("status", "-c", str(config))
    assert status.exit_code == 0 and "do not load" not in status.output
    assert "rules: version" in status.output


def test_rules_check_catches_duplicate_ids_across_files_and_shows_the_plans_version(
    tmp_path: Path,
) -> None:
    config = _mirrored(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(E2E_RULES.replace("name: e2e", "name: other"))
    dup = invoke("rules", "check", "-c", str(config), str(tmp_path / "rules.yaml"), str(other))
    assert dup.exit_code == 2 and "duplicate rule id 'misfit-archive'" in dup.output
    checked = invoke("rules", "check", "-c", str(config), str(tmp_path / "rules.yaml"))
    assert checked.exit_code == 0, checked.output
    version = _plan("-c", str(config))["ruleset_version"]
    assert f"rules version {version}" in checked.output


def test_rules_diff_counts_the_leads_that_change_decision(tmp_path: Path) -> None:
    config = _mirrored(tmp_path)
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    result = invoke(
        "rules", "diff", str(tmp_path / "rules.yaml"), str(draft), "-c", str(config), "--leads"
    )
    assert result.exit_code == 0, result.output
    assert "1 of 3 leads change decision" in result.output
    assert "salesforce: no change → status MQL  ×1" in result.output
    assert "rule ceo-to-mql now decides 1 more" in result.output


def test_explain_prints_list_values_and_brackets_as_they_are(tmp_path: Path) -> None:
    config = _mirrored(tmp_path)
    (tmp_path / "rules.yaml").write_text(
        E2E_RULES.replace(
            "{field: last_activity_at, older_than: 90d}",
            "{field: title, in: [Buyer, weak, '[weak]']}",
        )
    )
    result = invoke("explain", "fresh@acme.com", "-c", str(config))
    assert result.exit_code == 0, result.output
    # Rich markup would have eaten "[weak]" and "[Buyer, weak, ...]" as style tags.
    assert "title in [Buyer, weak, [weak]] (value 'Buyer')" in result.output


def test_rules_check_without_c_uses_syncd_config_warns_on_empty_when_and_shadowed_rules(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    monkeypatch.setenv("SYNCD_CONFIG", str(config))
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        E2E_RULES.replace("add_to_newsletter: newsletter", "add_to_newsletter: newsleter")
    )
    refused = invoke("rules", "check", str(typo))
    assert refused.exit_code == 2 and f"checking against {config}" in refused.output
    assert "newsleter" in refused.output
    loose = tmp_path / "loose.yaml"
    loose.write_text(
        E2E_RULES.replace(
            """    when:
      all:
        - {field: free_mail, eq: true}
        - {field: title, missing: true}
""",
            "    when:\n",
        )
    )
    checked = invoke("rules", "check", str(loose))
    assert checked.exit_code == 0, checked.output
    assert f"{loose}:16:5: warning: rule 'misfit-archive': `when` is empty" in checked.output
    assert "rule 'stale-nurture': this rule can never match" in checked.output


def test_rules_test_runs_the_fixtures_against_a_draft(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    config = str(repo / "config.example.yaml")
    draft = tmp_path / "default.yaml"
    draft.write_text(
        (repo / "rules/default.yaml").read_text().replace("id: stale-90d", "id: stale-90d-draft")
    )
    assert invoke("rules", "test", "-c", config).exit_code == 0
    result = invoke("rules", "test", "-c", config, "--rules", str(draft))
    assert result.exit_code == 1 and "stale-90d-draft" in result.output
