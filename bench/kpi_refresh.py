"""The funnel KPI refresh at ledger scale, alone: ``python -m bench.kpi_refresh [N ...]``.

``--work DIR`` keeps the store there and reuses it in a later run. Seeds a SQLite store as §9
does (N leads, five status transitions each over 100 days:
:func:`bench.report_scale.seed`), then times, on one ``FunnelKpis``:

* the first, full refresh (90 days of the ledger), and the process's RSS before and after it
  (what the kept state holds once the read's garbage is gone);
* the refresh after 1 % of the leads got a new transition and their mirror row was stored
  again (as a 1 % cycle leaves them), five minutes later;
* the refresh after five more minutes with no new rows (what moves with the clock alone);

and checks each against a full recompute for the same time. Prints one line per figure;
nothing is written to ``docs/``.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, update

from bench.report_scale import seed


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timed(call: object) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()  # type: ignore[operator]
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def run(n: int, work: Path) -> None:
    from syncd.kpi import FunnelKpis
    from syncd.report import compute
    from syncd.report_read import read_inputs
    from syncd.settings import Settings
    from syncd.state import LeadRow, StateStore, StatusHistoryRow

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    path = work / f"kpi-{n}.db"
    url = f"sqlite:///{path}"
    if path.exists():  # --work: a store seeded by an earlier run (with its 1 % rows)
        print(f"N={n:,}: the store seeded earlier, {path}", flush=True)
    else:
        seeded = seed(url, n, 5, now)
        print(f"N={n:,}: seeded {n * 5:,} ledger rows in {seeded:.0f} s", flush=True)
    store = StateStore(url)
    engine = store.engine
    # The seed stored every lead at ``now`` (as a first sync would): the first refresh follows.
    clock = {"now": now + timedelta(minutes=1)}
    settings = Settings.model_validate(
        {"hubspot": {"enabled": True, "status_values": {"Converted": "CONVERTED"}}}
    )
    kpis = FunnelKpis(engine, settings, lambda *_: None, lambda: clock["now"])

    def check(report: object) -> None:
        options = kpis.options(clock["now"])
        started = time.perf_counter()
        leads = read_inputs(engine, kpis.status_maps, crm="hubspot", since=options.since)
        full = compute(leads, options)[0]
        took = time.perf_counter() - started
        print(f"N={n:,}: (the full report it equals took {took:.2f} s)", flush=True)
        mine = report
        assert asdict(replace(mine, durations_days={})) == asdict(  # type: ignore[type-var]
            replace(full, durations_days={})
        ), "the incremental report differs from the full recompute"

    gc.collect()
    before = _rss_mib()
    report, wall, cpu = _timed(lambda: kpis.compute("hubspot"))
    gc.collect()
    after = _rss_mib()
    print(
        f"N={n:,}: full refresh {wall:.2f} s (CPU {cpu:.2f} s); RSS {before:.0f} -> "
        f"{after:.0f} MiB (kept state and caches: {after - before:.0f} MiB)",
        flush=True,
    )
    state = kpis._states["hubspot"]  # noqa: SLF001 - the bench reports what it holds
    print(
        f"N={n:,}: kept: {len(state._activity):,} activities, "  # noqa: SLF001
        f"{len(state._open):,} open breaches, {len(state._deadlines):,} SLA deadlines",  # noqa: SLF001
        flush=True,
    )
    changed = [f"L{i:08d}" for i in range(0, n, 100)]
    clock["now"] = now + timedelta(minutes=5)
    at = now + timedelta(minutes=4)
    with engine.begin() as conn:
        conn.execute(
            insert(StatusHistoryRow.__table__),
            [
                {
                    "crm": "hubspot",
                    "lead_id": lead,
                    "field": "status",
                    "from_value": None,
                    "to_value": "NURTURE",
                    "at": at,
                    "actor": "syncd",
                    "source": "written",
                }
                for lead in changed
            ],
        )
        lt = LeadRow.__table__
        for start in range(0, len(changed), 500):
            conn.execute(
                update(lt)
                .where(lt.c.crm == "hubspot", lt.c.lead_id.in_(changed[start : start + 500]))
                .values(pulled_at=at)
            )
    report, wall, cpu = _timed(lambda: kpis.compute("hubspot"))
    print(
        f"N={n:,}: refresh after 1 % changed ({len(changed):,} leads) {wall:.3f} s "
        f"(CPU {cpu:.3f} s)",
        flush=True,
    )
    check(report)
    clock["now"] = now + timedelta(minutes=10)
    report, wall, cpu = _timed(lambda: kpis.compute("hubspot"))
    print(f"N={n:,}: refresh 5 min later, no new rows {wall:.3f} s (CPU {cpu:.3f} s)", flush=True)
    check(report)
    gc.collect()
    print(f"N={n:,}: RSS at the end {_rss_mib():.0f} MiB", flush=True)
    store.close()


def main() -> None:
    args = sys.argv[1:]
    work = None
    if args[:1] == ["--work"]:
        work, args = Path(args[1]), args[2:]
    sizes = [int(a) for a in args] or [100_000]
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            run(n, work)
        return
    with tempfile.TemporaryDirectory(prefix="kpi-bench-") as tmp:
        for n in sizes:
            run(n, Path(tmp))


if __name__ == "__main__":
    main()
