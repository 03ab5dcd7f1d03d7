"""Named connector instances: two Salesforce orgs and a HubSpot portal in one daemon.

Each instance is its own account: its own cursor, outbox rows, metrics label and emulator. The
two Salesforce emulators mint ids the same way, so the same lead id can name different leads in
the two orgs; only keying by instance name keeps them apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from connectors.testing.hubspot import HubSpotEmulator
from connectors.testing.salesforce import SalesforceEmulator
from syncd.app import App
from syncd.settings import load_settings
from syncd.yamlfile import YamlFileError
from tests.daemon.harness import hs_contact, running_app, sf_lead

RULES = """\
version: 1
name: instances
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Archived: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: us-interns-archived          # one org's policy: rules can tell instances apart
    when:
      all:
        - {field: connector, eq: salesforce/us}
        - {field: title, eq: Intern}
    then:
      - archive: {}
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""

SF_VALUES = {
    "New": "Open - Not Contacted",
    "Open": "Working - Contacted",
    "Converted": "Closed - Converted",
}
HS_VALUES = {
    "New": "NEW",
    "Open": "OPEN",
    "Nurture": "NURTURE",
    "Archived": "ARCHIVED",
    "Converted": "CONVERTED",
}
HEAD = """\
state: {{url: "sqlite:///{db}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
"""


def _sf_instance(name: str, emu: SalesforceEmulator, campaign: str, secret_env: str) -> dict:
    return {
        "type": "salesforce",
        "interval": "60s",
        "status_values": SF_VALUES,
        "connector": {
            "instance_url": emu.base_url,
            "token_url": emu.token_url,
            "ca_bundle": emu.ca_pem_path,
            "lag_seconds": 0,
            "auth": {
                "type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": {"env": secret_env},
            },
            "newsletters": {"newsletter": campaign},
        },
    }


@pytest.fixture
def three_crms() -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        yield {
            "salesforce/emea": stack.enter_context(SalesforceEmulator().start()),
            "salesforce/us": stack.enter_context(SalesforceEmulator().start()),
            "hubspot/main": stack.enter_context(HubSpotEmulator().start()),
        }


def test_two_salesforce_orgs_and_a_portal_each_keep_their_own_cursor_outbox_and_metrics(
    tmp_path: Path, three_crms: dict[str, Any]
) -> None:
    emea, us, hs = (three_crms[n] for n in ("salesforce/emea", "salesforce/us", "hubspot/main"))
    emea_ids = dict(
        zip(
            ("stale", "intern"),
            emea.add_leads(
                [
                    sf_lead("Stale", "ann@acme.de", title="VP Marketing", activity_days=120),
                    sf_lead("Intern", "ida@acme.de", title="Intern"),
                ]
            ),
            strict=True,
        )
    )
    us_ids = dict(
        zip(
            ("intern", "stale"),
            us.add_leads(
                [
                    sf_lead("Intern", "ivy@acme.com", title="Intern"),
                    sf_lead("Stale", "bob@acme.com", title="VP Sales", activity_days=120),
                ]
            ),
            strict=True,
        )
    )
    (hs_stale,) = hs.add_contacts(
        [hs_contact("Stale", "cy@acme.io", title="CTO", activity_days=120)]
    )
    campaigns = {
        n: three_crms[n].add_campaign("Newsletter") for n in ("salesforce/emea", "salesforce/us")
    }
    hs_list = hs.add_list("Newsletter", "MANUAL")
    connectors = {
        "salesforce/emea": _sf_instance(
            "salesforce/emea", emea, campaigns["salesforce/emea"], "SF_EMEA_SECRET"
        ),
        "salesforce/us": _sf_instance(
            "salesforce/us", us, campaigns["salesforce/us"], "SF_US_SECRET"
        ),
        "hubspot/main": {
            "type": "hubspot",
            "interval": "60s",
            "status_values": HS_VALUES,
            "connector": {
                "base_url": hs.base_url,
                "auth": {"type": "private_app", "access_token": {"env": "HS_TOKEN"}},
                "allow_add_status_options": True,
                "newsletters": {"newsletter": hs_list},
            },
        },
    }
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(
        HEAD.format(db=tmp_path / "state.db") + "connectors: " + json.dumps(connectors) + "\n"
    )
    env = {
        "SF_EMEA_SECRET": emea.client_secret,
        "SF_US_SECRET": us.client_secret,
        "HS_TOKEN": hs.access_token,
    }

    app = App.build(load_settings(config, env=env))
    try:
        assert list(app.pipelines) == ["salesforce/emea", "salesforce/us", "hubspot/main"]
        reports = {name: p.run_cycle() for name, p in app.pipelines.items()}
        assert {n: r.outcome for n, r in reports.items()} == dict.fromkeys(reports, "ok")

        # Writes land in the org whose lead it is, and only there.
        assert emea.lead(emea_ids["stale"])["Status"] == "Nurture"
        assert emea.lead(emea_ids["intern"])["Status"] == "Open - Not Contacted"
        assert us.lead(us_ids["intern"])["Status"] == "Archived"
        assert us.lead(us_ids["stale"])["Status"] == "Nurture"
        assert emea.campaign_members(campaigns["salesforce/emea"]) == {emea_ids["stale"]}
        assert us.campaign_members(campaigns["salesforce/us"]) == {us_ids["stale"]}
        assert hs.contact(hs_stale)["hs_lead_status"] == "NURTURE"
        assert hs.list_members(hs_list) == {hs_stale}

        # Each instance's outbox rows, cursor and mirror are its own.
        def done(name: str) -> set[tuple[str, str, Any]]:
            rows = app.store.changes_of_run(name, reports[name].run_id, ["done"])
            return {(r.lead_id, r.field, r.value) for r in rows}

        assert done("salesforce/emea") == {
            (emea_ids["stale"], "status", "Nurture"),
            (emea_ids["stale"], "newsletter", True),
        }
        assert done("salesforce/us") == {
            (us_ids["intern"], "status", "Archived"),
            (us_ids["stale"], "status", "Nurture"),
            (us_ids["stale"], "newsletter", True),
        }
        assert done("hubspot/main") == {
            (hs_stale, "status", "NURTURE"),
            (hs_stale, "newsletter", True),
        }
        assert app.store.cursor("salesforce/emea")[1] in emea_ids.values()
        assert app.store.cursor("salesforce/us")[1] in us_ids.values()
        assert app.store.cursor("hubspot/main")[1] == hs_stale
        assert app.store.cursor("salesforce") is None
        assert {n: app.store.count_live(n) for n in reports} == {
            "salesforce/emea": 2,
            "salesforce/us": 2,
            "hubspot/main": 1,
        }

        # Metrics carry the instance name as their crm label.
        def cycles(name: str) -> float | None:
            return app.metrics.registry.get_sample_value(
                "syncd_cycles_total", {"crm": name, "outcome": "ok"}
            )

        assert [cycles(n) for n in reports] == [1.0, 1.0, 1.0]
        written = app.metrics.registry.get_sample_value(
            "syncd_records_written_total", {"crm": "salesforce/us", "outcome": "ok"}
        )
        assert written == 3.0
    finally:
        app.close()


def test_embedded_mode_starts_one_seeded_emulator_per_instance(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(
        HEAD.format(db=tmp_path / "state.db")
        + """\
embedded: {enabled: true, leads: 4, rep_activity: false}
connectors:
  salesforce/emea: {type: salesforce, status_values: {New: Open - Not Contacted},
                    connector: {lag_seconds: 0}}
  salesforce/us: {type: salesforce, status_values: {New: Open - Not Contacted},
                  connector: {lag_seconds: 0}}
  hubspot/main: {type: hubspot, connector: {allow_add_status_options: true}}
"""
    )
    with running_app(config) as app:
        emulators = app.embedded.emulators
        assert sorted(emulators) == ["hubspot/main", "salesforce/emea", "salesforce/us"]
        urls = {name: emu.url for name, emu in emulators.items()}
        assert len(set(urls.values())) == 3
        assert all(len(emu.lead_ids) == 4 for emu in emulators.values())
        reports = {name: p.run_cycle() for name, p in app.pipelines.items()}
        assert {n: (r.outcome, r.pulled) for n, r in reports.items()} == dict.fromkeys(
            reports, ("ok", 4)
        )
        # Each connector read its own emulator: every emulator served exactly one pull.
        for name in ("salesforce/emea", "salesforce/us"):
            journal = app.embedded.server(name).journal.entries()
            # The pull's first page, alone or first in a Composite request of chained pages.
            queries = [e for e in journal for p in (e.subrequests or [e]) if "/queryAll" in p.path]
            assert len(queries) == 1, name


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "syncd.yaml"
    path.write_text(HEAD.format(db=tmp_path / "state.db") + body)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(YamlFileError) as caught:
        load_settings(path, env={})
    return [str(p) for p in caught.value.problems]


def test_instance_setting_errors_are_located_under_the_instance_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
connectors:
  salesforce/emea:
    type: salesforce
    interval: soon
  hubspot/main:
    type: hubspt
  Sales Force:
    type: salesforce
  eu:
    interval: 5m
""",
    )
    assert sorted(_problems(path)) == sorted(
        [
            (
                f"{path}:8:5: connectors.salesforce/emea.interval: 'soon' is not a "
                "duration; use a number followed by m, h, d or w, or s for seconds (e.g. 15m, 48h, "
                "90d, 2w, 30s)"
            ),
            (
                f"{path}:10:5: connectors.hubspot/main.type: unknown connector type "
                "'hubspt'; known types: hubspot, salesforce (did you mean 'hubspot'?)"
            ),
            (
                f"{path}:11:3: connectors.Sales Force: connector name 'Sales Force' must "
                "be at most 64 lowercase letters, digits, '-', '_' or '/' (between parts), e.g. "
                "'salesforce/emea'"
            ),
            f"{path}:13:3: connectors.eu.type: missing required setting 'type'",
        ]
    )


def test_instance_names_longer_than_64_characters_are_refused(tmp_path: Path) -> None:
    name = "salesforce/" + "x" * 54  # 65 characters
    path = _write(tmp_path, f"connectors:\n  {name}: {{type: salesforce}}\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:6:3: connectors.{name}: ")
    assert "at most 64" in problem
    ok = _write(tmp_path, f"connectors:\n  {name[:-1]}: {{type: salesforce}}\n")
    assert list(load_settings(ok).connectors()) == [name[:-1]]


@pytest.mark.parametrize("shape", ["connectors", "top-level key"])
def test_connector_block_errors_are_located_under_the_instance(tmp_path: Path, shape: str) -> None:
    block = """\
    type: salesforce
    connector:
      instance_url: https://acme.my.salesforce.com
      token_url: https://acme.my.salesforce.com/services/oauth2/token
      auth: {type: client_credentials, client_id: abc, client_secret: written-inline}
      page_size: 5
"""
    if shape == "connectors":
        path = _write(tmp_path, "connectors:\n  salesforce/emea:\n" + block)
        where = "connectors.salesforce/emea"
    else:
        legacy = "".join(line[2:] + "\n" for line in block.splitlines()[1:])  # no type:
        path, where = _write(tmp_path, "salesforce:\n" + legacy), "salesforce"

    def at(key: str) -> str:
        lines = path.read_text().splitlines()
        row = next(i for i, text in enumerate(lines) if key in text)
        return f"{path}:{row + 1}:{lines[row].index(key) + 1}"

    assert _problems(path) == [
        (
            f"{at('page_size')}: {where}.connector.page_size: Input should be greater than or "
            "equal to 200"
        )
    ]
    path.write_text(path.read_text().replace("page_size: 5", "page_size: 500"))
    assert _problems(path) == [
        (
            f"{at('client_secret')}: {where}.connector.auth.client_secret: secrets must not be "
            "written in the config; use {env: NAME} or {file: PATH}"
        )
    ]


def test_an_instance_given_both_under_connectors_and_as_a_top_level_key_is_refused(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        """\
connectors:
  salesforce: {type: salesforce}
salesforce:
  interval: 5m
hubspot:
  type: salesforce
""",
    )
    assert _problems(path) == [
        (
            f"{path}:7:1: salesforce: 'salesforce' is also a connector under "
            "connectors:; move this block there (with type: salesforce) or rename one"
        ),
        (
            f"{path}:9:1: hubspot: the top-level 'hubspot' key holds a hubspot "
            "connector; configure a salesforce connector under connectors:"
        ),
    ]


def test_old_single_instance_keys_are_instances_named_after_the_crm(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
salesforce: {interval: 5m}
hubspot: {enabled: false}
connectors:
  hubspot/main: {type: hubspot}
""",
    )
    settings = load_settings(path)
    assert {n: cs.type for n, cs in settings.connectors().items()} == {
        "salesforce": "salesforce",
        "hubspot/main": "hubspot",
    }
    assert settings.connector_path("salesforce") == ("salesforce",)
    assert settings.connector_path("hubspot/main") == ("connectors", "hubspot/main")
