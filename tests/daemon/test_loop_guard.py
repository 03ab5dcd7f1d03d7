"""The runtime limit on flipping leads: a lead syncd changed loop_guard.max_changes times
within the window is held, and status, explain and the metric say so."""

from __future__ import annotations

from pathlib import Path

from syncd.plan import explain_lead, status_report
from tests.daemon.harness import running_app, sf_lead, write_config

# Another integration puts every MQL back to "Open - Not Contacted" (its edits are not held:
# hold_rep_edits_for 0s); the rule moves it to MQL again: a loop no single evaluation shows.
RULES = """\
version: 1
name: qualify
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}}
rules:
  - id: new-to-mql
    when: {field: status, eq: New}
    then:
      - set_status: MQL
"""


def test_a_lead_flipped_across_cycles_beyond_the_limit_is_held_and_reported(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        rules=RULES,
        crms=("salesforce",),
        extra="loop_guard: {max_changes: 2, window: 7d}\n",
    )
    config.write_text(
        config.read_text().replace("interval: 60s", "interval: 60s\n  hold_rep_edits_for: 0s")
    )
    with running_app(config) as app:
        org = app.embedded.server("salesforce")
        lead_id = org.add_leads([sf_lead("Loop", "loop@acme.com", title="CTO")])[0]
        pipeline = app.pipelines["salesforce"]
        for cycle in range(2):
            report = pipeline.run_cycle()
            assert report.outcome == "ok" and report.written == 1, (cycle, report.summary())
            assert org.lead(lead_id)["Status"] == "MQL"
            org.update_lead(lead_id, {"Status": "Open - Not Contacted"})  # undone
        third = pipeline.run_cycle()
        # Not a rep-edit hold: "held" keeps its one meaning (syncd.holds).
        assert third.outcome == "ok" and third.written == 0 and third.held == 0
        assert org.lead(lead_id)["Status"] == "Open - Not Contacted"
        metric = app.metrics.registry.get_sample_value(
            "syncd_loop_held_leads", {"crm": "salesforce"}
        )
        assert metric == 1
        part = status_report(app)["crms"]["salesforce"]
        held = part["loop_held"]
        assert part["held"] == []
        assert [h["lead_id"] for h in held] == [lead_id]
        assert "2 times within 7d" in held[0]["reason"] and "loop" in held[0]["reason"]
        (explained,) = explain_lead(app, "loop@acme.com")
        assert explained["verdict"].startswith(
            "held by the loop guard: syncd changed its status 2 times"
        )
