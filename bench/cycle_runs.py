"""The shared sequence of cycle runs behind §1, §2, §6, §7 and §8, and how often each repeats.

Every figure is the median of ``runs`` runs (the 5 % and 30 % cycles at a million leads too,
though each takes minutes), except the first sync, once per mirror by nature, and what is
measured once after all the cycles (the funnel KPI refreshes). The figures' rows say how many
runs they are of.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from bench import cycle_cost, cycle_figures, scripts_vs
from bench.lockstep import Lockstep
from bench.report import Figure, SectionNotes

__all__ = ["run"]


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def run(
    *,
    sf_sizes: Sequence[int],
    hs_sizes: Sequence[int],
    pg_size: int,
    scripts_size: int,
    runs: int,
) -> tuple[list[Figure], list[SectionNotes]]:
    """Run the cycle sequences and return the figures of every section they feed."""
    # §8 runs its own pairs of sequences (_postgres), so it adds no size here.
    sizes = sorted({*sf_sizes, scripts_size} - {0})
    sf_runs: list[cycle_cost.CostRun] = []
    figs: list[Figure] = []
    notes: list[SectionNotes] = []
    for n in sizes:
        _progress(f"salesforce N={n:,} (SQLite)")
        cost = cycle_cost.run_salesforce(
            n,
            runs=runs,
            shares=cycle_cost.SHARES,
            keep_emulator=n == scripts_size,
        )
        if n == scripts_size:
            try:
                _progress(f"scripts against the emulator of N={n:,}")
                f2, n2 = scripts_vs.run(cost, runs=runs)
                figs += f2
                notes += n2
            finally:
                cost.emulator.stop()
                cost.emulator = None
        sf_runs.append(cost)
    hs_runs = []
    for n in hs_sizes:
        _progress(f"hubspot N={n:,}")
        hs_runs.append(cycle_cost.run_hubspot(n, runs=runs))
    shown = [r for r in sf_runs if r.n in sf_sizes] + hs_runs
    if shown:
        f, s = cycle_figures.calls_figures(shown)
        figs += f
        notes += s
        f, s = cycle_figures.cost_figures(shown)
        figs += f
        notes += s
    if pg_size:
        f, s = _postgres(pg_size, runs)
        figs += f
        notes += s
    return figs, notes


#: Idle cycles of each store in a §8 pair: a few milliseconds each, so many cost little and
#: make each pair's median stand.
PG_IDLE_CYCLES = 15
#: §8's pairs beyond the bench's runs: a 100k first sync here took 29-44 s from one run to the
#: next on the shared machine, and with three pairs the median ratio moved across its target
#: (first sync 1.25 and 0.99, idle cycle 1.10 and 1.09 in two runs of the same code).
PG_EXTRA_PAIRS = 2


def _postgres(n: int, runs: int) -> tuple[list[Figure], list[SectionNotes]]:
    """§8: ``runs`` + ``PG_EXTRA_PAIRS`` pairs of the sequence, one on SQLite and one on
    PostgreSQL, each PostgreSQL run on a fresh server. A pair's two sequences set up one after the other (which
    goes first alternates), then run their measured cycles turn about (``bench.lockstep``), so
    that a change of the shared machine's load shows in both stores alike."""
    from bench.lockstep import run_in_lockstep
    from bench.pgserver import PostgresUnavailable, throwaway_postgres

    pairs: list[tuple[cycle_cost.CostRun, cycle_cost.CostRun]] = []

    def one(store_url: str | None, step: Lockstep, name: str) -> cycle_cost.CostRun:
        return cycle_cost.run_salesforce(
            n,
            runs=PG_IDLE_CYCLES,
            shares=(0.01,),
            share_runs=1,
            store_url=store_url,
            turns=cycle_cost.Turns(step, name),
        )

    count = runs + PG_EXTRA_PAIRS
    try:
        for i in range(count):
            _progress(f"§8 pair {i + 1} of {count}: salesforce N={n:,} on SQLite and PostgreSQL")
            with throwaway_postgres("syncd_bench") as url:
                jobs: dict[str, Callable[[Lockstep], cycle_cost.CostRun]] = {
                    "sqlite": lambda step: one(None, step, "sqlite"),
                    "postgresql": lambda step: one(url, step, "postgresql"),
                }
                order = list(jobs) if i % 2 == 0 else list(reversed(jobs))
                done = run_in_lockstep({name: jobs[name] for name in order})
            pairs.append((done["sqlite"], done["postgresql"]))
    except PostgresUnavailable as exc:
        return cycle_figures.postgres_figures([], str(exc))
    return cycle_figures.postgres_figures(pairs)
