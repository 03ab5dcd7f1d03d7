"""Decisions are delivered whole: a lead moved to Nurture also joins the newsletter, even when the
process stops, is killed or meets a 503 between the status batch and the membership batch.

The rule here only fires for New/Open leads, so after syncd's own status write the rules no longer
want the newsletter join: exactly the case where the join used to be superseded and lost.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.testing.salesforce import SalesforceEmulator
from syncd.app import App
from syncd.cli import app as cli
from syncd.plan import status_report
from syncd.state import AuditOutcome, OutboxState
from tests.daemon.harness import (
    hs_contact,
    newsletter_id,
    running_app,
    sf_lead,
    write_config,
)

SCOPED_RULES = """\
version: 1
name: scoped
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Archived: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: stale-nurture
    when:
      all:
        - {field: status, in: [New, Open]}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""

# The same decision under a new rule-set version (a rule added that no lead here matches).
SCOPED_RULES_V2_STILL_WANTS = (
    SCOPED_RULES
    + """\
  - id: archive-test-leads
    when: {field: email, contains: "@example.invalid"}
    then:
      - archive: {}
"""
)

# A new version that moves stale leads to Nurture but no longer sends them the newsletter.
SCOPED_RULES_V2_NO_NEWSLETTER = SCOPED_RULES.replace("      - add_to_newsletter: newsletter\n", "")

NURTURE = {"salesforce": "Nurture", "hubspot": "NURTURE"}
N_LEADS = 6


def _config(tmp_path: Path, crm: str, *, one_attempt: bool = False) -> Path:
    """A config for one CRM; with ``one_attempt`` a failed call is not retried within the call,
    so one 503 fails the batch (as a 503 that outlasts the connector's retries does)."""
    # Salesforce without Composite: these tests are about the status and the newsletter
    # batches going out as separate calls (Composite carries both in one, tested elsewhere).
    config = write_config(tmp_path, rules=SCOPED_RULES, crms=(crm,), sf_composite=False)
    if one_attempt:
        text = config.read_text()
        if crm == "salesforce":
            text = text.replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
        else:
            text = text.replace(
                "allow_add_status_options: true",
                "allow_add_status_options: true\n    max_attempts: 1",
            )
        config.write_text(text)
    return config


def _seed(app: App, crm: str) -> list[str]:
    if crm == "salesforce":
        return app.embedded.salesforce.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(N_LEADS)
        )
    return app.embedded.hubspot.add_contacts(
        hs_contact(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
        for i in range(N_LEADS)
    )


def _status(app: App, crm: str, lead_id: str) -> str:
    if crm == "salesforce":
        return app.embedded.salesforce.lead(lead_id)["Status"]
    return app.embedded.hubspot.contact(lead_id)["hs_lead_status"]


def _members(app: App, crm: str) -> set[str]:
    if crm == "salesforce":
        return app.embedded.salesforce.campaign_members(newsletter_id(app, crm))
    return app.embedded.hubspot.list_members(newsletter_id(app, crm))


def _membership_sends(app: App, crm: str) -> int:
    """Lead ids sent in successful membership calls: each join sent once means == leads."""
    if crm == "salesforce":
        return sum(
            e.records or 0
            for e in app.embedded.salesforce.journal.writes()
            if e.method == "POST" and "composite/sobjects" in e.path and e.status == 200
        )
    return sum(
        e.records
        for e in app.embedded.hubspot.journal.entries("PUT", "/memberships/add", status=200)
    )


def _fail_membership_once(app: App, crm: str) -> None:
    if crm == "salesforce":
        app.embedded.salesforce.faults.fail_next(1, path="composite/sobjects", method="POST")
    else:
        app.embedded.hubspot.faults.fail_next(1, status=503, path=r"/memberships/add", method="PUT")


def _joins_owed(app: App, crm: str) -> list[str]:
    """Seed the leads and run a cycle whose membership call fails: their statuses are written,
    their newsletter joins still owed. Returns the leads' ids."""
    ids = _seed(app, crm)
    _fail_membership_once(app, crm)
    assert app.pipelines[crm].run_cycle().outcome == "failed"
    return ids


def _person_sets_status_after_syncds_write(app: App, crm: str, lead_id: str) -> None:
    time.sleep(1.1)  # Salesforce stamps whole seconds: the edit lands after syncd's write
    if crm == "salesforce":
        app.embedded.salesforce.update_lead(lead_id, {"Status": "Working - Contacted"})
    else:
        app.embedded.hubspot.update_contact(lead_id, {"hs_lead_status": "OPEN"})


def _newsletter_outcomes(app: App, lead_id: str) -> list[tuple[str, str | None]]:
    return [
        (a.outcome, a.message)
        for a in app.store.audit_of_lead(lead_id)
        if a.field == "newsletter:newsletter"
    ]


def _status_written_newsletter_pending(app: App, crm: str, ids: list[str]) -> None:
    assert all(_status(app, crm, i) == NURTURE[crm] for i in ids)
    assert _members(app, crm) == set()
    assert app.store.pending_count(crm) == N_LEADS  # the joins, still owed


def _stop_after_first_field_batch(app: App, crm: str) -> Callable[[], None]:
    """Stand for SIGTERM arriving while the status batch is in flight; returns the undo."""
    pipeline = app.pipelines[crm]
    real = pipeline.connector.write_batch

    def write_then_stop(changes: Any) -> Any:
        results = real(changes)
        pipeline.stop.set()  # what the SIGTERM handler does
        return results

    pipeline.connector.write_batch = write_then_stop  # type: ignore[method-assign]

    def undo() -> None:
        pipeline.connector.write_batch = real  # type: ignore[method-assign]
        pipeline.stop.clear()  # a new process starts with no stop request

    return undo


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_stop_after_the_status_batch_sends_the_newsletter_join_on_restart_exactly_once(
    tmp_path: Path, crm: str
) -> None:
    with running_app(_config(tmp_path, crm)) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        undo = _stop_after_first_field_batch(app, crm)
        first = pipeline.run_cycle()
        assert first.outcome == "stopped" and first.written == N_LEADS
        _status_written_newsletter_pending(app, crm, ids)
        undo()

        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        assert _members(app, crm) == set(ids)
        assert _membership_sends(app, crm) == N_LEADS, "each join sent exactly once"
        assert all(_newsletter_outcomes(app, i) == [(AuditOutcome.APPLIED, None)] for i in ids)
        part = status_report(app)["crms"][crm]
        assert part["pending"] == 0 and part["unsent"] == []
        third = pipeline.run_cycle()
        assert (third.planned, third.written) == (0, 0)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_one_503_on_the_membership_call_sends_it_next_cycle_instead_of_superseding_it(
    tmp_path: Path, crm: str
) -> None:
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        _fail_membership_once(app, crm)
        first = pipeline.run_cycle()
        assert first.outcome == "failed" and "will retry next cycle" in (first.message or "")
        _status_written_newsletter_pending(app, crm, ids)
        shown = status_report(app)["crms"][crm]["pending_by"]
        assert shown == [{"change": "newsletter:newsletter", "retrying": None, "count": N_LEADS}]

        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        assert _members(app, crm) == set(ids)
        assert _membership_sends(app, crm) == N_LEADS
        with app.store.engine.connect() as conn:
            states = conn.exec_driver_sql("SELECT state, count(*) FROM outbox GROUP BY state").all()
        assert dict(states) == {OutboxState.DONE: 2 * N_LEADS}, "nothing superseded"
        assert status_report(app)["crms"][crm]["unsent"] == []


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_person_changing_the_status_after_syncds_write_withdraws_the_newsletter_join(
    tmp_path: Path, crm: str
) -> None:
    config = _config(tmp_path, crm, one_attempt=True)
    with running_app(config) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        _fail_membership_once(app, crm)
        assert pipeline.run_cycle().outcome == "failed"
        _status_written_newsletter_pending(app, crm, ids)
        edited, untouched = ids[0], ids[1:]
        _person_sets_status_after_syncds_write(app, crm, edited)

        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert _members(app, crm) == set(untouched), "the others' joins are still delivered"
        reason = "status changed by a person (or the CRM) after syncd's write"
        assert _newsletter_outcomes(app, edited) == [(AuditOutcome.WITHDRAWN, reason)]
        (withdrawn,) = [
            a for a in app.store.audit_of_lead(edited) if a.outcome == AuditOutcome.WITHDRAWN
        ]
        assert withdrawn.run_id == report.run_id and withdrawn.rule_id == "stale-nurture"
        part = status_report(app)["crms"][crm]
        assert part["pending"] == 0
        assert part["unsent"] == [{"outcome": "withdrawn", "reason": reason, "count": 1}]
        shown = CliRunner().invoke(cli, ["status", "--config", str(config)])
        assert shown.exit_code == 0, shown.output
        assert f"withdrawn ×1 in the runs below: {reason}" in shown.output
        history = CliRunner().invoke(cli, ["audit", edited, "--config", str(config)])
        assert f"withdrawn: {reason}" in history.output


def _drop_membership_then_answer_503(app: App, crm: str) -> None:
    """The membership call's first attempt is applied and its answer lost; both retries are
    answered 503."""
    emu: Any = app.embedded.salesforce if crm == "salesforce" else app.embedded.hubspot
    path, method = (
        ("composite/sobjects", "POST") if crm == "salesforce" else (r"/memberships/add", "PUT")
    )
    emu.faults.drop_next(1, path=path, method=method, after_applied=True)
    emu.faults.fail_next(2, status=503, path=path, method=method)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_membership_call_dropped_after_it_applied_then_answered_503_on_retry_stays_in_doubt(
    tmp_path: Path, crm: str
) -> None:
    """The retry chain's last answer (503: nothing applied) is not the chain's: its first
    attempt was applied. A person's edit then withdraws the joins syncd owed; the audit must
    say the join may have landed (it did), not that it was never made."""
    config = _config(tmp_path, crm)
    anchor = "lag_seconds: 0" if crm == "salesforce" else "allow_add_status_options: true"
    retry = "retry: {attempts: 3, initial_backoff_seconds: 0, jitter_seconds: 0}"
    config.write_text(config.read_text().replace(anchor, f"{anchor}\n    {retry}"))
    with running_app(config) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        _drop_membership_then_answer_503(app, crm)
        first = pipeline.run_cycle()
        assert first.outcome == "failed", first.message
        assert _members(app, crm) == set(ids), "the dropped attempt was applied"
        with app.store.engine.connect() as conn:
            joins = conn.exec_driver_sql(
                "SELECT state, count(*) FROM outbox WHERE kind = 'membership' GROUP BY state"
            ).all()
        assert dict(joins) == {OutboxState.SENDING: N_LEADS}, "in doubt, not plainly pending"

        _person_sets_status_after_syncds_write(app, crm, ids[0])
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert _members(app, crm) == set(ids)
        for lead in ids:
            outcomes = _newsletter_outcomes(app, lead)
            assert outcomes, lead
            landed = [
                o
                for o, message in outcomes
                if o in (AuditOutcome.APPLIED, AuditOutcome.ALREADY_IN_PLACE)
                or "unconfirmed" in (message or "")
            ]
            assert landed, f"{lead} is in the newsletter; its audit says otherwise: {outcomes}"
        assert app.store.pending_count(crm) == 0


def test_status_writes_a_retry_refused_after_a_dropped_attempt_may_have_landed(
    tmp_path: Path,
) -> None:
    """The batch's first attempt was applied and its answer lost; the retry's answer refuses
    some contacts for a passing reason (not applied by that attempt). Those rows go back to
    pending marked as possibly landed, so a person's later edit withdraws them saying so."""
    config = _config(tmp_path, "hubspot")
    anchor = "allow_add_status_options: true"
    retry = "retry: {attempts: 3, initial_backoff_seconds: 0, jitter_seconds: 0}"
    config.write_text(config.read_text().replace(anchor, f"{anchor}\n    {retry}"))
    with running_app(config) as app:
        hs = app.embedded.hubspot
        ids = _seed(app, "hubspot")
        pipeline = app.pipelines["hubspot"]
        hs.faults.drop_next(1, path="batch/update", method="POST", after_applied=True)
        hs.faults.script("partial", 1, path="batch/update", method="POST")
        first = pipeline.run_cycle()
        assert first.outcome == "ok", first.message
        assert first.retrying > 0, "the partial answer refused some contacts"
        assert all(_status(app, "hubspot", i) == NURTURE["hubspot"] for i in ids)
        with app.store.engine.connect() as conn:
            refused = conn.exec_driver_sql(
                "SELECT lead_id, may_have_landed FROM outbox WHERE kind = 'field' "
                "AND state = 'pending'"
            ).all()
        assert len(refused) == first.retrying
        assert all(landed for _, landed in refused), refused

        edited = str(refused[0][0])
        hs.update_contact(edited, {"hs_lead_status": "OPEN"})
        assert pipeline.run_cycle().outcome == "ok"
        status_audit = [
            (a.outcome, a.message or "")
            for a in app.store.audit_of_lead(edited)
            if a.field == "status"
        ]
        assert any("unconfirmed" in message for _, message in status_audit), status_audit


def test_a_rule_set_that_no_longer_wants_a_half_delivered_decision_withdraws_the_rest(
    tmp_path: Path,
) -> None:
    crm = "salesforce"
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        _fail_membership_once(app, crm)
        assert pipeline.run_cycle().outcome == "failed"
        _status_written_newsletter_pending(app, crm, ids)
        (tmp_path / "rules.yaml").write_text(SCOPED_RULES_V2_NO_NEWSLETTER)

        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        version = app.rules.book.version
        assert _members(app, crm) == set()
        reason = f"rule set changed to version {version} and no longer wants it"
        assert all(_newsletter_outcomes(app, i) == [(AuditOutcome.WITHDRAWN, reason)] for i in ids)
        assert status_report(app)["crms"][crm]["unsent"] == [
            {"outcome": "withdrawn", "reason": reason, "count": N_LEADS}
        ]


def test_a_rule_set_change_that_still_wants_the_decision_delivers_the_rest(tmp_path: Path) -> None:
    crm = "salesforce"
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        _fail_membership_once(app, crm)
        assert pipeline.run_cycle().outcome == "failed"
        old_version = app.rules.book.version
        (tmp_path / "rules.yaml").write_text(SCOPED_RULES_V2_STILL_WANTS)

        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert app.rules.book.version != old_version
        assert _members(app, crm) == set(ids)
        assert all(_newsletter_outcomes(app, i) == [(AuditOutcome.APPLIED, None)] for i in ids)


def test_rules_that_stop_wanting_an_undelivered_decision_supersede_all_of_it(
    tmp_path: Path,
) -> None:
    crm = "salesforce"
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        (lead,) = app.embedded.salesforce.add_leads(
            [sf_lead("Quiet", "q@acme.com", title="Analyst", activity_days=200)]
        )
        pipeline = app.pipelines[crm]
        app.embedded.salesforce.faults.fail_next(1, method="PATCH")  # the status batch fails
        assert pipeline.run_cycle().outcome == "failed"
        assert app.store.pending_count(crm) == 2  # nothing of the decision reached the CRM
        # Activity brings the lead back: the rules no longer want either part.
        app.embedded.salesforce.update_lead(
            lead,
            {
                "LastActivityDate": sf_lead("x", "x@x.com", title=None, activity_days=1)[
                    "LastActivityDate"
                ]
            },
        )

        assert pipeline.run_cycle().outcome == "ok"
        assert _status(app, crm, lead) == "Open - Not Contacted" and _members(app, crm) == set()
        assert {(a.field, a.outcome, a.message) for a in app.store.audit_of_lead(lead)} == {
            ("status", AuditOutcome.SUPERSEDED, "no longer wanted by the rules"),
            ("newsletter:newsletter", AuditOutcome.SUPERSEDED, "no longer wanted by the rules"),
        }


def test_lead_deleted_before_its_newsletter_join_is_withdrawn_with_that_reason(
    tmp_path: Path,
) -> None:
    crm = "salesforce"
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        ids = _joins_owed(app, crm)
        app.embedded.salesforce.delete_lead(ids[0])
        assert app.pipelines[crm].run_cycle().outcome == "ok"
        assert _newsletter_outcomes(app, ids[0]) == [
            (AuditOutcome.WITHDRAWN, "lead deleted in the CRM")
        ]
        assert _members(app, crm) == set(ids[1:])


def test_contacts_hubspot_merged_before_their_newsletter_join_withdraw_it_naming_the_merged_one(
    tmp_path: Path,
) -> None:
    crm = "hubspot"
    with running_app(_config(tmp_path, crm, one_attempt=True)) as app:
        ids = _joins_owed(app, crm)
        # A join to an original id would land on the merged contact (HubSpot keeps the ids as
        # its aliases), decided from the original's data.
        merged = app.embedded.hubspot.merge_contacts(ids[1], ids[0])
        assert app.pipelines[crm].run_cycle().outcome == "ok"
        reason = f"lead merged into {merged} in the CRM"
        for original in ids[:2]:
            assert _newsletter_outcomes(app, original) == [(AuditOutcome.WITHDRAWN, reason)]
        assert _members(app, crm) == set(ids[2:])


class _CrashAfterWrite(BaseException):
    """Stands for the process dying after the CRM confirmed the status batch."""


def test_crash_before_recording_the_status_write_still_sends_the_join_and_not_the_status_again(
    tmp_path: Path,
) -> None:
    crm = "salesforce"
    with running_app(_config(tmp_path, crm)) as app:
        ids = _seed(app, crm)
        pipeline = app.pipelines[crm]
        real = pipeline.connector.write_batch

        def write_then_crash(changes: Any) -> Any:
            real(changes)
            raise _CrashAfterWrite  # the CRM has the statuses; the outbox never heard

        pipeline.connector.write_batch = write_then_crash  # type: ignore[method-assign]
        # SystemModstamp has whole seconds: syncd's write must land after the seeded leads' second
        # for the restarted pull to read it back (with lag_seconds 0, as configured here).
        time.sleep(1.1)
        with pytest.raises(_CrashAfterWrite):
            pipeline.run_cycle()
        pipeline.connector.write_batch = real  # type: ignore[method-assign]

        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert _members(app, crm) == set(ids)
        patches = [e for e in app.embedded.salesforce.journal.writes() if e.method == "PATCH"]
        assert sorted(r for e in patches for r in e.record_ids) == sorted(ids), "written once"
        for i in ids:
            assert [(a.field, a.outcome) for a in app.store.audit_of_lead(i)] == [
                ("status", AuditOutcome.ALREADY_IN_PLACE),
                ("newsletter:newsletter", AuditOutcome.APPLIED),
            ]


# ---- a real process, killed ------------------------------------------------------------------


def _outbox_counts(db: Path) -> dict[tuple[str, str], int]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute(
                "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state"
            ).fetchall()
    except sqlite3.Error:  # not created yet
        return {}
    return {(k, s): n for k, s, n in rows}


def _sigkill_config(tmp_path: Path, emu: SalesforceEmulator, campaign: str) -> Path:
    (tmp_path / "rules.yaml").write_text(SCOPED_RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
lease: {{ttl: 2s}}   # the killed process's lease runs out quickly for the restart
salesforce:
  status_values: {{New: Open - Not Contacted, Open: Working - Contacted}}
  connector:
    instance_url: {emu.base_url}
    token_url: {emu.token_url}
    ca_bundle: {emu.ca_pem_path}
    lag_seconds: 0
    composite: false     # the status and newsletter batches as separate calls
    timeout_seconds: 5   # a send holds the lease this long; the kill comes well before
    auth: {{type: client_credentials, client_id: {emu.client_id},
            client_secret: {{env: SF_SECRET}}}}
    newsletters: {{newsletter: {campaign}}}
""")
    return config


def _sync_once(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    # --wait: a restart after a SIGKILL waits for the dead process's lease to run out.
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "sync", "--once", "--wait", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_sigkill_between_status_and_newsletter_batches_delivers_the_join_after_restart(
    tmp_path: Path,
) -> None:
    with SalesforceEmulator() as emu:
        campaign = emu.add_campaign("Newsletter")
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(N_LEADS)
        )
        config = _sigkill_config(tmp_path, emu, campaign)
        env = {**os.environ, "SF_SECRET": emu.client_secret, "PYTHONUNBUFFERED": "1"}
        # The membership insert stalls, then fails without taking effect: the process is
        # certainly between the two batches when it is killed.
        emu.faults.slow_next(1, delay=120, path="composite/sobjects", method="POST")
        emu.faults.fail_next(1, path="composite/sobjects", method="POST")
        proc = _sync_once(config, env)
        try:
            deadline = time.monotonic() + 60
            while _outbox_counts(tmp_path / "state.db").get(("field", "done")) != N_LEADS:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the status batch was never recorded"
                time.sleep(0.05)
            patches = [e for e in emu.journal.writes() if e.method == "PATCH"]
            assert sorted(r for e in patches for r in e.record_ids) == sorted(ids)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        emu.faults.clear()
        assert all(emu.lead(i)["Status"] == "Nurture" for i in ids)
        assert emu.campaign_members(campaign) == set()

        restarted = _sync_once(config, env)
        output, _ = restarted.communicate(timeout=120)
        assert restarted.returncode == 0, output
        assert emu.campaign_members(campaign) == set(ids)
        sent = [
            e
            for e in emu.journal.writes()
            if e.method == "POST" and "composite/sobjects" in e.path and e.status == 200
        ]
        assert sum(e.records or 0 for e in sent) == N_LEADS, "each join sent exactly once"
        counts = _outbox_counts(tmp_path / "state.db")
        assert counts == {("field", "done"): N_LEADS, ("membership", "done"): N_LEADS}
