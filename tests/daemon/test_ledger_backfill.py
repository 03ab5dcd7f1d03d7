"""The ledger backfilled from the CRMs' own history: at a lead's first sync and on demand
(`syncd history backfill`), and a status a person set before syncd first saw a lead is held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.history_backfill import backfill
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.daemon.test_ledger import STALE_RULES

runner = CliRunner()


def _rows(app: Any, crm: str, lead_id: str) -> list[tuple[Any, ...]]:
    return [
        (h.from_value, h.to_value, h.actor, h.source)
        for h in app.store.history_of_lead(crm, lead_id)
    ]


def _soql(app: Any) -> list[str]:
    """The SOQL of every query, standalone or a Composite request's query subrequest."""
    entries = app.embedded.salesforce.journal.entries()
    return [s.soql for e in entries for s in (e, *e.subrequests) if s.soql]


def test_a_status_a_person_set_two_days_before_the_first_sync_is_held_not_overwritten(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    with running_app(config) as app:
        emu = app.embedded.salesforce
        worked, untouched = emu.add_leads(
            [
                sf_lead("Worked", "w@acme.com", title="CTO", activity_days=200),
                sf_lead("Untouched", "u@acme.com", title="CTO", activity_days=200),
            ],
            modstamp=datetime.now(UTC) - timedelta(days=30),
        )
        two_days_ago = datetime.now(UTC) - timedelta(days=2)
        emu.update_lead(worked, {"Status": "Working - Contacted"}, modstamp=two_days_ago)
        report = app.pipelines["salesforce"].run_cycle()
        worked_now = emu.lead(worked)["Status"]
        untouched_now = emu.lead(untouched)["Status"]
        ledger = app.store.history_of_lead("salesforce", worked)
        mirror = app.store.lead("salesforce", worked)
        history_queries = [q for q in _soql(app) if "FROM LeadHistory" in q]

    assert report.held == 1 and report.written == 1
    assert worked_now == "Working - Contacted"  # the person's value stands
    assert untouched_now == "Nurture"  # no person touched it: the rules apply
    assert [(h.from_value, h.to_value, h.actor, h.source, h.actor_id) for h in ledger] == [
        ("Open - Not Contacted", "Working - Contacted", "person", "backfill", emu.rep_user_id)
    ]
    assert abs(ledger[0].at.replace(tzinfo=UTC) - two_days_ago) < timedelta(seconds=1)
    assert mirror is not None and mirror.rep_edit_status == "Working - Contacted"
    # One query for the page's new leads, one (riding in the Composite write call) for the
    # batch that wrote the other one.
    assert len(history_queries) == 2 and worked in history_queries[0]


def test_without_field_history_tracking_the_first_sync_cannot_see_the_persons_edit(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    with running_app(config) as app:
        emu = app.embedded.salesforce
        emu.org.config.history_tracked_fields = frozenset()
        (worked,) = emu.add_leads(
            [sf_lead("Worked", "w@acme.com", title="CTO", activity_days=200)],
            modstamp=datetime.now(UTC) - timedelta(days=30),
        )
        emu.update_lead(
            worked, {"Status": "Working - Contacted"}, modstamp=datetime.now(UTC) - timedelta(2)
        )
        report = app.pipelines["salesforce"].run_cycle()
        rows = _rows(app, "salesforce", worked)

    # The documented limit (README): with tracking off the ledger starts at syncd's first write.
    assert report.held == 0 and report.written == 1
    assert rows == [("Working - Contacted", "Nurture", "syncd", "written")]


def test_salesforce_history_reads_one_query_per_200_leads(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    with running_app(config) as app:
        emu = app.embedded.salesforce
        ids = emu.add_leads(sf_lead(f"L{i}", f"l{i}@acme.com", title="CTO") for i in range(450))
        for lead_id in ids[:3]:
            emu.update_lead(lead_id, {"Status": "Working - Contacted"})
        connector = app.pipelines["salesforce"].connector
        before = connector.stats.calls
        entries = connector.status_history(ids)
        calls = connector.stats.calls - before

    assert calls == 3
    assert sorted(e.lead_id for e in entries) == sorted(ids[:3])
    assert {(e.from_value, e.to_value, e.actor) for e in entries} == {
        ("Open - Not Contacted", "Working - Contacted", "person")
    }


def test_hubspot_history_is_bounded_and_read_fifty_contacts_a_call(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("hubspot",))
    with running_app(config) as app:
        emu = app.embedded.hubspot
        ids = emu.add_contacts(
            hs_contact(f"C{i}", f"c{i}@acme.com", title="CTO") for i in range(60)
        )
        busy = ids[0]
        for i in range(30):  # more changes than HubSpot returns
            emu.update_contact(busy, {"hs_lead_status": "OPEN" if i % 2 == 0 else "NEW"})
        connector = app.pipelines["hubspot"].connector
        before = connector.stats.calls
        entries = connector.status_history(ids)
        calls = connector.stats.calls - before
        bound = emu.config.history_max_values

    busy_entries = [e for e in entries if e.lead_id == busy]
    assert calls == 2
    assert len(busy_entries) == bound
    assert busy_entries[0].from_value is None  # older values are no longer said
    assert busy_entries[-1].to_value == "NEW" and busy_entries[-1].actor == "person"
    assert all(e.at <= f.at for e, f in pairwise(busy_entries))


def test_history_backfill_fills_leads_mirrored_before_the_ledger_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    with running_app(config) as app:
        emu = app.embedded.salesforce
        (lead_id,) = emu.add_leads(
            [sf_lead("Old", "o@acme.com", title="CTO", activity_days=2)],
            modstamp=datetime.now(UTC) - timedelta(days=30),
        )
        emu.update_lead(
            lead_id, {"Status": "Working - Contacted"}, modstamp=datetime.now(UTC) - timedelta(20)
        )
        pipeline = app.pipelines["salesforce"]
        pipeline.run_cycle()
        # As a store from before the ledger: its backfilled rows are not there.
        with app.store.begin() as conn:
            conn.exec_driver_sql("DELETE FROM status_history")
        first = backfill(app.store, pipeline.connector, "salesforce")
        again = backfill(app.store, pipeline.connector, "salesforce")
        rows = _rows(app, "salesforce", lead_id)

    assert (first.leads, first.added, first.api_calls) == (1, 1, 1)
    assert (again.leads, again.added) == (1, 0)
    assert rows == [("Open - Not Contacted", "Working - Contacted", "person", "backfill")]


def test_history_backfill_command_reports_per_connector(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce", "hubspot"))
    result = runner.invoke(cli, ["history", "backfill", "-c", str(config)])

    assert result.exit_code == 0, result.output
    assert "salesforce: 0 transitions added from the history of 0 leads" in result.output
    assert "hubspot: 0 transitions added from the history of 0 leads" in result.output


def test_read_crm_history_false_sends_no_history_query(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    config.write_text(
        config.read_text().replace(
            "  interval: 60s\n", "  interval: 60s\n  read_crm_history: false\n"
        )
    )
    with running_app(config) as app:
        emu = app.embedded.salesforce
        (lead_id,) = emu.add_leads([sf_lead("S", "s@acme.com", title="CTO", activity_days=200)])
        report = app.pipelines["salesforce"].run_cycle()
        queries = [q for q in _soql(app) if "LeadHistory" in q]
        rows = _rows(app, "salesforce", lead_id)

    assert report.written == 1 and queries == []
    assert rows == [("Open - Not Contacted", "Nurture", "syncd", "written")]
