"""The race check of a cycle's Salesforce Composite writes costs no counted call and no
collection's slot: the query of people's status edits rides in a free slot of the cycle's last
write call, or, when that call is full, beside the next pull's first page."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.testing.kit import JournalEntry
from syncd.app import App
from syncd.settings import load_settings
from syncd.state import AuditOutcome
from tests.daemon.harness import newsletter_id, running_app, sf_lead, write_config
from tests.daemon.test_field_edit_holds import _held_reasons, _tier_config
from tests.daemon.test_ledger import STALE_RULES
from tests.daemon.test_ledger_races import _edit_in_flight

BATCH = 10  # salesforce.batch_size: small collections keep the tests fast
RACES_UNSEEN = "edits made while a batch was in flight go unseen"


def _config(tmp_path: Path, rules: str = STALE_RULES) -> Path:
    config = write_config(tmp_path, rules=rules, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", f"lag_seconds: 0\n    batch_size: {BATCH}")
    )
    return config


def _history_queries(entries: list[JournalEntry]) -> list[JournalEntry]:
    return [e for e in entries if "FROM LeadHistory" in (e.soql or "")]


def _cycle_with_edit_in_flight(app: Any, leads: int) -> dict[str, Any]:
    """Two cycles over ``leads`` new stale leads; a person edits the first one while the first
    cycle's writes are in flight."""
    emu: Any = app.embedded.salesforce
    ids = emu.add_leads(
        sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200) for i in range(leads)
    )
    raced, person = ids[0], "Working - Contacted"
    pipeline = app.pipelines["salesforce"]
    _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))
    out: dict[str, Any] = {"person": person, "raced": raced}
    for n in (1, 2):
        calls_before, start = pipeline.connector.stats.calls, len(emu.journal.entries())
        out[f"report{n}"] = pipeline.run_cycle()
        out[f"journal{n}"] = [e for e in emu.journal.entries()[start:] if "oauth" not in e.path]
        out[f"calls{n}"] = pipeline.connector.stats.calls - calls_before
        out[f"status{n}"] = emu.lead(raced)["Status"]
    out["others"] = {emu.lead(i)["Status"] for i in ids[1:]}
    out["mirror"] = app.store.lead("salesforce", raced)
    out["audit"] = [
        (a.before, a.after, a.outcome, a.rule_id) for a in app.store.audit_of_lead(raced)
    ]
    return out


def _restored_and_audited(out: dict[str, Any]) -> None:
    person = out["person"]
    assert out["others"] == {"Nurture"}
    assert out["mirror"] is not None and out["mirror"].rep_edit_status == person
    assert out["audit"] == [
        ("Open - Not Contacted", "Nurture", AuditOutcome.APPLIED, "stale-nurture"),
        (person, "Nurture", AuditOutcome.WITHDRAWN, "stale-nurture"),
        ("Nurture", person, AuditOutcome.APPLIED, "restore-rep-edit"),
    ]


def test_a_persons_edit_while_a_composite_write_is_in_flight_is_restored_and_held_the_same_cycle_when_the_last_call_has_a_free_slot(
    tmp_path: Path,
) -> None:
    with running_app(_config(tmp_path)) as app:
        out = _cycle_with_edit_in_flight(app, 4 * BATCH)
    first, journal = out["report1"], out["journal1"]
    assert first.outcome == "ok", first.message
    # Restored and held on the same cycle, both changes audited.
    assert out["status1"] == out["person"]
    _restored_and_audited(out)
    assert (out["report2"].held, out["report2"].written) == (1, 0)
    # 4 status collections and the query of people's edits in one Composite call; then the
    # raced lead's own history (a person edited it) and the one restore, a Collections call.
    composite = [e for e in journal if e.path.endswith("/composite") and e.is_write]
    assert [[s.method for s in e.subrequests] for e in composite] == [["PATCH"] * 4 + ["GET"]]
    assert "CreatedById !=" in (composite[0].subrequests[-1].soql or "")
    restore = [e for e in journal if e.is_write and not e.path.endswith("/composite")]
    assert [(e.method, e.records) for e in restore] == [("PATCH", 1)]
    # Standalone history reads: the first sight of the new leads, and the raced lead's history.
    assert len(_history_queries(journal)) == 2
    reads = [e for e in journal if not e.is_write]
    assert out["calls1"] == len(reads) + len(composite) + len(restore)


def test_a_persons_edit_while_a_full_composite_write_is_in_flight_is_restored_the_next_cycle_beside_its_first_pull_page_at_no_extra_call(
    tmp_path: Path,
) -> None:
    with running_app(_config(tmp_path)) as app:
        out = _cycle_with_edit_in_flight(app, 5 * BATCH)
    first, second = out["report1"], out["report2"]
    assert first.outcome == "ok" and second.outcome == "ok", (first.message, second.message)
    # The first cycle's one call is full (5 collections): no slot for the check, none spent.
    composite = [e for e in out["journal1"] if e.path.endswith("/composite") and e.is_write]
    assert [[s.method for s in e.subrequests] for e in composite] == [["PATCH"] * 5]
    assert out["status1"] == "Nurture"
    assert len(_history_queries(out["journal1"])) == 1  # first sight only
    # The next cycle's first pull call carries the query of people's edits in one of its 5
    # query slots, beside 4 chained pages.
    pull = [e for e in out["journal2"] if e.path.endswith("/composite")]
    assert [s.method for s in pull[0].subrequests] == ["GET"] * 5
    assert "FROM Lead " in (pull[0].subrequests[0].soql or "")
    assert "CreatedById !=" in (pull[0].subrequests[-1].soql or "")
    assert out["status2"] == out["person"]
    _restored_and_audited(out)
    assert second.held == 1


NEWSLETTER_ONLY = STALE_RULES.replace(
    "      - set_status: Nurture\n",
    "      - set_status: Nurture\n      - add_to_newsletter: newsletter\n",
)


def test_a_cycle_of_only_newsletter_adds_still_packs_5_collections_a_call(tmp_path: Path) -> None:
    with running_app(_config(tmp_path, NEWSLETTER_ONLY)) as app:
        emu: Any = app.embedded.salesforce
        # Already in Nurture: the rule only adds them to the newsletter (200 a collection).
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", status="Nurture", activity_days=200)
            for i in range(1000)
        )
        start = len(emu.journal.entries())
        report = app.pipelines["salesforce"].run_cycle()
        writes = [e for e in emu.journal.entries()[start:] if e.is_write]
        members = emu.campaign_members(newsletter_id(app, "salesforce"))

    assert report.outcome == "ok", report.message
    assert report.written == 1000
    assert [[(s.method, s.records) for s in e.subrequests] for e in writes] == [[("POST", 200)] * 5]
    assert members == set(ids)


def test_without_lead_history_access_composite_writes_land_and_one_warning_a_cycle_says_races_go_unseen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_app(_config(tmp_path)) as app:
        emu: Any = app.embedded.salesforce
        emu.org.config.lead_history_visible = False
        pipeline = app.pipelines["salesforce"]
        warnings = []
        for cycle in range(2):
            ids = emu.add_leads(
                sf_lead(
                    f"C{cycle}L{i}", f"c{cycle}l{i}@acme{i}.com", title="CTO", activity_days=200
                )
                for i in range(4 * BATCH)
            )
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
                report = pipeline.run_cycle()
            composite = [e for e in emu.journal.entries() if e.path.endswith("/composite")][-1:]
            assert report.outcome == "ok", report.message
            assert report.written == 4 * BATCH
            assert {emu.lead(i)["Status"] for i in ids} == {"Nurture"}
            # The call refused its query of people's edits (400 INVALID_TYPE); the writes stand.
            assert [e.subrequests[-1].status for e in composite] == [400]
            warnings.append(
                [r.getMessage() for r in caplog.records if RACES_UNSEEN in r.getMessage()]
            )

    assert [len(w) for w in warnings] == [1, 1]
    assert "INVALID_TYPE" in warnings[0][0] and "Lead field history" in warnings[0][0]


@pytest.mark.parametrize("stored_as", ["a record per call", "one record (earlier versions)"])
def test_a_race_check_over_several_calls_is_stored_a_call_at_a_time_and_read_after_a_restart(
    tmp_path: Path, stored_as: str
) -> None:
    """Each write call stores its own status writes for the check: the record does not grow
    with the calls before it (rewriting every awaiting id at each call was quadratic in a
    cycle's calls). A restarted process reads all the parts, or the single record an earlier
    version left, restores the race, and deletes what it read."""
    config = _config(tmp_path)
    key = "race_check:salesforce"
    with running_app(config) as app:
        emu: Any = app.embedded.salesforce
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200)
            for i in range(15 * BATCH)  # 15 collections: 3 full calls, no free slot
        )
        raced, person = ids[0], "Working - Contacted"
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))
        first = pipeline.run_cycle()
        parts = app.store.meta_with_prefix(f"{key}:")
        if stored_as != "a record per call":  # as syncd before parts left it
            merged = [i for part in parts.values() for i in part["ids"]]
            since = min(part["since"] for part in parts.values())
            with app.store.begin() as conn:
                app.store.delete_meta(conn, prefix=f"{key}:")
            app.store.set_meta(key, {"since": since, "ids": merged})
        restarted = App.build(load_settings(config), connectors=app.connectors)
        try:
            second = restarted.pipelines["salesforce"].run_cycle()
        finally:
            restarted.close()
        left = app.store.meta_with_prefix(key)
        status, audit = emu.lead(raced)["Status"], app.store.audit_of_lead(raced)

    stored = [i for part in parts.values() for i in part["ids"]]
    assert first.outcome == "ok" and second.outcome == "ok", (first.message, second.message)
    assert first.written == 15 * BATCH
    assert len(parts) == 3  # one record a call
    assert sorted(stored) == sorted(set(stored)) and len(stored) == 15 * BATCH
    assert status == person
    assert [(a.before, a.after, a.outcome) for a in audit][-2:] == [
        (person, "Nurture", AuditOutcome.WITHDRAWN),
        ("Nurture", person, AuditOutcome.APPLIED),
    ]
    assert left == {}  # the parts and the earlier record alike


def test_a_race_check_left_for_the_next_pull_is_read_by_a_restarted_process(
    tmp_path: Path,
) -> None:
    """The check awaiting the next pull is kept in the state store with the rows' departure,
    so a process that stops between the two cycles leaves it to the next process."""
    config = _config(tmp_path)
    with running_app(config) as app:
        emu: Any = app.embedded.salesforce
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200)
            for i in range(5 * BATCH)
        )
        raced, person = ids[0], "Working - Contacted"
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))
        first = pipeline.run_cycle()
        overwritten = emu.lead(raced)["Status"]
        # A new process on the same state store and CRM: nothing of the first in memory.
        restarted = App.build(load_settings(config), connectors=app.connectors)
        try:
            start = len(emu.journal.entries())
            second = restarted.pipelines["salesforce"].run_cycle()
            pull = [e for e in emu.journal.entries()[start:] if e.path.endswith("/composite")]
        finally:
            restarted.close()
        status, audit = emu.lead(raced)["Status"], app.store.audit_of_lead(raced)

    assert first.outcome == "ok" and second.outcome == "ok", (first.message, second.message)
    assert overwritten == "Nurture"  # the full call had no slot: the check waits
    assert "CreatedById !=" in (pull[0].subrequests[-1].soql or "")
    assert status == person
    assert [(a.before, a.after, a.outcome) for a in audit][-2:] == [
        (person, "Nurture", AuditOutcome.WITHDRAWN),
        ("Nurture", person, AuditOutcome.APPLIED),
    ]
    assert second.held == 1


def _tier_race(
    tmp_path: Path, edit: dict[str, str | None], tracked: frozenset[str], **lead: Any
) -> dict[str, Any]:
    """Two cycles over two new buyers (with ``lead``'s fields; the rule sets their status and
    ``tier``, Tier__c) on an org tracking the history of ``tracked``; a person makes ``edit``
    to the first while the first cycle's write is in flight."""
    tmp_path.mkdir(exist_ok=True)
    with running_app(_tier_config(tmp_path)) as app:
        emu: Any = app.embedded.salesforce
        emu.org.config.history_tracked_fields = tracked
        raced, calm = emu.add_leads(
            sf_lead(name, f"{name}@acme.com", title="Buyer", **lead) for name in ("raced", "calm")
        )
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, edit))
        start, calls = len(emu.journal.entries()), pipeline.connector.stats.calls
        first = pipeline.run_cycle()
        journal = [e for e in emu.journal.entries()[start:] if "oauth" not in e.path]
        out: dict[str, Any] = {"calls": pipeline.connector.stats.calls - calls}
        out["second"] = pipeline.run_cycle()
        out["first"], out["journal"] = first, journal
        out["raced"], out["calm"] = emu.lead(raced), emu.lead(calm)
        out["mirror"] = app.store.lead("salesforce", raced)
        out["reasons"] = _held_reasons(app, "salesforce")
        out["audit"] = [
            (a.before, a.after, a.outcome, a.rule_id)
            for a in app.store.audit_of_lead(raced)
            if "Hot" in (a.before, a.after)
        ]
        out["withdrawn"] = next(
            (a.message or "" for a in app.store.audit_of_lead(raced) if a.outcome == "withdrawn"),
            None,
        )
        out["id"] = raced
    return out


def _cost(journal: list[JournalEntry]) -> list[Any]:
    """The shape of a cycle's calls: each Composite call's subrequest methods, the other
    writes' record counts, and the standalone LeadHistory queries."""
    composite = [
        [s.method for s in e.subrequests]
        for e in journal
        if e.path.endswith("/composite") and e.is_write
    ]
    writes = [(e.method, e.records) for e in journal if e.is_write and not e.subrequests]
    return [composite, writes, len(_history_queries(journal))]


def test_a_persons_edit_of_a_tracked_field_a_rule_sets_while_the_write_is_in_flight_is_restored_held_and_audited_at_no_extra_call(
    tmp_path: Path,
) -> None:
    tracked = frozenset({"Status", "Tier__c"})
    by_status = _tier_race(tmp_path / "status", {"Status": "Nurture"}, tracked)
    out = _tier_race(tmp_path / "tier", {"Tier__c": "Gold"}, tracked)
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    # The person's value stands in the CRM; the other buyer keeps syncd's.
    assert out["raced"]["Tier__c"] == "Gold" and out["calm"]["Tier__c"] == "Hot"
    # Held, with the field named, on the cycle after.
    assert (second.held, second.written) == (1, 0)
    assert out["mirror"] is not None and out["mirror"].rep_edit_field == "tier"
    assert out["reasons"][raced].startswith("tier set to 'Gold' by a person at ")
    # Both audited: syncd's write withdrawn over the person's value, then the write back.
    assert out["audit"] == [
        (None, "Hot", AuditOutcome.APPLIED, "buyer-hot"),
        ("Gold", "Hot", AuditOutcome.WITHDRAWN, "buyer-hot"),
        ("Hot", "Gold", AuditOutcome.APPLIED, "restore-rep-edit"),
    ]
    # Tier__c's rows ride in the query the write call carries: the same calls as a race over
    # the status (the write call with its query, the raced lead's history, one write back).
    [write] = [e for e in out["journal"] if e.path.endswith("/composite") and e.is_write]
    riding = write.subrequests[-1]
    assert "Field IN ('Status', 'Tier__c')" in (riding.soql or "")
    assert _cost(out["journal"]) == _cost(by_status["journal"])
    assert _cost(out["journal"])[:2] == [[["PATCH", "GET"]], [("PATCH", 1)]]
    assert out["calls"] == by_status["calls"]
    assert by_status["raced"]["Status"] == "Nurture"  # the comparison is a race too


def test_a_persons_edit_of_an_untracked_field_while_the_write_is_in_flight_goes_unseen_at_no_extra_call(
    tmp_path: Path,
) -> None:
    """Salesforce keeps no history of a field without field history tracking: the race
    check finds nothing to restore (README, "Rep edits win")."""
    out = _tier_race(tmp_path, {"Tier__c": "Gold"}, frozenset({"Status"}))
    first, second = out["first"], out["second"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert out["raced"]["Tier__c"] == "Hot"  # overwritten: nothing in the CRM says otherwise
    assert second.held == 0 and out["reasons"] == {}
    # The write call and its query of people's edits, first sight's history query: no more.
    assert _cost(out["journal"]) == [[["PATCH", "GET"]], [], 1]


def test_a_persons_edit_of_the_status_and_a_field_in_flight_are_both_written_back_in_one_record(
    tmp_path: Path,
) -> None:
    tracked = frozenset({"Status", "Tier__c"})
    out = _tier_race(tmp_path, {"Status": "Nurture", "Tier__c": "Gold"}, tracked)
    first, second = out["first"], out["second"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert (out["raced"]["Status"], out["raced"]["Tier__c"]) == ("Nurture", "Gold")
    assert (second.held, second.written) == (1, 0)
    # The lead's two write backs are one record of one call.
    assert _cost(out["journal"])[:2] == [[["PATCH", "GET"]], [("PATCH", 1)]]


def test_a_field_a_person_cleared_while_the_write_was_in_flight_is_cleared_again_and_the_lead_held(
    tmp_path: Path,
) -> None:
    """A clearing is a LeadHistory row with a null NewValue: written back as null (a PATCH
    body's null clears a field), the lead held with the field named."""
    tracked = frozenset({"Status", "Tier__c"})
    out = _tier_race(tmp_path, {"Tier__c": None}, tracked, Tier__c="Warm")
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert out["raced"]["Tier__c"] is None and out["calm"]["Tier__c"] == "Hot"
    assert (second.held, second.written, second.failed) == (1, 0, 0)
    assert out["mirror"] is not None and out["mirror"].fields["tier"] is None
    assert out["mirror"].rep_edit_field == "tier"
    assert out["reasons"][raced].startswith("tier cleared by a person at ")
    assert out["withdrawn"].startswith("overwrote a person's clearing of tier (user ")
    assert "in flight; cleared again and the lead left alone until " in out["withdrawn"]
    assert out["audit"] == [
        ("Warm", "Hot", AuditOutcome.APPLIED, "buyer-hot"),
        (None, "Hot", AuditOutcome.WITHDRAWN, "buyer-hot"),
        ("Hot", None, AuditOutcome.APPLIED, "restore-rep-edit"),
    ]


def test_a_persons_field_edit_while_a_full_composite_write_is_in_flight_is_restored_the_next_cycle_beside_its_first_pull_page(
    tmp_path: Path,
) -> None:
    config = _tier_config(tmp_path)
    config.write_text(
        config.read_text().replace("lag_seconds: 0", f"lag_seconds: 0\n    batch_size: {BATCH}")
    )
    with running_app(config) as app:
        emu: Any = app.embedded.salesforce
        emu.org.config.history_tracked_fields = frozenset({"Status", "Tier__c"})
        # 5 collections of buyers: the first cycle's one write call has no slot for the check.
        ids = emu.add_leads(
            sf_lead(f"B{i}", f"b{i}@acme.com", title="Buyer") for i in range(5 * BATCH)
        )
        raced = ids[0]
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Tier__c": "Gold"}))
        first = pipeline.run_cycle()
        overwritten = emu.lead(raced)["Tier__c"]
        start = len(emu.journal.entries())
        second = pipeline.run_cycle()
        pull = [e for e in emu.journal.entries()[start:] if e.path.endswith("/composite")]
        reasons = _held_reasons(app, "salesforce")
        restored = emu.lead(raced)["Tier__c"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert overwritten == "Hot"  # the check waited for the next pull
    query = pull[0].subrequests[-1].soql or ""
    assert "CreatedById !=" in query and "Field IN ('Status', 'Tier__c')" in query
    assert restored == "Gold"
    assert reasons[raced].startswith("tier set to 'Gold' by a person at ")


#: A rule that decides Lead_Score__c (a Number field) and the status together.
SCORE_RULES = """\
version: 1
name: scores
mode: first_match
statuses: {New: {}, Open: {}, Converted: {}}
rules:
  - id: buyer-score
    when: {field: title, eq: Buyer}
    then:
      - set_status: Open
      - set_field: {field: score, value: 50}
"""


def _score_race(tmp_path: Path, person: float) -> dict[str, Any]:
    """Two cycles over a new buyer whose ``score`` (Lead_Score__c, a tracked Number field)
    the rule sets to 50; a person sets it to ``person`` while the first cycle's write is in
    flight."""
    config = _tier_config(tmp_path)
    text = config.read_text().replace(
        "fields: {tier: Tier__c}\n",
        "fields: {score: Lead_Score__c}\n    field_types: {score: number}\n",
    )
    text = text.replace("settable_fields: [tier]", "settable_fields: [score]")
    config.write_text(text)
    (tmp_path / "rules.yaml").write_text(SCORE_RULES)
    with running_app(config) as app:
        emu: Any = app.embedded.salesforce
        emu.org.config.history_tracked_fields = frozenset({"Status", "Lead_Score__c"})
        [raced] = emu.add_leads([sf_lead("raced", "raced@acme.com", title="Buyer")])
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Lead_Score__c": person}))
        out: dict[str, Any] = {"first": pipeline.run_cycle(), "second": pipeline.run_cycle()}
        out["raced"] = emu.lead(raced)
        out["mirror"] = app.store.lead("salesforce", raced)
        out["reasons"] = _held_reasons(app, "salesforce")
        out["audit"] = [
            (a.before, a.after, a.outcome, a.rule_id)
            for a in app.store.audit_of_lead(raced)
            if a.field == "score"
        ]
        out["id"] = raced
    return out


def test_a_persons_number_field_edit_in_flight_is_written_back_as_a_number_and_the_lead_held(
    tmp_path: Path,
) -> None:
    """LeadHistory's NewValue of a Number field is a number (anyType); syncd keeps history as
    text, and writes the value back typed as the field is: Salesforce refuses text there."""
    out = _score_race(tmp_path, 75)
    first, second, raced = out["first"], out["second"], out["id"]

    assert (first.outcome, second.outcome) == ("ok", "ok"), (first.message, second.message)
    assert out["raced"]["Lead_Score__c"] == 75.0
    assert (second.held, second.written, second.failed) == (1, 0, 0)
    assert out["mirror"] is not None and out["mirror"].fields["score"] == 75.0
    assert out["mirror"].rep_edit_field == "score"
    assert out["reasons"][raced].startswith("score set to '75.0' by a person at ")
    assert out["audit"] == [
        (None, 50, AuditOutcome.APPLIED, "buyer-score"),
        (75.0, 50, AuditOutcome.WITHDRAWN, "buyer-score"),
        (50, 75.0, AuditOutcome.APPLIED, "restore-rep-edit"),
    ]
