"""What one idle cycle asks the state store, counted, on SQLite and on PostgreSQL.

Builds the bench's App (``bench.cycle_cost``: emulator in this process, rules20, a config file)
on each store in turn, runs the first sync and the cycles until one writes nothing, then
``cycles`` idle cycles, each counted:

* statements (SQLAlchemy ``before_cursor_execute``), transactions (``begin``, ``commit``,
  ``rollback`` events), pool checkouts, checkins and resets; the statement ``syncd.pg_direct``
  sends by psycopg itself (a quiet cycle's end on PostgreSQL) is not among the statements, its
  round trip is;
* on PostgreSQL, the protocol messages libpq sends (its trace, ``PQtrace``): every ``Sync``
  or simple ``Query`` is a round trip to the server;
* the wall time of the whole cycle and of its store calls (the time spent inside
  ``cursor.execute`` and the pool), the median over the cycles.

Run it directly: ``python -m bench.idle_trips 10000 [cycles]``. It prints one JSON object per
store. The PostgreSQL server is the bench's (``bench.pgserver``, loopback TCP), which logs every
statement with its parse, bind and execute durations to ``idle-pg-statements.log`` (unless
``IDLE_TRIPS_NO_LOG`` is set: the log costs the server time). Files go to ``IDLE_TRIPS_DIR``
(the temporary directory by default), with a cProfile of 20 more idle cycles per store (the
cycle thread's CPU). ``IDLE_TRIPS_EXPLAIN``: print ``EXPLAIN (ANALYZE, BUFFERS)`` of one idle
cycle's statements on PostgreSQL, with the table's dead rows. ``IDLE_TRIPS_VACUUM="VACUUM lead"``:
run that statement before the idle cycles. ``IDLE_TRIPS_WARM``: idle cycles run before the
counted ones (3). ``IDLE_TRIPS_PG_ONLY``: leave SQLite out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["IdleCounts", "count_idle_cycle"]


@dataclass
class IdleCounts:
    """One idle cycle's traffic to the state store."""

    statements: list[str] = field(default_factory=list)
    transactions: Counter[str] = field(default_factory=Counter)  # begin / commit / rollback
    pool: Counter[str] = field(default_factory=Counter)  # checkout / checkin / reset
    round_trips: int = 0  # PostgreSQL only: Sync and simple Query messages libpq sent
    messages: Counter[str] = field(default_factory=Counter)  # PostgreSQL: by message type
    store_wall: float = 0.0  # inside cursor.execute
    wall: float = 0.0
    cpu: float = 0.0  # the cycle's thread

    def summary(self) -> dict[str, Any]:
        return {
            "statements": len(self.statements),
            "transactions": dict(self.transactions),
            "pool": dict(self.pool),
            "round_trips": self.round_trips,
            "messages": dict(self.messages),
            "store_ms": round(self.store_wall * 1000, 3),
            "wall_ms": round(self.wall * 1000, 3),
        }


@contextmanager
def counting(engine: Engine, *, trace: bool = True) -> Iterator[IdleCounts]:
    """Count what ``engine`` (every engine sharing its pool) does within the block."""
    counts = IdleCounts()
    started: dict[int, float] = {}  # by cursor: a VACUUM thread may execute meanwhile
    traces: list[tuple[Any, Path]] = []
    tmp = Path(tempfile.mkdtemp(prefix="syncd-trips-"))

    def before(_c: Any, cur: Any, statement: str, *_: Any) -> None:
        counts.statements.append(" ".join(statement.split())[:160])
        started[id(cur)] = time.perf_counter()

    def after(_c: Any, cur: Any, *_: Any) -> None:
        if id(cur) in started:
            counts.store_wall += time.perf_counter() - started.pop(id(cur))

    def tx(name: str) -> Any:
        return lambda *_a, **_k: counts.transactions.update([name])

    def pooled(name: str) -> Any:
        def seen(dbapi: Any, *_: Any) -> None:
            counts.pool.update([name])
            if name == "checkin" and engine.dialect.name == "postgresql":
                dbapi.pgconn.untrace()
            if name == "checkout" and engine.dialect.name == "postgresql" and trace:
                path = tmp / f"trace{len(traces)}"
                fh = open(path, "w")  # noqa: SIM115 - closed after the block
                dbapi.pgconn.trace(fh.fileno())
                dbapi.pgconn.set_trace_flags(0)
                traces.append((fh, path))

        return seen

    listeners: list[tuple[Any, str, Any]] = [
        (engine, "before_cursor_execute", before),
        (engine, "after_cursor_execute", after),
        (engine, "begin", tx("begin")),
        (engine, "commit", tx("commit")),
        (engine, "rollback", tx("rollback")),
        (engine.pool, "checkout", pooled("checkout")),
        (engine.pool, "checkin", pooled("checkin")),
        (engine.pool, "reset", pooled("reset")),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    begun, cpu = time.perf_counter(), time.thread_time()
    try:
        yield counts
    finally:
        counts.wall = time.perf_counter() - begun
        counts.cpu = time.thread_time() - cpu
        for target, name, fn in listeners:
            event.remove(target, name, fn)
        _read_traces(traces, counts)


def _read_traces(traces: list[tuple[Any, Path]], counts: IdleCounts) -> None:
    """Count the messages to the server in libpq's traces (timestamp, F, length, type)."""
    for fh, path in traces:
        fh.close()
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) > 3 and parts[1] == "F":
                counts.messages.update([parts[3]])
        path.unlink(missing_ok=True)
    counts.round_trips = counts.messages["Sync"] + counts.messages["Query"]


def count_idle_cycle(pipeline: Any, engine: Engine, *, trace: bool = True) -> IdleCounts:
    with counting(engine, trace=trace) as counts:
        report = pipeline.run_cycle()
    if report.outcome != "ok" or report.written or report.pulled:
        raise RuntimeError(f"not an idle cycle: {report.outcome} {report.message}")
    return counts


def _app_on(emu: Any, campaign: str, tmp: Path, store_url: str | None) -> Any:
    from bench.cycle_cost import salesforce_app

    return salesforce_app(emu, campaign, tmp, store_url=store_url)


def measure(n: int, cycles: int, store_url: str | None, profile: Path | None) -> dict[str, Any]:
    from bench.cycle_cost import SEED_SHARE, _sf_records, org_leads
    from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
    from syncd import store_vacuum

    emu = SalesforceEmulator(
        EmulatorConfig(daily_api_limit=1_000_000_000, journal_limit=100_000)
    ).start()
    try:
        now = emu.clock.now()
        emu.add_leads(list(_sf_records(org_leads(n, now=now, share=SEED_SHARE))), modstamp=now)
        campaign = emu.add_campaign("Newsletter")
        emu.clock.advance(60)
        with tempfile.TemporaryDirectory(prefix="syncd-trips-") as tmp:
            app = _app_on(emu, campaign, Path(tmp), store_url)
            try:
                pipeline = app.pipelines["salesforce"]
                for _ in range(10):  # the first sync, then until one writes nothing
                    report = pipeline.run_cycle()
                    emu.clock.advance(300)
                    if not report.written and not report.pulled:
                        break
                if store_url and os.environ.get("IDLE_TRIPS_VACUUM"):
                    began = time.perf_counter()
                    autocommit = app.store.engine.execution_options(isolation_level="AUTOCOMMIT")
                    with autocommit.connect() as conn:
                        conn.exec_driver_sql(os.environ["IDLE_TRIPS_VACUUM"])
                    print(f"vacuum {time.perf_counter() - began:.3f} s", file=sys.stderr)
                for _ in range(int(os.environ.get("IDLE_TRIPS_WARM", "3"))):  # warm
                    pipeline.run_cycle()
                    emu.clock.advance(300)
                traced = count_idle_cycle(pipeline, app.store.engine)
                emu.clock.advance(300)
                runs = []  # timed without libpq's trace, which writes a file per message
                vacuuming = []
                for _ in range(cycles):
                    thread = store_vacuum._vacuums.get(app.store)  # noqa: SLF001
                    vacuuming.append(thread is not None and thread.is_alive())
                    runs.append(count_idle_cycle(pipeline, app.store.engine, trace=False))
                    emu.clock.advance(300)
                if store_url and os.environ.get("IDLE_TRIPS_EXPLAIN"):
                    _explain(pipeline, app.store.engine)
                    emu.clock.advance(300)
                if profile is not None:
                    import cProfile

                    prof = cProfile.Profile(time.thread_time)  # the cycle thread's CPU
                    prof.enable()
                    for _ in range(20):
                        pipeline.run_cycle()
                        emu.clock.advance(300)
                    prof.disable()
                    prof.dump_stats(str(profile))
            finally:
                app.close()
    finally:
        emu.stop()
    last = traced.summary()
    last["wall_ms_median"] = round(statistics.median(r.wall for r in runs) * 1000, 3)
    last["cpu_ms_median"] = round(statistics.median(r.cpu for r in runs) * 1000, 3)
    last["store_ms_median"] = round(statistics.median(r.store_wall for r in runs) * 1000, 3)
    last["statement_texts"] = traced.statements
    last["vacuuming"] = vacuuming
    last["per_cycle"] = [
        (
            len(r.statements),
            round(r.wall * 1000, 2),
            round(r.store_wall * 1000, 2),
            round(r.cpu * 1000, 2),
        )
        for r in runs
    ]
    return last


def _explain(pipeline: Any, engine: Engine) -> None:
    """Print EXPLAIN ANALYZE of every statement of the next cycle (rolled back)."""
    seen: list[tuple[str, Any]] = []

    def before(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        run_id = pipeline.run_cycle().run_id
    finally:
        event.remove(engine, "before_cursor_execute", before)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for query in (
            "SELECT pid, state, backend_xmin, xact_start, left(query, 60) FROM pg_stat_activity"
            " WHERE datname = current_database()",
            "SELECT n_live_tup, n_dead_tup, last_autovacuum, last_vacuum, autovacuum_count"
            " FROM pg_stat_user_tables WHERE relname = 'lead'",
            "SELECT count(*) FILTER (WHERE due_at IS NULL), count(*) FROM lead",
        ):
            cur.execute(query)
            print(query[:40], cur.fetchall(), file=sys.stderr)
        raw.rollback()
        for statement, sent in seen:
            parameters = sent
            if isinstance(sent, dict):  # the run row exists: explain another's
                parameters = {k: "explained" if v == run_id else v for k, v in sent.items()}
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cur.fetchall())
            print(f"---- {statement[:100]}\n{plan}", file=sys.stderr)
            raw.rollback()
        raw.rollback()
    finally:
        raw.close()


def main() -> None:
    from bench.pgserver import throwaway_postgres

    parser = argparse.ArgumentParser(
        prog="python -m bench.idle_trips",
        description="Count an idle cycle's statements, transactions, pool events and round "
        "trips on SQLite and PostgreSQL (environment: IDLE_TRIPS_DIR, IDLE_TRIPS_PG_ONLY, "
        "IDLE_TRIPS_NO_LOG).",
    )
    parser.add_argument("leads", type=int, nargs="?", default=10_000)
    parser.add_argument("cycles", type=int, nargs="?", default=20)
    args = parser.parse_args()
    n, cycles = args.leads, args.cycles
    out = Path(os.environ.get("IDLE_TRIPS_DIR", tempfile.gettempdir()))
    if not os.environ.get("IDLE_TRIPS_PG_ONLY"):
        sqlite = measure(n, cycles, None, out / "idle-sqlite.prof")
        print(json.dumps({"store": "sqlite", "n": n, **sqlite}, indent=1), flush=True)
    log: Path | None = out / "idle-pg-statements.log"
    assert log is not None
    log.unlink(missing_ok=True)
    if os.environ.get("IDLE_TRIPS_NO_LOG"):  # the server's statement log costs it time
        log = None
    with throwaway_postgres("syncd_trips", statement_log=log) as url:
        pg = measure(n, cycles, url, out / "idle-pg.prof")
    print(json.dumps({"store": "postgresql", "n": n, **pg}, indent=1), flush=True)


if __name__ == "__main__":
    main()
