"""Figures, the machine they were measured on, and their rendering (terminal table, Markdown).

Every figure is one measured number with its target; a figure whose measurement failed keeps its
row with no value and says why, so a reader never mistakes a missing row for a pass.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "Figure",
    "Machine",
    "SectionNotes",
    "machine",
    "measured",
    "median_of",
    "render_markdown",
    "render_text",
]


@dataclass(slots=True)
class Figure:
    """One measured number.

    Attributes:
        section: Issue section number (1..6).
        key: Stable id, e.g. ``sf_calls_ratio_10k`` (tests look rows up by it).
        label: What was measured, in words.
        value: The number, or None when the measurement failed.
        unit: ``x``, ``calls``, ``leads/s``, ``MiB``, ``s``, ``%`` ...
        target: The target in words (``<= 1.02 x``), or "" for context figures.
        passed: True/False against the target; None when the figure has no target.
        note: One line of context (what the number is made of).
        low, high: The least and the greatest of the runs when ``value`` is their median
            (shown ``median (min-max)``); None for a single measurement.
        runs: How many runs the median is of (1: a single measurement).
    """

    section: int
    key: str
    label: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""
    low: float | None = None
    high: float | None = None
    runs: int = 1

    @property
    def result(self) -> str:
        if self.value is None:
            return "not measured"
        if self.passed is None:
            return "—"
        return "pass" if self.passed else "MISS"

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        text = _number(self.value, self.unit)
        if self.low is not None and self.high is not None and self.runs > 1:
            lo, hi = (
                _number(self.low, self.unit, bare=True),
                _number(self.high, self.unit, bare=True),
            )
            return f"{text} ({lo}-{hi}, {self.runs} runs)"
        return text


def median_of(values: Sequence[float]) -> tuple[float, float, float, int]:
    """``(median, min, max, runs)`` of repeated measurements (Figure's value, low, high, runs)."""
    if not values:
        raise ValueError("no measurements")
    return statistics.median(values), min(values), max(values), len(values)


def _number(v: float, unit: str, *, bare: bool = False) -> str:
    """``v`` as the report shows it, with its unit unless ``bare``."""
    if unit == "x":
        text = f"{v:.3f}" if v < 10 else f"{v:,.1f}"
        return text if bare else f"{text} x"
    if unit == "%":
        return f"{v:.1f}" if bare else f"{v:.1f} %"
    if unit == "s":
        text = f"{v:,.3f}" if v < 1 else f"{v:,.2f}"
        return text if bare else f"{text} s"
    text = f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}"
    return text if bare or not unit else f"{text} {unit}"


@dataclass(slots=True)
class SectionNotes:
    """Free text under one section of the document (how measured, what bounds a miss)."""

    section: int
    title: str
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Machine:
    cores: int
    memory_gib: float
    cpu: str
    python: str
    platform: str

    def summary(self) -> str:
        """One line for the record of a run: "AMD EPYC, 2 cores, CPython 3.11.7, pure Python"."""
        return f"{self.cpu}, {self.cores} cores, {self.python}"


def machine() -> Machine:
    """The machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        memory = psutil.virtual_memory().total / 2**30
    except ImportError:  # psutil is a bench extra; the page count is a fallback
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return Machine(
        cores=os.cpu_count() or 1,
        memory_gib=memory,
        cpu=cpu,
        python=f"{platform.python_implementation()} {sys.version.split()[0]}, {_build()}",
        platform=platform.platform(terse=True),
    )


def _build() -> str:
    """Whether the per-lead modules ran compiled (``make native``, setup.py) or from source."""
    import importlib

    from bench.pure_python import compiled_sources, is_compiled, module_name

    modules = [importlib.import_module(module_name(p)) for p in compiled_sources()]
    compiled = sum(map(is_compiled, modules))
    if compiled == len(modules):
        return "per-lead modules compiled (mypyc)"
    return "pure Python" if not compiled else "per-lead modules partly compiled"


def render_text(figures: Sequence[Figure]) -> str:
    """A plain table for the terminal."""
    rows = [("§", "figure", "value", "target", "result")]
    rows += [(str(f.section), f.label, f.shown(), f.target or "—", f.result) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(
    figures: Sequence[Figure],
    notes: Sequence[SectionNotes],
    *,
    host: Machine,
    started: datetime,
    elapsed_s: float,
    command: str,
    quick: bool,
    provenance: Sequence[str] = (),
) -> str:
    """The whole ``docs/benchmarks.md``.

    ``provenance`` lists the runs the sections come from when they are not all of this run
    (``python -m bench --update``); empty when this run measured every section shown.
    """
    missed = [f for f in figures if f.passed is False]
    unmeasured = [f for f in figures if f.value is None]
    out = [
        "# syncd benchmarks",
        "",
        "<!-- Generated by `python -m bench`; edit bench/, not this file. -->",
        "",
        ("Last updated" if provenance else "Produced")
        + f" by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {elapsed_s / 60:.1f} min"
        + (" (**quick mode**: small N, figures are indicative only)." if quick else "."),
        (
            "Every figure below was measured in the run its section comes from (listed below)"
            if provenance
            else "Every figure below was measured in that one run"
        )
        + " against the loopback emulators "
        "(`connectors/testing/*`) through the real simple-salesforce and hubspot-api-client "
        "over sockets, and through syncd's own code paths (`App.build`, `Pipeline.run_cycle`, "
        "`Enricher.enrich`, `RuleBook.evaluate`, `Planner.verdict`). Ratios compare numbers "
        "taken side by side in the same run; none of this is a timed test in `make test`.",
        "",
        *(
            [
                "The sections come from more than one run (`--update` re-measured some and kept "
                "the others' figures); each ratio is computed within one section, so within one "
                "run:",
                "",
                *provenance,
                "",
            ]
            if provenance
            else []
        ),
        "| machine" + (" of this run" if provenance else "") + " | |",
        "|---|---|",
        f"| CPU | {_cell(host.cpu)} |",
        f"| cores | {host.cores} |",
        f"| memory | {host.memory_gib:.1f} GiB |",
        f"| Python | {host.python} |",
        f"| OS | {_cell(host.platform)} |",
        "",
        "## Summary",
        "",
        f"{sum(1 for f in figures if f.passed)} of "
        f"{sum(1 for f in figures if f.passed is not None)} targets met"
        + (f"; **missed: {', '.join(f.key for f in missed)}**" if missed else "")
        + (f"; not measured: {', '.join(f.key for f in unmeasured)}" if unmeasured else "")
        + ". Where a target is missed the section below says what bounds it.",
        "",
        "| § | figure | value | target | result |",
        "|---|---|---:|---|---|",
    ]
    for f in figures:
        result = f"**{f.result}**" if f.passed is False else f.result
        out.append(
            f"| {f.section} | {_cell(f.label)} | {f.shown()} | {_cell(f.target or '—')} "
            f"| {result} |"
        )
    out.append("")
    for sec in notes:
        out += [f"## {sec.section}. {sec.title}", ""]
        rows = [f for f in figures if f.section == sec.section]
        if rows:
            out += ["| key | value | what it is |", "|---|---:|---|"]
            out += [f"| `{f.key}` | {f.shown()} | {_cell(f.note or f.label)} |" for f in rows]
            out.append("")
        out += sec.lines
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def measured(
    section: int,
    key: str,
    label: str,
    values: Sequence[float],
    unit: str,
    *,
    target: str = "",
    passed: bool | None = None,
    note: str = "",
) -> Figure:
    """A figure of repeated runs: their median, with min and max (one run: that run)."""
    if not values:
        return Figure(section, key, label, None, unit, target, None, note or "not measured")
    mid, lo, hi, runs = median_of(values)
    return Figure(section, key, label, mid, unit, target, passed, note, lo, hi, runs)
