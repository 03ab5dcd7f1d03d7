"""The race check of a Salesforce Composite write call rides in the call: the LeadHistory query
of its status writes is the call's last subrequest, so it costs no counted call of its own; a
call carrying status writes packs 4 collections and the query, one without them 5."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

from connectors.testing.kit import JournalEntry
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


def test_a_persons_edit_while_a_composite_write_is_in_flight_is_restored_and_held_the_same_cycle_at_no_extra_call(
    tmp_path: Path,
) -> None:
    with running_app(_config(tmp_path)) as app:
        emu: Any = app.embedded.salesforce
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200) for i in range(45)
        )
        raced, person = ids[0], "Working - Contacted"
        pipeline = app.pipelines["salesforce"]
        _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))
        calls_before, start = pipeline.connector.stats.calls, len(emu.journal.entries())
        first = pipeline.run_cycle()
        journal = [e for e in emu.journal.entries()[start:] if "oauth" not in e.path]
        calls = pipeline.connector.stats.calls - calls_before
        raced_now = emu.lead(raced)["Status"]
        others = {emu.lead(i)["Status"] for i in ids[1:]}
        mirror = app.store.lead("salesforce", raced)
        audit = [(a.before, a.after, a.outcome, a.rule_id) for a in app.store.audit_of_lead(raced)]
        second = pipeline.run_cycle()

    assert first.outcome == "ok", first.message
    # Restored and held on the same cycle, both changes audited.
    assert raced_now == person and others == {"Nurture"}
    assert mirror is not None and mirror.rep_edit_status == person
    assert audit == [
        ("Open - Not Contacted", "Nurture", AuditOutcome.APPLIED, "stale-nurture"),
        (person, "Nurture", AuditOutcome.WITHDRAWN, "stale-nurture"),
        ("Nurture", person, AuditOutcome.APPLIED, "restore-rep-edit"),
    ]
    assert (second.held, second.written) == (1, 0)
    # The cycle's writes: 5 status collections in ceil(5 / 4) = 2 Composite calls, each ending
    # with the LeadHistory query of its leads; the one restore is a plain Collections call.
    collections = math.ceil(45 / BATCH)
    composite = [e for e in journal if e.path.endswith("/composite")]
    assert len(composite) == math.ceil(collections / 4) == 2
    assert [[s.method for s in e.subrequests] for e in composite] == [
        ["PATCH"] * 4 + ["GET"],
        ["PATCH", "GET"],
    ]
    assert all(_history_queries(e.subrequests[-1:]) for e in composite)
    restore = [e for e in journal if e.is_write and not e.path.endswith("/composite")]
    assert [(e.method, e.records) for e in restore] == [("PATCH", 1)]
    # One standalone history read: the first sight of the 45 new leads, none for the writes.
    assert len(_history_queries(journal)) == 1
    reads = [e for e in journal if not e.is_write]
    assert calls == len(reads) + len(composite) + len(restore)


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
                for i in range(45)
            )
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
                report = pipeline.run_cycle()
            composite = [e for e in emu.journal.entries() if e.path.endswith("/composite")][-2:]
            assert report.outcome == "ok", report.message
            assert report.written == 45
            assert {emu.lead(i)["Status"] for i in ids} == {"Nurture"}
            # Two calls refused their history query (400 INVALID_TYPE); the writes stand.
            assert [e.subrequests[-1].status for e in composite] == [400, 400]
            warnings.append(
                [r.getMessage() for r in caplog.records if RACES_UNSEEN in r.getMessage()]
            )

    assert [len(w) for w in warnings] == [1, 1]
    assert "INVALID_TYPE" in warnings[0][0] and "Lead field history" in warnings[0][0]
