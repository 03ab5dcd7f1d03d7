"""Salesforce writes through Composite: a cycle's status batches and newsletter adds go out
together, up to 5 collections per counted call, with the outbox's in-doubt rules intact."""

from __future__ import annotations

import math
import time
from pathlib import Path

from syncd.app import App
from syncd.state import AuditOutcome
from tests.daemon.harness import newsletter_id, running_app, sf_lead, write_config


def _outbox_states(app: App) -> dict[tuple[str, str], int]:
    with app.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state"
        ).all()
    return {(k, s): n for k, s, n in rows}


def _salesforce_config_in_batches_of_10(tmp_path: Path) -> Path:
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    batch_size: 10")
    )
    return config


def test_field_and_membership_changes_of_one_cycle_go_out_in_ceil_collections_over_5_calls(
    tmp_path: Path,
) -> None:
    config = _salesforce_config_in_batches_of_10(tmp_path)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(45)
        )
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
        assert report.written == 90  # 45 statuses, 45 newsletter joins
        writes = [e for e in sf.journal.writes() if "oauth" not in e.path]
        # 5 status collections of at most 10 and 1 newsletter collection: ceil(6 / 5) = 2
        # counted calls, 5 collections each at most; the race check (the query of people's
        # status edits, none here) rides in the free slot of the last call.
        collections = math.ceil(45 / 10) + 1
        assert len(writes) == math.ceil(collections / 5) == 2
        first, second = writes
        assert first.path.endswith("/composite") and second.path.endswith("/composite")
        assert [(s.method, s.records) for s in first.subrequests] == [("PATCH", 10)] * 4 + [
            ("PATCH", 5)
        ]
        assert [(s.method, s.records) for s in second.subrequests] == [("POST", 45), ("GET", 0)]
        assert "FROM LeadHistory" in (second.subrequests[-1].soql or "")
        standalone = [e for e in sf.journal.entries() if "FROM LeadHistory" in (e.soql or "")]
        assert len(standalone) == 1  # the first sight of the 45 new leads, not the writes
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)
        assert sf.campaign_members(newsletter_id(app, "salesforce")) == set(ids)
        assert _outbox_states(app) == {("field", "done"): 45, ("membership", "done"): 45}


def test_a_composite_dropped_after_apply_leaves_rows_in_doubt_and_the_next_cycle_settles_them_without_writing_twice(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    text = config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
    config.write_text(text)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(6)
        )
        pipeline = app.pipelines["salesforce"]
        # The status write must land after the seeded leads' second (whole-second stamps) for
        # the next pull to read it back.
        time.sleep(1.1)
        # The answer is lost after the org applied the whole Composite request.
        sf.faults.drop_next(1, path="/composite$", method="POST", after_applied=True)
        first = pipeline.run_cycle()
        assert first.outcome == "failed", first.message
        assert _outbox_states(app) == {("field", "sending"): 6, ("membership", "sending"): 6}
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)

        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        assert _outbox_states(app) == {("field", "done"): 6, ("membership", "done"): 6}
        for i in ids:
            # The pull saw the status in place; the join, idempotent, was settled by sending
            # the add again (Salesforce answers DUPLICATE_VALUE for a member: nothing written).
            assert [(a.field, a.outcome) for a in app.store.audit_of_lead(i)] == [
                ("status", AuditOutcome.ALREADY_IN_PLACE),
                ("newsletter:newsletter", AuditOutcome.APPLIED),
            ]
        # Each status reached the org once: the one Composite request the answer was lost of.
        patched = [
            r
            for e in sf.journal.writes()
            for s in e.subrequests
            if s.method == "PATCH" and s.status == 200
            for r in s.record_ids
        ]
        assert sorted(patched) == sorted(ids), "no status written twice"
        assert sf.campaign_members(newsletter_id(app, "salesforce")) == set(ids)
        assert sf.admin_state()["duplicate_memberships"] == []
        third = pipeline.run_cycle()
        assert (third.planned, third.written) == (0, 0)


def test_a_call_carrying_a_leads_status_write_and_newsletter_add_leaves_both_on_its_mirror_row(
    tmp_path: Path,
) -> None:
    # One call carries the lead's status write and its newsletter add in different
    # collections; their answers are recorded together, the lead's row written once.
    config = _salesforce_config_in_batches_of_10(tmp_path)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(12)
        )
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
        assert report.written == 24
        (call,) = [e for e in sf.journal.writes() if "oauth" not in e.path]
        assert [s.method for s in call.subrequests] == ["PATCH", "PATCH", "POST", "GET"]
        for i in ids:
            row = app.store.lead("salesforce", i)
            assert row is not None
            assert (row.status, row.written_status) == ("Nurture", "Nurture")
            assert row.fields["status"] == "Nurture"
            assert row.newsletters == ["newsletter"]
            written = [
                h for h in app.store.history_of_lead("salesforce", i) if h.source == "written"
            ]
            assert [h.to_value for h in written] == ["Nurture"]
            assert [(a.field, a.outcome) for a in app.store.audit_of_lead(i)] == [
                ("status", AuditOutcome.APPLIED),
                ("newsletter:newsletter", AuditOutcome.APPLIED),
            ]
