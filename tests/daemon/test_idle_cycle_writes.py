"""An idle cycle (nothing changed in the CRM, nothing due) writes only its own bookkeeping: the
run row and the cursor's read time, in three transactions, and reads what it must in as few
statements: whether the outbox has plans or writes in doubt (one), the cursor (one), whether
anything is due or open and the held and blocked counts (one, ``syncd.plan_probe``), the
ledger's mark for the KPIs (one). Every statement is a round trip on PostgreSQL, where the idle
cycle's wall time is mostly those."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from .harness import running_app, sf_lead, write_config


def test_an_idle_cycle_writes_only_its_run_row_and_cursor_in_three_transactions(
    tmp_path: Path, store_url: str
) -> None:
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        sf.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=1)
                for i in range(20)
            ]
            + [sf_lead("Old", "old@acme.com", title="Analyst", activity_days=200, status="New")],
            modstamp=real_now - timedelta(hours=1),
        )
        pipeline = app.pipelines["salesforce"]
        for _ in range(5):  # the first sync, its write, and the write's echo
            report = pipeline.run_cycle()
            assert report.outcome == "ok", report.message
            now["t"] += timedelta(seconds=60)
            if report.written == 0 and report.planned == 0:
                break
        assert report.written == 0

        statements: list[str] = []
        commits: list[int] = []

        def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(" ".join(statement.split()))

        def committed(_conn: Any) -> None:
            commits.append(1)

        event.listen(app.store.engine, "before_cursor_execute", sent)
        event.listen(app.store.engine, "commit", committed)
        try:
            idle = pipeline.run_cycle()
        finally:
            event.remove(app.store.engine, "before_cursor_execute", sent)
            event.remove(app.store.engine, "commit", committed)

    assert idle.outcome == "ok" and idle.pulled == 0 and idle.planned == 0
    # PostgreSQL writes the cursor in a WITH of the run's update (StateStore.checkpoint).
    written = r"(?:INSERT INTO|(?<!DO )UPDATE|DELETE FROM) (\w+)"
    written_tables = sorted({t for s in statements for t in re.findall(written, s)})
    assert written_tables == ["cursor", "run"], statements
    assert len(commits) == 3, statements  # start the run, checkpoint the page, finish the run
    assert len(statements) <= 8, statements
    if app.store.engine.dialect.name == "postgresql":  # one statement each, in autocommit
        assert len(statements) <= 7, statements
