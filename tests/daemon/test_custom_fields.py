"""Custom CRM fields in rules: mapped in a connector's ``fields``, typed by ``field_types``,
read by conditions and written by ``set_field``; BANT fields optional on a real org."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.hubspot.config import DEFAULT_FIELDS as HS_DEFAULTS
from connectors.hubspot.config import HubSpotConfig
from connectors.salesforce.config import DEFAULT_FIELDS as SF_DEFAULTS
from connectors.salesforce.config import SalesforceConfig
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
from syncd.app import StartupError
from tests.daemon.harness import running_app, sf_lead, standalone_sf_config

CUSTOM_RULES = """\
version: 1
name: scoring
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}, Nurture: {}}
rules:
  - id: hot-score
    when: {field: lead_score, gte: 80}
    then:
      - set_status: MQL
      - set_field: {field: tier, value: Hot}
  - id: gold-tier-nurture
    when: {field: tier, in: [Gold]}
    then:
      - set_status: Nurture
"""

BANT_RULE = """\
  - id: budget-known
    when: {field: budget, present: true}
    then:
      - set_status: MQL
"""


@pytest.fixture
def org(request: pytest.FixtureRequest) -> Iterator[SalesforceEmulator]:
    custom = getattr(request, "param", frozenset({"Lead_Score__c", "Tier__c"}))
    emu = SalesforceEmulator(EmulatorConfig(lead_custom_fields=custom)).start()
    yield emu
    emu.stop()


def _config(tmp_path: Path, emu: SalesforceEmulator, rules: str, connector_extra: str = "") -> Path:
    return standalone_sf_config(
        tmp_path,
        emu,
        rules=rules,
        salesforce_extra="  settable_fields: [tier]\n",
        connector_extra=connector_extra,
    )


CUSTOM_MAPPING = """\
    fields: {lead_score: Lead_Score__c, tier: Tier__c, budget: null, authority: null, need: null,
             timeline: null}
    field_types: {lead_score: number}
"""


def test_rules_on_custom_number_and_picklist_fields_match_and_set_field_rides_with_the_status(
    tmp_path: Path, org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)
    hot, gold, cold = org.add_leads(
        [
            sf_lead("Hot", "hot@acme.com", title="CTO", Lead_Score__c=91.5),
            sf_lead("Gold", "gold@acme.com", title="CTO", Lead_Score__c=10, Tier__c="Gold"),
            sf_lead("Cold", "cold@acme.com", title="CTO", Lead_Score__c=10, Tier__c="Silver"),
        ]
    )
    org.clock.advance(5)
    with running_app(_config(tmp_path, org, CUSTOM_RULES, CUSTOM_MAPPING)) as app:
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
    assert org.lead(hot)["Status"] == "MQL" and org.lead(hot)["Tier__c"] == "Hot"
    assert org.lead(gold)["Status"] == "Nurture"
    assert org.lead(cold)["Status"] == "Open - Not Contacted"
    patches = [e for e in org.journal.writes() if hot in (e.record_ids or ())]
    assert len(patches) == 1, "status and field of one decision go in one batch"


@pytest.mark.parametrize("org", [frozenset()], indirect=True)
def test_rules_without_bant_start_on_an_org_without_the_bant_fields(
    tmp_path: Path,
    org: SalesforceEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)
    rules = (
        CUSTOM_RULES.replace("lead_score, gte: 80", "title, eq: CEO")
        .replace("      - set_field: {field: tier, value: Hot}\n", "")
        .replace("{field: tier, in: [Gold]}", "{field: email, contains: nurture}")
    )
    lead_id = org.add_leads([sf_lead("Boss", "boss@acme.com", title="CEO")])[0]
    org.clock.advance(5)
    with running_app(_config(tmp_path, org, rules)) as app:
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
    assert org.lead(lead_id)["Status"] == "MQL"
    assert "field 'budget'" in caplog.text and "pulls leave it out" in caplog.text


@pytest.mark.parametrize("org", [frozenset()], indirect=True)
def test_a_bant_rule_on_an_org_without_the_field_names_the_rule_and_the_field(
    tmp_path: Path, org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)
    rules = CUSTOM_RULES.split("rules:\n")[0] + "rules:\n" + BANT_RULE
    with pytest.raises(StartupError) as caught, running_app(_config(tmp_path, org, rules)):
        pass
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems
    assert "rule 'budget-known'" in problems[0] and "field 'budget'" in problems[0]
    assert "salesforce.connector.fields" in problems[0] and "hubspot" not in problems[0]


def test_one_fields_entry_keeps_every_default_mapping_and_null_removes_one() -> None:
    sf = SalesforceConfig.model_validate(
        {
            "instance_url": "https://x",
            "token_url": "https://x/t",
            "auth": {"type": "session", "session_id": "s"},
            "fields": {"lead_score": "Lead_Score__c", "budget": None},
        }
    )
    assert sf.fields == {
        **{k: v for k, v in SF_DEFAULTS.items() if k != "budget"},
        "lead_score": "Lead_Score__c",
    }
    hs = HubSpotConfig.model_validate(
        {
            "auth": {"type": "private_app", "access_token": "t"},
            "fields": {"lead_score": "lead_score"},
        }
    )
    assert hs.fields == {**HS_DEFAULTS, "lead_score": "lead_score"}


def test_a_custom_field_typed_unlike_the_crm_names_the_field_types_fix(
    tmp_path: Path, org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)
    rules = CUSTOM_RULES.replace("{field: lead_score, gte: 80}", "{field: lead_score, eq: '90'}")
    untyped = CUSTOM_MAPPING.replace("    field_types: {lead_score: number}\n", "")
    with pytest.raises(StartupError) as caught, running_app(_config(tmp_path, org, rules, untyped)):
        pass
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems
    assert "rule 'hot-score'" in problems[0] and "stores it as number" in problems[0]
    assert "field_types: {lead_score: number}" in problems[0]
