"""``python -m bench [--quick] [--output PATH] [--sections 1,2,...]``: run the benchmarks, print
the figures and rewrite ``docs/benchmarks.md`` (or ``--output``). See bench/README.md."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.record import (
    Record,
    SectionRun,
    code_version,
    from_markdown,
    load,
    merge,
    provenance,
    save,
)
from bench.report import Figure, SectionNotes, machine, render_markdown, render_text

ROOT = Path(__file__).resolve().parent.parent

#: Sizes per mode. Quick keeps the whole run well under two minutes on two cores.
FULL = {
    "sf": [10_000, 100_000, 1_000_000],
    "hs": [10_000, 100_000],
    "pg": 100_000,
    "scripts": 10_000,
    "throughput": 50_000,
    "throughput_pages": 50,
    "engine": 100_000,
    "twin": 10_000,
    "memory": [10_000, 100_000, 1_000_000],
    "ahead": 20_000,
}
QUICK = {
    "sf": [1_000, 2_000],
    "hs": [1_000],
    "pg": 2_000,
    "scripts": 1_000,
    "throughput": 3_000,
    "throughput_pages": 5,
    "engine": 10_000,
    "twin": 2_000,
    "memory": [1_000, 4_000],
    "ahead": 1_000,
}

TITLES = {
    1: "API calls per cycle vs the true minimum",
    2: "Against scripts",
    3: "Throughput against HubSpot's rate limits",
    4: "Engine speed",
    5: "Memory",
    6: "Idle cost (calls)",
    7: "Cycle cost at scale",
    8: "PostgreSQL against SQLite",
    9: "The funnel at scale",
    10: "Writes with calls sent ahead",
}
#: Sections measured by one shared sequence of cycle runs (bench/cycle_cost.py).
CYCLE_SECTIONS = {1, 2, 6, 7, 8}
#: Repeated runs behind every median.
RUNS = 3


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, under two minutes")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="where to write the Markdown report (default docs/benchmarks.md)",
    )
    parser.add_argument(
        "--sections",
        default=None,
        help="comma-separated sections to run (1, 2, 6, 7 and 8 share one run); default all, "
        "without 9 (the funnel at 1M leads, about 25 min) under --quick",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the figures of the sections not run from the record beside --output "
        "(benchmarks.json) and say which run each section comes from",
    )
    parser.add_argument(
        "--cycle-sizes",
        type=_sizes,
        default=None,
        help="override the Salesforce N of sections 1, 2, 6, 7, e.g. 10000,100000",
    )
    parser.add_argument(
        "--hubspot-sizes",
        type=_sizes,
        default=None,
        help="override the HubSpot N of sections 1, 6, 7 (an empty string: none)",
    )
    parser.add_argument(
        "--pg-size", type=int, default=None, help="override the N of section 8 (0: skip it)"
    )
    parser.add_argument(
        "--memory-sizes",
        type=_sizes,
        default=None,
        help="override the N of section 5, e.g. 10000,100000,1000000",
    )
    return parser


def _sizes_of(args: argparse.Namespace) -> dict[str, Any]:
    """The mode's sizes with the command line's overrides."""
    sizes: dict[str, Any] = dict(QUICK if args.quick else FULL)
    overrides = {
        "memory": args.memory_sizes or None,
        "sf": args.cycle_sizes or None,
        "hs": args.hubspot_sizes,
        "pg": args.pg_size,
    }
    sizes.update({k: v for k, v in overrides.items() if v is not None})
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = _sizes_of(args)
    sections = args.sections or ("1,2,3,4,5,6,7,8,10" if args.quick else "1,2,3,4,5,6,7,8,9,10")
    wanted = {int(s) for s in sections.split(",") if s.strip()}
    # Warnings only: a benchmark's output is its table.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started, t0 = datetime.now(UTC), time.perf_counter()
    commit = code_version(ROOT)  # at the start: the code this run measures
    figures: list[Figure] = []
    notes: list[SectionNotes] = []

    def section(
        numbers: set[int], fn: Callable[[], tuple[list[Figure], list[SectionNotes]]]
    ) -> None:
        if not numbers & wanted:
            return
        label = ", ".join(f"§{n}" for n in sorted(numbers & wanted))
        print(f"running {label} ...", file=sys.stderr, flush=True)
        step = time.perf_counter()
        try:
            figs, secs = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
            traceback.print_exc()
            for n in sorted(numbers & wanted):
                figures.append(
                    Figure(
                        n,
                        f"section_{n}_failed",
                        f"§{n} {TITLES[n]}",
                        None,
                        "",
                        note=f"{type(exc).__name__}: {exc}",
                    )
                )
                notes.append(
                    SectionNotes(
                        n,
                        TITLES[n],
                        [f"Not measured: the benchmark failed ({type(exc).__name__}: {exc})."],
                    )
                )
            return
        figures.extend(f for f in figs if f.section in wanted)
        notes.extend(s for s in secs if s.section in wanted)
        print(f"  {label} done in {time.perf_counter() - step:.0f} s", file=sys.stderr, flush=True)

    def cycles() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import cycle_runs

        return cycle_runs.run(
            sf_sizes=sizes["sf"] if wanted & {1, 2, 6, 7} else [],
            hs_sizes=sizes["hs"] if wanted & {1, 6, 7} else [],
            pg_size=sizes["pg"] if 8 in wanted else 0,
            scripts_size=sizes["scripts"] if 2 in wanted else 0,
            runs=RUNS,
        )

    def throughput() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import throughput as tp

        figs, sec = tp.run(sizes["throughput"], connector_pages=sizes["throughput_pages"])
        return figs, [sec]

    def engine() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import engine_speed

        figs, sec = engine_speed.run(sizes["engine"], twin_n=sizes["twin"])
        return figs, [sec]

    def memory() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import memory as mem

        figs, sec = mem.run(sizes["memory"])
        return figs, [sec]

    def funnel_scale() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import report_scale

        figs, sec = report_scale.run(quick=args.quick)
        return figs, [sec]

    def write_ahead() -> tuple[list[Figure], list[SectionNotes]]:
        from bench import write_ahead as wa

        figs, sec = wa.run(sizes["ahead"], share=0.5, runs=RUNS)
        return figs, [sec]

    section({4}, engine)
    section(CYCLE_SECTIONS, cycles)
    section({3}, throughput)
    section({5}, memory)
    section({9}, funnel_scale)
    section({10}, write_ahead)

    figures.sort(key=lambda f: f.section)
    notes.sort(key=lambda s: s.section)
    elapsed = time.perf_counter() - t0
    given = list(argv if argv is not None else sys.argv[1:])
    command = {(): "make bench", ("--quick",): "make bench-quick"}.get(
        tuple(given), "python -m bench " + " ".join(shlex.quote(a) for a in given)
    )
    host = machine()
    this_run = SectionRun(
        command, f"{started:%Y-%m-%d %H:%M}", round(elapsed / 60, 1), commit, host.summary()
    )
    new = Record(figures, notes, {n: this_run for n in sorted(wanted)})
    sidecar = args.output.with_suffix(".json")
    old: Record | None = None
    if args.update:
        # A document from before the JSON record: its tables carry every figure as shown.
        old = load(sidecar) or (
            from_markdown(args.output.read_text(encoding="utf-8")) if args.output.exists() else None
        )
    merged = merge(old, new, wanted) if args.update else new
    several_runs = len(set(merged.runs.values())) > 1
    text = render_markdown(
        merged.figures,
        merged.notes,
        host=host,
        started=started,
        elapsed_s=elapsed,
        command=command,
        quick=args.quick,
        provenance=provenance(merged.runs) if several_runs else (),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    save(sidecar, merged)
    print(render_text(figures))
    print(f"\n{len(figures)} figures in {elapsed / 60:.1f} min; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
