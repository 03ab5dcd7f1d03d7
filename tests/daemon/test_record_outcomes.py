"""Per-record outcomes through the whole daemon: retried, failed visibly, never lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.plan import status_report
from tests.daemon.harness import running_app, sf_lead, write_config


def test_locked_rows_are_retried_after_backoff_and_validation_failures_stay_visible(
    tmp_path: Path,
) -> None:
    now = {"t": datetime.now(UTC)}
    with running_app(write_config(tmp_path, crms=("salesforce",)), clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(10)
        )
        locked, refused = ids[:3], ids[3:5]
        sf.faults.lock_rows(locked, attempts=1)
        sf.faults.validation_error(refused, "Leads in review need a reason")
        pipeline = app.pipelines["salesforce"]
        now["t"] = datetime.now(UTC) + timedelta(seconds=1)  # after the seeding

        first = pipeline.run_cycle()
        assert first.outcome == "ok", first.message
        assert (first.written, first.retrying, first.failed) == (5 + 10, 3, 2)  # + newsletter
        assert all(sf.lead(i)["Status"] != "Nurture" for i in locked + refused)
        failed = {f["lead_id"]: f for f in status_report(app)["crms"]["salesforce"]["failed"]}
        assert set(failed) == set(refused)
        assert failed[refused[0]]["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert "Leads in review need a reason" in failed[refused[0]]["error_message"]

        same_time = pipeline.run_cycle()  # the retry waits for its backoff
        assert same_time.written == 0 and same_time.retrying == 0
        now["t"] += app.settings.outbox.retry_base + timedelta(seconds=1)
        later = pipeline.run_cycle()
        assert later.written == 3
        assert all(sf.lead(i)["Status"] == "Nurture" for i in locked)
        assert all(sf.lead(i)["Status"] != "Nurture" for i in refused), "not retried forever"
        outcomes = [a.outcome for a in app.store.audit_of_lead(refused[0])]
        assert outcomes.count("failed") == 1
