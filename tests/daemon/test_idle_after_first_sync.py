"""The idle cycles right after a first sync on PostgreSQL cost what later ones do: the first
sync's cycle vacuums the mirror its plan churned (``syncd.store_vacuum``), so the idle cycle's
"never evaluated" probe reads a few index pages, not a page per ~100 leads the plan updated."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from syncd.store_vacuum import MIN_ROWS, wait_for_vacuum

from .harness import running_app, sf_lead, write_config

LEADS = 1500  # past the vacuum's floor: a first sync updates each lead's due time


def test_the_idle_cycle_after_a_first_sync_walks_no_dead_index_entries(
    tmp_path: Path, postgres_url: str
) -> None:
    from tests.pgdb import empty_database

    url = empty_database(postgres_url, "idle_after_first_sync")
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce",), state_url=url)
    with running_app(config, clock=lambda: now["t"]) as app:
        modstamp = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        app.embedded.salesforce.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=1)
                for i in range(LEADS)
            ],
            modstamp=modstamp,
        )
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert first.outcome == "ok" and first.pulled == LEADS, first.message
        assert app.store.rows_churned["lead"] < MIN_ROWS  # the first sync's cycle vacuumed
        sent: list[tuple[str, Any]] = []

        def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            sent.append((statement, params))

        for _ in range(3):  # until idle: nothing to write, nothing pulled
            now["t"] += timedelta(minutes=5)
            sent.clear()
            event.listen(app.store.engine, "before_cursor_execute", capture)
            try:
                report = pipeline.run_cycle()
            finally:
                event.remove(app.store.engine, "before_cursor_execute", capture)
            if report.pulled == 0 and report.planned == 0:
                break
        assert report.outcome == "ok" and report.pulled == 0 and report.planned == 0
        wait_for_vacuum(app.store)  # begun by the first sync's cycle, beside the cycles
        start = next(s for s in sent if s[0].lstrip().startswith("WITH started"))
        raw = app.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            params = {k: "other" if v == report.run_id else v for k, v in start[1].items()}
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + start[0], params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            raw.rollback()
            raw.close()
    probe = plan[plan.index("due_at IS NULL") :]
    pages = int(re.findall(r"shared hit=(\d+)", probe)[0])
    # Without the vacuum it read 13 pages here (1,431 at 100k leads).
    assert pages <= 5, plan
