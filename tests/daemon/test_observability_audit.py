"""What an on-call engineer reads (metrics, /readyz) agrees with what happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.testing.salesforce import SalesforceEmulator
from syncd.app import App
from syncd.plan import status_report
from syncd.scheduler import Daemon
from tests.daemon.harness import (
    FAST_RETRY,
    outbox_states,
    running_app,
    sf_lead,
    standalone_sf_config,
    write_config,
)


def _written(app: App, outcome: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "syncd_records_written_total", {"crm": "salesforce", "outcome": outcome}
    )
    return value or 0.0


def test_records_written_counts_a_retriable_refusal_as_failed_when_it_was_the_last_attempt(
    tmp_path: Path,
) -> None:
    """README: `syncd_records_written_total{crm,outcome}` counts records sent by outcome, and
    a retriable refusal is "failed visibly after `outbox.max_attempts`". The last attempt's
    lock error fails the row for good (audit and outbox say failed): the counter must say
    failed too, or `SyncdWritesFailing` never sees it."""
    config = write_config(tmp_path, crms=("salesforce",), extra="outbox: {max_attempts: 1}\n")
    now = {"t": datetime.now(UTC)}
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(4)
        )
        sf.faults.lock_rows(ids[:2], attempts=1)
        now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # after the seeding

        report = app.pipelines["salesforce"].run_cycle()

        assert report.outcome == "ok", report.message
        assert (report.retrying, report.failed) == (0, 2)
        failed_audits = {
            a.lead_id for a in app.store.audit_of_run(report.run_id) if a.outcome == "failed"
        }
        assert failed_audits == set(ids[:2])
        assert _written(app, "failed") == report.failed
        assert _written(app, "retry") == report.retrying
        assert _written(app, "ok") == report.written


def test_readyz_is_unready_with_the_crm_error_while_a_deferred_check_fails_and_ready_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README (systemd): a CRM that cannot answer at start-up leaves `run` up, its cycles
    failing — `/readyz` not ready — until the CRM answers. The failures count as
    `crm_unavailable` (not `preflight`: the rules were never refused)."""
    with SalesforceEmulator() as emu:
        emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
        config = standalone_sf_config(tmp_path, emu, connector_extra=FAST_RETRY)
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        emu.faults.fail_next(1000, status=503, path="/query/")
        with running_app(config, defer_unreachable=True) as app:
            daemon = Daemon(app)
            ready, detail = daemon.readiness()
            assert ready is False and detail["connectors"]["salesforce"]["last_cycle"] is None

            daemon._cycle("salesforce")
            ready, detail = daemon.readiness()
            entry = detail["connectors"]["salesforce"]
            assert ready is False and entry["outcome"] == "failed", entry
            assert "503" in entry["error"] or "unavailable" in entry["error"].lower(), entry
            assert "paused_until" not in entry, "nothing waits for a budget"
            failures = app.metrics.registry.get_sample_value(
                "syncd_cycle_failures_total",
                {"connector": "salesforce", "reason": "crm_unavailable"},
            )
            assert failures == 1

            emu.faults.clear()
            daemon._cycle("salesforce")
            ready, detail = daemon.readiness()
            assert ready is True, detail
            assert detail["connectors"]["salesforce"]["outcome"] == "ok"
            assert detail["status"] == "leader"


_LOOP_RULES = """\
version: 1
name: qualify
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}}
rules:
  - id: new-to-mql
    when: {field: status, eq: New}
    then:
      - set_status: MQL
"""


def test_loop_held_leads_gauge_keeps_counting_a_held_lead_when_the_next_cycle_has_nothing_new(
    tmp_path: Path,
) -> None:
    """README: `syncd_loop_held_leads` counts leads held by the loop guard; `syncd status`
    lists them for as long as the writes stay in the window. A quiet cycle after the one
    that held a lead must not drop the gauge to 0 while status still lists the lead."""
    config = write_config(
        tmp_path,
        rules=_LOOP_RULES,
        crms=("salesforce",),
        extra="loop_guard: {max_changes: 2, window: 7d}\n",
    )
    config.write_text(
        config.read_text().replace("interval: 60s", "interval: 60s\n  hold_rep_edits_for: 0s")
    )
    with running_app(config) as app:
        org = app.embedded.server("salesforce")
        lead_id = org.add_leads([sf_lead("Loop", "loop@acme.com", title="CTO")])[0]
        pipeline = app.pipelines["salesforce"]
        for _ in range(2):
            assert pipeline.run_cycle().written == 1
            org.update_lead(lead_id, {"Status": "Open - Not Contacted"})  # undone
        assert pipeline.run_cycle().written == 0  # held now

        # Another lead, no rule's business, edited a second later: the newest lead, the one
        # a pull reads again at its cursor, is not the held one.
        org.clock.advance(1)
        org.add_leads(
            [sf_lead("Other", "other@acme.com", title="CTO", status="Working - Contacted")]
        )
        for _ in range(2):
            org.clock.advance(1)
            quiet = pipeline.run_cycle()

        assert quiet.outcome == "ok", quiet.message
        listed = [h["lead_id"] for h in status_report(app)["crms"]["salesforce"]["loop_held"]]
        gauge = app.metrics.registry.get_sample_value(
            "syncd_loop_held_leads", {"crm": "salesforce"}
        )
        assert listed == [lead_id]
        assert gauge == len(listed)


def test_outbox_pending_counts_rows_in_doubt_as_status_does_when_a_batch_answer_was_lost(
    tmp_path: Path,
) -> None:
    """A batch the CRM applied but whose answer never came leaves its rows `sending` (in
    doubt) until a later cycle's pull settles them: they are not confirmed, `syncd status`
    counts them pending, and a CRM that stays down keeps them there. `syncd_outbox_pending`
    and the oldest pending age must show them too, or a stuck drain reads as an empty one."""
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
    )
    with running_app(config) as app:
        sf = app.embedded.salesforce
        sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(3)
        )
        sf.faults.drop_next(1, path="composite/sobjects", method="PATCH", after_applied=True)
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "failed", report.message
        in_doubt = sum(n for (_kind, state), n in outbox_states(app).items() if state == "sending")
        assert in_doubt == 6  # 3 statuses, 3 newsletter adds

        status = status_report(app)["crms"]["salesforce"]
        registry = app.metrics.registry
        pending = registry.get_sample_value("syncd_outbox_pending", {"crm": "salesforce"})
        oldest = registry.get_sample_value(
            "syncd_outbox_oldest_pending_age_seconds", {"crm": "salesforce"}
        )
        assert status["pending"] == 6
        assert pending == status["pending"]
        assert oldest is not None and oldest > 0
