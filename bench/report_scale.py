"""§9 The funnel at scale: ``syncd report`` on 1M leads with 5M ledger rows, and what the
ledger costs a cycle.

The store is seeded directly (not through cycles: a million leads through the emulator would
take an hour): leads in the mirror and five status transitions each in ``status_history``, with
the DB-API's ``executemany`` on SQLite and ``COPY`` on PostgreSQL. Each size is then reported
by ``syncd report --json`` run as a subprocess under :mod:`bench.peak_rss`, so wall time and
peak RSS are the whole command's, start-up included. Memory is flat when the RSS at the largest
size is close to the RSS at the smallest.

PostgreSQL runs on a throwaway server (:mod:`bench.pgserver`) when its binaries are here.

The report runs in parts (:mod:`syncd.report_parallel`): one process per core (2 on the
benchmark machine: the command's process and one worker) each reads and sums a range of leads,
and the parts are merged. The wall time is therefore bounded by the slowest part, and it
flatters nothing only when those cores are free: on a busy machine it tends to the CPU time.
"CPU" is the command's and its workers' together; peak RSS is the largest single process's
(kernel ``ru_maxrss`` of waited-for descendants is a maximum, not a sum): the whole command
holds about that times the number of processes.

"Ledger cost per cycle": the time of a cycle that writes N status changes, split into the part
spent writing ledger rows (the same ``add_history`` call the pipeline makes, timed on its own on
a copy of the rows) and the rest; and the ledger's rows per cycle.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import Figure, SectionNotes, measured
from syncd.report_parallel import PARALLEL_MIN_LEADS, default_workers

SECTION = 9
TITLE = "The funnel at scale"
FULL = {"sizes": [100_000, 500_000, 1_000_000], "rows_per_lead": 5, "ledger_n": 2_000}
QUICK = {"sizes": [1_000, 3_000], "rows_per_lead": 5, "ledger_n": 200}
TARGET_S = 30.0
RUNS = 3  # reports of each seeded store (and ledger-cost cycles): figures are their medians
QUICK_RUNS = 2  # enough for the quick run to exercise the median path

ROOT = Path(__file__).resolve().parent.parent

# One lead's path, five transitions each (statuses as the config's status_values map them).
_PATHS: tuple[tuple[str, ...], ...] = (
    ("NEW", "MQL", "SAL", "SQL", "CONVERTED"),  # all the way, in order
    ("NEW", "MQL", "SAL", "SQL", "UNQUALIFIED"),
    ("NEW", "MQL", "UNQUALIFIED", "MQL", "SAL"),  # rejected, then accepted
    ("NEW", "MQL", "SAL", "MQL", "SAL"),  # a regression
    ("NEW", "SAL", "SQL", "NURTURE", "MQL"),  # skipped MQL
)
_OWNERS = [f"rep{n:02d}" for n in range(40)]
_SOURCES = ["Web", "Event", "Partner", "Paid", "Referral"]

_CONFIG = """\
state: {{url: "{url}"}}
rules: {{files: [rules.yaml], fixtures: null}}
server: {{enabled: false}}
hubspot:
  enabled: true
  status_values: {{New: NEW, MQL: MQL, SAL: SAL, SQL: SQL, Converted: CONVERTED,
                  Unqualified: UNQUALIFIED, Nurture: NURTURE}}
"""

_RULES = """\
version: 1
name: bench
mode: first_match
statuses: {New: {}, MQL: {}, SAL: {}, SQL: {}, Converted: {}, Unqualified: {}, Nurture: {}}
rules: []
"""


def _rows(n: int, rows_per_lead: int, start: datetime) -> Iterator[tuple[object, ...]]:
    """(crm, lead_id, field, from, to, at, actor, source) for ``n`` leads, in lead order."""
    for i in range(n):
        path = _PATHS[i % len(_PATHS)]
        at = start + timedelta(minutes=(i * 7) % (60 * 24 * 80))
        before: str | None = None
        for step in range(rows_per_lead):
            to = path[step % len(path)]
            yield ("hubspot", f"L{i:08d}", "status", before, to, at, "person", "observed")
            before = to
            at += timedelta(hours=6 + (i + step) % 60)


def _lead_rows(n: int, now: datetime) -> Iterator[tuple[object, ...]]:
    for i in range(n):
        fields = {
            "owner": _OWNERS[i % len(_OWNERS)],
            "lead_source": _SOURCES[i % len(_SOURCES)],
            "last_activity_at": (now - timedelta(days=i % 120)).date().isoformat(),
        }
        status = _PATHS[i % len(_PATHS)][-1]
        yield ("hubspot", f"L{i:08d}", now, json.dumps(fields), status, now, now)


_LEAD_COLS = "crm, lead_id, modified_at, fields, status, first_seen_at, pulled_at"
_EMPTY = ", enrichment, reasons, newsletters, deleted, converted"
_HIST_COLS = "crm, lead_id, field, from_value, to_value, at, actor, source"


def seed(url: str, n: int, rows_per_lead: int, now: datetime) -> float:
    """Create the schema and seed ``n`` leads with ``rows_per_lead`` transitions; seconds."""
    from syncd.state import StateStore

    t0 = time.perf_counter()
    store = StateStore(url, auto_upgrade=True)
    start = now - timedelta(days=100)
    try:
        raw = store.engine.raw_connection()
        try:
            cur = raw.cursor()
            if store.engine.dialect.name == "postgresql":
                _copy(cur, "lead", _LEAD_COLS + _EMPTY, _leads_full(n, now))
                _copy(cur, "status_history", _HIST_COLS, _rows(n, rows_per_lead, start))
            else:
                cur.executemany(
                    f"INSERT INTO lead ({_LEAD_COLS}{_EMPTY}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    _leads_full(n, now),
                )
                cur.executemany(
                    f"INSERT INTO status_history ({_HIST_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                    ((*r[:5], _sqlite_time(r[5]), *r[6:]) for r in _rows(n, rows_per_lead, start)),
                )
            raw.commit()
        finally:
            raw.close()
    finally:
        store.close()
    return time.perf_counter() - t0


def _sqlite_time(value: object) -> object:
    # SQLAlchemy stores SQLite datetimes as text in this form (naive, UTC here).
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def _leads_full(n: int, now: datetime) -> Iterator[tuple[object, ...]]:
    for crm, lead_id, mod, fields, status, first, pulled in _lead_rows(n, now):
        stamp = _sqlite_time(mod.replace(tzinfo=None)) if isinstance(mod, datetime) else mod
        yield (crm, lead_id, stamp, fields, status, stamp, stamp, "{}", "{}", "[]", False, False)
        del first, pulled


def _copy(cur: object, table: str, cols: str, rows: Iterator[tuple[object, ...]]) -> None:
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(row)


def measure_report(url: str, work: Path, now: datetime) -> dict[str, float]:
    """``syncd report --json`` as a subprocess: wall seconds, peak RSS (MiB), leads counted."""
    (work / "rules.yaml").write_text(_RULES)
    config = work / "syncd.yaml"
    config.write_text(_CONFIG.format(url=url))
    out = work / "rss.json"
    report = work / "report.json"
    with report.open("w") as sink:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.peak_rss",
                str(out),
                "--",
                sys.executable,
                "-m",
                "syncd.cli",
                "report",
                "--config",
                str(config),
                "--since",
                (now - timedelta(days=120)).date().isoformat(),
                "--at",
                now.isoformat(),
                "--json",
            ],
            check=True,
            cwd=ROOT,
            stdout=sink,
        )
    rss = json.loads(out.read_text())
    body = json.loads(report.read_text())
    first = body["groups"][0]["stages"][0]
    return {
        "wall_s": float(rss["wall_s"]),
        "cpu_s": float(rss["cpu_s"]),
        "rss_mib": rss["maxrss_kib"] / 1024,
        "entered_first": float(first.get("any_order", 0)),
    }


def ledger_cost(n: int) -> dict[str, float]:
    """A cycle writing ``n`` status changes through the HubSpot emulator, and the share of it
    spent writing the ledger (the rows the cycle wrote, timed through the same store call)."""
    from connectors.testing.hubspot import EmulatorConfig, HubSpotEmulator
    from syncd.app import App
    from syncd.settings import load_settings
    from syncd.state import StatusHistoryRow

    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        work = Path(tmp)
        emu = HubSpotEmulator(EmulatorConfig(extra_status_options=["NURTURE"])).start()
        try:
            old = (emu.clock.now() - timedelta(days=200)).isoformat().replace("+00:00", "Z")
            emu.add_contacts(
                [
                    {
                        "lastname": f"Bench{i}",
                        "email": f"b{i}@example.com",
                        "hs_lead_status": "NEW",
                        "notes_last_updated": old,
                    }
                    for i in range(n)
                ]
            )
            os.environ["BENCH_LEDGER_HS_TOKEN"] = emu.access_token
            (work / "rules.yaml").write_text(_STALE)
            (work / "syncd.yaml").write_text(
                textwrap.dedent(f"""\
                state: {{url: "sqlite:///{work / "state.db"}"}}
                rules: {{files: [rules.yaml], fixtures: null}}
                server: {{enabled: false}}
                breaker: {{max_change_share: 1.0, min_changes: 1}}
                hubspot:
                  enabled: true
                  status_values: {{New: NEW, Nurture: NURTURE}}
                  connector:
                    base_url: {emu.base_url}
                    allow_add_status_options: true
                    auth: {{type: private_app, access_token: {{env: BENCH_LEDGER_HS_TOKEN}}}}
                """)
            )
            app = App.build(load_settings(work / "syncd.yaml"))
            try:
                t0 = time.perf_counter()
                cycle = app.pipelines["hubspot"].run_cycle()
                cycle_s = time.perf_counter() - t0
                table = StatusHistoryRow.__table__
                with app.store.engine.connect() as conn:
                    rows = [dict(r) for r in conn.execute(table.select()).mappings()]
                for r in rows:
                    r.pop("id", None)
                    r["crm"] = "hubspot-copy"
                t1 = time.perf_counter()
                with app.store.begin() as conn:
                    app.store.add_history(conn, rows)
                ledger_s = time.perf_counter() - t1
            finally:
                app.close()
        finally:
            emu.stop()
    return {
        "written": float(cycle.written),
        "cycle_s": cycle_s,
        "ledger_s": ledger_s,
        "ledger_rows": float(len(rows)),
    }


_STALE = """\
version: 1
name: bench-ledger
mode: first_match
statuses: {New: {}, Nurture: {}}
rules:
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
"""


def _postgres() -> AbstractContextManager[str | None]:
    try:
        from bench.pgserver import PostgresUnavailable, throwaway_postgres
    except ImportError:
        return nullcontext(None)

    class _Maybe(AbstractContextManager[str | None]):
        def __enter__(self) -> str | None:
            self._cm = throwaway_postgres()
            try:
                return self._cm.__enter__()
            except PostgresUnavailable:
                self._cm = None
                return None

        def __exit__(self, *exc: object) -> None:
            if self._cm is not None:
                self._cm.__exit__(None, None, None)

    return _Maybe()


def run(
    quick: bool = False,
    *,
    sizes_override: list[int] | None = None,
    backends_only: tuple[str, ...] = ("sqlite", "postgresql"),
    ledger: bool = True,
) -> tuple[list[Figure], SectionNotes]:
    sizes = dict(QUICK if quick else FULL)
    runs = QUICK_RUNS if quick else RUNS
    if sizes_override:
        sizes["sizes"] = sizes_override
    rows_per_lead = int(sizes["rows_per_lead"])  # type: ignore[call-overload]
    now = datetime.now(UTC).replace(microsecond=0)
    figures: list[Figure] = []
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp, _postgres() as pg:
        backends: list[tuple[str, str | None]] = [("sqlite", None), ("postgresql", pg)]
        for backend, base in backends:
            if backend not in backends_only:
                continue
            if backend == "postgresql" and base is None:
                lines.append("PostgreSQL: not measured (no server binaries here).")
                continue
            rss: dict[int, float] = {}
            for n in sizes["sizes"]:  # type: ignore[attr-defined]
                work = Path(tmp) / f"{backend}-{n}"
                work.mkdir()
                if backend == "sqlite":
                    url = f"sqlite:///{work / 'state.db'}"
                else:
                    url = _fresh_database(str(base), f"report_{n}")
                seeded = seed(url, n, rows_per_lead, now)
                # The same seeded store reported on `runs` times: the report only reads it.
                ms = [measure_report(url, work, now) for _ in range(runs)]
                rss[n] = statistics.median(m["rss_mib"] for m in ms)
                label = _size(n)
                walls = [m["wall_s"] for m in ms]
                figures.append(
                    measured(
                        SECTION,
                        f"report_{backend}_{label}_s",
                        f"syncd report, {label} leads / {_size(n * rows_per_lead)} ledger rows "
                        f"({backend})",
                        walls,
                        "s",
                        target=f"< {TARGET_S:.0f} s" if n >= 1_000_000 else "",
                        passed=statistics.median(walls) < TARGET_S if n >= 1_000_000 else None,
                        note=f"CPU {statistics.median(m['cpu_s'] for m in ms):.1f} s, peak RSS "
                        f"{rss[n]:.0f} MiB (medians); seeded in {seeded:.0f} s",
                    )
                )
                if (Path(tmp) / f"{backend}-{n}" / "state.db").exists():
                    (Path(tmp) / f"{backend}-{n}" / "state.db").unlink()
            smallest, largest = min(rss), max(rss)
            ratio = rss[largest] / rss[smallest]
            figures.append(
                Figure(
                    SECTION,
                    f"report_{backend}_rss_ratio",
                    f"peak RSS of syncd report, {_size(largest)} vs {_size(smallest)} leads "
                    f"({backend})",
                    ratio,
                    "x",
                    "<= 1.5 x (flat)",
                    ratio <= 1.5,
                    note=f"{rss[smallest]:.0f} MiB -> {rss[largest]:.0f} MiB (each the median of "
                    f"{runs} runs)",
                )
            )
    if ledger:
        ledger_n = int(sizes["ledger_n"])  # type: ignore[call-overload]
        figures.append(_ledger_figure(ledger_n, runs))
    lines += [
        f"Each report figure is the median of {runs} runs of `syncd report` over the same "
        "seeded store, with min and max; peak RSS is the median of the same runs.",
        "Seeded directly (DB-API executemany on SQLite, COPY on PostgreSQL): five transitions "
        "a lead over five paths (in order, rejected then accepted, a regression, a skipped "
        "stage), 40 owners, 5 sources; the report is `syncd report --json` for the last 120 "
        "days, run as a subprocess (wall and peak RSS include Python's start-up).",
        f"From {PARALLEL_MIN_LEADS:,} leads on the report runs in {default_workers()} parts "
        "side by side here (one process per core: syncd.report_parallel); CPU is then all its "
        "processes' together, peak RSS the largest single process's.",
        "Ledger cost: one cycle's ledger rows (first sight backfill, observed and written "
        "transitions) inserted again through the same `add_history` call, against the cycle's "
        "whole time.",
    ]
    return figures, SectionNotes(SECTION, TITLE, lines)


def _ledger_figure(n: int, runs: int) -> Figure:
    def share(cost: dict[str, float]) -> float:
        return cost["ledger_s"] / cost["cycle_s"] * 100 if cost["cycle_s"] else 0.0

    costs = [ledger_cost(n) for _ in range(runs)]
    shares = [share(c) for c in costs if c["cycle_s"]]
    mid = sorted(costs, key=share)[len(costs) // 2]
    return measured(
        SECTION,
        "ledger_share_of_cycle",
        f"ledger writes' share of a cycle writing {mid['written']:.0f} status changes",
        shares,
        "%",
        note=f"median run: {mid['ledger_rows']:.0f} ledger rows in "
        f"{mid['ledger_s'] * 1000:.0f} ms of a {mid['cycle_s']:.1f} s cycle (HubSpot emulator, "
        "SQLite; each run on a fresh emulator and store)",
    )


def _fresh_database(base: str, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _main() -> tuple[list[Figure], SectionNotes]:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.report_scale",
        description="§9 on its own: syncd report at scale (full size takes about 25 min).",
    )
    parser.add_argument("--quick", action="store_true", help="the quick sizes (seconds)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="lead counts to seed and report (5 rows a lead)"
    )
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), action="append", help="default: both"
    )
    parser.add_argument("--no-ledger", action="store_true", help="skip the ledger-cost figure")
    args = parser.parse_args()
    return run(
        args.quick,
        sizes_override=args.sizes,
        backends_only=tuple(args.backend or ("sqlite", "postgresql")),
        ledger=not args.no_ledger,
    )


if __name__ == "__main__":
    from bench.report import render_text

    figs, notes = _main()
    print(render_text(figs))
    print("\n".join(f"{f.key}: {f.note}" for f in figs if f.note))
    print("\n".join(notes.lines))
