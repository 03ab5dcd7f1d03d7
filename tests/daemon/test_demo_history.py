"""The embedded demo seeds each lead's past into the emulators' own history (LeadHistory,
HubSpot property history): the first cycle of a fresh demo already holds the statuses people
set days ago, and `syncd report` on it shows a real funnel."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from connectors.testing.demo_history import status_path
from connectors.testing.leads import generate_leads
from syncd.cli import app as cli
from tests.daemon.harness import running_app
from tests.daemon.test_admin_workflow import _demo_config


def test_demo_paths_end_at_each_leads_status_and_time_in_order() -> None:
    now = datetime.now(UTC)
    leads = generate_leads(300, seed=7, now=now)
    paths = [status_path(lead) for lead in leads]
    for lead, path in zip(leads, paths, strict=True):
        assert path[-1].status == lead["status"]
        assert path[-1].at == (lead["_status_changed_at"] or lead["created_at"]) or len(path) == 1
        assert [s.at for s in path] == sorted(s.at for s in path)
    steps = [(s.status, s.by) for p in paths for s in p]
    assert ("Open", "person") in steps and ("SAL", "automation") in steps
    assert ("SQL", "person") in steps and ("Unqualified", "person") in steps


def test_a_fresh_demos_first_cycle_holds_hand_worked_leads_and_its_report_has_a_funnel(
    tmp_path: Path,
) -> None:
    config = _demo_config(tmp_path)
    with running_app(config) as app:
        cycles = {name: p.run_cycle() for name, p in app.pipelines.items()}
        hs = app.embedded.hubspot
        contact = next(
            i for i in app.embedded.emulators["hubspot"].lead_ids
            if hs.contact(i).get("hs_lead_status") == "SAL"
        )  # fmt: skip
        history = hs.status_history(contact)
    for name, cycle in cycles.items():
        assert cycle.outcome == "ok", cycle.message
        # Open ("Working - Contacted") leads a rep set within hold_rep_edits_for (14 days).
        assert cycle.held >= 20, (name, cycle.held)
    assert [s for _, s in history] == ["IMPORT", "WORKFLOW", "WORKFLOW"]
    result = CliRunner().invoke(cli, ["report", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["groups"][0]
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["MQL"]["in_order"] > stages["SAL"]["in_order"] > stages["SQL"]["in_order"] > 0
    assert 0 < report["acceptance_numerator"] < report["acceptance_denominator"]  # rejections
    # SAL leads past the SLA (the first cycle's sal-follow-up-breached sent them back to MQL).
    assert report["sla_breaches"] > 0
    assert stages["SAL"]["n_durations"] > 0
