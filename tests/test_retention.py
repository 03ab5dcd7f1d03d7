"""Retention deletes what is past its setting, in batches, and never what is still needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.retention import prune
from syncd.settings import RetentionSettings, load_settings
from syncd.state import AuditRow, OutboxRow, RetryRequestRow, RunRow, StateStore
from syncd.yamlfile import YamlFileError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = RetentionSettings(
    audit=timedelta(days=90),
    runs=timedelta(days=60),
    outbox=timedelta(days=30),
    retry_requests=timedelta(days=90),
    batch_rows=100,
)


def _audit(n: int, age: timedelta, lead: str = "L", now: datetime = NOW) -> list[dict[str, Any]]:
    at = now - age
    return [
        {
            "crm": "salesforce",
            "lead_id": f"{lead}{i}",
            "field": "status",
            "before": "Open",
            "after": "Nurture",
            "rule_id": "r",
            "ruleset_version": "v",
            "run_id": "run",
            "intent_id": None,
            "at": at,
            "outcome": "applied",
            "error_code": None,
            "message": None,
        }
        for i in range(n)
    ]


def _outbox(
    lead: str,
    state: str,
    *,
    created: timedelta,
    updated: timedelta,
    intent: str | None = None,
    now: datetime = NOW,
) -> dict[str, Any]:
    return {
        "crm": "salesforce",
        "lead_id": lead,
        "kind": "field",
        "field": "status",
        "value": "Nurture",
        "before": "Open",
        "rule_id": "r",
        "ruleset_version": "v",
        "run_id": "run",
        "intent_id": intent or f"run.{lead}",
        "state": state,
        "attempts": 0,
        "next_attempt_at": None,
        "error_code": None,
        "error_message": None,
        "created_at": now - created,
        "updated_at": now - updated,
    }


def _run(run_id: str, age: timedelta, outcome: str, now: datetime = NOW) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "crm": "salesforce",
        "started_at": now - age,
        "finished_at": None if outcome == "running" else now - age,
        "outcome": outcome,
    }


def _retry(
    by: str, requested: timedelta, applied: timedelta | None, now: datetime = NOW
) -> dict[str, Any]:
    """A ``syncd retry`` request asked ``requested`` ago; applied ``applied`` ago, or pending."""
    return {
        "crm": "salesforce",
        "codes": None,
        "lead_ids": None,
        "requested_by": by,
        "requested_at": now - requested,
        "applied_at": None if applied is None else now - applied,
        "applied_run_id": None if applied is None else "run",
        "applied_leads": None if applied is None else 3,
    }


def _seed_retries(store: StateStore, now: datetime = NOW) -> None:
    day = timedelta(days=1)
    with store.begin() as conn:
        conn.execute(
            RetryRequestRow.__table__.insert(),
            [
                _retry("applied-old", 200 * day, 199 * day, now),
                # Kept: pending however old; applied recently though asked long ago.
                _retry("pending-old", 400 * day, None, now),
                _retry("applied-recent", 400 * day, 10 * day, now),
            ],
        )


def _retries_left(store: StateStore) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(RetryRequestRow.requested_by)))


def _seed(store: StateStore, now: datetime = NOW) -> None:
    """Rows aged relative to ``now`` (the fixed NOW, or the clock for a command that reads it)."""
    day = timedelta(days=1)
    outbox = partial(_outbox, now=now)
    with store.begin() as conn:
        # 250 audit rows past 90 days (three batches of 100), then ones inside the window.
        conn.execute(AuditRow.__table__.insert(), _audit(250, 200 * day, "old", now))
        conn.execute(AuditRow.__table__.insert(), _audit(3, 89 * day, "undo", now))
        conn.execute(AuditRow.__table__.insert(), _audit(2, day, "new", now))
        conn.execute(
            OutboxRow.__table__.insert(),
            [
                outbox("done-old", "done", created=50 * day, updated=40 * day),
                outbox("failed-old", "failed", created=50 * day, updated=40 * day),
                outbox("superseded-old", "superseded", created=50 * day, updated=40 * day),
                outbox("withdrawn-old", "withdrawn", created=50 * day, updated=40 * day),
                outbox("blocked-old", "blocked", created=50 * day, updated=40 * day),
                # Never: open rows however old, nor a delivered part of an open intent.
                outbox("pending-old", "pending", created=400 * day, updated=400 * day),
                outbox("planned-old", "planned", created=400 * day, updated=400 * day),
                outbox("half", "done", created=45 * day, updated=45 * day, intent="run.half"),
                outbox("half", "pending", created=45 * day, updated=45 * day, intent="run.half"),
                outbox("done-recent", "done", created=20 * day, updated=10 * day),
                outbox("done-late", "done", created=50 * day, updated=10 * day),
            ],
        )
        conn.execute(
            RunRow.__table__.insert(),
            [
                _run("ok-old", 100 * day, "ok", now),
                _run("failed-old", 70 * day, "failed", now),
                _run("running-old", 100 * day, "running", now),
                _run("ok-new", day, "ok", now),
            ],
        )


def _left(store: StateStore) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return {
            "audit": sorted(
                {r[0].rstrip("0123456789") for r in conn.execute(select(AuditRow.lead_id))}
            ),
            "audit_rows": conn.execute(select(func.count()).select_from(AuditRow)).scalar(),
            "outbox": sorted(
                f"{r[0]}:{r[1]}" for r in conn.execute(select(OutboxRow.lead_id, OutboxRow.state))
            ),
            "run": sorted(r[0] for r in conn.execute(select(RunRow.run_id))),
        }


def test_prune_deletes_rows_older_than_the_settings_and_never_open_or_undoable_ones(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    _seed(store)
    batches: list[tuple[str, int]] = []
    result = prune(store.engine, SETTINGS, NOW, on_batch=lambda t, n: batches.append((t, n)))
    assert {p.table: p.rows for p in result} == {
        "audit": 250,
        "outbox": 5,
        "run": 2,
        "retry_request": 0,
    }
    assert all(p.complete for p in result)
    assert [n for t, n in batches if t == "audit"] == [100, 100, 50]  # small transactions
    left = _left(store)
    assert left["audit"] == ["new", "undo"] and left["audit_rows"] == 5
    assert left["outbox"] == [
        "done-late:done",
        "done-recent:done",
        "half:done",
        "half:pending",
        "pending-old:pending",
        "planned-old:planned",
    ]
    assert left["run"] == ["ok-new", "running-old"]
    # A second pass finds nothing more.
    assert [p.rows for p in prune(store.engine, SETTINGS, NOW)] == [0, 0, 0, 0]
    store.close()


def test_dry_run_deletes_nothing_and_reports_the_counts_a_prune_then_deletes(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    _seed(store)
    before = _left(store)
    dry = prune(store.engine, SETTINGS, NOW, dry_run=True)
    assert _left(store) == before
    real = prune(store.engine, SETTINGS, NOW)
    assert [(p.table, p.rows, p.cutoff) for p in dry] == [(p.table, p.rows, p.cutoff) for p in real]
    store.close()


def test_a_pass_out_of_time_stops_between_batches_and_the_next_goes_on(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed(store)
    stopped = prune(store.engine, SETTINGS, NOW, max_seconds=1e-9)
    assert not stopped[0].complete and stopped[0].rows == 0
    assert prune(store.engine, SETTINGS, NOW)[0].rows == 250
    store.close()


def test_audit_retention_below_the_undo_window_is_a_located_config_error(tmp_path: Path) -> None:
    config = tmp_path / "syncd.yaml"
    config.write_text("retention:\n  audit: 30d\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(config)
    assert f"{config}:2:3: retention.audit:" in str(caught.value)
    assert "at least 90 days" in str(caught.value)


def test_db_prune_dry_run_shows_each_table_cutoff_and_count(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed(store, now=datetime.now(UTC))  # the command prunes by the clock
    store.close()
    config = tmp_path / "syncd.yaml"
    config.write_text(
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\n"
        "retention: {audit: 90d, runs: 60d, outbox: 30d}\n"
    )
    result = CliRunner().invoke(
        cli, ["db", "prune", "--dry-run", "-c", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("audit         would delete       250 rows older than ")
    assert lines[1].startswith("outbox        would delete         5 rows older than ")
    assert lines[2].startswith("run           would delete         2 rows older than ")
    result = CliRunner().invoke(cli, ["db", "prune", "-c", str(config)], catch_exceptions=False)
    assert "audit         deleted       250 rows" in result.output


def test_the_daemons_retention_job_prunes_and_counts_what_it_deleted(tmp_path: Path) -> None:
    from syncd.scheduler import Daemon
    from tests.daemon.harness import running_app, write_config

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        now = datetime.now(UTC)
        with app.store.begin() as conn:
            rows = _audit(3, timedelta(0))
            for row, age in zip(rows, (400, 181, 170), strict=True):
                row["at"] = now - timedelta(days=age)
            conn.execute(AuditRow.__table__.insert(), rows)
        Daemon(app)._prune()  # the job the scheduler runs between cycles
        assert len(app.store.audit_of_run("run")) == 1  # the default keeps 180 days
        pruned = {
            s.labels["table"]: s.value
            for m in app.metrics.registry.collect()
            if m.name == "syncd_retention_pruned_rows"
            for s in m.samples
            if s.name.endswith("_total")
        }
    assert pruned == {"audit": 2}


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_the_daemon_schedules_retention_every_interval_first_one_interval_after_start(
    tmp_path: Path, enabled: bool
) -> None:
    """retention.interval spaces the passes, the first one interval after start (a restart
    loop never prunes); retention.enabled false schedules none, and the cycles still run."""
    from syncd.scheduler import Daemon
    from tests.daemon.harness import running_app, write_config

    extra = f"retention: {{enabled: {str(enabled).lower()}, interval: 2h}}\n"
    with running_app(write_config(tmp_path, crms=("salesforce",), extra=extra)) as app:
        daemon = Daemon(app)
        started = datetime.now(UTC)
        daemon._schedule_jobs()  # what run() schedules before starting the scheduler
        jobs = {job.id: job for job in daemon._scheduler.get_jobs()}
    assert "salesforce" in jobs
    if not enabled:
        assert "retention" not in jobs
        return
    trigger = jobs["retention"].trigger
    assert trigger.interval == timedelta(hours=2)
    # No first run time of its own (the cycles have one: now): the trigger's start is the first.
    assert getattr(jobs["retention"], "next_run_time", None) is None
    assert jobs["salesforce"].next_run_time <= datetime.now(UTC)
    assert (
        started + timedelta(hours=2) <= trigger.start_date <= datetime.now(UTC) + timedelta(hours=2)
    )


# -- retry_request: applied `syncd retry` requests ---------------------------------------------


def test_an_applied_retry_request_is_deleted_when_a_pass_runs_past_its_cutoff(
    store_url: str,
) -> None:
    store = StateStore(store_url)
    _seed_retries(store)
    batches: list[tuple[str, int]] = []
    result = prune(store.engine, SETTINGS, NOW, on_batch=lambda t, n: batches.append((t, n)))
    (retry,) = [p for p in result if p.table == "retry_request"]
    assert (retry.rows, retry.cutoff, retry.complete) == (1, NOW - timedelta(days=90), True)
    assert ("retry_request", 1) in batches  # counted by the daemon's metric like the others
    assert "applied-old" not in _retries_left(store)
    store.close()


def test_a_pending_retry_request_is_kept_when_it_is_years_old(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed_retries(store)
    # Ten years on, a pending request still waits for the connector's leader to apply it.
    deleted = prune(store.engine, SETTINGS, NOW + timedelta(days=3650))
    assert [p.rows for p in deleted if p.table == "retry_request"] == [2]
    assert _retries_left(store) == ["pending-old"]
    store.close()


def test_a_retry_request_is_kept_when_applied_within_the_setting_and_asked_long_before(
    tmp_path: Path,
) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed_retries(store)
    prune(store.engine, SETTINGS, NOW)
    assert _retries_left(store) == ["applied-recent", "pending-old"]
    store.close()


def test_dry_run_counts_old_applied_retry_requests_when_it_deletes_nothing(
    tmp_path: Path,
) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed_retries(store)
    dry = prune(store.engine, SETTINGS, NOW, dry_run=True)
    assert [(p.table, p.rows) for p in dry if p.table == "retry_request"] == [("retry_request", 1)]
    assert _retries_left(store) == ["applied-old", "applied-recent", "pending-old"]
    store.close()


def test_db_prune_lists_retry_requests_with_cutoff_and_count_when_dry_run_and_then_deletes(
    tmp_path: Path,
) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    _seed_retries(store, now=datetime.now(UTC))  # the command prunes by the clock
    store.close()
    config = tmp_path / "syncd.yaml"
    config.write_text(
        f"state: {{url: 'sqlite:///{tmp_path / 'state.db'}'}}\nretention: {{retry_requests: 90d}}\n"
    )
    dry = CliRunner().invoke(
        cli, ["db", "prune", "--dry-run", "-c", str(config)], catch_exceptions=False
    )
    assert dry.exit_code == 0, dry.output
    (line,) = [x for x in dry.output.splitlines() if x.startswith("retry_request ")]
    assert line.startswith("retry_request would delete         1 rows older than ")
    cutoff = datetime.strptime(line[-20:], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
    assert abs(cutoff - (datetime.now(UTC) - timedelta(days=90))) < timedelta(minutes=2)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert len(_retries_left(store)) == 3
    store.close()
    real = CliRunner().invoke(cli, ["db", "prune", "-c", str(config)], catch_exceptions=False)
    assert real.exit_code == 0, real.output
    assert "retry_request deleted         1 rows older than " in real.output
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert _retries_left(store) == ["applied-recent", "pending-old"]
    store.close()


def test_retention_retry_requests_is_read_from_config_when_given_and_is_180_days_when_not(
    tmp_path: Path,
) -> None:
    assert RetentionSettings().retry_requests == timedelta(days=180)  # as the audit
    config = tmp_path / "syncd.yaml"
    config.write_text("retention:\n  retry_requests: 30d\n")
    assert load_settings(config).retention.retry_requests == timedelta(days=30)
    config.write_text("retention:\n  retry_requests: soon\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(config)
    assert f"{config}:2:3: retention.retry_requests:" in str(caught.value)
