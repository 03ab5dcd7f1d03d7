"""README.md lines 1-633 (Two commands, Admin workflow, Configuration): promises no other test
pinned down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from connectors.hubspot.config import HubSpotConfig
from connectors.salesforce.config import SalesforceConfig
from syncd.settings import Settings, load_settings
from syncd.yamlfile import YamlFileError

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

# --------------------------------------------------------------------------------------------
# The default column of README's three settings tables is what the code defaults to.


def _table_rows(section: str) -> list[tuple[str, str]]:
    """(setting cell, default cell) of each row of the first table under ``section``."""
    start = README.index(f"\n{section}\n")
    table = re.search(r"\n\| setting \|.*?\n((?:\|.*\n)+)", README[start:])
    assert table, f"no settings table under {section}"
    rows = []
    for row in table[1].splitlines()[1:]:
        cells = row.split("|")
        rows.append((cells[1].strip(), cells[2].strip()))
    return rows


def _names(cell: str) -> list[str]:
    """`a.b` / `c` names a.b and a.c; `retry.x`, `y` names retry.x and retry.y."""
    names: list[str] = []
    prefix = ""
    for token in re.findall(r"`([^`]+)`", cell):
        if "." in token:
            prefix = token.rsplit(".", 1)[0] + "."
            names.append(token)
        else:
            names.append(prefix + token)
    return names


_ONLY_CODE = re.compile(r"^`[^`]*`$")


def _documented_defaults(section: str) -> list[tuple[str, str]]:
    """(setting path, README default text) for every default written as a literal value;
    ``none`` / ``off`` stand for "not set" (None). Prose defaults ("identity", "system
    store", "required") are promises of another kind and are left out."""
    found: list[tuple[str, str]] = []
    for setting_cell, default_cell in _table_rows(section):
        names = _names(setting_cell)
        if default_cell in ("none", "off"):
            found += [(name, "none") for name in names]
            continue
        parts = re.split(r" / |, ", default_cell) if len(names) > 1 else [default_cell]
        if len(names) == 2 and re.fullmatch(r"`[^`:]+:\d+`", default_cell):
            parts = default_cell.strip("`").split(":")  # `host:port`
            parts = [f"`{p}`" for p in parts]
        if len(parts) != len(names):
            continue
        for name, part in zip(names, parts, strict=True):
            if _ONLY_CODE.match(part):
                found.append((name, part.strip("`")))
    return found


def _nest(path: list[str], leaf: Any) -> dict[str, Any]:
    out: Any = leaf
    for part in reversed(path):
        out = {part: out}
    return dict(out)


def _get(model: Any, path: list[str]) -> Any:
    for part in path:
        model = model[part] if isinstance(model, dict) else getattr(model, part)
    return model


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


_SF_AUTH = {"type": "client_credentials", "client_id": "x", "client_secret": "s"}
_HS_AUTH = {"type": "private_app", "access_token": "t"}
_BASES: dict[str, dict[str, Any]] = {
    "salesforce": {
        "instance_url": "https://x.my.salesforce.com",
        "token_url": "https://x.my.salesforce.com/services/oauth2/token",
        "auth": _SF_AUTH,
    },
    "hubspot": {"auth": _HS_AUTH},
}
# Settings of one auth type only: their defaults are read under that type.
_AUTH_OF = {
    ("salesforce", "audience"): {
        "type": "jwt_bearer",
        "client_id": "x",
        "username": "u",
        "private_key": "k",
    },
    ("hubspot", "token_url"): {
        "type": "oauth",
        "client_id": "x",
        "client_secret": "s",
        "refresh_token": "r",
    },
    ("hubspot", "refresh_margin_seconds"): {
        "type": "oauth",
        "client_id": "x",
        "client_secret": "s",
        "refresh_token": "r",
    },
}


def _daemon_value(path: str, given: Any | None) -> Any:
    parts = path.split(".")
    if parts[0] == "connectors":
        parts[1] = "sf"
        head = {"type": "salesforce"}
        rest = parts[2:]
        inner = _nest(rest[:-1], {} if given is None else {rest[-1]: given})
        data = {"connectors": {"sf": head | inner}}
        parts[0] = "instances"  # the attribute the connectors: mapping is read into
    else:
        data = _nest(parts[:-1], {} if given is None else {parts[-1]: given})
    return _plain(_get(Settings.model_validate(data), parts))


def _connector_value(kind: str, path: str, given: Any | None) -> Any:
    model = SalesforceConfig if kind == "salesforce" else HubSpotConfig
    parts = path.split(".")
    data = dict(_BASES[kind])
    if parts[0] == "auth":
        data["auth"] = dict(_AUTH_OF.get((kind, parts[-1]), data["auth"]))
        if given is not None:
            data["auth"][parts[-1]] = given
    elif given is not None:
        data |= _nest(parts[:-1], {parts[-1]: given})
    return _plain(_get(model.model_validate(data), parts))


def _value_of(section: str, path: str, given: Any | None) -> Any:
    if section == "## Configuration":
        return _daemon_value(path, given)
    return _connector_value(section.split()[-1].lower(), path, given)


_DEFAULT_CASES = [
    pytest.param(section, path, text, id=f"{section.split()[-1]}:{path}")
    for section in ("## Configuration", "### Salesforce", "### HubSpot")
    for path, text in _documented_defaults(section)
]


def test_readme_settings_tables_give_literal_defaults_for_most_settings() -> None:
    """The parser below finds the tables' defaults (a broken parser would check nothing)."""
    sections = {case.values[0] for case in _DEFAULT_CASES}
    assert sections == {"## Configuration", "### Salesforce", "### HubSpot"}
    assert len(_DEFAULT_CASES) >= 90


@pytest.mark.parametrize(("section", "path", "text"), _DEFAULT_CASES)
def test_readme_default_is_the_default_when_the_setting_is_left_out(
    section: str, path: str, text: str
) -> None:
    default = _value_of(section, path, None)
    if text == "none":
        assert default is None, f"README says {path} is unset by default; code: {default!r}"
        return
    try:
        documented = _value_of(section, path, yaml.safe_load(text))
    except ValidationError:  # e.g. api_version `59.0` is text, not a number
        documented = _value_of(section, path, text)
    assert default == documented, f"README: {path} defaults to {text}; code: {default!r}"


def test_lease_renewal_defaults_to_a_third_of_the_ttl() -> None:
    settings = Settings.model_validate({"lease": {"ttl": "45s"}})
    assert settings.lease.renewal.total_seconds() == 15


def test_retention_keeps_audit_rows_180_days_by_default_and_refuses_under_90() -> None:
    assert Settings().retention.audit.days == 180
    with pytest.raises(ValidationError, match="at least 90 days"):
        Settings.model_validate({"retention": {"audit": "89d"}})
    assert Settings.model_validate({"retention": {"audit": "90d"}}).retention.audit.days == 90


def test_icp_defaults_are_the_roles_and_countries_the_readme_names() -> None:
    icp = Settings().enrichment.icp
    assert icp.roles == ["marketing", "sales", "operations", "it"]
    nordics = ["SE", "DK", "NO", "FI"]
    named = ["US", "CA", "GB", "IE", "DE", "AT", "CH", "NL", "FR", "AU", "NZ"]
    assert sorted(icp.countries) == sorted(named + nordics)


def test_salesforce_fields_default_to_standard_lead_fields_plus_the_bant_custom_fields() -> None:
    fields = SalesforceConfig.model_validate(_BASES["salesforce"]).fields
    custom = {api for api in fields.values() if api.endswith("__c")}
    assert custom == {"Budget__c", "Authority__c", "Need__c", "Timeline__c"}
    assert fields["status"] == "Status" and fields["email"] == "Email"


def test_hubspot_fields_default_to_the_named_properties_plus_bant() -> None:
    properties = set(HubSpotConfig.model_validate(_BASES["hubspot"]).fields.values())
    assert {"email", "firstname", "jobtitle", "hs_lead_status", "numemployees"} <= properties
    assert {p for p in properties if p.startswith("bant_")} == {
        "bant_budget",
        "bant_authority",
        "bant_need",
        "bant_timeline",
    }


# --------------------------------------------------------------------------------------------
# Configuration: validation the table and the environment section promise.


@pytest.mark.parametrize("missing", ["MQL", "SAL"])
def test_report_stages_without_mql_or_sal_are_refused_when_loading(
    tmp_path: Path, missing: str
) -> None:
    stages = [s for s in ["New", "MQL", "SAL", "SQL", "Converted"] if s != missing]
    path = tmp_path / "syncd.yaml"
    path.write_text(f"report: {{stages: [{', '.join(stages)}]}}\n")
    with pytest.raises(YamlFileError, match=f"report.stages must include {missing}"):
        load_settings(path, env={})


def test_a_variable_naming_no_instance_in_the_file_adds_one_lower_cased(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text("connectors:\n  salesforce/emea: {type: salesforce}\n")
    settings = load_settings(
        path,
        env={
            "SYNCD_CONNECTORS__HUBSPOT_APAC__TYPE": "hubspot",
            "SYNCD_CONNECTORS__HUBSPOT_APAC__INTERVAL": "2m",
        },
    )
    added = settings.connectors()["hubspot_apac"]
    assert added.type == "hubspot" and added.interval.total_seconds() == 120
    assert set(settings.connectors()) == {"salesforce/emea", "hubspot_apac"}


SF_BLOCK = """\
connectors:
  sf:
    type: salesforce
    connector:
      instance_url: https://acme.my.salesforce.com
      token_url: https://acme.my.salesforce.com/services/oauth2/token
      auth: {type: client_credentials, client_id: abc%s}
"""


def test_a_secret_set_by_a_variable_is_not_refused_as_written_in_the_config(
    tmp_path: Path,
) -> None:
    from syncd.app import connector_config

    path = tmp_path / "syncd.yaml"
    path.write_text(SF_BLOCK % "")
    variable = "SYNCD_CONNECTORS__SF__CONNECTOR__AUTH__CLIENT_SECRET"
    settings = load_settings(path, env={variable: "s3cret"})
    config = connector_config(settings, "sf", settings.connectors()["sf"])
    assert config.auth.client_secret.get_secret_value() == "s3cret"  # type: ignore[attr-defined]
    # The same value written in the file is refused when the file is loaded.
    path.write_text(SF_BLOCK % ", client_secret: s3cret")
    with pytest.raises(YamlFileError, match="secrets must not be written in the config"):
        load_settings(path, env={})


# --------------------------------------------------------------------------------------------
# Logs: with log.format json every line is a JSON object, exceptions and warnings included.

_LOGGING_SCRIPT = """
import logging, warnings
from syncd.logs import setup_logging
from syncd.settings import LogSettings
setup_logging(LogSettings(format="json"))
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("syncd.test").exception("caught one")
warnings.warn("an old setting", UserWarning)
raise RuntimeError("nobody caught this")
"""


def test_json_logs_turn_exceptions_warnings_and_uncaught_errors_into_json_records() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LOGGING_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    caught, warned, uncaught = records
    assert {"time", "level", "logger", "message"} <= set(caught)
    assert caught["exc_type"] == "ZeroDivisionError"
    assert caught["exc_message"] == "division by zero"
    assert caught["traceback"].startswith("Traceback (most recent call last):")
    assert "an old setting" in warned["message"] and warned["level"] == "warning"
    assert uncaught["exc_type"] == "RuntimeError"
    assert uncaught["exc_message"] == "nobody caught this"


# --------------------------------------------------------------------------------------------
# Admin workflow


def test_rules_check_without_config_uses_config_example_yaml_when_present_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from syncd.cli import app as cli

    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    rules = str(REPO / "rules/default.yaml")
    monkeypatch.chdir(REPO)
    found = CliRunner().invoke(cli, ["rules", "check", rules], catch_exceptions=False)
    assert found.exit_code == 0, found.output
    assert "checking against config.example.yaml" in found.output
    monkeypatch.chdir(tmp_path)  # no config.example.yaml here
    alone = CliRunner().invoke(cli, ["rules", "check", rules], catch_exceptions=False)
    assert alone.exit_code == 0, alone.output
    assert "no config (-c, SYNCD_CONFIG or config.example.yaml)" in alone.output
    assert "checking against" not in alone.output


def test_plan_at_an_iso_time_is_the_plan_at_that_many_days_from_now(tmp_path: Path) -> None:
    """`plan --at +3d` and `plan --at 2026-12-07T09:00Z` are two spellings of one time."""
    from datetime import UTC, datetime, timedelta

    from typer.testing import CliRunner

    from syncd.cli import app as cli
    from syncd.pipeline import CycleReport
    from tests.daemon.harness import running_app, sf_lead, write_config

    config = write_config(tmp_path, crms=("salesforce",))
    with running_app(config) as app:
        app.embedded.server("salesforce").add_leads(
            [
                sf_lead("Stale", "stale@acme.com", title="Buyer", activity_days=120),
                sf_lead("Later", "later@acme.com", title="Buyer", activity_days=60),
                sf_lead("Fresh", "fresh@acme.com", title="Buyer"),
            ]
        )
        app.pipelines["salesforce"].pull(CycleReport("salesforce", "test"), until=datetime.now(UTC))

    def moved(at: str) -> set[str]:
        result = CliRunner().invoke(
            cli, ["plan", "--json", "-c", str(config), "--at", at], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        leads = json.loads(result.output)["crms"]["salesforce"]["leads"]
        return {lead["lead_id"] for lead in leads}

    in_45_days = (datetime.now(UTC) + timedelta(days=45)).strftime("%Y-%m-%dT%H:%MZ")
    assert len(moved("+1h")) == 1  # only the lead untouched for 120 days
    assert moved(in_45_days) == moved("+45d")
    assert len(moved(in_45_days)) == 2  # the 60-day lead passes 90 days by then


# --------------------------------------------------------------------------------------------
# Provenance written back


def test_a_revert_writes_revert_of_run_as_the_reason_and_sets_no_stage_date(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from syncd.pipeline import CycleReport
    from syncd.revert import execute_revert, plan_revert
    from tests.daemon.harness import E2E_RULES, running_app, sf_lead, write_config

    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace(
            "salesforce:\n  enabled: true\n",
            "salesforce:\n  enabled: true\n  provenance:\n    reason: syncd_Reason__c\n"
            "    stage_dates: {Nurture: MQL_Date__c, Open: SAL_Date__c}\n",
        )
    )
    with running_app(config) as app:
        sf = app.embedded.salesforce
        [lead_id] = sf.add_leads(
            [
                sf_lead(
                    "Stale",
                    "stale@acme.com",
                    title="Analyst",
                    status="Working - Contacted",  # the rule status Open
                    activity_days=200,
                )
            ]
        )
        pipeline = app.pipelines["salesforce"]
        run = pipeline.run_cycle()
        moved = sf.lead(lead_id)
        assert moved["Status"] == "Nurture" and moved["MQL_Date__c"], moved
        assert str(moved["syncd_Reason__c"]).startswith("rule stale-nurture: ")
        assert not moved["SAL_Date__c"]

        # The admin drops the rule, then reverts the run: the lead goes back to Open.
        (tmp_path / "rules.yaml").write_text(E2E_RULES.split("  - id: stale-nurture")[0])
        book = app.rules.current()
        pipeline.pull(CycleReport("salesforce", "plan"), until=datetime.now(UTC))
        plan = plan_revert(app.store, pipeline, run.run_id, book, app.clock())
        assert execute_revert(pipeline, plan, book).report.outcome == "ok"

        reverted = sf.lead(lead_id)
        assert reverted["Status"] == "Working - Contacted"
        assert reverted["syncd_Reason__c"] == f"revert of syncd run {run.run_id}"
        assert not reverted["SAL_Date__c"]  # moving back into Open is no stage entry
        assert reverted["MQL_Date__c"] == moved["MQL_Date__c"]


# --------------------------------------------------------------------------------------------
# Salesforce: trust_env off, so proxy and CA variables cannot redirect it.


def test_salesforce_ignores_proxy_and_ca_bundle_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.salesforce import SalesforceConnector
    from connectors.testing.salesforce import SalesforceEmulator
    from tests.salesforce.support import T0, config_for, lead

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    refused = "http://127.0.0.1:9"  # nothing listens: a connection through it fails
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, refused)
    missing = str(tmp_path / "no-such-ca.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    monkeypatch.setenv("CURL_CA_BUNDLE", missing)
    with SalesforceEmulator() as emu:
        emu.clock.freeze(T0)
        [lead_id] = emu.add_leads([lead(1)])
        emu.clock.advance(1)
        connector = SalesforceConnector(config_for(emu), clock=emu.clock.now)
        try:
            read = [
                lead.id
                for page in connector.iter_pages(None, until=emu.clock.now())
                for lead in page.leads
            ]
        finally:
            connector.close()
    assert read == [lead_id]


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_provenance_field_syncds_user_may_not_edit_is_named_and_text_lengths_are_read(
    crm: str,
) -> None:
    from syncd.provenance import check_provenance
    from syncd.settings import ProvenanceSettings

    if crm == "salesforce":
        from connectors.salesforce import SalesforceConnector
        from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
        from tests.salesforce.support import config_for

        locked, reason = "syncd_Rule__c", "syncd_Reason__c"
        emulator: Any = SalesforceEmulator(
            EmulatorConfig(non_updateable_fields=frozenset({locked}))
        ).start()
        connector: Any = SalesforceConnector(config_for(emulator))
    else:
        from connectors.hubspot import HubSpotConnector
        from connectors.hubspot.config import PrivateAppAuth
        from connectors.testing.hubspot import HubSpotEmulator

        locked, reason = "hs_analytics_source", "syncd_reason"  # a read-only property
        emulator = HubSpotEmulator().start()
        connector = HubSpotConnector(
            HubSpotConfig(
                base_url=emulator.base_url, auth=PrivateAppAuth(access_token=emulator.access_token)
            )
        )
    try:
        problems, lengths = check_provenance(
            connector, ProvenanceSettings(rule=locked, reason=reason), crm
        )
    finally:
        connector.close()
        emulator.stop()
    assert problems == [
        f"{crm}.provenance: the lead field {locked!r} is not updateable by syncd's user in "
        f"{connector.name}; grant it edit access (field-level security / a property that is "
        "not read-only)"
    ]
    assert isinstance(lengths.get(reason), int) and lengths[reason] > 0


def test_a_status_some_record_types_refuse_is_a_start_up_warning_naming_the_rule_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from connectors.salesforce import SalesforceConnector
    from connectors.testing.salesforce import EmulatorConfig, RecordTypeDef, SalesforceEmulator
    from syncd.app import App
    from tests.daemon.harness import write_config
    from tests.salesforce.support import config_for

    org = EmulatorConfig(
        record_types=(
            RecordTypeDef("Inbound"),
            RecordTypeDef("Partner", statuses=("Open - Not Contacted", "Working - Contacted")),
        )
    )
    config = write_config(tmp_path, crms=("salesforce",))
    with SalesforceEmulator(org) as emu:
        newsletters = {"newsletter": emu.add_campaign("Newsletter")}
        connector = SalesforceConnector(config_for(emu, newsletters=newsletters))
        with caplog.at_level("WARNING", logger="syncd"):
            app = App.build(load_settings(config), connectors={"salesforce": connector})
        app.close()
    warned = [r.getMessage() for r in caplog.records if "record types" in r.getMessage()]
    assert any(
        "rule 'stale-nurture' sets status 'Nurture'" in m
        and "which salesforce record types Partner refuse" in m
        for m in warned
    ), warned


def test_rule_files_changed_while_running_are_not_reloaded_when_rules_watch_is_false(
    tmp_path: Path,
) -> None:
    from tests.daemon.harness import E2E_RULES, running_app, sf_lead, write_config

    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("fixtures: null}", "fixtures: null, watch: false}")
    )
    assert load_settings(config, env={}).rules.watch is False
    with running_app(config) as app:
        version = app.rules.current().version
        [lead_id] = app.embedded.salesforce.add_leads(
            [sf_lead("Stale", "stale@acme.com", title="Analyst", activity_days=200)]
        )
        # The admin drops the rule that moves stale leads; the running daemon keeps its rules.
        (tmp_path / "rules.yaml").write_text(E2E_RULES.split("  - id: stale-nurture")[0])
        assert app.pipelines["salesforce"].run_cycle().written >= 1
        assert app.rules.current().version == version
        assert app.embedded.salesforce.lead(lead_id)["Status"] == "Nurture"


# --------------------------------------------------------------------------------------------
# HubSpot pacing settings


@contextmanager
def _hubspot(frozen_at: datetime, **settings: Any) -> Iterator[tuple[Any, Any]]:
    """A HubSpot emulator on a frozen clock and a connector whose waits advance that clock."""
    from connectors.hubspot import HubSpotConnector
    from connectors.hubspot.config import PrivateAppAuth
    from connectors.testing.hubspot import EmulatorClock, HubSpotEmulator

    with HubSpotEmulator(clock=EmulatorClock(frozen_at=frozen_at)) as emu:
        config = HubSpotConfig(
            base_url=emu.base_url,
            auth=PrivateAppAuth(access_token=emu.access_token),
            timeout_seconds=5,
            **settings,
        )
        connector = HubSpotConnector(config, clock=emu.clock.now, sleep=emu.clock.advance)
        try:
            yield emu, connector
        finally:
            connector.close()


def test_hubspot_daily_limit_resets_at_midnight_in_daily_reset_timezone() -> None:
    from connectors.base import LeadChange
    from connectors.errors import BudgetExhausted

    noon_utc = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)  # 07:00 in New York (EST, UTC-5)
    with _hubspot(noon_utc, daily_reset_timezone="America/New_York") as (emu, connector):
        [contact] = emu.add_contacts([{"email": "a@example.com", "hs_lead_status": "NEW"}])
        emu.exhaust_daily_limit()
        with pytest.raises(BudgetExhausted) as spent:
            connector.write_batch([LeadChange(contact, {"status": "OPEN"})])
    assert spent.value.resume_at == datetime(2025, 3, 5, 5, 0, tzinfo=UTC)


def test_hubspot_leaves_ten_second_headroom_calls_of_the_apps_limit_free() -> None:
    from connectors.base import LeadChange

    t0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    with _hubspot(t0, ten_second_limit=10, ten_second_headroom=3) as (emu, connector):
        [contact] = emu.add_contacts([{"email": "a@example.com", "hs_lead_status": "NEW"}])
        start = len(emu.journal)
        for i in range(15):
            connector.write_batch([LeadChange(contact, {"status": "OPEN" if i % 2 else "NEW"})])
        times = sorted(e.at for e in emu.journal.entries()[start:])
    assert len(times) >= 15
    busiest = max(sum(1 for t in times if s <= t < s + 10) for s in times)
    assert busiest == 7  # 10 a window, 3 left for other clients


# --------------------------------------------------------------------------------------------
# Salesforce: campaign_member_status


def _sent_members(body: Any) -> list[dict[str, Any]]:
    """Every CampaignMember record in a request body (plain or inside a Composite request)."""
    if isinstance(body, dict):
        if (body.get("attributes") or {}).get("type") == "CampaignMember":
            return [body]
        return [m for v in body.values() for m in _sent_members(v)]
    if isinstance(body, list):
        return [m for v in body for m in _sent_members(v)]
    return []


@pytest.mark.parametrize("status", [None, "Responded"])
def test_salesforce_adds_campaign_members_with_campaign_member_status_else_the_campaigns_default(
    status: str | None,
) -> None:
    from connectors.salesforce import SalesforceConnector
    from connectors.testing.salesforce import SalesforceEmulator
    from tests.salesforce.support import config_for, lead

    with SalesforceEmulator() as emu:
        campaign = emu.add_campaign("Newsletter")
        ids = emu.add_leads([lead(1), lead(2)])
        connector = SalesforceConnector(
            config_for(emu, newsletters={"news": campaign}, campaign_member_status=status)
        )
        try:
            start = len(emu.journal)
            connector.add_to_newsletter("news", ids)
        finally:
            connector.close()
        sent = [
            m
            for e in emu.journal.entries()[start:]
            if e.method == "POST" and e.body[:1] in (b"{", b"[")  # not the token request
            for m in _sent_members(json.loads(e.body))
        ]
        assert emu.campaign_members(campaign) == set(ids)
    assert sorted(m["LeadId"] for m in sent) == sorted(ids)
    if status is None:
        assert all("Status" not in m for m in sent)  # the campaign's default applies
    else:
        assert {m["Status"] for m in sent} == {status}


# --------------------------------------------------------------------------------------------
# The demo: a simulated rep sets two statuses by hand after each cycle; the next holds them.


@pytest.mark.parametrize("rep_activity", [True, False])
def test_demo_rep_sets_two_statuses_after_each_cycle_and_the_next_cycle_holds_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rep_activity: bool
) -> None:
    from syncd.holds import held_since
    from syncd.scheduler import Daemon
    from tests.daemon.harness import running_app, write_config

    config = write_config(tmp_path, crms=("salesforce",), leads=40)
    config.write_text(
        config.read_text().replace(
            "rep_activity: false", f"rep_activity: {str(rep_activity).lower()}"
        )
    )
    with running_app(config) as app, caplog.at_level("INFO", logger="syncd.embedded"):
        daemon = Daemon(app)
        daemon._run_one("salesforce")  # a cycle as the scheduler runs it, then the rep
        edits = [
            (str(r.args[1]), str(r.args[2]))  # type: ignore[index]
            for r in caplog.records
            if r.name == "syncd.embedded" and "by hand" in r.msg
        ]
        sf = app.embedded.salesforce
        if not rep_activity:
            assert edits == []
            return
        assert len(edits) == 2 and len({lead for lead, _ in edits}) == 2
        assert all(sf.lead(lead)["Status"] == status for lead, status in edits)
        daemon._run_one("salesforce")
        report = daemon.last["salesforce"][1]
        since = held_since(app.clock(), app.settings.connectors()["salesforce"].hold_rep_edits_for)
        held = {h.lead_id for h in app.store.held_leads("salesforce", since)}
    assert report.outcome == "ok" and report.held >= 2
    assert {lead for lead, _ in edits} <= held
    assert all(sf.lead(lead)["Status"] == status for lead, status in edits)
