"""A leader's idle cycle on kept answers (syncd.idle_memo): one statement to the store, and no
lead, hold or write of another process missed because of it.

The pipelines here hold their connector's lease as a daemon's do (kept answers need one); the
lease's own renewals are left out of the statements counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from syncd import plan_probe, run_books
from syncd.app import App
from syncd.idle_memo import LIFE
from syncd.lease import Lease, connector_lease
from syncd.state import LeadRow, RunRow, StateStore, StatusHistoryRow

from .harness import hs_contact, running_app, sf_lead, write_config
from .test_idle_cycle_writes import libpq_trace

Clock = dict[str, datetime]


@contextmanager
def _leading(
    tmp_path: Path, store_url: str, leads: Callable[[Any, datetime], None]
) -> Iterator[tuple[App, Clock, Lease]]:
    """An app whose Salesforce pipeline holds the lease, with ``leads`` seeded and the mirror
    settled: its next cycle pulls nothing and plans nothing."""
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config, clock=lambda: now["t"]) as app:
        lease = connector_lease(app.store, app.settings, "salesforce", announce=logging.DEBUG)
        assert lease.try_acquire()
        lease.start(standby=False)
        app.pipelines["salesforce"].lease = lease
        try:
            leads(app.embedded.salesforce, datetime.now(UTC).replace(microsecond=0))
            _settle(app, now)
            yield app, now, lease
        finally:
            lease.close()


def _settle(app: App, now: Clock) -> None:
    """Cycles a minute apart until one pulls, plans and writes nothing."""
    pipeline = app.pipelines["salesforce"]
    for _ in range(8):
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        now["t"] += timedelta(seconds=60)
        if report.pulled == report.planned == report.written == 0:
            return
    raise AssertionError("the mirror never settled")


def _twenty(sf: Any, real_now: datetime) -> None:
    sf.add_leads(
        [
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=1)
            for i in range(20)
        ],
        modstamp=real_now - timedelta(hours=1),
    )


def _one_coming_due(ids: list[str]) -> tuple[Callable[[Any, datetime], None], datetime]:
    """A seed of one lead 89 days without activity and five fresh ones (their ids go to
    ``ids``), and the instant the first comes due under the stale-nurture rule."""
    start = datetime.now(UTC)

    def seed(sf: Any, real_now: datetime) -> None:
        ids.extend(
            sf.add_leads(
                [sf_lead("A", "a@acme.com", title="Analyst", activity_days=89)]
                + [
                    sf_lead(f"F{i}", f"f{i}@acme.com", title="Analyst", activity_days=1)
                    for i in range(5)
                ],
                modstamp=real_now - timedelta(hours=2),
            )
        )

    # LastActivityDate is a date: 90 days have passed once the day after it is 90 days old.
    day = (start - timedelta(days=89)).date()
    return seed, datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) + timedelta(days=90)


def _statements(app: App, work: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``work()``'s result and the statements it sent, the lease's own left out."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split())
        if " lease" not in text:
            sent.append(text)

    event.listen(app.store.engine, "before_cursor_execute", capture)
    try:
        return work(), sent
    finally:
        event.remove(app.store.engine, "before_cursor_execute", capture)


def _run_row(app: App, run_id: str) -> Any:
    table = RunRow.__table__
    with app.store.reading() as conn:
        return conn.execute(select(table).where(table.c.run_id == run_id)).one()


def test_a_leaders_idle_cycle_after_an_idle_cycle_sends_one_statement_and_records_its_run(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    with _leading(tmp_path, store_url, _twenty) as (app, now, _lease):
        pipeline = app.pipelines["salesforce"]
        now["t"] += timedelta(minutes=1)
        idle = pipeline.run_cycle()
        before = app.store.cursor("salesforce")
        now["t"] += timedelta(minutes=1)
        kept, kept_sent = _statements(app, pipeline.run_cycle)
        after = app.store.cursor("salesforce")
        run = _run_row(app, kept.run_id)
    assert idle.outcome == kept.outcome == "ok" and idle.pulled == kept.pulled == 0
    assert kept.run_id not in starts and idle.run_id not in starts  # both on kept answers
    assert not [s for s in kept_sent if "FROM lead" in s or "outbox" in s], kept_sent
    if store_url.startswith("postgresql"):
        # The run and the cursor in one statement, sent by psycopg itself (syncd.pg_direct):
        # SQLAlchemy's events see none; libpq's trace sees one (the wire test below).
        assert kept_sent == [], kept_sent
    else:
        assert len(kept_sent) <= 3, kept_sent
    assert run.outcome == "ok" and run.finished_at is not None and run.api_calls >= 1
    assert not [s for s in kept_sent if "status_history" in s], kept_sent  # the kept mark
    assert kept.ledger_mark is not None and kept.ledger_mark == idle.ledger_mark
    assert before is not None and after is not None and before[2] is not None
    assert after[2] is not None and after[2] > before[2]  # the empty pull's read time moved on


def _newest_ledger_id(app: App) -> int:
    table = StatusHistoryRow.__table__
    with app.store.reading() as conn:
        return int(conn.execute(select(func.max(table.c.id))).scalar_one() or 0)


def test_the_kept_ledger_mark_moves_on_with_a_persons_edit_a_kept_answer_cycle_pulls(
    tmp_path: Path, store_url: str
) -> None:
    """A quiet cycle on kept answers reports the kept mark (it reads no ledger); the cycle that
    pulls a person's status edit records a ledger row and reports the ledger's new newest id,
    so the funnel KPIs refresh; the quiet cycles after it keep that one."""
    ids: list[str] = []

    def seed(sf: Any, real_now: datetime) -> None:
        leads = [sf_lead(f"M{i}", f"m{i}@acme{i}.com", title="Analyst") for i in range(5)]
        ids.extend(sf.add_leads(leads, modstamp=real_now - timedelta(hours=1)))

    with _leading(tmp_path, store_url, seed) as (app, now, _lease):
        pipeline = app.pipelines["salesforce"]
        reports = []
        for _ in range(2):
            now["t"] += timedelta(minutes=1)
            reports.append(pipeline.run_cycle())
        before = _newest_ledger_id(app)
        app.embedded.salesforce.update_lead(ids[0], {"Status": "Working - Contacted"})
        now["t"] += timedelta(minutes=1)
        moved = pipeline.run_cycle()
        grown = _newest_ledger_id(app)
        for _ in range(3):
            now["t"] += timedelta(minutes=1)
            reports.append(pipeline.run_cycle())
    assert reports[0].ledger_mark == reports[1].ledger_mark == before
    assert moved.pulled == 1 and grown > before
    assert moved.ledger_mark == grown
    assert [r.ledger_mark for r in reports[2:]] == [grown] * 3
    assert all(r.outcome == "ok" for r in reports) and reports[0].pulled == reports[1].pulled == 0


def test_a_leaders_idle_cycle_on_postgresql_is_one_round_trip_on_the_wire(
    tmp_path: Path, postgres_url: str
) -> None:
    """libpq's own trace of the cycle's connections: one Sync, one ReadyForQuery, no
    BEGIN/COMMIT (the lease's renewals, on its own thread, would show as theirs: the ttl
    keeps them out of a cycle this short)."""
    with _leading(tmp_path, postgres_url, _twenty) as (app, now, _lease):
        pipeline = app.pipelines["salesforce"]
        now["t"] += timedelta(minutes=1)
        pipeline.run_cycle()
        now["t"] += timedelta(minutes=1)
        idle, lines = libpq_trace(app, tmp_path, pipeline.run_cycle)
    assert idle.outcome == "ok" and idle.pulled == 0
    to_server = [line.split("\t")[2] for line in lines if line.startswith("F\t")]
    assert "Query" not in to_server, lines  # no simple-protocol BEGIN/COMMIT/ROLLBACK
    assert to_server.count("Sync") == 1, lines
    assert sum(line.startswith("B\t") and "ReadyForQuery" in line for line in lines) == 1


def test_a_lead_coming_due_between_kept_answer_cycles_is_moved_by_the_first_cycle_after(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    ids: list[str] = []
    seed, due = _one_coming_due(ids)

    with _leading(tmp_path, store_url, seed) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        now["t"] = max(now["t"], due - timedelta(minutes=8))
        pipeline.run_cycle()  # asks the store, keeps the answers
        for t in (due - timedelta(minutes=5), due - timedelta(minutes=1)):
            now["t"] = t
            idle = pipeline.run_cycle()
            assert idle.outcome == "ok" and idle.planned == 0 and idle.evaluated == 0
            assert idle.run_id not in starts, "nothing due yet: the kept answers stand"
        now["t"] = due + timedelta(minutes=1)
        moved = pipeline.run_cycle()
        assert moved.run_id in starts  # the first due time ended the kept answers
        assert moved.outcome == "ok" and moved.evaluated == 1 and moved.written == 2
        assert sf.lead(ids[0])["Status"] == "Nurture"


def test_a_hold_ending_between_kept_answer_cycles_is_counted_by_the_first_cycle_after(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    with _leading(tmp_path, store_url, _twenty) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        with app.store.reading() as conn:
            held_id = sorted(r[0] for r in conn.execute(select(LeadRow.__table__.c.lead_id)))[0]
        # Stamped before the pull's overlap window, so it is read once, not on every cycle.
        stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        sf.update_lead(held_id, {"Status": "Working - Contacted"}, modstamp=stamp)
        _settle(app, now)
        hold = app.settings.connectors()["salesforce"].hold_rep_edits_for
        row = app.store.lead("salesforce", held_id)
        assert row is not None and row.rep_edit_at is not None
        ends = row.rep_edit_at.replace(tzinfo=UTC) + hold
        now["t"] = ends - timedelta(minutes=10)
        assert pipeline.run_cycle().held == 1
        now["t"] = ends - timedelta(minutes=1)
        kept = pipeline.run_cycle()
        assert kept.run_id not in starts and kept.held == 1
        now["t"] = ends + timedelta(minutes=1)
        after = pipeline.run_cycle()
    assert after.run_id in starts and after.held == 0


def test_kept_answers_are_dropped_when_the_lease_changes_hands_and_after_their_life(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    """Only the lease holder writes the mirror: a write behind its back (another holder while
    this one lost the lease, or a hand edit) is seen once the token changes, and at the latest
    after ``LIFE``."""
    with _leading(tmp_path, store_url, _twenty) as (app, now, lease):
        pipeline = app.pipelines["salesforce"]
        with app.store.reading() as conn:
            first, second = sorted(r[0] for r in conn.execute(select(LeadRow.lead_id)))[:2]
        other = StateStore(store_url)  # another process's store: not this one's write count

        def never_evaluated(lead_id: str) -> None:
            with other.begin() as conn:
                table = LeadRow.__table__
                conn.execute(update(table).where(table.c.lead_id == lead_id).values(due_at=None))

        try:
            now["t"] += timedelta(minutes=1)
            pipeline.run_cycle()
            never_evaluated(first)
            now["t"] += timedelta(minutes=1)
            stale = pipeline.run_cycle()
            assert stale.evaluated == 0 and stale.run_id not in starts  # written behind its back

            lease.release()
            assert lease.try_acquire()  # a new token: someone else may have led meanwhile
            now["t"] += timedelta(minutes=1)
            handed = pipeline.run_cycle()
            assert handed.run_id in starts and handed.evaluated == 1

            now["t"] += timedelta(minutes=1)
            pipeline.run_cycle()  # keeps answers again
            never_evaluated(second)
            now["t"] += LIFE - timedelta(minutes=2)
            within = pipeline.run_cycle()
            assert within.run_id not in starts and within.evaluated == 0
            now["t"] += timedelta(minutes=3)
            aged = pipeline.run_cycle()
            assert aged.run_id in starts and aged.evaluated == 1
        finally:
            other.close()


def test_a_pull_on_kept_answers_records_its_run_with_its_first_page_and_plans_the_lead(
    tmp_path: Path, store_url: str, starts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run row is written with the first page a cycle on kept answers stores, so a cycle
    that dies after it still shows what it pulled."""
    with _leading(tmp_path, store_url, _twenty) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        now["t"] += timedelta(minutes=1)
        pipeline.run_cycle()
        (new,) = sf.add_leads(
            [sf_lead("Old", "old@acme.com", title="Analyst", activity_days=200)],
            modstamp=datetime.now(UTC).replace(microsecond=0),
        )
        seen_during_plan: list[Any] = []
        real_plan = pipeline.plan

        def plan(report: Any, *args: Any, **kwargs: Any) -> None:
            seen_during_plan.append(_run_row(app, report.run_id))
            real_plan(report, *args, **kwargs)

        monkeypatch.setattr(pipeline, "plan", plan)
        now["t"] += timedelta(minutes=1)
        moved = pipeline.run_cycle()
    assert moved.run_id not in starts and moved.pulled == 1
    (during,) = seen_during_plan
    assert during.outcome == "running" and during.pulled == 1
    assert moved.outcome == "ok" and moved.written == 2  # its status and newsletter
    assert sf.lead(new)["Status"] == "Nurture"


def test_idle_cycles_of_two_connectors_on_one_store_each_keep_their_answers(
    tmp_path: Path, starts: list[str]
) -> None:
    """A run's start and end are bookkeeping no plan reads: one connector's idle cycles do not
    end the other's kept answers."""
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce", "hubspot"))
    with running_app(config, clock=lambda: now["t"]) as app:
        leases = []
        for crm in ("salesforce", "hubspot"):
            lease = connector_lease(app.store, app.settings, crm, announce=logging.DEBUG)
            assert lease.try_acquire()
            lease.start(standby=False)
            app.pipelines[crm].lease = lease
            leases.append(lease)
        try:
            real_now = datetime.now(UTC).replace(microsecond=0)
            _twenty(app.embedded.salesforce, real_now)
            stamp = real_now - timedelta(hours=1)  # before the pulls' overlap windows
            app.embedded.hubspot.add_contacts(
                hs_contact(f"H{i}", f"h{i}@acme{i}.com", title="Analyst", lastmodifieddate=stamp)
                for i in range(5)
            )
            reports: dict[str, list[Any]] = {"salesforce": [], "hubspot": []}
            for _ in range(10):
                for crm, pipeline in app.pipelines.items():
                    reports[crm].append(pipeline.run_cycle())
                now["t"] += timedelta(seconds=30)
        finally:
            for lease in leases:
                lease.close()
    for crm, runs in reports.items():
        assert all(r.outcome == "ok" for r in runs), crm
        last = runs[-3:]
        assert all(r.pulled == r.planned == 0 for r in last), (crm, last)
        assert not {r.run_id for r in last} & set(starts), f"{crm}: kept answers were dropped"


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """When each separate plan probe (``plan_probe.probe``) was asked, in order."""
    asked: list[datetime] = []
    original = plan_probe.probe

    def spy(store: StateStore, crm: str, *, now: datetime, held_since: datetime) -> Any:
        asked.append(now)
        return original(store, crm, now=now, held_since=held_since)

    monkeypatch.setattr(plan_probe, "probe", spy)
    return asked


def _first_lead(app: App) -> str:
    with app.store.reading() as conn:
        return str(sorted(r[0] for r in conn.execute(select(LeadRow.__table__.c.lead_id)))[0])


def test_the_cycle_after_one_that_pulled_and_sent_nothing_runs_on_answers_read_at_its_end(
    tmp_path: Path, store_url: str, starts: list[str], probes: list[datetime]
) -> None:
    """A cycle that settled a pull (the echo of syncd's writes, an edit that needs no write)
    reads its successor's answers at its end: the idle cycle after it asks nothing before its
    pull, and on PostgreSQL sends nothing through SQLAlchemy (its one statement, the run's end,
    goes by psycopg itself)."""
    with _leading(tmp_path, store_url, _twenty) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        sf.update_lead(_first_lead(app), {"Company": "Renamed Inc"}, modstamp=stamp)
        now["t"] += timedelta(minutes=1)
        asked_before = len(probes)
        settling = pipeline.run_cycle()
        asked_by_settling = len(probes) - asked_before
        now["t"] += timedelta(minutes=1)
        idle, sent = _statements(app, pipeline.run_cycle)
    assert settling.outcome == "ok" and settling.pulled == 1 and settling.written == 0
    assert asked_by_settling == 2  # the plan step's, and the one for its successor at its end
    assert idle.outcome == "ok" and idle.pulled == idle.evaluated == 0
    assert idle.run_id not in starts, "the settling cycle's answers stand"
    assert not [s for s in sent if "FROM lead" in s or "outbox" in s], sent
    if store_url.startswith("postgresql"):  # its one statement goes by syncd.pg_direct
        assert sent == [], sent


def test_a_cycle_that_wrote_to_the_crm_reads_no_answers_at_its_end_and_its_echo_is_planned(
    tmp_path: Path, store_url: str, starts: list[str], probes: list[datetime]
) -> None:
    """The next pull brings back the echo of the cycle's writes, which would spend answers
    read at its end: none are read, and the cycle after it asks at its start as before."""
    with _leading(tmp_path, store_url, _twenty) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        stale = (datetime.now(UTC) - timedelta(days=200)).date()
        stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        lead_id = _first_lead(app)
        sf.update_lead(lead_id, {"LastActivityDate": stale}, modstamp=stamp)
        now["t"] += timedelta(minutes=1)
        asked_before = len(probes)
        writing = pipeline.run_cycle()
        asked_by_writing = len(probes) - asked_before
        now["t"] += timedelta(minutes=1)
        echo = pipeline.run_cycle()
    assert writing.outcome == "ok" and writing.written == 2  # the status and the newsletter
    assert asked_by_writing == 1  # the plan step's alone
    assert echo.outcome == "ok" and echo.pulled == 1 and echo.written == 0
    assert echo.run_id in starts
    assert sf.lead(lead_id)["Status"] == "Nurture"


def test_a_lead_coming_due_after_a_settling_cycle_is_moved_by_the_first_cycle_past_its_time(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    """The answers a settling cycle read at its end carry the first due time, as an idle
    cycle's do."""
    ids: list[str] = []
    seed, due = _one_coming_due(ids)

    with _leading(tmp_path, store_url, seed) as (app, now, _lease):
        sf, pipeline = app.embedded.salesforce, app.pipelines["salesforce"]
        now["t"] = max(now["t"], due - timedelta(minutes=8))
        stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        sf.update_lead(ids[1], {"Company": "Renamed Inc"}, modstamp=stamp)
        settling = pipeline.run_cycle()
        now["t"] = due - timedelta(minutes=2)
        idle = pipeline.run_cycle()
        now["t"] = due + timedelta(minutes=1)
        moved = pipeline.run_cycle()
    assert settling.pulled == 1 and settling.written == 0
    assert idle.run_id not in starts and idle.evaluated == 0
    assert moved.run_id in starts and moved.evaluated == 1 and moved.written == 2
    assert sf.lead(ids[0])["Status"] == "Nurture"


def test_a_quiet_end_whose_cursor_cannot_be_saved_still_records_the_run(
    state_store: StateStore,
) -> None:
    """``run_books.finish_quiet`` falls back to the run alone, as ``finish`` does: the next
    pull reads from the cursor saved before, and the run row still says how the cycle ended."""
    now = datetime.now(UTC)
    run = RunRow(run_id="quiet1", crm="salesforce", started_at=now, finished_at=now, outcome="ok")
    unstorable = (now, None, now)  # a cursor without its record id: NOT NULL refuses it
    run_books.finish_quiet(state_store, run, unstorable, now)  # type: ignore[arg-type]
    with state_store.reading() as conn:
        row = conn.execute(select(RunRow.__table__).where(RunRow.__table__.c.run_id == "quiet1"))
        recorded = row.one()
    assert recorded.outcome == "ok" and recorded.finished_at is not None
    assert state_store.cursor("salesforce") is None
