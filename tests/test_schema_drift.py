"""The CRM's schema changing under a running syncd: a mapped property or field archived or
deleted by an admin after start-up checked it.

HubSpot leaves an archived property out of every read without an error, so a rule reading it
would see every contact without a value; Salesforce's query fails naming the field. Every test
drives whole cycles against the emulators through the real client libraries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
from connectors.salesforce import SalesforceConnector
from connectors.testing.hubspot import EmulatorClock, HubSpotEmulator
from connectors.testing.salesforce import SalesforceEmulator
from syncd.app import App
from syncd.plan import status_report
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.salesforce.support import config_for

HOUR = 3600


def _rules(when: str) -> str:
    return f"""\
version: 1
name: drift
mode: first_match
statuses:
  New: {{}}
  Open: {{}}
  MQL: {{}}
  Nurture: {{}}
rules:
  - id: budget-rule
    when: {when}
    then:
      - set_status: MQL
"""


@contextmanager
def _hubspot_app(tmp_path: Path, when: str) -> Iterator[tuple[App, HubSpotEmulator]]:
    """syncd on a HubSpot emulator whose clock the test moves (the connector's and the
    daemon's clock too), archived contacts and properties read every hour."""
    clock = EmulatorClock(frozen_at=datetime.now(UTC).replace(microsecond=0))
    config = write_config(tmp_path, rules=_rules(when), crms=("hubspot",))
    with HubSpotEmulator(clock=clock) as hs:
        connector = HubSpotConnector(
            HubSpotConfig(
                base_url=hs.base_url,
                auth=PrivateAppAuth(access_token=hs.access_token),
                allow_add_status_options=True,
                archived_scan_interval_seconds=HOUR,
                timeout_seconds=5,
            ),
            clock=clock.now,
            sleep=clock.advance,
        )
        with running_app(config, connectors={"hubspot": connector}, clock=clock.now) as app:
            yield app, hs


def _property_reads(hs: HubSpotEmulator) -> int:
    return len(hs.journal.entries("GET", "/crm/v3/properties/contacts"))


def test_a_cycle_fails_naming_the_property_and_rule_when_a_property_a_rule_reads_is_archived(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An admin archives bant_budget while syncd runs. HubSpot leaves it out of searches
    # silently, so the rule just stopped matching (pulled 1, changed 0, no word) until a restart.
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        hs.archive_property("bant_budget")
        [contact] = hs.add_contacts(
            [hs_contact("Ann", "ann@acme.com", title="CFO", bant_budget="50000")]
        )
        hs.clock.advance(HOUR)
        used = hs.limits.daily_used

        with caplog.at_level(logging.WARNING):
            failed = pipeline.run_cycle()
        assert (failed.outcome, failed.reason, failed.pulled) == ("failed", "configuration", 0)
        message = failed.message or ""
        assert "'bant_budget' (mapped to 'budget' in hubspot.connector.fields)" in message
        assert "rule 'budget-rule'" in message and "restore it in hubspot" in message
        assert any("bant_budget" in r.getMessage() for r in caplog.records)
        # One call said it: the properties read, counted like any call.
        assert (failed.api_calls, hs.limits.daily_used - used) == (1, 1)
        assert hs.contact(contact)["hs_lead_status"] == "NEW"
        [last_run, *_] = status_report(app)["crms"]["hubspot"]["runs"]
        assert (last_run["outcome"], last_run["message"]) == ("failed", failed.message)

        hs.restore_property("bant_budget")
        hs.clock.advance(60)
        resumed = pipeline.run_cycle()
        assert (resumed.outcome, resumed.planned, resumed.written) == ("ok", 1, 1), resumed.message
        assert hs.contact(contact)["hs_lead_status"] == "MQL"


def test_contacts_pulled_without_an_archived_property_fail_that_cycle_and_are_read_again_when_restored(
    tmp_path: Path,
) -> None:
    # The pull that reads a contact without a mapped property (HubSpot answers one the account
    # has with null, and leaves out one it lacks) reads the properties at once: that cycle
    # fails, not the one after the hourly read. The contacts it mirrored without the value are
    # not modified by a restore, so no pull would bring them again: they are read again then.
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        hs.clock.advance(60)
        assert pipeline.run_cycle().outcome == "ok"
        hs.archive_property("bant_budget")
        hs.clock.advance(60)
        [contact] = hs.add_contacts(
            [hs_contact("Ann", "ann@acme.com", title="CFO", bant_budget="50000")]
        )
        hs.clock.advance(60)
        reads = _property_reads(hs)
        found = pipeline.run_cycle()
        assert (found.outcome, found.pulled, found.planned) == ("failed", 1, 0), found.message
        assert "'bant_budget' (mapped to 'budget'" in (found.message or "")
        assert _property_reads(hs) == reads + 1

        hs.restore_property("bant_budget")
        hs.clock.advance(60)
        resumed = pipeline.run_cycle()
        assert (resumed.outcome, resumed.written) == ("ok", 1), resumed.message
        assert hs.contact(contact)["hs_lead_status"] == "MQL"
        pulled = []
        for _ in range(3):  # syncd's own write comes back once; then nothing is read again
            hs.clock.advance(60)
            pulled.append(pipeline.run_cycle().pulled)
        assert pulled == [1, 0, 0]


def test_contacts_without_a_value_for_a_mapped_property_bring_no_extra_properties_read(
    tmp_path: Path,
) -> None:
    # A property the account has comes back null for a contact without a value: no doubt, so
    # the properties are read at start-up and then once an hour, not at every pull.
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        reads = _property_reads(hs)
        for i in range(3):
            hs.add_contacts([hs_contact(f"N{i}", f"n{i}@acme{i}.com", title="CFO")])
            hs.clock.advance(60)
            report = pipeline.run_cycle()
            assert (report.outcome, report.pulled) == ("ok", 1), report.message
        assert _property_reads(hs) == reads


# Within the hour, the pull's own answers raise the doubt: before, the hourly read had not come
# yet and the rule set every contact the pull read to MQL. After it, the cycle fails before
# pulling.
@pytest.mark.parametrize(
    ("later", "pulled"), [(60, 3), (HOUR, 0)], ids=["within-the-hour", "after-the-hourly-read"]
)
def test_no_lead_is_moved_by_a_missing_rule_when_the_property_it_reads_is_archived(
    tmp_path: Path, later: int, pulled: int
) -> None:
    # With the property gone every contact looks as if it had no budget: a rule on
    # `missing: true` would move them all. Nothing is planned from data known to be incomplete.
    with _hubspot_app(tmp_path, "{field: budget, missing: true}") as (app, hs):
        ids = hs.add_contacts(
            [
                hs_contact(f"C{i}", f"c{i}@acme{i}.com", title="CFO", bant_budget="50000")
                for i in range(3)
            ]
        )
        hs.clock.advance(1)
        pipeline = app.pipelines["hubspot"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.pulled, first.planned) == ("ok", 3, 0), first.message
        hs.archive_property("bant_budget")
        for i in ids:
            hs.update_contact(i, {"jobtitle": "CEO"})
        hs.clock.advance(later)

        report = pipeline.run_cycle()
        assert {hs.contact(i)["hs_lead_status"] for i in ids} == {"NEW"}
        assert (report.outcome, report.pulled, report.planned) == ("failed", pulled, 0)
        assert "bant_budget" in (report.message or "")
        assert not [e for e in hs.journal.writes() if "/contacts/batch/update" in e.path]


def test_the_cycle_keeps_failing_when_a_rule_reload_is_refused_while_the_property_is_archived(
    tmp_path: Path,
) -> None:
    # Reloaded rules are checked against the properties again; that check must not forget a
    # property archived since start-up while the refused reload leaves the old rules reading it.
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        hs.archive_property("bant_budget")
        hs.clock.advance(HOUR)
        assert pipeline.run_cycle().outcome == "failed"
        version = app.rules.book.version

        (tmp_path / "rules.yaml").write_text(_rules("{field: budget, contains: '0'}"))
        refused = pipeline.run_cycle()
        assert app.rules.book.version == version
        assert "uses field 'budget', which hubspot does not have" in (app.rules.error or "")
        assert (refused.outcome, refused.pulled) == ("failed", 0)
        assert "rule 'budget-rule'" in (refused.message or "")

        # Rules that no longer read it are accepted, and cycles go on without it.
        (tmp_path / "rules.yaml").write_text(_rules("{field: title, present: true}"))
        assert pipeline.run_cycle().outcome == "ok"
        assert app.rules.book.version != version


def test_the_properties_are_read_again_once_an_interval_when_nothing_is_gone(
    tmp_path: Path,
) -> None:
    # The check costs one call an hour (the archived scan's interval), none in between, so an
    # idle cycle's cost is unchanged (docs/benchmarks.md).
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        at_start = _property_reads(hs)
        reads = []
        for _ in range(4):
            hs.clock.advance(HOUR // 4 - 1)
            assert pipeline.run_cycle().outcome == "ok"
            reads.append(_property_reads(hs) - at_start)
        hs.clock.advance(4)
        assert pipeline.run_cycle().outcome == "ok"
        reads.append(_property_reads(hs) - at_start)
        assert reads == [0, 0, 0, 0, 1]


def test_a_property_no_rule_reads_archived_is_warned_about_once_and_cycles_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _hubspot_app(tmp_path, "{field: budget, present: true}") as (app, hs):
        pipeline = app.pipelines["hubspot"]
        hs.archive_property("bant_need")
        [contact] = hs.add_contacts(
            [hs_contact("Ann", "ann@acme.com", title="CFO", bant_budget="50000")]
        )
        hs.clock.advance(HOUR)

        with caplog.at_level(logging.WARNING):
            reports = [pipeline.run_cycle() for _ in range(2)]
        assert [r.outcome for r in reports] == ["ok", "ok"]
        assert hs.contact(contact)["hs_lead_status"] == "MQL"
        warned = [r.getMessage() for r in caplog.records if "bant_need" in r.getMessage()]
        assert len(warned) == 1
        assert "mapped to 'need' in hubspot.connector.fields" in warned[0]
        assert "no rule uses it" in warned[0]


def test_cycles_fail_naming_the_field_and_rules_while_a_lead_field_a_rule_reads_is_deleted(
    tmp_path: Path,
) -> None:
    # Salesforce: the pull's SOQL names the field, so the query fails with INVALID_FIELD; the
    # cycle fails saying which field and which setting to check, and writes nothing. The next
    # cycles name the rules that read it too, and the cycle after its restoration goes on.
    config = write_config(
        tmp_path, rules=_rules("{field: budget, present: true}"), crms=("salesforce",)
    )
    with SalesforceEmulator() as sf:
        connector = SalesforceConnector(config_for(sf))
        with running_app(config, connectors={"salesforce": connector}) as app:
            pipeline = app.pipelines["salesforce"]
            [lead] = sf.add_leads([sf_lead("Ann", "ann@acme.com", title="CFO", Budget__c="50000")])
            sf.delete_lead_field("Budget__c")

            report = pipeline.run_cycle()
            assert (report.outcome, report.pulled, report.written) == ("failed", 0, 0)
            message = report.message or ""
            assert "Budget__c" in message and "salesforce.fields" in message
            assert sf.lead(lead)["Status"] == "Open - Not Contacted"

            again = pipeline.run_cycle()
            assert (again.outcome, again.pulled, again.api_calls) == ("failed", 0, 1)
            message = again.message or ""
            assert "'Budget__c' (mapped to 'budget' in salesforce.connector.fields)" in message
            assert "rule 'budget-rule'" in message

            sf.restore_lead_field("Budget__c")
            resumed = pipeline.run_cycle()
            assert (resumed.outcome, resumed.written) == ("ok", 1), resumed.message
            assert sf.lead(lead)["Status"] != "Open - Not Contacted"


def test_cycles_go_on_without_a_deleted_lead_field_no_rule_reads_after_one_failed_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Start-up leaves out a mapped field the org lacks when no rule reads it; one deleted
    # while syncd runs failed every cycle with INVALID_FIELD until a restart.
    config = write_config(tmp_path, rules=_rules("{field: title, eq: CFO}"), crms=("salesforce",))
    with SalesforceEmulator() as sf:
        connector = SalesforceConnector(config_for(sf))
        with running_app(config, connectors={"salesforce": connector}) as app:
            pipeline = app.pipelines["salesforce"]
            [lead] = sf.add_leads([sf_lead("Ann", "ann@acme.com", title="CFO")])
            sf.delete_lead_field("Budget__c")

            first = pipeline.run_cycle()
            assert first.outcome == "failed" and "Budget__c" in (first.message or "")
            with caplog.at_level(logging.WARNING):
                later = [pipeline.run_cycle() for _ in range(2)]
            assert [r.outcome for r in later] == ["ok", "ok"], later[0].message
            assert later[0].written == 1
            assert sf.lead(lead)["Status"] != "Open - Not Contacted"
            warned = [r.getMessage() for r in caplog.records if "no rule uses it" in r.getMessage()]
            assert len(warned) == 1 and "'Budget__c' (mapped to 'budget'" in warned[0]
