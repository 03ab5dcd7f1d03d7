"""The race check's awaiting writes in the state store (syncd.race_book): a record per write
call, read back by a restarted process, deleted once read, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.race_book import RaceBook
from syncd.state import OutboxState, StateStore

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(state_store: StateStore) -> StateStore:
    return state_store


def _outbox(store: StateStore, crm: str, n: int, state: str) -> list[int]:
    rows = [
        {
            "crm": crm,
            "lead_id": f"L{k}",
            "kind": "field",
            "field": "status",
            "value": "Nurture",
            "before": "Open",
            "rule_id": "stale",
            "ruleset_version": "v1",
            "run_id": "r1",
            "intent_id": f"r1.L{k}",
            "state": state,
            "attempts": 0,
            "created_at": T0,
            "updated_at": T0,
        }
        for k in range(n)
    ]
    with store.begin() as conn:
        store.add_changes(conn, rows)
    return [r.id for r in store.changes_of_run(crm, "r1", [state])]


def test_a_restarted_process_reads_every_calls_record_and_only_the_writes_that_were_done(
    store: StateStore,
) -> None:
    done = _outbox(store, "sf_eu", 6, OutboxState.DONE)
    book = RaceBook(store, "sf_eu")
    with store.begin() as conn:
        book.record_sent(conn, done[:3], T0)
        book.record_sent(conn, done[3:], T0 - timedelta(minutes=5))
        book.record_sent(conn, [999_999], T0)  # never confirmed: not awaited after a restart
    # Another connector whose name a LIKE pattern's "_" would match: its record is not read.
    other = RaceBook(store, "sf-eu")
    with store.begin() as conn:
        other.record_sent(conn, done[:1], T0 - timedelta(hours=1))
    assert book.pending is None  # records alone: the running process keeps its own memory

    restarted = RaceBook(store, "sf_eu").load()

    assert restarted is not None
    assert restarted.written.tolist() == sorted(done)
    assert restarted.since == T0 - timedelta(minutes=5)  # the earliest any record names


def test_clearing_the_check_deletes_its_records_and_the_one_an_earlier_version_left(
    store: StateStore,
) -> None:
    done = _outbox(store, "sf", 2, OutboxState.DONE)
    store.set_meta("race_check:sf", {"since": T0.isoformat(), "ids": done[:1]})
    book = RaceBook(store, "sf")
    with store.begin() as conn:
        book.record_sent(conn, done[1:], T0)
    store.set_meta("race_check:sf_other", {"since": T0.isoformat(), "ids": [7]})

    loaded = book.load()
    book.clear()

    assert loaded is not None and loaded.written.tolist() == sorted(done)
    assert book.pending is None
    assert store.meta_with_prefix("race_check:sf:") == {}
    assert store.get_meta("race_check:sf") is None
    assert store.get_meta("race_check:sf_other") == {"since": T0.isoformat(), "ids": [7]}
    assert RaceBook(store, "sf").load() is None


def test_records_whose_writes_all_failed_are_dropped_at_load(store: StateStore) -> None:
    failed = _outbox(store, "hs", 2, OutboxState.FAILED)
    with store.begin() as conn:
        RaceBook(store, "hs").record_sent(conn, failed, T0)

    assert RaceBook(store, "hs").load() is None
    assert store.meta_with_prefix("race_check:hs") == {}
