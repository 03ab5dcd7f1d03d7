"""A person's status edit that lands while syncd's write batch is in flight is found in the CRM's
history after the batch: their value is written back, the lead held, and the audit says both."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import LeadChange, RecordResult, WriteCollection, WrittenThenRead
from syncd.plan import status_report
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.daemon.test_field_edit_holds import budget_config
from tests.daemon.test_ledger import STALE_RULES
from tests.daemon.test_lifecycle_stage import LIFECYCLE, stage_config


def _edit_in_flight(pipeline: Any, edit: Callable[[], None]) -> None:
    """The person's edit reaches the CRM after syncd read the lead, before its batch lands
    (sent alone, or in a Salesforce Composite call with its history query)."""
    connector = pipeline.connector
    send, send_checked = connector.write_batch, connector.write_collections_then_history
    send_many = connector.write_collections
    pending = [edit]

    def write_batch(changes: Sequence[LeadChange]) -> list[RecordResult]:
        while pending:
            pending.pop()()
        return list(send(changes))

    def write_collections(collections: Sequence[WriteCollection]) -> list[list[RecordResult]]:
        while pending:
            pending.pop()()
        return list(send_many(collections))

    def write_collections_then_history(
        collections: Sequence[WriteCollection], since: datetime, *, also: Sequence[str] = ()
    ) -> WrittenThenRead:
        while pending:
            pending.pop()()
        return send_checked(collections, since, also=also)

    connector.write_batch = write_batch
    connector.write_collections = write_collections
    connector.write_collections_then_history = write_collections_then_history


def _history_reads(app: Any, crm: str, *, standalone: bool = False) -> int:
    """History reads, standalone or (unless ``standalone``) riding in a Composite call as a
    query subrequest."""
    if crm == "salesforce":
        entries = app.embedded.salesforce.journal.entries()
        reads = [s for e in entries for s in (e, *([] if standalone else e.subrequests))]
        return sum(1 for e in reads if e.soql and "FROM LeadHistory" in e.soql)
    entries = app.embedded.hubspot.journal.entries()
    return sum(1 for e in entries if e.method == "POST" and e.path.endswith("/batch/read"))


@pytest.mark.parametrize("crm", ["salesforce", "salesforce-plain", "hubspot"])
def test_a_persons_edit_during_a_write_batch_is_restored_held_and_audited(
    tmp_path: Path, crm: str
) -> None:
    # salesforce-plain: composite false, the history read after the batch is a call of its own
    composite = crm == "salesforce"
    crm = crm.removesuffix("-plain")
    config = write_config(tmp_path, rules=STALE_RULES, crms=(crm,), sf_composite=composite)
    with running_app(config) as app:
        pipeline = app.pipelines[crm]
        if crm == "salesforce":
            emu: Any = app.embedded.salesforce
            raced, calm = emu.add_leads(
                [
                    sf_lead("Raced", "r@acme.com", title="CTO", activity_days=200),
                    sf_lead("Calm", "c@acme.com", title="CTO", activity_days=200),
                ]
            )
            person, nurture = "Working - Contacted", "Nurture"
            _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))

            def status_of(i: str) -> str:
                return str(emu.lead(i)["Status"])
        else:
            emu = app.embedded.hubspot
            raced, calm = emu.add_contacts(
                [
                    hs_contact("Raced", "r@acme.com", title="CTO", activity_days=200),
                    hs_contact("Calm", "c@acme.com", title="CTO", activity_days=200),
                ]
            )
            person, nurture = "OPEN", "NURTURE"
            _edit_in_flight(pipeline, lambda: emu.update_contact(raced, {"hs_lead_status": person}))

            def status_of(i: str) -> str:
                return str(emu.contact(i)["hs_lead_status"])

        first = pipeline.run_cycle()
        history_reads = _history_reads(app, crm)
        standalone = _history_reads(app, crm, standalone=True)
        second = pipeline.run_cycle()  # the lead stays as the person set it: held
        raced_now, calm_now = status_of(raced), status_of(calm)
        audit = [(a.before, a.after, a.outcome, a.rule_id) for a in app.store.audit_of_lead(raced)]
        messages = [a.message or "" for a in app.store.audit_of_lead(raced)]
        ledger = [
            (h.from_value, h.to_value, h.actor, h.source)
            for h in app.store.history_of_lead(crm, raced)
            if h.source != "backfill" or h.actor == "person"
        ]
        mirror = app.store.lead(crm, raced)

    assert raced_now == person and calm_now == nurture
    assert second.held == 1 and second.written == 0
    assert mirror is not None and mirror.rep_edit_status == person
    start = "Open - Not Contacted" if crm == "salesforce" else "NEW"
    assert audit == [
        (start, nurture, "applied", "stale-nurture"),
        (person, nurture, "withdrawn", "stale-nurture"),
        (nurture, person, "applied", "restore-rep-edit"),
    ]
    assert "overwrote a person's change to" in messages[1]
    assert ledger == [
        (start, person, "person", "backfill"),
        (person, nurture, "syncd", "written"),
        (nurture, person, "syncd", "written"),
    ]
    # The history is read once for the new leads and once after the write batch (up to 200
    # Salesforce leads, 50 HubSpot contacts a read); the write back is not checked again. With
    # Composite, the look after the batch is a query of people's edits riding in the write
    # call itself; the one lead a person edited then has its history read on its own.
    assert first.written == 3 and history_reads == (3 if composite else 2)
    assert standalone == 2


def _write_batches(app: Any, crm: str) -> int:
    if crm == "salesforce":
        entries = app.embedded.salesforce.journal.entries()
        # A Composite request carries several collections: count each as a batch.
        flat = [s for e in entries for s in (e.subrequests or [e])]
        return sum(1 for e in flat if e.method == "PATCH" and "composite/sobjects" in e.path)
    entries = app.embedded.hubspot.journal.entries()
    return sum(1 for e in entries if e.method == "POST" and e.path.endswith("/batch/update"))


@pytest.mark.parametrize("crm", ["salesforce", "salesforce-plain", "hubspot"])
def test_the_race_check_costs_no_call_with_composite_one_per_200_plain_or_50_hubspot_writes(
    tmp_path: Path, crm: str
) -> None:
    """The API cost of finding races, counted in the emulator's journal. Salesforce with
    Composite: none of its own (the history query is the write call's last subrequest);
    without Composite one LeadHistory query per write batch of 200; HubSpot one history read per
    50 status writes, the documented cap of a batch read with propertiesWithHistory (crm-api
    C4), so two for a full 100-contact batch."""
    n = 250
    composite = crm == "salesforce"
    crm = crm.removesuffix("-plain")
    config = write_config(tmp_path, rules=STALE_RULES, crms=(crm,), sf_composite=composite)
    with running_app(config) as app:
        pipeline = app.pipelines[crm]
        if crm == "salesforce":
            emu: Any = app.embedded.salesforce
            ids = emu.add_leads([sf_lead(f"L{i}", f"l{i}@acme.com", title="CTO") for i in range(n)])
        else:
            emu = app.embedded.hubspot
            ids = emu.add_contacts(
                [hs_contact(f"L{i}", f"l{i}@acme.com", title="CTO") for i in range(n)]
            )
        assert pipeline.run_cycle().written == 0  # first sight: mirrored, nothing stale yet
        stale = (datetime.now(UTC) - timedelta(days=200)).date()
        for lead_id in ids:
            if crm == "salesforce":
                emu.update_lead(lead_id, {"LastActivityDate": stale})
            else:
                emu.update_contact(lead_id, {"notes_last_updated": f"{stale}T00:00:00Z"})
        emu.journal.clear()
        report = pipeline.run_cycle()
        batches = _write_batches(app, crm)
        standalone = _history_reads(app, crm, standalone=True)
        riding = _history_reads(app, crm) - standalone
    assert report.written == n
    if crm == "hubspot":
        assert (batches, standalone) == (3, 5)  # 100 + 100 + 50 writes: 2 + 2 + 1 history reads
    elif composite:
        assert (batches, standalone, riding) == (2, 0, 1)  # one call: 2 collections + the query
    else:
        assert (batches, standalone, riding) == (2, 2, 0)  # 200 + 50


#: A rule that sets the status and the lifecycle stage together (HubSpot).
STAGE_RULES = """\
version: 1
name: stages
mode: first_match
statuses: {New: {}, Open: {}}
rules:
  - id: to-sql
    when: {field: title, eq: Buyer}
    then:
      - set_status: Open
      - set_field: {field: lifecycle_stage, value: SQL}
"""


def _stage_race(tmp_path: Path, edit: dict[str, str]) -> dict[str, Any]:
    """Two cycles over two new HubSpot buyers (the rule sets their status and lifecycle stage);
    a person makes ``edit`` to the first while the first cycle's write batch is in flight."""
    tmp_path.mkdir(exist_ok=True)
    statuses = "  status_values: {New: NEW, Open: OPEN}\n"
    with running_app(
        stage_config(tmp_path, rules=STAGE_RULES, lifecycle=LIFECYCLE + statuses)
    ) as app:
        hs: Any = app.embedded.hubspot
        raced, calm = hs.add_contacts(
            hs_contact(name, f"{name}@acme.com", title="Buyer", lifecyclestage="lead")
            for name in ("raced", "calm")
        )
        out = _raced_cycles(app, raced, calm, edit, "opportunity")
    out["history_reads"] = len(out["history_reads"])
    return out


def _raced_cycles(
    app: Any, raced: str, calm: str, edit: dict[str, str], audited: str
) -> dict[str, Any]:
    """Two HubSpot cycles, a person making ``edit`` to ``raced`` while the first cycle's write
    batch is in flight: the cycles, the calls and history reads (each read's
    ``propertiesWithHistory``) of the first, both contacts after, the raced one's mirror row,
    the held leads' reasons, and its audit rows that name ``audited``."""
    hs: Any = app.embedded.hubspot
    pipeline = app.pipelines["hubspot"]
    _edit_in_flight(pipeline, lambda: hs.update_contact(raced, edit))
    start, calls = len(hs.journal.entries()), pipeline.connector.stats.calls
    out: dict[str, Any] = {"first": pipeline.run_cycle()}
    out["calls"] = pipeline.connector.stats.calls - calls
    out["history_reads"] = [
        sorted(json.loads(e.body)["propertiesWithHistory"])
        for e in hs.journal.entries()[start:]
        if e.path.endswith("/batch/read")
    ]
    out["second"] = pipeline.run_cycle()
    out["raced"], out["calm"] = hs.contact(raced), hs.contact(calm)
    out["mirror"] = app.store.lead("hubspot", raced)
    out["reasons"] = {
        h["lead_id"]: h["reason"] for h in status_report(app)["crms"]["hubspot"]["held"]
    }
    out["audit"] = [
        (a.before, a.after, a.outcome, a.rule_id)
        for a in app.store.audit_of_lead(raced)
        if audited in (a.before, a.after)
    ]
    out["id"] = raced
    return out


def test_a_persons_lifecycle_stage_edit_while_the_write_batch_is_in_flight_is_restored_held_and_audited_in_the_same_history_reads(
    tmp_path: Path,
) -> None:
    by_status = _stage_race(tmp_path / "status", {"hs_lead_status": "IN_PROGRESS"})
    mql = "marketingqualifiedlead"  # forward from lead: HubSpot applies it, then syncd's SQL
    out = _stage_race(tmp_path / "stage", {"lifecyclestage": mql})
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    # The person's stage stands (written back: cleared, then set, as HubSpot applies a
    # backward stage only so); the other buyer keeps syncd's.
    assert out["raced"]["lifecyclestage"] == mql
    assert out["calm"]["lifecyclestage"] == "opportunity"
    assert (second.held, second.written) == (1, 0)
    assert out["mirror"] is not None and out["mirror"].rep_edit_field == "lifecycle_stage"
    assert out["reasons"][raced].startswith(f"lifecycle_stage set to '{mql}' by a person at ")
    assert out["audit"] == [
        ("lead", "opportunity", "applied", "to-sql"),
        (mql, "opportunity", "withdrawn", "to-sql"),
        ("opportunity", None, "applied", "restore-rep-edit"),  # the clear first
        ("opportunity", mql, "applied", "restore-rep-edit"),
    ]
    # The stage's history rides in the batch read of the status's: as many reads and calls
    # as a race over the status costs.
    assert by_status["raced"]["hs_lead_status"] == "IN_PROGRESS"  # a race too, restored
    assert out["history_reads"] == by_status["history_reads"] == 2  # first sight, the check
    assert out["calls"] == by_status["calls"] + 1  # + the stage's clear before its write back


def _budget_race(
    tmp_path: Path, edit: dict[str, str], audited: str = "Board review"
) -> dict[str, Any]:
    """Two cycles over two new HubSpot buyers (the rule sets their status and the custom
    property bant_budget); a person makes ``edit`` to the first while the first cycle's write
    batch is in flight. The audit rows kept are those naming ``audited``."""
    tmp_path.mkdir(exist_ok=True)
    with running_app(budget_config(tmp_path)) as app:
        hs: Any = app.embedded.hubspot
        raced, calm = hs.add_contacts(
            hs_contact(name, f"{name}@acme.com", title="Buyer", bant_budget="Pending")
            for name in ("raced", "calm")
        )
        return _raced_cycles(app, raced, calm, edit, audited)


def test_a_hubspot_property_a_rule_sets_is_written_back_and_the_contact_held_when_a_person_edits_it_in_flight(
    tmp_path: Path,
) -> None:
    by_status = _budget_race(tmp_path / "status", {"hs_lead_status": "IN_PROGRESS"})
    out = _budget_race(tmp_path / "budget", {"bant_budget": "Board review"})
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    # The person's value stands (written back); the other buyer keeps syncd's.
    assert out["raced"]["bant_budget"] == "Board review"
    assert out["calm"]["bant_budget"] == "Approved"
    assert (second.held, second.written) == (1, 0)
    assert out["mirror"] is not None and out["mirror"].rep_edit_field == "budget"
    assert out["reasons"][raced].startswith("budget set to 'Board review' by a person at ")
    assert out["audit"] == [
        ("Board review", "Approved", "withdrawn", "buyer-budget"),
        ("Approved", "Board review", "applied", "restore-rep-edit"),
    ]
    # bant_budget's history rides in the status's batch reads (first sight, the check): as
    # many reads and calls as a race over the status costs.
    assert by_status["raced"]["hs_lead_status"] == "IN_PROGRESS"  # a race too, restored
    assert out["history_reads"] == by_status["history_reads"]
    assert out["history_reads"] == [["bant_budget", "hs_lead_status"]] * 2
    assert out["calls"] == by_status["calls"]


def test_a_hubspot_property_a_person_cleared_while_the_write_was_in_flight_is_cleared_again_and_the_contact_held(
    tmp_path: Path,
) -> None:
    """HubSpot's history shows a clearing as an empty value: written back as an empty string
    (HubSpot's way to clear a property), the contact held with the field named."""
    out = _budget_race(tmp_path, {"bant_budget": ""}, "Approved")
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert out["raced"].get("bant_budget") in ("", None)
    assert out["calm"]["bant_budget"] == "Approved"
    assert (second.held, second.written, second.failed) == (1, 0, 0)
    assert out["mirror"] is not None and out["mirror"].fields["budget"] is None
    assert out["mirror"].rep_edit_field == "budget"
    assert out["reasons"][raced].startswith("budget cleared by a person at ")
    assert out["audit"] == [
        ("Pending", "Approved", "applied", "buyer-budget"),
        (None, "Approved", "withdrawn", "buyer-budget"),
        ("Approved", None, "applied", "restore-rep-edit"),
    ]
