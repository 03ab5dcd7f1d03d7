"""A person's edit of a field a rule sets holds the lead like a status edit (README, "Lifecycle
stage"; ``syncd.holds``): HubSpot's lifecycle stage and a Salesforce ``set_field`` field, not
set back while held, syncd's own writes never taken for a person's, the rule again once the
hold ends; ``explain`` and ``syncd status`` say why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.base import HistoryEntry, RemoteLead
from syncd.app import App
from syncd.history_pending import first_sight_edit
from syncd.open_changes import fields_a_person_set
from syncd.plan import explain_lead, status_report
from syncd.revert import plan_revert
from syncd.state import AuditOutcome

from .harness import hs_contact, running_app, sf_lead, write_config
from .test_lifecycle_stage import stage_config

#: A rule that decides Tier__c and the status together (Salesforce).
TIER_RULES = """\
version: 1
name: tiers
mode: first_match
statuses: {New: {}, Open: {}, Converted: {}}
rules:
  - id: buyer-hot
    when: {field: title, eq: Buyer}
    then:
      - set_status: Open
      - set_field: {field: tier, value: Hot}
"""


def _tier_config(tmp_path: Path, state_url: str | None = None) -> Path:
    """The embedded Salesforce org with ``tier`` (Tier__c) mapped and settable."""
    config = write_config(tmp_path, rules=TIER_RULES, crms=("salesforce",), state_url=state_url)
    lag = "    lag_seconds: 0   # tests seed leads a moment before the cycle\n"
    text = config.read_text()
    assert lag in text
    text = text.replace(lag, lag + "    fields: {tier: Tier__c}\n").replace(
        "  interval: 60s\n", "  interval: 60s\n  settable_fields: [tier]\n", 1
    )
    config.write_text(text)
    return config


def _add_buyer(sf: Any) -> list[str]:
    """A lead the rule decides, last modified before the cycles: the cursor stays behind the
    second of syncd's write, so the pull after it reads the edit made in that second too
    (SystemModstamp has whole seconds)."""
    stamp = datetime.now(UTC) - timedelta(minutes=5)
    return sf.add_leads([sf_lead("Buyer", "buyer@acme.com", title="Buyer")], modstamp=stamp)


def _held_reasons(app: App, crm: str) -> dict[str, str]:
    return {h["lead_id"]: h["reason"] for h in status_report(app)["crms"][crm]["held"]}


def test_the_lead_is_held_and_its_stage_not_set_back_when_a_person_edits_the_stage_on_hubspot(
    tmp_path: Path,
) -> None:
    with running_app(stage_config(tmp_path)) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 1
        assert hs.contact(buyer)["lifecyclestage"] == "opportunity"

        hs.update_contact(buyer, {"lifecyclestage": "customer"})  # a rep, in the UI
        report = pipeline.run_cycle()
        again = pipeline.run_cycle()
        reasons = _held_reasons(app, "hubspot")
        [explained] = explain_lead(app, "buyer@acme.com")
        metric = app.metrics.registry.get_sample_value("syncd_rep_edits_held", {"crm": "hubspot"})

    assert (report.outcome, report.held, report.planned, report.written) == ("ok", 1, 0, 0)
    assert (again.held, again.written) == (1, 0)
    assert metric == 1
    assert hs.contact(buyer)["lifecyclestage"] == "customer"
    assert list(reasons) == [buyer]
    assert reasons[buyer].startswith("lifecycle_stage set to 'customer' by a person at ")
    assert "syncd leaves it alone until " in reasons[buyer]
    assert explained["verdict"] == f"held: {reasons[buyer]}"


def test_the_lead_is_held_when_a_person_edits_a_salesforce_field_a_rule_sets(
    tmp_path: Path, store_url: str
) -> None:
    with running_app(_tier_config(tmp_path, store_url)) as app:
        sf = app.embedded.salesforce
        [buyer] = _add_buyer(sf)
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.written) == ("ok", 1), first.message
        assert (sf.lead(buyer)["Status"], sf.lead(buyer)["Tier__c"]) == (
            "Working - Contacted",
            "Hot",
        )

        sf.update_lead(buyer, {"Tier__c": "Gold"})  # a rep: LastModifiedById is theirs
        report = pipeline.run_cycle()
        reasons = _held_reasons(app, "salesforce")

    assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
    assert sf.lead(buyer)["Tier__c"] == "Gold"
    assert reasons[buyer].startswith("tier set to 'Gold' by a person at ")


def test_no_hold_when_syncds_own_stage_write_whose_answer_was_lost_is_pulled_back(
    tmp_path: Path,
) -> None:
    config = stage_config(tmp_path)
    config.write_text(config.read_text() + "  connector: {retry: {attempts: 1}}\n")
    with running_app(config) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        # HubSpot applies the batch and the answer is lost: the mirror still says 'lead', the
        # next pull brings syncd's 'opportunity' (HubSpot does not say who changed it).
        hs.faults.drop_next(1, path="batch/update", method="POST", after_applied=True)
        assert pipeline.run_cycle().outcome == "failed"
        assert hs.contact(buyer)["lifecyclestage"] == "opportunity"

        report = pipeline.run_cycle()
        reasons = _held_reasons(app, "hubspot")
        audit = app.store.audit_of_lead(buyer, "hubspot")

    assert (report.outcome, report.held) == ("ok", 0), report.message
    assert reasons == {}
    assert [(a.after, a.outcome) for a in audit] == [("opportunity", AuditOutcome.ALREADY_IN_PLACE)]


def test_no_hold_when_salesforce_attributes_the_field_change_to_the_integration_user(
    tmp_path: Path,
) -> None:
    with running_app(_tier_config(tmp_path)) as app:
        sf = app.embedded.salesforce
        [buyer] = _add_buyer(sf)
        pipeline = app.pipelines["salesforce"]
        assert pipeline.run_cycle().written == 1
        # Made as the integration user (LastModifiedById), so syncd's, wherever it came from.
        sf.update_lead(buyer, {"Tier__c": "Gold"}, by=sf.integration_user_id)
        report = pipeline.run_cycle()

    assert (report.outcome, report.held, report.written) == ("ok", 0, 1), report.message
    assert sf.lead(buyer)["Tier__c"] == "Hot"


def test_the_rule_sets_the_stage_again_when_the_hold_of_a_persons_edit_ends(
    tmp_path: Path, store_url: str
) -> None:
    config = stage_config(tmp_path)
    hold = "  interval: 60s\n  hold_rep_edits_for: 1d\n"
    text = config.read_text().replace("  interval: 60s\n", hold)
    config.write_text(text.replace(f"sqlite:///{tmp_path / 'state.db'}", store_url))
    assert store_url in config.read_text()
    now = {"t": datetime.now(UTC)}
    with running_app(config, clock=lambda: now["t"]) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        real_now = now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # the contact is older
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 1
        # A rep moves the stage back in the UI (cleared, then set), stamped in real time.
        hs.update_contact(buyer, {"lifecyclestage": ""})
        hs.update_contact(buyer, {"lifecyclestage": "salesqualifiedlead"})
        now["t"] = real_now + timedelta(minutes=1)
        held = pipeline.run_cycle()
        now["t"] = real_now + timedelta(hours=23)
        still = pipeline.run_cycle()
        assert hs.contact(buyer)["lifecyclestage"] == "salesqualifiedlead"

        now["t"] = real_now + timedelta(days=1, minutes=5)
        after = pipeline.run_cycle()
        reasons = _held_reasons(app, "hubspot")
        audit = app.store.audit_of_lead(buyer, "hubspot")

    assert (held.held, held.written, still.held, still.written) == (1, 0, 1, 0)
    assert (after.outcome, after.held, after.written) == ("ok", 0, 1), after.message
    assert hs.contact(buyer)["lifecyclestage"] == "opportunity"
    assert reasons == {}
    assert [(a.before, a.after, a.rule_id) for a in audit][-1] == (
        "salesqualifiedlead",
        "opportunity",
        "to-sql",
    )


def test_syncds_waiting_change_is_withdrawn_naming_the_field_when_a_person_edits_the_stage(
    tmp_path: Path,
) -> None:
    config = stage_config(tmp_path)
    config.write_text(config.read_text() + "  connector: {retry: {attempts: 1}}\n")
    with running_app(config) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        hs.faults.fail_next(1, status=503, path="batch/update", method="POST")
        first = pipeline.run_cycle()
        assert first.written == 0 and app.store.pending_count("hubspot") == 1, first.message
        hs.update_contact(buyer, {"lifecyclestage": "customer"})
        report = pipeline.run_cycle()
        audit = app.store.audit_of_lead(buyer, "hubspot")

    assert (report.held, report.written) == (1, 0), report.message
    assert hs.contact(buyer)["lifecyclestage"] == "customer"
    assert [(a.after, a.outcome, a.message) for a in audit][-1] == (
        "opportunity",
        AuditOutcome.WITHDRAWN,
        "lifecycle_stage changed by a person (or the CRM) before syncd wrote it",
    )


def test_no_persons_edit_is_seen_when_the_mirror_lacks_the_field_or_the_pull_could_not_read_it() -> (
    None
):
    """A field mapped since the lead was last pulled (no key in the mirror's fields) and a value
    the pull quarantined (stored as empty) say nothing of who changed them; another value of a
    field the mirror has is a person's."""
    pulled = RemoteLead(
        "42",
        datetime.now(UTC),
        {"lifecycle_stage": "opportunity", "tier": None, "rating": "Cold"},
        modified_by_integration=False,
    )
    mirror = SimpleNamespace(fields={"tier": "Hot", "rating": "Warm"})
    watched = ["lifecycle_stage", "tier", "rating"]

    people_set = fields_a_person_set(pulled, pulled.fields, mirror, watched, {}, unusable=["tier"])

    assert people_set == ["rating"]


def test_a_revert_skips_the_status_naming_the_field_when_a_person_edited_a_field_a_rule_sets(
    tmp_path: Path,
) -> None:
    with running_app(_tier_config(tmp_path)) as app:
        sf = app.embedded.salesforce
        [buyer] = _add_buyer(sf)
        pipeline = app.pipelines["salesforce"]
        run_id = pipeline.run_cycle().run_id
        sf.update_lead(buyer, {"Tier__c": "Gold"})  # a rep
        assert pipeline.run_cycle().held == 1
        plan = plan_revert(app.store, pipeline, run_id, app.rules.current(), app.clock())

    assert plan.restores == []
    skipped = {s.field: s.reason for s in plan.skipped}
    assert skipped["status"].startswith("tier set by a person at ")
    assert skipped["tier"].startswith("changed since by a person or the CRM: now 'Gold'")


#: The stage is set only by a rule scoped to Salesforce leads.
SALESFORCE_STAGE_RULES = """\
version: 1
name: stages
mode: first_match
statuses:
  New: {}
rules:
  - id: sf-to-sql
    when: {all: [{field: crm, eq: salesforce}, {field: title, eq: Buyer}]}
    then:
      - set_field: {field: lifecycle_stage, value: SQL}
"""


def test_no_hold_when_a_person_edits_on_hubspot_a_field_only_rules_scoped_to_salesforce_set(
    tmp_path: Path,
) -> None:
    with running_app(stage_config(tmp_path, rules=SALESFORCE_STAGE_RULES)) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.written) == ("ok", 0), first.message

        hs.update_contact(buyer, {"lifecyclestage": "customer"})  # a rep, in the UI
        report = pipeline.run_cycle()
        reasons = _held_reasons(app, "hubspot")
        reads = [
            json.loads(e.body)
            for e in hs.journal.entries()
            if e.method == "POST" and e.path.endswith("/batch/read")
        ]

    assert (report.outcome, report.pulled, report.held) == ("ok", 1, 0), report.message
    assert reasons == {}
    # No rule sets the stage here: first sight reads the status's history alone.
    assert [r["propertiesWithHistory"] for r in reads] == [["hs_lead_status"]]


@pytest.mark.parametrize("contacts", [1, 60])  # 60: history read after the pull (50 a call)
def test_the_lead_is_held_on_first_sight_when_a_person_set_its_stage_before_syncd_saw_it(
    tmp_path: Path, contacts: int
) -> None:
    with running_app(stage_config(tmp_path)) as app:
        hs = app.embedded.hubspot
        others = [
            hs_contact(f"C{i}", f"c{i}@acme.com", title="CTO", lifecyclestage="lead")
            for i in range(contacts - 1)
        ]
        [buyer, *_] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead"), *others]
        )
        now = datetime.now(UTC)
        hs.update_contact(buyer, {"lifecyclestage": "marketingqualifiedlead"})
        hs.set_history(  # a rep moved the stage in the UI two days ago
            buyer,
            "lifecyclestage",
            [
                ("lead", now - timedelta(days=30), "IMPORT"),
                ("marketingqualifiedlead", now - timedelta(days=2), "CRM_UI"),
            ],
        )
        start = len(hs.journal.entries())
        report = app.pipelines["hubspot"].run_cycle()
        reads = [
            json.loads(e.body)
            for e in hs.journal.entries()[start:]
            if e.method == "POST" and e.path.endswith("/batch/read")
        ]
        reasons = _held_reasons(app, "hubspot")

    assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
    assert hs.contact(buyer)["lifecyclestage"] == "marketingqualifiedlead"
    assert reasons[buyer].startswith(
        "lifecycle_stage set to 'marketingqualifiedlead' by a person at "
    )
    # The stage's history rides in the status history reads: one call per 50 new contacts.
    assert len(reads) == -(-contacts // 50)
    assert all(
        sorted(r["propertiesWithHistory"]) == ["hs_lead_status", "lifecyclestage"] for r in reads
    )


def test_first_sight_names_the_newest_persons_edit_the_lead_still_has_when_status_and_stage_differ() -> (
    None
):
    """The status and the stage a person set, each still the lead's: the newer edit holds it
    (the stage here); a stage the mirror does not have, or one a workflow set, holds nothing."""
    t = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def entry(field: str, value: str, at: datetime, actor: Any = "person") -> HistoryEntry:
        return HistoryEntry("42", field, None, value, at, actor)

    status = entry("status", "OPEN", t)
    stage = entry("lifecycle_stage", "opportunity", t + timedelta(hours=1))
    watched = ["lifecycle_stage"]
    stage_fields = {"lifecycle_stage": "opportunity"}

    newest = first_sight_edit([status, stage], "OPEN", stage_fields, watched)
    no_stage_in_mirror = first_sight_edit([status, stage], "OPEN", {}, watched)
    by_workflow = first_sight_edit(
        [entry("lifecycle_stage", "opportunity", t, "automation")], "NEW", stage_fields, watched
    )

    assert newest == (stage, "lifecycle_stage")
    assert no_stage_in_mirror == (status, None)
    assert by_workflow is None


def _first_sight_of_a_tier_edit(
    tmp_path: Path,
    *,
    leads: int = 1,
    edited_ago: timedelta = timedelta(hours=1),
    tracked: frozenset[str] = frozenset({"Status", "Tier__c"}),
) -> dict[str, Any]:
    """A rep set the buyer's Tier__c ``edited_ago``, before syncd's first cycle, on an org that
    tracks the history of ``tracked``; ``leads`` new leads in all (above 200: the org's whole
    history is read once, syncd.history_staging). What the first cycle did."""
    with running_app(_tier_config(tmp_path)) as app:
        sf = app.embedded.salesforce
        sf.org.config.history_tracked_fields = tracked
        now = datetime.now(UTC)
        others = [sf_lead(f"L{i}", f"l{i}@acme.com", title="CTO") for i in range(leads - 1)]
        [buyer, *_] = sf.add_leads(
            [sf_lead("Buyer", "buyer@acme.com", title="Buyer"), *others],
            modstamp=now - timedelta(days=30),
        )
        sf.update_lead(buyer, {"Status": "Nurture"}, modstamp=now - timedelta(days=20))
        sf.update_lead(buyer, {"Tier__c": "Gold"}, modstamp=now - edited_ago)  # a rep
        start = len(sf.journal.entries())
        report = app.pipelines["salesforce"].run_cycle()
        history_reads = [
            e.soql for e in sf.journal.entries()[start:] if e.soql and "FROM LeadHistory" in e.soql
        ]
        with app.store.begin() as conn:
            ledger = app.store.history_of_leads(conn, "salesforce", [buyer])[buyer]
        return {
            "report": report,
            "lead": sf.lead(buyer),
            "reasons": _held_reasons(app, "salesforce"),
            "buyer": buyer,
            "history_reads": history_reads,
            "ledger": [(r.field, r.from_value, r.to_value, r.actor, r.source) for r in ledger],
        }


#: A rule that sets the status and a custom HubSpot property (budget: bant_budget) together.
BUDGET_RULES = """\
version: 1
name: budgets
mode: first_match
statuses: {New: {}, Open: {}}
rules:
  - id: buyer-budget
    when: {field: title, eq: Buyer}
    then:
      - set_status: Open
      - set_field: {field: budget, value: Approved}
"""


def budget_config(tmp_path: Path) -> Path:
    """The embedded HubSpot portal, its rules setting the status and ``budget``."""
    statuses = "  status_values: {New: NEW, Open: OPEN}\n"
    config = stage_config(tmp_path, rules=BUDGET_RULES, lifecycle=statuses)
    settable = "settable_fields: [lifecycle_stage]"
    assert settable in config.read_text()
    config.write_text(config.read_text().replace(settable, "settable_fields: [budget]"))
    return config


def _first_sight_of_a_budget_edit(
    tmp_path: Path,
    *,
    contacts: int = 1,
    edited_ago: timedelta | None = None,
    source: str | None = "CRM_UI",
) -> dict[str, Any]:
    """Before syncd's first cycle, ``source`` (a rep in the UI by default) changed the buyer's
    bant_budget from the value it was imported with a day ago (None: nobody did): just now, or
    ``edited_ago`` as its history says; ``contacts`` new contacts in all (above 50: their history is read after
    the pull). What the first cycle did."""
    tmp_path.mkdir(exist_ok=True)
    with running_app(budget_config(tmp_path)) as app:
        hs = app.embedded.hubspot
        now = datetime.now(UTC)
        imported = {"bant_budget": "Pending", "lastmodifieddate": now - timedelta(days=1)}
        others = [
            hs_contact(f"C{i}", f"c{i}@acme.com", title="CTO", **imported)
            for i in range(contacts - 1)
        ]
        [buyer, *_] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", **imported), *others]
        )
        if source is not None:
            hs.update_contact(buyer, {"bant_budget": "Board review"}, source=source)
        if source is not None and edited_ago is not None:
            hs.set_history(
                buyer,
                "bant_budget",
                [
                    ("Pending", now - timedelta(days=30), "IMPORT"),
                    ("Board review", now - edited_ago, source),
                ],
            )
        start = len(hs.journal.entries())
        report = app.pipelines["hubspot"].run_cycle()
        calls = hs.journal.entries()[start:]
        return {
            "report": report,
            "contact": hs.contact(buyer),
            "reasons": _held_reasons(app, "hubspot"),
            "buyer": buyer,
            "history_reads": [
                json.loads(e.body)["propertiesWithHistory"]
                for e in calls
                if e.method == "POST" and e.path.endswith("/batch/read")
            ],
            "updates": [
                e for e in calls if e.method == "POST" and e.path.endswith("/batch/update")
            ],
        }


@pytest.mark.parametrize("contacts", [1, 60])  # 60: history read after the pull (50 a call)
def test_the_contact_is_held_on_first_sight_when_a_person_set_a_hubspot_property_a_rule_sets_before(
    tmp_path: Path, contacts: int
) -> None:
    run = _first_sight_of_a_budget_edit(tmp_path, contacts=contacts)
    report, buyer = run["report"], run["buyer"]

    assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
    assert run["updates"] == []
    assert (run["contact"]["hs_lead_status"], run["contact"]["bant_budget"]) == (
        "NEW",
        "Board review",
    )
    assert run["reasons"][buyer].startswith("budget set to 'Board review' by a person at ")
    # bant_budget's history rides in the status history reads: one call per 50 new contacts.
    assert len(run["history_reads"]) == -(-contacts // 50)
    assert all(sorted(r) == ["bant_budget", "hs_lead_status"] for r in run["history_reads"])


def test_the_contact_is_written_on_first_sight_when_a_persons_hubspot_property_edit_is_older_than_the_hold(
    tmp_path: Path,
) -> None:
    run = _first_sight_of_a_budget_edit(tmp_path, edited_ago=timedelta(days=15))  # hold: 14 days

    assert (run["report"].outcome, run["report"].held) == ("ok", 0), run["report"].message
    assert run["report"].written == 1
    assert (run["contact"]["hs_lead_status"], run["contact"]["bant_budget"]) == (
        "OPEN",
        "Approved",
    )
    assert run["reasons"] == {}
    # Not for want of reading it: first sight's read and the race check's named bant_budget.
    assert [sorted(r) for r in run["history_reads"]] == [["bant_budget", "hs_lead_status"]] * 2


def test_nothing_is_held_on_first_sight_when_a_hubspot_workflow_set_a_property_a_rule_sets(
    tmp_path: Path,
) -> None:
    run = _first_sight_of_a_budget_edit(tmp_path / "workflow", source="AUTOMATION_PLATFORM")
    untouched = _first_sight_of_a_budget_edit(tmp_path / "untouched", source=None)
    report = run["report"]

    assert (report.outcome, report.held, report.written) == ("ok", 0, 1), report.message
    assert (run["contact"]["hs_lead_status"], run["contact"]["bant_budget"]) == (
        "OPEN",
        "Approved",
    )
    assert run["reasons"] == {}
    # First sight's history read and the race check's after the write, each naming both
    # properties: the calls of a contact nobody touched.
    assert [sorted(r) for r in run["history_reads"]] == [["bant_budget", "hs_lead_status"]] * 2
    assert untouched["history_reads"] == run["history_reads"]
    assert report.api_calls == untouched["report"].api_calls


# 250 new leads: more than one per-lead query covers, so the org's history is read as a stream.
@pytest.mark.parametrize("leads", [1, 250])
def test_the_lead_is_held_on_first_sight_when_a_person_set_a_salesforce_field_a_rule_sets_before(
    tmp_path: Path, leads: int
) -> None:
    run = _first_sight_of_a_tier_edit(tmp_path, leads=leads)
    report, buyer = run["report"], run["buyer"]

    assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
    assert (run["lead"]["Status"], run["lead"]["Tier__c"]) == ("Nurture", "Gold")
    assert run["reasons"][buyer].startswith("tier set to 'Gold' by a person at ")
    # Tier__c's rows ride in the one history query: per 200 new leads, or the org's at once.
    [read] = run["history_reads"]
    assert "Field IN ('Status', 'Tier__c')" in read
    assert (" LeadId IN (" in read) == (leads <= 200)


def test_the_lead_is_written_on_first_sight_when_a_persons_salesforce_field_edit_is_older_than_the_hold(
    tmp_path: Path,
) -> None:
    run = _first_sight_of_a_tier_edit(tmp_path, edited_ago=timedelta(days=15))  # hold: 14 days
    report = run["report"]

    assert (report.outcome, report.held, report.written) == ("ok", 0, 1), report.message
    assert (run["lead"]["Status"], run["lead"]["Tier__c"]) == ("Working - Contacted", "Hot")
    assert run["reasons"] == {}


def test_an_untracked_salesforce_field_holds_nothing_on_first_sight_and_costs_no_extra_call(
    tmp_path: Path,
) -> None:
    run = _first_sight_of_a_tier_edit(tmp_path, tracked=frozenset({"Status"}))
    report = run["report"]

    assert (report.outcome, report.held, report.written) == ("ok", 0, 1), report.message
    assert (run["lead"]["Status"], run["lead"]["Tier__c"]) == ("Working - Contacted", "Hot")
    # Asked for in the one history query all the same; the org keeps no row of it.
    [read] = run["history_reads"]
    assert "Field IN ('Status', 'Tier__c')" in read
    assert report.api_calls == 3  # the pull's page, that query, the write: nothing more


@pytest.mark.parametrize("leads", [1, 250])
def test_a_salesforce_fields_history_never_enters_the_status_ledger_when_first_sight_reads_it(
    tmp_path: Path, leads: int
) -> None:
    run = _first_sight_of_a_tier_edit(tmp_path, leads=leads)

    assert run["report"].held == 1
    assert run["ledger"] == [
        ("status", "Open - Not Contacted", "Nurture", "person", "backfill"),
    ]


def test_first_sight_finds_a_persons_edit_of_a_number_field_whatever_form_its_history_gives() -> (
    None
):
    """History entries keep values as text (LeadHistory answers a number field's as a number,
    ``7`` or ``7.0``): either for a number field whose mirror value is 7.0 is the value the
    lead still has; another number, or text, is not."""
    t = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    watched = ["lead_score"]

    def edit(value: str) -> Any:
        entry = HistoryEntry("42", "lead_score", None, value, t, "person")
        return first_sight_edit([entry], "Open", {"lead_score": 7.0}, watched)

    assert [edit(v) is not None for v in ("7", "7.0", "8", "seven")] == [True, True, False, False]


def test_a_persons_edit_at_the_same_instant_as_an_imports_transition_holds_whichever_comes_first() -> (
    None
):
    """The CRMs promise no order among transitions with one timestamp (Salesforce's
    CreatedDate is to the second): a person's edit that left the lead's value wins the tie."""
    t = datetime(2026, 12, 1, tzinfo=UTC)
    imported = HistoryEntry("1", "budget", None, "Pending", t, "automation")
    person = HistoryEntry("1", "budget", "Pending", "Board review", t, "person")
    found = [
        first_sight_edit(order, "Open", {"budget": "Board review"}, ["budget"])
        for order in ([imported, person], [person, imported])
    ]
    assert [f is not None and f[0] is person for f in found] == [True, True]
    later = HistoryEntry(
        "1", "budget", "Board review", "Pending", t + timedelta(seconds=1), "automation"
    )
    assert (
        first_sight_edit([imported, person, later], "Open", {"budget": "Pending"}, ["budget"])
        is None
    )


def test_the_hold_reason_names_a_number_field_as_the_person_typed_it_not_as_a_float(
    tmp_path: Path,
) -> None:
    """A number field mirrors as a float (75.0); the person typed 75, and the reason the plan,
    ``explain`` and ``syncd status`` give says so."""
    config = _tier_config(tmp_path)
    text = config.read_text()
    config.write_text(
        text.replace(
            "fields: {tier: Tier__c}",
            "fields: {tier: Tier__c, score: Lead_Score__c}\n    field_types: {score: number}",
        ).replace("settable_fields: [tier]", "settable_fields: [tier, score]")
    )
    rules = config.parent / "rules.yaml"
    rules.write_text(
        rules.read_text().replace(
            "value: Hot}", "value: Hot}\n      - set_field: {field: score, value: 50}"
        )
    )
    with running_app(config) as app:
        sf = app.embedded.salesforce
        [buyer] = _add_buyer(sf)
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.written) == ("ok", 1), first.message
        assert sf.lead(buyer)["Lead_Score__c"] == 50

        sf.update_lead(buyer, {"Lead_Score__c": 75})  # a rep
        report = pipeline.run_cycle()
        reasons = _held_reasons(app, "salesforce")

    assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
    assert reasons[buyer].startswith("score set to '75' by a person at ")
