"""The funnel KPIs kept incrementally equal a full recompute at every step, and cost what
changed since the last refresh, not the window."""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, update

from rules.calendar import Calendar
from syncd import kpi_incremental, report
from syncd.kpi_incremental import FunnelState
from syncd.report import Report, ReportOptions, compute
from syncd.report_read import read_inputs
from syncd.state import LeadRow, StateStore, StatusHistoryRow

CRM = "salesforce"
MAPS = {CRM: {"Closed - Not Converted": "Unqualified"}}
STATUSES = ["New", "MQL", "SAL", "SQL", "Converted", "Closed - Not Converted", "Nurture"]
# Berlin hours with a holiday: the SLA's business hours cross weekends, a holiday and DST.
CALENDAR = Calendar(timezone="Europe/Berlin", holidays=frozenset({date(2026, 10, 26)}))
START = datetime(2026, 10, 14, 15, 30, tzinfo=UTC)  # a Wednesday
_EMPTY: dict[str, Any] = {"enrichment": {}, "reasons": {}, "newsletters": []}


def _options(now: datetime, **changes: Any) -> ReportOptions:
    options = ReportOptions(
        since=now - timedelta(days=90),
        until=now,
        now=now,
        calendar=CALENDAR,
        stale_after=timedelta(days=20),
        accept_within_hours=8.0,
    )
    return replace(options, **changes)


def _comparable(report: Report) -> dict[str, Any]:
    """Everything a report says: its fields, and each time-in-stage distribution's figures."""
    data = asdict(replace(report, durations_days={}))
    data["durations_days"] = {
        stage: (len(d), d.percentiles((50, 75, 90))) for stage, d in report.durations_days.items()
    }
    return data


def _full(engine: Engine, options: ReportOptions, mark: int) -> Report:
    leads = read_inputs(engine, MAPS, crm=CRM, since=options.since, max_id=mark)
    return compute(leads, options)[0]


def _mark(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(StatusHistoryRow.__table__.c.id))).scalar() or 0)


class _World:
    """A random ledger and mirror that grow as a CRM's would between refreshes."""

    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.status: dict[str, str | None] = {}
        self.leads = 0

    def _lead_row(self, lead_id: str, now: datetime) -> dict[str, Any]:
        rng = self.rng
        fields: dict[str, Any] = {"owner": rng.choice(["ann", "bob", None])}
        kind = rng.random()
        if kind < 0.3:  # an activity at some time around the lead's changes
            fields["last_activity_at"] = (now - timedelta(hours=rng.uniform(0, 400))).isoformat()
        elif kind < 0.45:  # date-only activity (counts from that day on)
            fields["last_activity_at"] = (
                (now - timedelta(days=rng.randint(0, 20))).date().isoformat()
            )
        return {
            "crm": CRM,
            "lead_id": lead_id,
            "modified_at": now,
            "fields": fields,
            "status": None,
            "first_seen_at": now,
            "pulled_at": now,
            **_EMPTY,
        }

    def _walk(self, lead_id: str, start: datetime, steps: int) -> list[dict[str, Any]]:
        """Transitions of one lead: mostly forward, with rejects, regressions and skips."""
        rng = self.rng
        rows = []
        at = start
        for _ in range(steps):
            previous = self.status.get(lead_id)
            here = STATUSES.index(previous) if previous in STATUSES else -1
            roll = rng.random()
            if previous == "MQL" and roll < 0.25:
                to = rng.choice(["Closed - Not Converted", "Nurture"])  # a rejection
            elif (roll < 0.15 and here > 1) or here == 4:
                to = STATUSES[rng.randint(0, here - 1)]  # a regression
            elif roll < 0.25:
                to = STATUSES[min(4, here + 2)]  # a skip
            else:
                to = STATUSES[min(4, here + 1)]
            rows.append(
                {
                    "crm": CRM,
                    "lead_id": lead_id,
                    "field": "status",
                    "from_value": previous,
                    "to_value": to,
                    "at": at,
                    "actor": "person",
                    "source": "pulled",
                }
            )
            self.status[lead_id] = to
            at += timedelta(hours=rng.choice([0.5, 3, 7, 20, 30, 60, 200]))
        return rows

    def grow(self, now: datetime, previous: datetime | None) -> None:
        """New leads, new transitions of known leads (near ``now``, some backfilled far back,
        a few dated ahead of the clock), and mirror rows stored again (new activity)."""
        rng = self.rng
        history: list[dict[str, Any]] = []
        new_leads: list[dict[str, Any]] = []
        for _ in range(rng.randint(3, 8)):
            lead_id = f"L{self.leads:04d}"
            self.leads += 1
            new_leads.append(self._lead_row(lead_id, now))
            back = timedelta(days=rng.uniform(0, 120)) if previous is None else timedelta(0)
            start = now - back - timedelta(hours=rng.uniform(1, 72))
            history += self._walk(lead_id, start, rng.randint(1, 6))
        known = sorted(self.status)
        for lead_id in rng.sample(known, min(len(known), rng.randint(2, 6))):
            offset = rng.choice([-30, -2, -0.5, -0.1, 0.2])  # hours from now; > 0: ahead
            if rng.random() < 0.1:
                offset = -24 * rng.uniform(20, 100)  # a backfilled old transition
            history += self._walk(lead_id, now + timedelta(hours=offset), rng.randint(1, 2))
        with self.engine.begin() as conn:
            if new_leads:
                conn.execute(insert(LeadRow.__table__), new_leads)
            conn.execute(insert(StatusHistoryRow.__table__), history)
            lt = LeadRow.__table__
            pulled = now if previous is None else previous + (now - previous) / 2
            for lead_id in rng.sample(known, min(len(known), 4)):  # a pull stored them again
                row = self._lead_row(lead_id, now)
                if rng.random() < 0.7:
                    activity = pulled - timedelta(hours=rng.uniform(0, 30))
                    row["fields"]["last_activity_at"] = activity.isoformat()
                conn.execute(
                    update(lt)
                    .where(lt.c.crm == CRM, lt.c.lead_id == lead_id)
                    .values(fields=row["fields"], pulled_at=pulled)
                )


#: Clock steps between refreshes: within an SLA, across nights and weekends, past the stale
#: threshold and the window's start.
STEPS = [
    timedelta(hours=2),
    timedelta(hours=9),
    timedelta(days=2, hours=5),
    timedelta(hours=17),
    timedelta(days=4),
    timedelta(minutes=40),
    timedelta(days=11),
    timedelta(days=1, hours=3),
    timedelta(days=23),
    timedelta(hours=6),
    timedelta(days=35),
    timedelta(days=3),
]


@pytest.fixture(autouse=True)
def _always_incremental(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small worlds here change most of their leads at each step: a refresh would read
    them whole (cheaper past a share of the leads), so the share is lifted unless a test
    is about it."""
    monkeypatch.setattr(kpi_incremental, "_INCREMENTAL_SHARE", float("inf"))


@pytest.fixture
def store(state_store: StateStore) -> StateStore:
    return state_store


@pytest.mark.parametrize(("seed", "listed"), [(1, 1000), (2, 1000), (3, 4)])
def test_incremental_refreshes_equal_a_full_recompute_at_every_step(
    store: StateStore, seed: int, listed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``listed``: open breaches a report lists; 4 makes most of them ties and cuts to decide.
    monkeypatch.setattr(report, "OPEN_BREACHES_KEPT", listed)
    monkeypatch.setattr(kpi_incremental, "OPEN_BREACHES_KEPT", listed)
    engine = store.engine
    world = _World(engine, seed)
    state = FunnelState(engine, CRM, MAPS)
    now, previous = START, None
    incremental = 0
    for step in [timedelta(0), *STEPS]:
        now += step
        world.grow(now, previous)
        mark = _mark(engine)
        options = _options(now)
        refreshed = state.refresh(options, mark)
        incremental += not refreshed.full
        expected = _full(engine, options, mark)
        assert _comparable(refreshed.report) == _comparable(expected), f"at {now}"
        # Time alone (no new rows) moves SLA deadlines, staleness and the window's start.
        later = _options(now + step / 2)
        again = state.refresh(later, mark)
        incremental += not again.full
        assert _comparable(again.report) == _comparable(_full(engine, later, mark)), later.now
        now, previous = later.now, later.now
    assert incremental == 2 * (len(STEPS) + 1) - 1  # all but the first were incremental
    # The world exercised what moves with time: open breaches, stale leads, leads that left.
    final = _full(engine, _options(now), _mark(engine))
    assert final.open_breach_count > 0 and final.sla_breaches > 0
    assert sum(s.stale for s in final.stages) > 0 and final.regressions > 0
    assert world.leads > len(list(read_inputs(engine, MAPS, crm=CRM, since=now - timedelta(90))))


def test_a_change_of_report_settings_recomputes_fully(store: StateStore) -> None:
    engine = store.engine
    world = _World(engine, 7)
    state = FunnelState(engine, CRM, MAPS)
    world.grow(START, None)
    assert state.refresh(_options(START), _mark(engine)).full
    later = START + timedelta(hours=3)
    world.grow(later, START)
    assert not state.refresh(_options(later), _mark(engine)).full
    changed = _options(later, sla_hours=4.0, stages=("New", "MQL", "SAL", "SQL"))
    refreshed = state.refresh(changed, _mark(engine))
    assert refreshed.full
    assert _comparable(refreshed.report) == _comparable(_full(engine, changed, _mark(engine)))
    weekend = _options(later, calendar=Calendar(workdays=frozenset({1, 2, 3, 4, 5, 6})))
    assert state.refresh(weekend, _mark(engine)).full


def test_a_refresh_reads_the_window_again_when_a_large_share_of_the_leads_changed(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kpi_incremental, "_INCREMENTAL_SHARE", 0.25)
    engine = store.engine
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    _seed_many(engine, 40, now)
    state = FunnelState(engine, CRM, MAPS)
    assert state.refresh(_options(now), _mark(engine)).full

    def change(leads: int, at: datetime) -> None:
        rows = [
            {
                "crm": CRM,
                "lead_id": f"M{n:06d}",
                "field": "status",
                "from_value": None,
                "to_value": "Nurture",
                "at": at,
                "actor": "syncd",
                "source": "written",
            }
            for n in range(leads)
        ]
        with engine.begin() as conn:
            conn.execute(insert(StatusHistoryRow.__table__), rows)

    later = now + timedelta(minutes=5)
    change(10, later - timedelta(minutes=1))  # a quarter of the 40: still incremental
    few = state.refresh(_options(later), _mark(engine))
    assert not few.full and few.leads == 10
    latest = later + timedelta(minutes=5)
    change(11, latest - timedelta(minutes=1))
    many = state.refresh(_options(latest), _mark(engine))
    assert many.full and many.leads == 40
    assert _comparable(many.report) == _comparable(_full(engine, _options(latest), _mark(engine)))


def _seed_many(engine: Engine, leads: int, now: datetime) -> None:
    """``leads`` leads with five transitions each over the last 80 days, some in SAL."""
    rng = random.Random(3)
    lead_rows, history = [], []
    for n in range(leads):
        lead_id = f"M{n:06d}"
        fields = {"owner": "ann", "last_activity_at": (now - timedelta(days=50)).isoformat()}
        lead_rows.append(
            {
                "crm": CRM,
                "lead_id": lead_id,
                "modified_at": now - timedelta(days=1),
                "fields": fields,
                "first_seen_at": now - timedelta(days=1),
                "pulled_at": now - timedelta(days=1),
                **_EMPTY,
            }
        )
        at = now - timedelta(days=rng.uniform(10, 80))
        previous = None
        for status in STATUSES[: rng.choice([3, 4, 5])]:
            history.append(
                {
                    "crm": CRM,
                    "lead_id": lead_id,
                    "field": "status",
                    "from_value": previous,
                    "to_value": status,
                    "at": at,
                    "actor": "person",
                    "source": "pulled",
                }
            )
            previous, at = status, at + timedelta(hours=rng.uniform(1, 50))
    with engine.begin() as conn:
        conn.execute(insert(LeadRow.__table__), lead_rows)
        conn.execute(insert(StatusHistoryRow.__table__), history)


def _counting_sqlite_steps(engine: Engine) -> list[int]:
    """SQLite virtual machine steps (in thousands) of every connection's statements: what the
    database did, whatever it was asked and however the rows were fetched."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    @event.listens_for(engine, "checkout")
    def _count(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_progress_handler(tick, 1000)

    @event.listens_for(engine, "checkin")
    def _stop(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_progress_handler(None, 0)

    return steps


def test_a_refresh_after_n_new_ledger_rows_reads_those_leads_not_the_window(
    tmp_path: Any,
) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    engine = store.engine
    try:
        now = datetime(2026, 11, 30, 12, tzinfo=UTC)
        _seed_many(engine, 6000, now)
        steps = _counting_sqlite_steps(engine)
        state = FunnelState(engine, CRM, MAPS)
        first = state.refresh(_options(now), _mark(engine))
        full_steps = steps[0]
        assert first.full and first.leads == 6000
        later = now + timedelta(minutes=5)
        changed = [f"M{n:06d}" for n in range(0, 6000, 600)]  # 10 leads, one new row each
        with engine.begin() as conn:
            conn.execute(
                insert(StatusHistoryRow.__table__),
                [
                    {
                        "crm": CRM,
                        "lead_id": lead_id,
                        "field": "status",
                        "from_value": None,
                        "to_value": "SQL",
                        "at": later - timedelta(minutes=1),
                        "actor": "syncd",
                        "source": "written",
                    }
                    for lead_id in changed
                ],
            )
        steps[0] = 0
        refreshed = state.refresh(_options(later), _mark(engine))
        assert not refreshed.full
        assert refreshed.leads == len(changed)  # only the leads with new rows were read
        # The database's own work: a small fraction of the full read's (6,000 leads).
        assert steps[0] * 50 < full_steps, (steps[0], full_steps)
        expected = _full(engine, _options(later), _mark(engine))
        assert _comparable(refreshed.report) == _comparable(expected)
    finally:
        store.close()


def test_a_store_error_keeps_the_state_and_the_next_refresh_is_still_exact(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    engine = store.engine
    world = _World(engine, 11)
    state = FunnelState(engine, CRM, MAPS)
    world.grow(START, None)
    state.refresh(_options(START), _mark(engine))
    later = START + timedelta(days=3)
    world.grow(later, START)

    def failing(*_: Any, **__: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(FunnelState, "_histories", failing)
        with pytest.raises(OperationalError, match="locked"):
            state.refresh(_options(later), _mark(engine))
    refreshed = state.refresh(_options(later), _mark(engine))
    assert not refreshed.full
    assert _comparable(refreshed.report) == _comparable(
        _full(engine, _options(later), _mark(engine))
    )


def test_a_refresh_reads_the_window_again_and_equals_a_full_recompute_when_a_merge_moved_ledger_rows(
    store: StateStore,
) -> None:
    engine = store.engine
    world = _World(engine, 5)
    state = FunnelState(engine, CRM, MAPS)
    world.grow(START, None)
    assert state.refresh(_options(START), _mark(engine)).full
    later = START + timedelta(hours=3)
    world.grow(later, START)
    before = state.refresh(_options(later), _mark(engine))
    assert not before.full
    # Two leads that both entered New are merged into a new one (HubSpot's merge: crm-api
    # C12): their rows become its rows, ids kept, and no row is added.
    window = read_inputs(engine, MAPS, crm=CRM, since=later - timedelta(days=90))
    entered_new = [lead.lead_id for lead, history in window if history[0].to_status == "New"]
    merged = {entered_new[0]: "L-merged", entered_new[1]: "L-merged"}
    mark = _mark(engine)
    with store.begin() as conn:
        conn.execute(insert(LeadRow.__table__), [world._lead_row("L-merged", later)])
        assert store.rekey_history(conn, CRM, merged) > 0
    assert _mark(engine) == mark

    expected = _full(engine, _options(later), mark)
    refreshed = state.refresh(_options(later), mark)
    assert _comparable(refreshed.report) == _comparable(expected)
    assert refreshed.full
    assert expected.stages[0].any_order == before.report.stages[0].any_order - 1
    # The re-key is read once: later refreshes are incremental again, and exact.
    latest = later + timedelta(hours=5)
    world.grow(latest, later)
    again = state.refresh(_options(latest), _mark(engine))
    assert not again.full
    assert _comparable(again.report) == _comparable(_full(engine, _options(latest), _mark(engine)))


def test_sla_deadline_is_the_first_instant_an_untouched_sal_is_past_the_sla() -> None:
    from syncd.business_clock import business_hours_between
    from syncd.kpi_incremental import sla_deadline

    options = _options(START)
    # Friday 23 October 15:00 Berlin (summer time): 2 h that day; Monday 26 is a holiday;
    # Tuesday 8 h; 6 h more on Wednesday 28 (winter time now): past at 15:00 Berlin, 14:00 UTC.
    sal = datetime(2026, 10, 23, 13, tzinfo=UTC)
    deadline = sla_deadline(options, sal)
    assert deadline == datetime(2026, 10, 28, 14, 0, 0, 1, tzinfo=UTC)
    assert business_hours_between(CALENDAR, sal, deadline) > 16
    assert business_hours_between(CALENDAR, sal, deadline - timedelta(microseconds=1)) <= 16


def test_a_kept_bag_gives_the_percentiles_of_its_values_as_they_come_and_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exact while few, counted by resolution past the cap (as Distribution), values removed."""
    from syncd.distribution import Distribution
    from syncd.kpi_incremental import NeedsFullRefresh, _Bag

    monkeypatch.setattr(kpi_incremental, "EXACT_MAX", 50)
    monkeypatch.setattr(kpi_incremental, "_EXACT_KEEP", 120)
    rng = random.Random(5)
    bag = _Bag(1 / 1440)
    values: list[float] = []
    for size in (30, 90, 200, 60, 140, 10):
        while len(values) < size:
            value = rng.choice([rng.uniform(0, 90), round(rng.uniform(0, 3), 2)])
            values.append(value)
            bag.add(value)
        while len(values) > size:
            bag.put(values.pop(rng.randrange(len(values))), -1)
        expected = Distribution(1 / 1440, values, exact_max=50)
        try:
            got = bag.percentiles((50, 75, 90))
        except NeedsFullRefresh:  # shrank to the exact range after its values were dropped
            assert size <= 50 and len(bag) == size
            continue
        assert len(bag) == len(expected) == size
        assert got == expected.percentiles((50, 75, 90)), size
