"""The CRM org's own configuration and automation, which syncd does not control and which changes
under it: campaigns and lists deleted, picklists and properties changed, flows and workflows
that write after syncd, access taken away. What syncd does with each.

Every test drives whole cycles against the emulators through the real client libraries; the
emulators produce each situation as the CRM documents it (docs/crm-api.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import EmulatorConfig, RecordTypeDef, SalesforceEmulator
from connectors.testing.salesforce.schema import LEAD
from syncd.app import App
from syncd.plan import explain_lead, status_report
from tests.daemon.harness import (
    hs_contact,
    hs_write_calls,
    newsletter_id,
    running_app,
    sf_lead,
    sf_write_calls,
    write_config,
)
from tests.daemon.test_field_edit_holds import _add_buyer, _tier_config
from tests.daemon.test_lifecycle_stage import stage_config
from tests.salesforce.support import config_for


def _member_inserts(app: App) -> int:
    """Calls that carried CampaignMember inserts (Collections POSTs, alone or in a Composite)."""
    return sum(1 for e in sf_write_calls(app) if b"CampaignMember" in e.body)


@pytest.mark.parametrize("composite", [True, False], ids=["composite", "collections"])
def test_a_campaign_deleted_after_start_up_fails_each_add_once_naming_the_campaign(
    tmp_path: Path, store_url: str, composite: bool
) -> None:
    # An admin deletes the newsletter's Campaign while syncd runs. Salesforce refuses each
    # CampaignMember insert with ENTITY_IS_DELETED on CampaignId (a lookup to a record in the
    # recycle bin). syncd said "entity is deleted" as if the lead were gone, and planned every
    # refused add again every cycle: a call and a failed audit row per lead, per cycle, for ever.
    config = write_config(
        tmp_path, crms=("salesforce",), sf_composite=composite, state_url=store_url
    )
    # syncd's clock runs 5 s behind the org's until the lead is edited, so the edit the org
    # stamps is later than the failures syncd recorded (SystemModstamp has whole seconds).
    behind = {"by": timedelta(seconds=5)}
    with running_app(config, clock=lambda: datetime.now(UTC) - behind["by"]) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            [
                # Already in Nurture: the rule's only write is the newsletter add.
                sf_lead(
                    f"A{i}",
                    f"a{i}@acme{i}.com",
                    title="Analyst",
                    status="Nurture",
                    activity_days=200,
                )
                for i in range(3)
            ],
            modstamp=datetime.now(UTC) - timedelta(minutes=1),
        )
        campaign = newsletter_id(app, "salesforce")
        sf.delete_campaign(campaign)
        pipeline = app.pipelines["salesforce"]

        first = pipeline.run_cycle()
        assert (first.outcome, first.written, first.failed) == ("ok", 0, 3), first.message
        failed = {f["lead_id"]: f for f in status_report(app)["crms"]["salesforce"]["failed"]}
        assert set(failed) == set(ids)
        message = failed[ids[0]]["error_message"]
        assert f"Campaign {campaign} (newsletter 'newsletter')" in message
        assert "salesforce.newsletters" in message
        inserts = _member_inserts(app)

        for _ in range(2):
            again = pipeline.run_cycle()
            assert (again.outcome, again.written, again.failed) == ("ok", 0, 0)
        assert _member_inserts(app) == inserts, "a refused add was sent again unchanged"
        assert [a.outcome for a in app.store.audit_of_lead(ids[0])] == ["failed"]

        # Once the lead changes in the CRM, its add is tried again, as a refused field write is.
        sf.update_lead(ids[0], {"Title": "Head of Analytics"})
        behind["by"] = timedelta(0)
        retried = pipeline.run_cycle()
        assert retried.failed == 1
        assert _member_inserts(app) == inserts + 1


def test_a_row_lock_reported_by_a_flow_is_retried_after_backoff_not_failed_for_good(
    tmp_path: Path,
) -> None:
    # A record-triggered flow on Lead updates a related record that another transaction holds:
    # the save fails with CANNOT_EXECUTE_FLOW_TRIGGER wrapping UNABLE_TO_LOCK_ROW
    # (docs/crm-api.md#a10). syncd failed the status write for good, waiting for the lead to
    # change, though the same save succeeds a moment later.
    now = {"t": datetime.now(UTC)}
    with running_app(write_config(tmp_path, crms=("salesforce",)), clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(4)
        )
        sf.faults.lock_rows(ids[:2], attempts=1, in_flow="Lead_Owner_Rollup")
        pipeline = app.pipelines["salesforce"]
        now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # after the seeding

        first = pipeline.run_cycle()
        assert (first.outcome, first.retrying, first.failed) == ("ok", 2, 0), first.message
        assert {sf.lead(i)["Status"] for i in ids[:2]} == {"Open - Not Contacted"}
        assert status_report(app)["crms"]["salesforce"]["failed"] == []

        now["t"] += app.settings.outbox.retry_base + timedelta(seconds=1)
        later = pipeline.run_cycle()
        assert later.written == 2
        assert {sf.lead(i)["Status"] for i in ids} == {"Nurture"}


def test_a_workflow_moving_the_stage_on_after_syncds_write_holds_the_lead_and_the_fight_stops(
    tmp_path: Path, store_url: str
) -> None:
    # A HubSpot workflow moves the lifecycle stage to SQL whenever it becomes MQL. The rule's
    # declared backward move (SQL -> MQL) cleared and set the stage every cycle, for ever (two
    # writes a cycle, and HubSpot's hs_date_entered_* dates reset each time). HubSpot does not
    # say who changed a property, so the workflow's move is taken as a person's edit of a field
    # a rule sets: the lead is held, and syncd writes the stage no more.
    config = stage_config(tmp_path)
    config.write_text(config.read_text().replace(f"sqlite:///{tmp_path / 'state.db'}", store_url))
    with running_app(config) as app:
        hs = app.embedded.hubspot
        [contact] = hs.add_contacts(
            [hs_contact("Ann", "ann@acme.com", title="Analyst", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        assert hs.contact(contact)["lifecyclestage"] == "marketingqualifiedlead"
        hs.update_contact(
            contact, {"lifecyclestage": "salesqualifiedlead"}, source="AUTOMATION_PLATFORM"
        )
        writes = len(hs_write_calls(app))

        reports = [pipeline.run_cycle() for _ in range(3)]
        assert len(hs_write_calls(app)) == writes, "the fight went on"
        assert hs.contact(contact)["lifecyclestage"] == "salesqualifiedlead"
        assert [r.held for r in reports] == [1, 1, 1]
        [explained] = explain_lead(app, "ann@acme.com")
        assert explained["verdict"].startswith("held: lifecycle_stage set to 'salesqualifiedlead'")


def test_a_flow_undoing_syncds_field_write_as_the_integration_user_is_held_by_the_loop_guard(
    tmp_path: Path, store_url: str
) -> None:
    # A Salesforce flow that runs on syncd's update runs as syncd's integration user: its change
    # is not a person's edit, so no hold stops the fight. A flow setting Tier__c back after each
    # of syncd's writes made syncd write it again every cycle, for ever: the loop guard counted
    # status writes only.
    now = {"t": datetime.now(UTC) + timedelta(seconds=5)}
    with running_app(_tier_config(tmp_path, store_url), clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        [buyer] = _add_buyer(sf)
        pipeline = app.pipelines["salesforce"]
        max_changes = app.settings.loop_guard.max_changes
        base = datetime.now(UTC).replace(microsecond=0)
        for i in range(max_changes):
            assert pipeline.run_cycle().outcome == "ok"
            assert sf.lead(buyer)["Tier__c"] == "Hot"
            # The flow's save, each stamped after the last, all before this moment (a pull
            # reads up to now; this test's cycles follow each other within a second).
            stamp = base - timedelta(seconds=60 - i)
            sf.update_lead(buyer, {"Tier__c": "Cold"}, by=sf.integration_user_id, modstamp=stamp)
            now["t"] += timedelta(minutes=1)
        writes = len([e for e in sf.journal.writes() if "oauth" not in e.path])

        for _ in range(2):
            assert pipeline.run_cycle().outcome == "ok"
            now["t"] += timedelta(minutes=1)
        assert len([e for e in sf.journal.writes() if "oauth" not in e.path]) == writes, (
            "the fight went on"
        )
        assert sf.lead(buyer)["Tier__c"] == "Cold"
        [held] = status_report(app)["crms"]["salesforce"]["loop_held"]
        assert held["lead_id"] == buyer
        assert f"changed its tier {max_changes} times" in held["reason"]
        [explained] = explain_lead(app, "buyer@acme.com")
        assert "held by the loop guard" in explained["verdict"]


def _without_lead_field(name: str) -> frozenset[str]:
    """The emulated org's custom Lead fields, less ``name`` (an admin deleted it)."""
    return frozenset(f.name for f in LEAD.fields if f.name.endswith("__c") and f.name != name)


def test_a_written_field_deleted_after_start_up_keeps_the_changes_waiting_not_failed_for_good(
    tmp_path: Path,
) -> None:
    # An admin deletes a Lead field syncd writes (here provenance's rule field) while syncd
    # runs. Salesforce refuses the whole Lead update with 400 INVALID_FIELD. Sent alone, that
    # failed the cycle, naming the field, and the changes waited; inside a Composite request
    # (the default) every lead's status write failed for good, waiting for the lead to change,
    # while the cycle said "ok".
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace(
            "  connector:\n    lag_seconds: 0",
            "  provenance: {rule: syncd_Rule__c}\n  connector:\n    lag_seconds: 0",
        )
    )
    now = {"t": datetime.now(UTC)}
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(3)
        )
        sf.config.lead_custom_fields = _without_lead_field("syncd_Rule__c")
        pipeline = app.pipelines["salesforce"]
        now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # after the seeding

        first = pipeline.run_cycle()
        assert (first.written, first.failed, first.retrying) == (3, 0, 3)  # + newsletter adds
        assert {sf.lead(i)["Status"] for i in ids} == {"Open - Not Contacted"}
        report = status_report(app)["crms"]["salesforce"]
        assert report["failed"] == []
        assert {"change": "status", "retrying": "INVALID_FIELD", "count": 3} in report["pending_by"]
        waiting = app.store.changes_of_run("salesforce", first.run_id, ["pending"])
        assert {r.error_code for r in waiting} == {"INVALID_FIELD"}
        assert "syncd_Rule__c" in (waiting[0].error_message or "")
        assert "salesforce.provenance" in (waiting[0].error_message or "")

        sf.config.lead_custom_fields = None  # the admin restores the field
        now["t"] += app.settings.outbox.retry_base + timedelta(seconds=1)
        later = pipeline.run_cycle()
        assert (later.outcome, later.written, later.failed) == ("ok", 3, 0), later.message
        assert {sf.lead(i)["Status"] for i in ids} == {"Nurture"}


@pytest.mark.parametrize("mode", ["multi_status", "whole_batch"])
def test_a_written_property_archived_after_start_up_keeps_the_changes_waiting_not_failed_for_good(
    tmp_path: Path, mode: str
) -> None:
    # An admin archives a contact property syncd writes (provenance's rule property) while
    # syncd runs: HubSpot refuses each input naming it (PROPERTY_DOESNT_EXIST), status and all.
    # Each contact's status write failed for good, waiting for the contact to change, with
    # HubSpot's bare 'Property "syncd_rule" does not exist'.
    config = write_config(tmp_path, crms=("hubspot",))
    config.write_text(
        config.read_text().replace(
            "  connector:\n    allow_add_status_options: true\n",
            "  connector:\n    allow_add_status_options: true\n  provenance: {rule: syncd_rule}\n",
        )
    )
    now = {"t": datetime.now(UTC)}
    with running_app(config, clock=lambda: now["t"]) as app:
        hs = app.embedded.hubspot
        hs.config.batch_update_error_mode = mode  # type: ignore[assignment]
        ids = hs.add_contacts(
            [
                hs_contact(f"A{i}", f"a{i}@acme{i}.com", title="Analyst", activity_days=200)
                for i in range(3)
            ]
        )
        hs.archive_property("syncd_rule")
        pipeline = app.pipelines["hubspot"]
        now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # after the seeding

        first = pipeline.run_cycle()
        assert (first.written, first.failed, first.retrying) == (3, 0, 3)  # + newsletter adds
        assert {hs.contact(i)["hs_lead_status"] for i in ids} == {"NEW"}
        assert status_report(app)["crms"]["hubspot"]["failed"] == []
        waiting = app.store.changes_of_run("hubspot", first.run_id, ["pending"])
        assert {r.error_code for r in waiting} == {"PROPERTY_DOESNT_EXIST"}
        message = waiting[0].error_message or ""
        assert "syncd_rule" in message and "hubspot.provenance" in message

        hs.restore_property("syncd_rule")
        now["t"] += app.settings.outbox.retry_base + timedelta(seconds=1)
        later = pipeline.run_cycle()
        assert (later.outcome, later.written, later.failed) == ("ok", 3, 0), later.message
        assert {hs.contact(i)["hs_lead_status"] for i in ids} == {"NURTURE"}


def test_a_status_a_record_type_stops_allowing_after_start_up_fails_saying_where_to_add_it(
    tmp_path: Path,
) -> None:
    # An admin removes 'Nurture' from the Partner record type's Lead Status values after
    # start-up checked them. Salesforce refuses the write with INVALID_OR_NULL_FOR_RESTRICTED_
    # PICKLIST ("bad value for restricted picklist field: Nurture") though Lead Status is not a
    # restricted picklist; syncd passed that on alone, naming neither record types nor a fix
    # (start-up's map of refusing record types did not know the change).
    org = EmulatorConfig(record_types=(RecordTypeDef("Partner"),))
    config = write_config(tmp_path, crms=("salesforce",))
    with SalesforceEmulator(org) as emu:
        newsletters = {"newsletter": emu.add_campaign("Newsletter")}
        connector = SalesforceConnector(config_for(emu, newsletters=newsletters))
        partner = emu.record_type_id("Partner")
        [lead_id] = emu.add_leads(
            [sf_lead("P", "p@acme.com", title="Analyst", activity_days=200, RecordTypeId=partner)]
        )
        emu.clock.advance(1)
        with running_app(config, connectors={"salesforce": connector}) as app:
            emu.org.record_type_statuses[partner] = frozenset({"Open - Not Contacted"})
            report = app.pipelines["salesforce"].run_cycle()
            assert (report.outcome, report.failed) == ("ok", 1), report.message
            [failed] = status_report(app)["crms"]["salesforce"]["failed"]
        assert failed["lead_id"] == lead_id
        assert failed["error_code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        assert "record type" in failed["error_message"]
        assert "Record Types > Lead Status" in failed["error_message"]
