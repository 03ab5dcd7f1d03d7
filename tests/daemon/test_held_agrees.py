"""The held count is one number: `syncd status`, the cycle summary, the run row and the metric."""

from __future__ import annotations

from pathlib import Path

from syncd.plan import status_report
from tests.daemon.harness import hs_contact, running_app, write_config


def test_status_cycle_summary_run_row_and_metric_count_the_same_held_leads(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        emu = app.embedded.hubspot
        stale = emu.add_contacts(
            [
                hs_contact(f"S{i}", f"s{i}@acme.com", title="Analyst", activity_days=200)
                for i in range(2)
            ]
        )
        fresh = emu.add_contacts(
            [
                hs_contact(f"F{i}", f"f{i}@acme.com", title="Analyst", activity_days=2)
                for i in range(3)
            ]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 4  # the stale ones: Nurture and the newsletter
        # A rep sets all five by hand: the rules would move the stale ones back to Nurture,
        # and want nothing for the fresh ones. Both kinds are held: left alone by syncd.
        for contact in stale + fresh:
            emu.update_contact(contact, {"hs_lead_status": "IN_PROGRESS"})
        report = pipeline.run_cycle()
        status = status_report(app)["crms"]["hubspot"]
        metric = app.metrics.registry.get_sample_value("syncd_rep_edits_held", {"crm": "hubspot"})

    assert report.held == 5 and report.written == 0
    assert "5 held (rep edits)" in report.summary()
    assert sorted(h["lead_id"] for h in status["held"]) == sorted(stale + fresh)
    assert status["runs"][0]["held"] == 5
    assert metric == 5
