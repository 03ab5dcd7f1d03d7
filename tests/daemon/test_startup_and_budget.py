"""Start-up refuses what cannot work, before any write; one CRM's budget never stops the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.app import StartupError
from syncd.settings import load_settings
from syncd.yamlfile import YamlFileError
from tests.daemon.harness import E2E_RULES, hs_contact, running_app, sf_lead, write_config


def test_rule_naming_a_status_the_org_lacks_stops_startup_naming_rule_and_value(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace(
            "status_values: {New: Open - Not Contacted",
            "status_values: {Nurture: Nurturing, New: Open - Not Contacted",
        )
    )
    with pytest.raises(StartupError) as caught, running_app(config):
        pass
    text = str(caught.value)
    assert "rule 'stale-nurture'" in text and "'Nurturing'" in text
    assert f"{tmp_path / 'rules.yaml'}:" in text


def test_daily_429_stops_hubspot_until_reset_while_salesforce_continues(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        app.embedded.salesforce.add_leads(
            [sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)]
        )
        app.embedded.hubspot.add_contacts(
            [hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)]
        )
        app.embedded.hubspot.exhaust_daily_limit()
        hubspot = app.pipelines["hubspot"].run_cycle()
        assert hubspot.outcome == "budget" and hubspot.resume_at is not None
        calls = len(app.embedded.hubspot.journal)
        again = app.pipelines["hubspot"].run_cycle()
        assert again.outcome == "budget"
        assert len(app.embedded.hubspot.journal) == calls, "no calls until the daily reset"
        salesforce = app.pipelines["salesforce"].run_cycle()
        assert salesforce.outcome == "ok" and salesforce.written == 2  # status + newsletter


def test_inline_secret_in_config_is_refused_with_its_location(tmp_path: Path) -> None:
    config = tmp_path / "syncd.yaml"
    (tmp_path / "rules.yaml").write_text(E2E_RULES)
    config.write_text(f"""\
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
hubspot:
  connector:
    base_url: http://127.0.0.1:9
    auth:
      type: private_app
      access_token: pat-na1-0123456789
""")
    with pytest.raises(YamlFileError) as caught:  # when the file loads: before any command
        load_settings(config)
    text = str(caught.value)
    assert f"{config}:8:" in text and "use {env: NAME}" in text
    assert "pat-na1-0123456789" not in text


def test_missing_secret_environment_variable_is_reported_with_its_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HS_TOKEN_FOR_TEST", raising=False)
    config = tmp_path / "syncd.yaml"
    config.write_text(
        "hubspot:\n  connector:\n    auth:\n      type: private_app\n"
        "      access_token: {env: HS_TOKEN_FOR_TEST}\n"
        "breaker: {max_change_shar: 0.3}\n"
    )
    with pytest.raises(YamlFileError) as caught:
        load_settings(config)
    messages = [str(p) for p in caught.value.problems]
    assert any(f"{config}:5:" in m and "HS_TOKEN_FOR_TEST is not set" in m for m in messages)
    assert any(f"{config}:6:" in m and "unknown setting 'max_change_shar'" in m for m in messages)
