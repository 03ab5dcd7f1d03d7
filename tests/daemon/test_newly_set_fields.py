"""A rule starts setting a field a rep edited lately (syncd.newly_set_fields).

Before, a pull looked for a person's edit only of the fields some rule set, so the first cycle
under rules that newly set a field wrote over a rep's value of yesterday at once: the mirror had
the value, not who set it. Now the cycle reads the new field's history for the leads changed
within the hold before it plans, and a person's edit holds the lead as any other does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
from syncd import newly_set_fields
from syncd.app import App
from syncd.cli import app as cli
from syncd.plan import build_plan
from syncd.state import AuditOutcome
from tests.daemon.harness import hs_contact, running_app, sf_lead, standalone_sf_config
from tests.daemon.test_field_edit_holds import BUDGET_RULES, _held_reasons, budget_config

STALE_RULES = """\
version: 1
name: tiers
mode: first_match
statuses: {New: {}, Open: {}, Nurture: {}}
rules:
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
"""

TIER_RULES = (
    STALE_RULES
    + """\
  - id: ceo-tier
    when: {field: title, eq: CEO}
    then:
      - set_field: {field: tier, value: Hot}
"""
)


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    emu = SalesforceEmulator(
        EmulatorConfig(
            lead_custom_fields=frozenset({"Tier__c"}),
            history_tracked_fields=frozenset({"Status", "Tier__c"}),
        )
    ).start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _secret(org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)


def _config(tmp_path: Path, org: SalesforceEmulator, rules: str) -> Path:
    return standalone_sf_config(
        tmp_path,
        org,
        rules=rules,
        salesforce_extra="  settable_fields: [tier]\n  hold_rep_edits_for: 1d\n",
        connector_extra="    fields: {tier: Tier__c}\n",
    )


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


def _history_reads(org: SalesforceEmulator) -> int:
    """LeadHistory queries of Tier__c's history (first sight and race checks read Status's)."""
    return sum(
        1
        for e in org.journal.entries()
        if "FROM LeadHistory" in (e.soql or "") and "Tier__c" in (e.soql or "")
    )


def _tier_audit(app: App, lead_id: str) -> list[tuple[str, object]]:
    return [(a.outcome, a.after) for a in app.store.audit_of_lead(lead_id) if a.field == "tier"]


def _seed_and_mirror(tmp_path: Path, org: SalesforceEmulator) -> tuple[str, str, str]:
    """Three CEOs mirrored under rules that set no tier; then a person sets the tier of one
    30 minutes ago and of another 3 days ago, and the third's tier is set by syncd's own user
    (not a person's edit)."""
    recent, old, integration = org.add_leads(
        [sf_lead(n, f"{n.lower()}@acme{n}.com", title="CEO") for n in ("Recent", "Old", "Bot")],
        modstamp=_ago(days=5),
    )
    with running_app(_config(tmp_path, org, STALE_RULES)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
        assert newly_set_fields.recorded_fields(app.store, "salesforce") == frozenset()
    org.update_lead(old, {"Tier__c": "Gold"}, modstamp=_ago(days=3))
    org.update_lead(
        integration, {"Tier__c": "Silver"}, by=org.integration_user_id, modstamp=_ago(hours=1)
    )
    org.update_lead(recent, {"Tier__c": "Gold"}, modstamp=_ago(minutes=30))
    return recent, old, integration


def test_a_rule_newly_setting_a_field_leaves_a_persons_edit_within_the_hold_alone(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    recent, old, integration = _seed_and_mirror(tmp_path, org)
    now = {"t": datetime.now(UTC)}
    with running_app(_config(tmp_path, org, STALE_RULES)) as app:
        # The edits are pulled under the old rules: no rule sets tier, so none holds a lead.
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
        assert app.store.lead("salesforce", recent).rep_edit_at is None  # type: ignore[union-attr]

    with running_app(_config(tmp_path, org, TIER_RULES), clock=lambda: now["t"]) as app:
        # The plan cannot read the history: it says the cycle will, and may hold some.
        assert build_plan(app)["crms"]["salesforce"]["newly_set"] == ["tier"]
        shown = CliRunner().invoke(cli, ["plan", "-c", str(_config(tmp_path, org, TIER_RULES))])
        assert shown.exit_code == 0, shown.output
        assert "the rules newly set tier: the next cycle first reads the CRM's history" in (
            " ".join(shown.output.split())
        ), shown.output
        org.journal.clear()
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
        assert org.lead(recent)["Tier__c"] == "Gold", "a person's value of 30 minutes ago stands"
        assert _history_reads(org) >= 1, "the new field's history was read before the plan"
        assert org.lead(old)["Tier__c"] == "Hot", "an edit older than the hold is not held"
        assert org.lead(integration)["Tier__c"] == "Hot", "a value syncd's own user set is not held"
        row = app.store.lead("salesforce", recent)
        assert row is not None and row.rep_edit_field == "tier"
        assert row.rep_edit_status == "Gold"
        assert newly_set_fields.recorded_fields(app.store, "salesforce") == frozenset({"tier"})
        plan = build_plan(app)["crms"]["salesforce"]
        assert plan["newly_set"] == []
        assert [h["lead_id"] for h in plan["held"]] == [recent]
        assert "tier set to 'Gold' by a person" in plan["held"][0]["reason"]

        org.journal.clear()
        now["t"] += timedelta(minutes=5)
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
        assert _history_reads(org) == 0, "read once, when the rules began to set the field"

        now["t"] += timedelta(days=1)  # the hold has ended
        after = app.pipelines["salesforce"].run_cycle()
        assert after.outcome == "ok", after.message
        assert org.lead(recent)["Tier__c"] == "Hot"
        assert _tier_audit(app, recent) == [(AuditOutcome.APPLIED, "Hot")]


def test_a_restart_under_rules_that_set_no_new_field_reads_no_history(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    _seed_and_mirror(tmp_path, org)
    with running_app(_config(tmp_path, org, TIER_RULES)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
    org.journal.clear()
    with running_app(_config(tmp_path, org, TIER_RULES)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
    assert _history_reads(org) == 0


def test_a_rule_file_reloaded_to_set_a_hubspot_property_holds_the_contact_a_person_set_it_on(
    tmp_path: Path,
) -> None:
    # The running daemon reloads the edited rule file before its next cycle (rules.watch).
    config = budget_config(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        BUDGET_RULES.replace("      - set_field: {field: budget, value: Approved}\n", "")
    )
    with running_app(config) as app:
        hs = app.embedded.hubspot
        day_ago = datetime.now(UTC) - timedelta(days=1)
        [buyer, other] = hs.add_contacts(
            [
                hs_contact(n, f"{n.lower()}@acme.com", title="Buyer", hs_lead_status="OPEN")
                | {"bant_budget": "Pending", "lastmodifieddate": day_ago}
                for n in ("Buyer", "Other")
            ]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        hs.update_contact(buyer, {"bant_budget": "Board review"}, source="CRM_UI")
        assert pipeline.run_cycle().outcome == "ok"  # pulled; no rule sets budget: no hold
        assert _held_reasons(app, "hubspot") == {}

        rules.write_text(BUDGET_RULES)
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert hs.contact(buyer)["bant_budget"] == "Board review", "a person's value stands"
        assert hs.contact(other)["bant_budget"] == "Approved"
        assert _held_reasons(app, "hubspot")[buyer].startswith(
            "budget set to 'Board review' by a person at "
        )
