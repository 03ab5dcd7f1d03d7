"""The machine-readable record beside ``docs/benchmarks.md``, and re-running some sections.

A full run takes over an hour, so ``python -m bench --update --sections 9`` re-measures one
section and keeps every other section's figures from the record of the run that measured them.
Each section then names the run it comes from (command, date, duration): ratios are only ever
taken between figures of the same run, because every ratio is computed inside one section.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.report import Figure, SectionNotes

__all__ = [
    "Record",
    "SectionRun",
    "code_version",
    "from_markdown",
    "load",
    "merge",
    "provenance",
    "save",
]


@dataclass(frozen=True, slots=True)
class SectionRun:
    """The run a section's figures come from."""

    command: str
    started: str  # "YYYY-MM-DD HH:MM" UTC
    minutes: float
    commit: str = ""  # the code measured: ``git describe --always --dirty``
    #: Where it ran (``bench.report.Machine.summary``): absolute figures (leads/s, seconds)
    #: move with the machine, so sections measured on different machines say which. "" for
    #: runs recorded before the record kept it.
    machine: str = ""


@dataclass(slots=True)
class Record:
    figures: list[Figure]
    notes: list[SectionNotes]
    runs: dict[int, SectionRun]


def code_version(root: Path) -> str:
    """The commit of ``root`` (short hash), ``-dirty`` when files other than the bench's own
    outputs (``docs/benchmarks.*``, which ``--update`` keeps and rewrites) differ from it; ""
    outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUTS)
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}-dirty" if changed else commit


#: Pathspecs of the bench's own outputs: rewriting them does not change the code measured.
_OUTPUTS = (":(exclude)docs/benchmarks.md", ":(exclude)docs/benchmarks.json")


def save(path: Path, record: Record) -> None:
    data = {
        "figures": [asdict(f) for f in record.figures],
        "notes": [asdict(n) for n in record.notes],
        "runs": {str(k): asdict(v) for k, v in sorted(record.runs.items())},
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load(path: Path) -> Record | None:
    """The record at ``path``, or None when there is none (or it is not one: start afresh)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Record(
            figures=[Figure(**f) for f in data["figures"]],
            notes=[SectionNotes(**n) for n in data["notes"]],
            runs={int(k): SectionRun(**v) for k, v in data["runs"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def merge(old: Record | None, new: Record, measured: Iterable[int]) -> Record:
    """``new`` for the sections it measured, ``old`` for every other section.

    A figure of a re-measured section that this run did not produce (it ran that section at
    fewer sizes: ``--cycle-sizes``) is kept too, its note saying which earlier run it is from:
    a ratio kept that way was computed within that earlier run, never across two runs."""
    redone = set(measured)
    if old is None:
        return new
    new_keys = {f.key for f in new.figures}
    kept = [f for f in old.figures if f.section not in redone]
    for f in old.figures:
        if f.section in redone and f.key not in new_keys:
            run = old.runs.get(f.section)
            where = f"the earlier run of {run.started} UTC (`{run.command}`)" if run else "earlier"
            prefix = "" if f.note.startswith("from the earlier run") else f"from {where}: "
            kept.append(replace(f, note=prefix + f.note))
    kept_notes = [n for n in old.notes if n.section not in redone]
    runs = {k: v for k, v in old.runs.items() if k not in redone}
    runs.update({k: v for k, v in new.runs.items() if k in redone})
    return Record(
        figures=sorted(kept + new.figures, key=lambda f: f.section),
        notes=sorted(kept_notes + new.notes, key=lambda n: n.section),
        runs=runs,
    )


def provenance(runs: Mapping[int, SectionRun]) -> list[str]:
    """One line per run, naming the sections it measured (Markdown)."""
    by_run: dict[SectionRun, list[int]] = {}
    for section, run in sorted(runs.items()):
        by_run.setdefault(run, []).append(section)
    return [
        f"- §{', '.join(str(s) for s in sections)}: `{run.command}` on {run.started} UTC "
        f"in {run.minutes:.1f} min"
        + (f", code at commit `{run.commit}`" if run.commit else "")
        + f", on {run.machine or 'a machine not recorded'}"
        for run, sections in by_run.items()
    ]


_SHOWN = re.compile(
    r"^(?P<v>-?[\d,]+(?:\.\d+)?)(?: (?P<unit>[^\d(][^(]*?))?"
    r"(?: \((?P<lo>-?[\d,.]+)-(?P<hi>-?[\d,.]+)(?: \S+)?, (?P<runs>\d+) runs\))?$"
)
_PRODUCED = re.compile(
    r"^Produced by `(?P<cmd>[^`]+)` on (?P<at>[\d-]+ [\d:]+) UTC in (?P<min>[\d.]+)"
)


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def from_markdown(text: str) -> Record | None:
    """A record read back from a ``docs/benchmarks.md`` written before the JSON record existed
    (its tables carry every figure as shown), so ``--update`` can keep its sections; None when
    the text is not such a document."""
    lines = text.splitlines()
    produced = next((m for ln in lines if (m := _PRODUCED.match(ln))), None)
    if produced is None or "| § | figure | value | target | result |" not in lines:
        return None
    run = SectionRun(produced["cmd"], produced["at"], float(produced["min"]))
    start = lines.index("| § | figure | value | target | result |") + 2
    summary: list[list[str]] = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        summary.append(_cells(ln))
    heads = [i for i, ln in enumerate(lines) if re.match(r"^## \d+\. ", ln)]
    notes: list[SectionNotes] = []
    keyed: dict[int, list[tuple[str, str]]] = {}
    for n, i in enumerate(heads):
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        number, title = lines[i][3:].split(". ", 1)
        body = lines[i + 1 : end]
        rows = [b for b in body if b.startswith("| `")]
        keyed[int(number)] = [(c[0].strip("`"), c[2]) for c in map(_cells, rows)]
        rest = [b for b in body if not b.startswith("|")]
        while rest and not rest[0].strip():
            rest.pop(0)
        while rest and not rest[-1].strip():
            rest.pop()
        notes.append(SectionNotes(int(number), title, rest))
    figures: list[Figure] = []
    for section, rows in keyed.items():
        mine = [c for c in summary if c and c[0] == str(section)]
        if len(mine) != len(rows):
            return None
        for (key, note), (_, label, shown, aim, result) in zip(rows, mine, strict=True):
            m = _SHOWN.match(shown)
            passed = {"pass": True, "**MISS**": False}.get(result)
            target = "" if aim == "—" else aim
            if m is None:
                figures.append(Figure(section, key, label, None, "", target, None, note))
                continue
            lo, hi = m["lo"], m["hi"]
            figures.append(
                Figure(
                    section,
                    key,
                    label,
                    _float(m["v"]),
                    m["unit"] or "",
                    target,
                    passed,
                    note,
                    _float(lo) if lo else None,
                    _float(hi) if hi else None,
                    int(m["runs"]) if m["runs"] else 1,
                )
            )
    return Record(figures, notes, {n.section: run for n in notes})
