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
