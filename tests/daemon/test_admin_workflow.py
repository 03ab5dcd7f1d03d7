"""What admins and reps rely on: plan equals the next cycle, the breaker, rule reloads,
time-based rules on the mirror, and hand-set statuses left alone."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.plan import build_plan, status_report
from tests.daemon.harness import (
    E2E_RULES,
    hs_contact,
    hs_write_calls,
    running_app,
    sf_lead,
    sf_write_calls,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]


def _demo_config(tmp_path: Path) -> Path:
    """config.example.yaml, with state in tmp and no HTTP server."""
    text = (REPO / "config.example.yaml").read_text()
    text = text.replace("sqlite:///var/syncd-state.db", f"sqlite:///{tmp_path / 'state.db'}")
    text = text.replace("files: [rules/default.yaml]", f"files: [{REPO / 'rules/default.yaml'}]")
    text = text.replace("fixtures: rules/fixtures/default", "fixtures: null")
    text = text.replace("rep_activity: true", "rep_activity: false")
    text = text.replace("  enabled: true\n  host: 127.0.0.1", "  enabled: false\n  host: 127.0.0.1")
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    return path


def test_plan_on_demo_data_counts_what_the_next_cycle_writes(tmp_path: Path) -> None:
    with running_app(_demo_config(tmp_path)) as app:
        plan = build_plan(app, pull=True)
        for name, pipeline in app.pipelines.items():
            part = plan["crms"][name]
            assert part["changing_leads"] > 0, f"the demo data gives {name} rules to act on"
            report = pipeline.run_cycle()
            assert report.outcome == "ok", report.message
            applied = [a for a in app.store.audit_of_run(report.run_id) if a.outcome == "applied"]
            status_moves = Counter(
                (a.rule_id, f"{a.before} → {a.after}") for a in applied if a.field == "status"
            )
            planned_moves = Counter(
                {
                    (rule, move): n
                    for rule, info in part["rules"].items()
                    for move, n in info["moves"].items()
                }
            )
            assert status_moves == planned_moves
            assert (
                len({a.lead_id for a in applied if not a.field.startswith("newsletter:")})
                == part["changing_leads"]
            )
            assert sum(a.field.startswith("newsletter:") for a in applied) == part["memberships"]


def test_breaker_stops_a_run_that_would_change_half_the_leads_with_zero_writes(
    tmp_path: Path,
) -> None:
    with running_app(write_config(tmp_path, breaker_share=0.2, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        sf.add_leads(
            sf_lead(
                f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200 if i % 2 else 3
            )
            for i in range(20)
        )
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "breaker"
        assert "10 of 20 leads (50%)" in report.message
        assert sf_write_calls(app) == []
        approved = app.pipelines["salesforce"].run_cycle(approve_large_run=True)
        assert approved.outcome == "ok" and approved.written == 10 + 10  # status + newsletter


@pytest.mark.parametrize(("leads", "outcome"), [(50, "ok"), (49, "breaker")])
def test_breaker_trips_exactly_above_its_share_with_the_live_count_in_its_message(
    tmp_path: Path, leads: int, outcome: str
) -> None:
    # The live leads are counted only as far as the limit needs (51 here): 10 of 50 is 20 %,
    # at the limit; 10 of 49 is above it, and the message gives the exact count.
    with running_app(write_config(tmp_path, breaker_share=0.2, crms=("salesforce",))) as app:
        app.embedded.salesforce.add_leads(
            sf_lead(
                f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200 if i < 10 else 3
            )
            for i in range(leads)
        )
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == outcome, report.message
        if outcome == "breaker":
            assert "10 of 49 leads (20%)" in report.message
            assert sf_write_calls(app) == []
        else:
            assert report.written == 10 + 10  # status + newsletter


RULES_LATER = E2E_RULES.replace("older_than: 90d", "older_than: 400d")


def test_rule_edit_takes_effect_next_cycle_and_a_broken_edit_keeps_the_old_rules(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=RULES_LATER, crms=("salesforce",))
    rules_file = tmp_path / "rules.yaml"
    with running_app(config) as app:
        sf = app.embedded.salesforce
        (a,) = sf.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
        pipeline = app.pipelines["salesforce"]
        assert pipeline.run_cycle().written == 0  # 200 days is not older than 400 days
        old_version = app.rules.book.version

        rules_file.write_text(E2E_RULES)  # admin lowers the threshold to 90 days
        pipeline.run_cycle()
        assert sf.lead(a)["Status"] == "Nurture"
        assert app.rules.book.version != old_version

        good_version = app.rules.book.version
        rules_file.write_text(E2E_RULES.replace("set_status: Nurture", "set_stauts: Nurture"))
        (b,) = sf.add_leads([sf_lead("B", "b@acme.com", title="Analyst", activity_days=200)])
        report = pipeline.run_cycle()
        assert report.outcome == "ok"
        assert sf.lead(b)["Status"] == "Nurture", "the last good rules still apply"
        assert app.rules.book.version == good_version
        assert "set_stauts" in status_report(app)["rules_error"]


def test_lead_untouched_for_91_days_moves_to_nurture_without_a_crm_read_of_it(
    tmp_path: Path,
) -> None:
    now = {"t": datetime.now(UTC)}
    with running_app(write_config(tmp_path, crms=("salesforce",)), clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        (lead,) = sf.add_leads(
            [sf_lead("A", "a@acme.com", title="Analyst", activity_days=89)],
            modstamp=real_now - timedelta(hours=2),
        )
        # A later, fresh lead holds the cursor, so the overlap window re-reads only it.
        sf.add_leads(
            [sf_lead("B", "b@acme.com", title="Analyst", activity_days=1)],
            modstamp=real_now - timedelta(minutes=30),
        )
        pipeline = app.pipelines["salesforce"]
        assert pipeline.run_cycle().written == 0
        first_pull = app.store.lead("salesforce", lead).pulled_at
        sf.journal.clear()
        now["t"] += timedelta(days=2)  # the lead is now untouched for 91 days
        pipeline.run_cycle()
        assert sf.lead(lead)["Status"] == "Nurture"
        assert app.store.lead("salesforce", lead).pulled_at == first_pull, (
            "decided on the mirror, without reading that lead from the CRM again"
        )
        pages = [e for e in sf.journal.entries() if e.method == "GET" and "/query" in e.path]
        assert sum(e.records or 0 for e in pages) <= 1  # only B, inside the overlap window


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_status_a_rep_set_by_hand_is_not_overwritten_and_status_says_why(
    tmp_path: Path, crm: str
) -> None:
    with running_app(write_config(tmp_path, crms=(crm,))) as app:
        if crm == "salesforce":
            emu = app.embedded.salesforce
            (lead,) = emu.add_leads(
                [sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)]
            )
            rep_value, read = "Working - Contacted", lambda: emu.lead(lead)["Status"]
            edit = lambda: emu.update_lead(lead, {"Status": rep_value})  # noqa: E731
            writes = lambda: sf_write_calls(app)  # noqa: E731
        else:
            emu = app.embedded.hubspot
            (lead,) = emu.add_contacts(
                [hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)]
            )
            rep_value, read = "IN_PROGRESS", lambda: emu.contact(lead)["hs_lead_status"]
            edit = lambda: emu.update_contact(lead, {"hs_lead_status": rep_value})  # noqa: E731
            writes = lambda: hs_write_calls(app)  # noqa: E731
        pipeline = app.pipelines[crm]
        pipeline.run_cycle()
        assert read() != rep_value  # syncd moved it to Nurture
        edit()  # a rep puts it back in play by hand
        emu.journal.clear()
        report = pipeline.run_cycle()
        assert report.held == 1 and report.written == 0
        assert read() == rep_value
        assert writes() == []
        held = status_report(app)["crms"][crm]["held"]
        assert [h["lead_id"] for h in held] == [lead]
        assert f"status set to '{rep_value}' by a person" in held[0]["reason"]
