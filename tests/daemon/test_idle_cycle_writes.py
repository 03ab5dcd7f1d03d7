"""An idle cycle (nothing changed in the CRM, nothing due) writes only its own bookkeeping: the
run row and the cursor's read time, in two transactions, and reads what it must in as few
statements: the run's start reads whether the outbox has plans or writes in doubt, the cursor
(``syncd.run_books``) and whether anything is due or open with the held and blocked counts
(``syncd.plan_probe``), and the run's end writes the cursor and reads the ledger's mark for the
KPIs. Every statement is a round trip on PostgreSQL, where the idle cycle's wall time is mostly
those: there each of the two is one statement."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select, update

from syncd.app import App
from syncd.state import LeadRow, RunRow, StatusHistoryRow

from .harness import running_app, sf_lead, write_config


@contextmanager
def _settled_app(tmp_path: Path, store_url: str) -> Iterator[tuple[App, dict[str, datetime]]]:
    """An app whose Salesforce mirror is synced and settled: its next cycle is idle."""
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
        yield app, now


def libpq_trace(app: App, tmp_path: Path, work: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``work()``'s result and libpq's trace of every connection it checked out from the
    store: one message a line (direction, length, type; a statement's text may span lines)."""
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as sink:

        def checkout(dbapi: Any, *_: Any) -> None:
            dbapi.pgconn.trace(sink.fileno())
            dbapi.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

        def checkin(dbapi: Any, *_: Any) -> None:
            dbapi.pgconn.untrace()

        event.listen(app.store.engine, "checkout", checkout)
        event.listen(app.store.engine, "checkin", checkin)
        try:
            result = work()
        finally:
            event.remove(app.store.engine, "checkout", checkout)
            event.remove(app.store.engine, "checkin", checkin)
    return result, trace.read_text().splitlines()


def test_an_idle_cycle_writes_only_its_run_row_and_cursor_in_two_transactions(
    tmp_path: Path, store_url: str
) -> None:
    with _settled_app(tmp_path, store_url) as (app, _now):
        statements: list[str] = []
        commits: list[int] = []

        def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(" ".join(statement.split()))

        def committed(_conn: Any) -> None:
            commits.append(1)

        event.listen(app.store.engine, "before_cursor_execute", sent)
        event.listen(app.store.engine, "commit", committed)
        try:
            idle = app.pipelines["salesforce"].run_cycle()
        finally:
            event.remove(app.store.engine, "before_cursor_execute", sent)
            event.remove(app.store.engine, "commit", committed)

    assert idle.outcome == "ok" and idle.pulled == 0 and idle.planned == 0
    # PostgreSQL writes the run and the cursor in WITH clauses of a select (syncd.run_books).
    written = r"(?:INSERT INTO|(?<!DO )UPDATE|DELETE FROM) (\w+)"
    written_tables = sorted({t for s in statements for t in re.findall(written, s)})
    assert written_tables == ["cursor", "run"], statements
    assert len(commits) == 2, statements  # start the run, finish it (with the cursor)
    assert len(statements) <= 5, statements
    if app.store.engine.dialect.name == "postgresql":  # one statement each, in autocommit
        assert len(statements) <= 2, statements


def test_an_idle_cycle_on_postgresql_is_two_round_trips_on_the_wire(
    tmp_path: Path, postgres_url: str
) -> None:
    """What the server receives, from libpq's own trace of every connection the cycle checks
    out: no BEGIN, COMMIT or ROLLBACK of the driver or the pool, no session setup; one
    ReadyForQuery (the end of one round trip) per statement."""
    with _settled_app(tmp_path, postgres_url) as (app, _now):
        idle, lines = libpq_trace(app, tmp_path, app.pipelines["salesforce"].run_cycle)
        assert idle.outcome == "ok" and idle.pulled == 0
    to_server = [line.split("\t")[2] for line in lines if line.startswith("F\t")]
    round_trips = [line for line in lines if line.startswith("B\t") and "ReadyForQuery" in line]
    assert "Query" not in to_server, lines  # no simple-protocol BEGIN/COMMIT/ROLLBACK/SET
    assert to_server.count("Sync") == 2, lines
    assert len(round_trips) == 2, lines


def test_no_statement_of_an_idle_cycle_on_postgresql_reads_a_table_whole(
    tmp_path: Path, postgres_url: str
) -> None:
    """Every table an idle cycle reads on PostgreSQL is probed through an index, whatever the
    table's size: in the plan of each statement it sends, asked with sequential scans priced
    out (``enable_seqscan = off``: one remains only where no index can answer), every scan has
    an index condition or sits under a ``Limit``. A ``max(id)`` of the ledger in a statement
    with ``WITH`` clauses read the whole ledger: the server answers a bare max from an index
    only in a query without a CTE list."""
    with _settled_app(tmp_path, postgres_url) as (app, now):
        sent: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
            sent.append((statement, params))

        now["t"] += timedelta(minutes=5)
        event.listen(app.store.engine, "before_cursor_execute", capture)
        try:
            idle = app.pipelines["salesforce"].run_cycle()
        finally:
            event.remove(app.store.engine, "before_cursor_execute", capture)
        assert idle.outcome == "ok" and idle.pulled == 0
        plans: list[str] = []
        raw = app.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET enable_seqscan = off")
            for statement, params in sent:
                cursor.execute("EXPLAIN " + statement, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        finally:
            raw.rollback()
            raw.close()
    assert len(plans) == 2
    assert [_whole_reads(plan) for plan in plans] == [[], []], plans


def _whole_reads(plan: str) -> list[str]:
    """The scans of an ``EXPLAIN`` text that read their table or index whole: neither an index
    condition below them nor a ``Limit`` right above."""
    lines = plan.splitlines()
    depth = [len(line) - len(line.lstrip(" ->")) for line in lines]
    whole = []
    for i, line in enumerate(lines):
        if " Scan" not in line or "Subquery Scan" in line or "CTE Scan" in line:
            continue
        below = []
        for j in range(i + 1, len(lines)):
            if ("->" in lines[j] and depth[j] <= depth[i]) or depth[j] < depth[i]:
                break
            below.append(lines[j])
        above = next((lines[j] for j in range(i - 1, -1, -1) if depth[j] < depth[i]), "")
        probed = any("Index Cond" in b for b in below) or "Limit" in above
        if "Seq Scan" in line or not probed:
            whole.append(line.strip())
    return whole


def test_an_idle_cycle_saves_the_cursor_read_time_and_records_the_run_and_ledger_mark(
    tmp_path: Path, store_url: str
) -> None:
    """The empty page's cursor waits for the run's last statement: it must still land, with
    the run's final counters, and the KPIs' ledger mark must be the ledger's newest row."""
    with _settled_app(tmp_path, store_url) as (app, now):
        store = app.store
        before = store.cursor("salesforce")
        assert before is not None
        now["t"] += timedelta(minutes=5)
        idle = app.pipelines["salesforce"].run_cycle()
        after = store.cursor("salesforce")
        with store.reading() as conn:
            run = conn.execute(
                select(RunRow.__table__).where(RunRow.__table__.c.run_id == idle.run_id)
            ).one()
            newest = conn.execute(select(func.max(StatusHistoryRow.__table__.c.id))).scalar()
    assert idle.outcome == "ok" and idle.pulled == 0
    assert after is not None and after[2] is not None and before[2] is not None
    assert after[2] > before[2]  # the pull's read time moved on
    assert (after[0], after[1]) == (before[0], before[1])  # nothing new: the position stays
    assert run.outcome == "ok" and run.finished_at is not None
    assert run.api_calls == idle.api_calls >= 1
    assert newest is not None and idle.ledger_mark == newest


def test_a_cycle_that_fails_after_an_empty_page_still_saves_its_cursor(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle failing after its pull (here: its plan step) still records the cursor it read,
    as the checkpoint of the page did when it was a statement of its own."""
    with _settled_app(tmp_path, store_url) as (app, now):
        store = app.store
        before = store.cursor("salesforce")
        assert before is not None
        pipeline = app.pipelines["salesforce"]

        def broken_plan(*_: Any, **__: Any) -> None:
            raise RuntimeError("the plan step broke")

        monkeypatch.setattr(pipeline, "plan", broken_plan)
        now["t"] += timedelta(minutes=5)
        failed = pipeline.run_cycle()
        after = store.cursor("salesforce")
    assert failed.outcome == "failed" and failed.reason == "internal"
    assert after is not None and after[2] is not None and before[2] is not None
    assert after[2] > before[2]


def test_a_lead_written_between_the_cycles_start_and_its_plan_is_evaluated_in_that_cycle(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cycle's start reads the plan probe before the pull; once anything is written after
    it (here a lead made never-evaluated, as a pull storing it would), the plan probes again."""
    with _settled_app(tmp_path, store_url) as (app, now):
        store = app.store
        pipeline = app.pipelines["salesforce"]
        real_pull = pipeline.pull
        lead = LeadRow.__table__

        def pull_then_write(report: Any, *, until: datetime) -> None:
            real_pull(report, until=until)
            with store.begin() as conn:
                conn.execute(
                    update(lead).where(lead.c.lead_id == sorted(ids)[0]).values(due_at=None)
                )

        with store.reading() as conn:
            ids = [r[0] for r in conn.execute(select(lead.c.lead_id))]
        monkeypatch.setattr(pipeline, "pull", pull_then_write)
        now["t"] += timedelta(minutes=5)
        report = pipeline.run_cycle()
    assert report.outcome == "ok" and report.pulled == 0
    assert report.evaluated == 1
