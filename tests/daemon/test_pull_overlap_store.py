"""A pull whose store fails on a page (on PostgreSQL syncd.pull_overlap stores it on its own
thread while the next page is read) leaves the mirror and cursor at the page before, and the
next cycle goes on from there: nothing lost, nothing twice; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tests.daemon.harness import running_app, sf_lead, write_config

_REST_PAGES = """    lag_seconds: 0   # tests seed leads a moment before the cycle
    bulk_read_threshold: null   # REST pages of 200 leads: 700 leads are 4 pages
    page_size: 200
    overlap_seconds: 0   # the seeded leads are seconds old: no overlap re-read of them
"""
_LEADS = 700
_PAGE = 200


def test_a_page_the_store_refuses_ends_the_cycle_with_the_cursor_at_the_page_before(
    tmp_path: Path, store_url: str
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    config.write_text(
        config.read_text().replace(
            "    lag_seconds: 0   # tests seed leads a moment before the cycle\n", _REST_PAGES
        )
    )
    with running_app(config) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(_LEADS)
        )
        store = app.store
        upsert = store.upsert_leads
        pages: list[int] = []

        def second_page_refused(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
            pages.append(len(rows))
            if len(pages) == 2:  # the server went away under page 2's statement
                raise OperationalError("INSERT INTO lead", {}, Exception("connection lost"))
            upsert(conn, rows)

        store.upsert_leads = second_page_refused  # type: ignore[method-assign]
        pipeline = app.pipelines["salesforce"]
        report = pipeline.run_cycle()
        assert report.outcome == "failed" and report.reason == "database"
        assert "connection lost" in report.message and "nothing is lost" in report.message
        assert report.pulled == _PAGE
        assert pages == [_PAGE, _PAGE]  # page 3 was never handed to the store
        with store.begin() as conn:
            mirrored = set(store.leads_by_id(conn, "salesforce", ids))
        assert len(mirrored) == _PAGE
        cursor = store.cursor("salesforce")
        assert cursor is not None and cursor[1] in mirrored  # page 1's last lead

        store.upsert_leads = upsert  # type: ignore[method-assign]
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        assert report.pulled == _LEADS - _PAGE  # from page 2 on: page 1 is not read again
        assert store.count_live("salesforce") == _LEADS


def test_a_cycle_into_an_in_memory_sqlite_store_pulls_on_its_one_connection(
    tmp_path: Path,
) -> None:
    # SQLAlchemy gives each thread its own in-memory database: a store thread would find no
    # tables there, so such a store is pulled into without one.
    config = write_config(tmp_path, crms=("salesforce",), state_url="sqlite://")
    config.write_text(
        config.read_text().replace(
            "    lag_seconds: 0   # tests seed leads a moment before the cycle\n", _REST_PAGES
        )
    )
    with running_app(config) as app:
        app.embedded.salesforce.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(300)
        )
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
        assert app.store.count_live("salesforce") == 300


def test_pages_are_stored_on_a_store_thread_on_postgresql_and_on_the_cycles_own_on_sqlite(
    tmp_path: Path, store_url: str
) -> None:
    """The overlap pays where the database works in processes of its own (PostgreSQL); on
    SQLite the store's work shares the interpreter lock with the read, and a store thread only
    added switching (a 100k first sync took about 10 % longer with it)."""
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    config.write_text(
        config.read_text().replace(
            "    lag_seconds: 0   # tests seed leads a moment before the cycle\n", _REST_PAGES
        )
    )
    with running_app(config) as app:
        app.embedded.salesforce.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(_LEADS)
        )
        store = app.store
        upsert = store.upsert_leads
        threads: list[threading.Thread] = []

        def noted(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
            threads.append(threading.current_thread())
            upsert(conn, rows)

        store.upsert_leads = noted  # type: ignore[method-assign]
        report = app.pipelines["salesforce"].run_cycle()
    assert report.outcome == "ok", report.message
    assert len(threads) == 4  # 700 leads in pages of 200
    on_cycle_thread = [t is threading.current_thread() for t in threads]
    postgres = store_url.startswith("postgresql")
    assert on_cycle_thread == [not postgres] * 4
