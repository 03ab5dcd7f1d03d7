"""The connector contract as the daemon uses it: API calls counted for both CRMs, and CRM values
syncd cannot parse or store quarantined instead of failing the cycle (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.app import App
from syncd.cli import app as cli
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config


def _corrupt_sf_field(app: App, lead_id: str, field: str, raw: Any) -> None:
    """Store a value the emulator's API would refuse, as a broken org could hold it."""
    from connectors.testing.salesforce.schema import LEAD

    org = app.embedded.salesforce.org
    with org.lock:
        values = list(org.leads[lead_id])
        values[LEAD.column(field)] = raw
        org._put(tuple(values))


def test_both_crms_report_their_api_calls_in_the_run_row_and_the_metric(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        app.embedded.salesforce.add_leads([sf_lead("A", "a@acme.com", title="CTO")])
        app.embedded.hubspot.add_contacts([hs_contact("A", "a@acme.com", title="CTO")])
        for name, pipeline in app.pipelines.items():
            before = app.connectors[name].stats.calls
            report = pipeline.run_cycle()
            made = app.connectors[name].stats.calls - before
            assert report.outcome == "ok", report
            assert made >= 1
            assert app.store.last_runs(1, crm=name)[0].api_calls == made
            assert (
                app.metrics.registry.get_sample_value("syncd_api_calls_total", {"crm": name})
                == made
            )


def test_unusable_crm_values_are_quarantined_and_the_rest_of_the_page_is_stored(
    tmp_path: Path, store_url: str
) -> None:
    config = write_config(tmp_path, state_url=store_url)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        huge, nan, fine = hs.add_contacts(
            [
                hs_contact("Huge", "huge@acme.com", title="CTO", numemployees="1e400"),
                hs_contact("Nan", "nan@acme.com", title="CTO", annualrevenue="NaN"),
                hs_contact("Fine", "fine@acme.com", title="CTO", numemployees="250"),
            ]
        )
        sf = app.embedded.salesforce
        bad_date, infinite, good = sf.add_leads(
            [
                sf_lead("Date", "date@acme.com", title="CTO"),
                sf_lead("Inf", "inf@acme.com", title="CTO", AnnualRevenue=float("inf")),
                sf_lead("Good", "good@acme.com", title="CTO", NumberOfEmployees=40),
            ]
        )
        _corrupt_sf_field(app, bad_date, "LastActivityDate", "2024-02-30")

        reports = {name: p.run_cycle() for name, p in app.pipelines.items()}
        assert {r.outcome for r in reports.values()} == {"ok"}, reports
        assert reports["hubspot"].pulled == 3 and reports["salesforce"].pulled == 3

        with app.store.begin() as conn:
            hs_rows = app.store.leads_by_id(conn, "hubspot", [huge, nan, fine])
            sf_rows = app.store.leads_by_id(conn, "salesforce", [bad_date, infinite, good])
        assert hs_rows[huge].fields["employees"] is None
        assert hs_rows[nan].fields["annual_revenue"] is None
        assert hs_rows[fine].fields["employees"] == 250 and hs_rows[fine].quarantine is None
        assert [p["field"] for p in hs_rows[huge].quarantine] == ["employees"]
        assert hs_rows[huge].quarantine[0]["excerpt"] == "1e400"
        assert sf_rows[bad_date].fields["last_activity_at"] is None
        assert [p["field"] for p in sf_rows[bad_date].quarantine] == ["last_activity_at"]
        assert sf_rows[infinite].fields["annual_revenue"] is None
        assert sf_rows[good].fields["employees"] == 40 and sf_rows[good].quarantine is None

        sample = app.metrics.registry.get_sample_value
        assert (
            sample("syncd_quarantined_values_total", {"connector": "hubspot", "field": "employees"})
            == 1
        )
        assert (
            sample(
                "syncd_quarantined_values_total",
                {"connector": "salesforce", "field": "last_activity_at"},
            )
            == 1
        )

    result = CliRunner().invoke(cli, ["status", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert f"quarantined {huge}: employees = '1e400'" in out
    assert f"quarantined {nan}: annual_revenue = 'NaN'" in out
    assert f"quarantined {bad_date}: last_activity_at = '2024-02-30'" in out
    assert f"quarantined {infinite}: annual_revenue" in out
    assert fine not in out and good not in out


_RECYCLE_RULES = """\
version: 1
name: recycle
mode: first_match
statuses: {New: {}, Recycled: {}}
rules:
  - id: recycle
    when: {field: title, missing: true}
    then: [{set_status: Recycled}]
"""


def test_rules_one_crm_rejects_leave_every_crm_unchanged(tmp_path: Path) -> None:
    """HubSpot could add the missing option itself, but Salesforce lacks the status: start-up
    fails and HubSpot's property is not touched (its check only reads; prepare never runs)."""
    from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
    from connectors.salesforce import SalesforceConnector
    from connectors.testing.hubspot import EmulatorConfig as HubSpotEmulatorConfig
    from connectors.testing.hubspot import HubSpotEmulator
    from connectors.testing.salesforce import SalesforceEmulator
    from syncd.app import StartupError
    from syncd.settings import load_settings
    from tests.salesforce.support import config_for

    (tmp_path / "rules.yaml").write_text(_RECYCLE_RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
server: {{enabled: false}}
salesforce: {{enabled: true}}
hubspot: {{enabled: true}}
""")
    sf_emu = SalesforceEmulator().start()
    try:
        with HubSpotEmulator(HubSpotEmulatorConfig()) as hs_emu:
            connectors = {
                "salesforce": SalesforceConnector(config_for(sf_emu)),
                "hubspot": HubSpotConnector(
                    HubSpotConfig(
                        base_url=hs_emu.base_url,
                        allow_add_status_options=True,
                        auth=PrivateAppAuth(access_token=hs_emu.access_token),
                    )
                ),
            }
            with pytest.raises(StartupError, match="'Recycled'"):
                App.build(load_settings(config), connectors=connectors)
            assert "Recycled" not in hs_emu.status_options()
            assert not hs_emu.journal.entries("PATCH")
    finally:
        sf_emu.stop()


def test_an_unchanged_quarantined_value_is_counted_and_warned_about_once_not_every_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle daemon re-reads its newest lead every cycle (the pull's overlap): the counter and
    the warning grew on a daemon nothing changed for (an alert on its rate fired forever)."""
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        (huge,) = hs.add_contacts(
            [hs_contact("Huge", "huge@acme.com", title="CTO", numemployees="1e400")]
        )
        sample = app.metrics.registry.get_sample_value
        labels = {"connector": "hubspot", "field": "employees"}
        for _ in range(4):
            assert app.pipelines["hubspot"].run_cycle().outcome == "ok"
        assert sample("syncd_quarantined_values_total", labels) == 1
        warned = [r for r in caplog.records if "unusable values stored as empty" in r.getMessage()]
        assert len(warned) == 1
        hs.update_contact(huge, {"numemployees": "1e401"})  # a new version: counted again
        assert app.pipelines["hubspot"].run_cycle().outcome == "ok"
        assert sample("syncd_quarantined_values_total", labels) == 2
