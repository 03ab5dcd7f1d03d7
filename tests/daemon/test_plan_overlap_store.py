"""A plan whose store fails on a batch (on PostgreSQL syncd.plan_overlap records each batch on
its own thread while the next is judged) ends the cycle having sent nothing, and the next cycle
writes every change once: nothing lost, nothing twice; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tests.daemon.harness import running_app, sf_lead, sf_statuses_patched, write_config

_LEADS = 2_500  # three batches of the plan's 1,000


def _stale_leads(app: object) -> list[str]:
    sf = app.embedded.salesforce  # type: ignore[attr-defined]
    return list(
        sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(_LEADS)
        )
    )


def test_a_batch_the_store_refuses_sends_nothing_and_the_next_cycle_writes_each_change_once(
    tmp_path: Path, store_url: str
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config) as app:
        ids = _stale_leads(app)
        store, pipeline = app.store, app.pipelines["salesforce"]
        set_due = store.set_due
        batches: list[int] = []

        def second_batch_refused(
            conn: Connection, crm: str, dues: Sequence[tuple[str, datetime, bool]]
        ) -> None:
            batches.append(len(dues))
            if len(batches) == 2:  # the server went away under batch 2's due times
                raise OperationalError("UPDATE lead", {}, Exception("connection lost"))
            set_due(conn, crm, dues)

        store.set_due = second_batch_refused  # type: ignore[method-assign]
        failed = pipeline.run_cycle(approve_large_run=True)
        assert failed.outcome == "failed" and failed.reason == "database", failed.message
        assert batches == [1_000, 1_000]  # batch 3 was never handed to the store
        assert failed.written == 0 and sf_statuses_patched(app) == []

        store.set_due = set_due  # type: ignore[method-assign]
        done = pipeline.run_cycle(approve_large_run=True)
        assert done.outcome == "ok", done.message
        after = pipeline.run_cycle(approve_large_run=True)
        patched = Counter(sf_statuses_patched(app))
        sf = app.embedded.salesforce
        assert set(patched) == set(ids) and set(patched.values()) == {1}
        assert {sf.lead(i)["Status"] for i in ids} == {"Nurture"}
        assert after.outcome == "ok" and after.written == 0


def test_batches_are_recorded_on_a_store_thread_on_postgresql_and_on_the_cycles_own_on_sqlite(
    tmp_path: Path, store_url: str
) -> None:
    """The overlap pays where the database works in processes of its own (PostgreSQL: a 100k
    first sync's plan step took 6.5-8.1 s against 4.5-5.0 s on SQLite); on SQLite the store's
    work shares the interpreter lock with the judging."""
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config) as app:
        _stale_leads(app)
        store = app.store
        set_due = store.set_due
        threads: list[threading.Thread] = []

        def noted(conn: Connection, crm: str, dues: Sequence[tuple[str, datetime, bool]]) -> None:
            threads.append(threading.current_thread())
            set_due(conn, crm, dues)

        store.set_due = noted  # type: ignore[method-assign]
        report = app.pipelines["salesforce"].run_cycle(approve_large_run=True)
    assert report.outcome == "ok", report.message
    assert report.evaluated == _LEADS and len(threads) == 3
    on_cycle_thread = {t is threading.current_thread() for t in threads}
    assert on_cycle_thread == ({False} if store_url.startswith("postgresql") else {True})
