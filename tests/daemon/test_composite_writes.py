"""Salesforce writes through Composite: a cycle's status batches and newsletter adds go out
together, up to 5 collections per counted call, with the outbox's in-doubt rules intact."""

from __future__ import annotations

import math
import time
from pathlib import Path

from syncd.state import AuditOutcome
from tests.daemon.harness import (
    newsletter_id,
    outbox_states,
    running_app,
    sf_lead,
    sf_statuses_patched,
    write_config,
)


def _salesforce_config_in_batches_of_10(tmp_path: Path) -> Path:
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    batch_size: 10")
    )
    return config


def _salesforce_config_without_retries(tmp_path: Path) -> Path:
    """One attempt a request: a fault reaches the outbox instead of the connector's retries."""
    config = write_config(tmp_path, crms=("salesforce",))
    text = config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
    config.write_text(text)
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
        assert outbox_states(app) == {("field", "done"): 45, ("membership", "done"): 45}


def test_a_composite_dropped_after_apply_leaves_rows_in_doubt_and_the_next_cycle_settles_them_without_writing_twice(
    tmp_path: Path,
) -> None:
    config = _salesforce_config_without_retries(tmp_path)
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
        # Scripted for the status collection, the drop hits the Composite write carrying it
        # (not the pull's chained query pages).
        sf.faults.drop_next(1, path="composite/sobjects", method="PATCH", after_applied=True)
        first = pipeline.run_cycle()
        assert first.outcome == "failed", first.message
        assert outbox_states(app) == {("field", "sending"): 6, ("membership", "sending"): 6}
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)

        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        assert outbox_states(app) == {("field", "done"): 6, ("membership", "done"): 6}
        for i in ids:
            # The pull saw the status in place; the join, idempotent, was settled by sending
            # the add again (Salesforce answers DUPLICATE_VALUE for a member: nothing written).
            assert [(a.field, a.outcome) for a in app.store.audit_of_lead(i)] == [
                ("status", AuditOutcome.ALREADY_IN_PLACE),
                ("newsletter:newsletter", AuditOutcome.APPLIED),
            ]
        # Each status reached the org once: the one Composite request the answer was lost of.
        patched = sf_statuses_patched(app)
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


def test_a_newsletter_add_sent_without_an_answer_then_refused_and_withdrawn_is_audited_as_may_have_landed(
    tmp_path: Path,
) -> None:
    # Found by the chaos soak: the Composite call carrying a lead's status write and its
    # newsletter add is applied and its answer lost; the next cycle finds the status in place,
    # re-sends the add and is refused (retriable); a person then changes the status. The add
    # is withdrawn -- and it is in the campaign, so its audit row must say it may have landed.
    # Two leads found later go through the same refusal and override without ever being in
    # doubt: theirs must not say so.
    config = _salesforce_config_without_retries(tmp_path)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        campaign = newsletter_id(app, "salesforce")
        in_doubt = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(3)
        )
        pipeline = app.pipelines["salesforce"]
        time.sleep(1.1)  # whole-second stamps: the write must be newer than the seed
        # Scripted for the status collection, the drop hits the Composite write carrying it
        # (not the pull's chained query pages).
        sf.faults.drop_next(1, path="composite/sobjects", method="PATCH", after_applied=True)
        assert pipeline.run_cycle().outcome == "failed"
        assert sf.campaign_members(campaign) == set(in_doubt)

        # New leads give the next call a status collection, so the adds ride in a Composite
        # request whose membership subrequest is refused on its own (a retriable 503).
        later = sf.add_leads(
            sf_lead(f"M{i}", f"m{i}@beta{i}.com", title="Analyst", activity_days=200)
            for i in range(2)
        )
        sf.faults.fail_next(1, status=503, path="composite/sobjects", method="POST")
        second = pipeline.run_cycle()
        assert second.retrying == 5, second.message
        assert outbox_states(app) == {("field", "done"): 5, ("membership", "pending"): 5}

        time.sleep(1.1)  # the person's edits are newer than syncd's writes
        for i in in_doubt + later:
            sf.update_lead(i, {"Status": "Working - Contacted"}, by=sf.rep_user_id)
        third = pipeline.run_cycle()
        assert third.outcome == "ok", third.message
        assert outbox_states(app) == {("field", "done"): 5, ("membership", "withdrawn"): 5}
        assert sf.campaign_members(campaign) == set(in_doubt)
        for i in in_doubt + later:
            (join,) = [a for a in app.store.audit_of_lead(i) if a.field.startswith("newsletter:")]
            message = join.message or ""
            assert join.outcome == AuditOutcome.WITHDRAWN and "person" in message
            if i in in_doubt:
                assert "unconfirmed" in message and "may have landed" in message, message
            else:
                assert "unconfirmed" not in message and "may have landed" not in message
        assert sf.admin_state()["duplicate_memberships"] == []
