"""``python -m bench --update``: re-measured sections replace theirs, the others are kept and
the document says which run each section comes from."""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

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
from bench.report import Figure, SectionNotes, machine, render_markdown

FULL_RUN = SectionRun("python -m bench --sections 1,9", "2026-11-30 09:30", 70.0, "abc1234")
PARTIAL = SectionRun("python -m bench --update --sections 9", "2026-11-30 12:00", 25.0, "def5678")


def _record(run: SectionRun, values: dict[int, float]) -> Record:
    return Record(
        figures=[Figure(s, f"fig_{s}", f"figure {s}", v, "s") for s, v in values.items()],
        notes=[
            SectionNotes(s, f"Section {s}", [f"notes of {s} from {run.started}"]) for s in values
        ],
        runs={s: run for s in values},
    )


def test_update_replaces_the_sections_it_ran_and_keeps_the_others(tmp_path: Path) -> None:
    sidecar = tmp_path / "benchmarks.json"
    save(sidecar, _record(FULL_RUN, {1: 1.0, 9: 72.7}))

    merged = merge(load(sidecar), _record(PARTIAL, {9: 20.5}), {9})

    assert {f.key: f.value for f in merged.figures} == {"fig_1": 1.0, "fig_9": 20.5}
    assert [n.lines[0] for n in merged.notes] == [
        "notes of 1 from 2026-11-30 09:30",
        "notes of 9 from 2026-11-30 12:00",
    ]
    assert merged.runs == {1: FULL_RUN, 9: PARTIAL}


def test_the_document_names_the_run_and_commit_of_each_section(tmp_path: Path) -> None:
    merged = merge(_record(FULL_RUN, {1: 1.0, 9: 72.7}), _record(PARTIAL, {9: 20.5}), {9})
    text = render_markdown(
        merged.figures,
        merged.notes,
        host=machine(),
        started=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        elapsed_s=1500,
        command=PARTIAL.command,
        quick=False,
        provenance=provenance(merged.runs),
    )

    assert "- §1: `python -m bench --sections 1,9` on 2026-11-30 09:30 UTC" in text
    assert "code at commit `abc1234`" in text
    assert "- §9: `python -m bench --update --sections 9` on 2026-11-30 12:00 UTC" in text
    assert "measured in that one run" not in text


def test_each_run_names_the_machine_it_ran_on_and_a_run_from_before_says_it_was_not_recorded(
    tmp_path: Path,
) -> None:
    epyc = SectionRun(
        "python -m bench --update --sections 4",
        "2026-12-01 09:00",
        1.3,
        "0123abc",
        "AMD EPYC, 2 cores, CPython 3.11.7",
    )
    sidecar = tmp_path / "benchmarks.json"
    save(sidecar, _record(FULL_RUN, {1: 1.0, 4: 36_040.0}))
    merged = merge(load(sidecar), _record(epyc, {4: 19_920.0}), {4})
    save(sidecar, merged)

    lines = provenance(load(sidecar).runs)  # type: ignore[union-attr]

    assert lines == [
        "- §1: `python -m bench --sections 1,9` on 2026-11-30 09:30 UTC in 70.0 min, code at "
        "commit `abc1234`, on a machine not recorded",
        "- §4: `python -m bench --update --sections 4` on 2026-12-01 09:00 UTC in 1.3 min, code "
        "at commit `0123abc`, on AMD EPYC, 2 cores, CPython 3.11.7",
    ]


def test_a_missing_or_foreign_record_starts_afresh(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.json") is None
    (tmp_path / "other.json").write_text('{"something": "else"}', encoding="utf-8")
    assert load(tmp_path / "other.json") is None
    new = _record(PARTIAL, {9: 20.5})
    assert merge(None, new, {9}) is new


def test_a_document_from_before_the_record_is_read_back_figure_for_figure() -> None:
    figures = [
        Figure(
            1,
            "sf_calls_ratio_10k_1",
            "calls / minimum",
            1.0,
            "x",
            "<= 1.02 x",
            True,
            "2 calls",
            1.0,
            1.0,
            3,
        ),
        Figure(1, "sf_first_sync_read_calls_10k", "first sync | read", 5, "calls", note="one run"),
        Figure(
            4,
            "engine_leads_per_s",
            "engine",
            13633.5,
            "leads/s",
            ">= 50,000 leads/s",
            False,
            "median of 3",
            13053.0,
            13941.0,
            3,
        ),
        Figure(
            7,
            "sf_idle_cpu_10k",
            "idle CPU",
            0.0104,
            "s",
            note="wall 0.01 s",
            low=0.01,
            high=0.012,
            runs=3,
        ),
        Figure(8, "pg_broken", "not measured", None, "x", note="ValueError: boom"),
    ]
    notes = [
        SectionNotes(1, "API calls", ["How it was counted.", "", "What flatters it."]),
        SectionNotes(4, "Engine speed", ["One core."]),
        SectionNotes(7, "Cycle cost at scale", []),
        SectionNotes(8, "PostgreSQL against SQLite", ["Throwaway server."]),
    ]
    text = render_markdown(
        figures,
        notes,
        host=machine(),
        started=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
        elapsed_s=67.3 * 60,
        command="python -m bench --sections 1,4,7,8",
        quick=False,
    )

    back = from_markdown(text)

    assert back is not None
    assert back.runs[4] == SectionRun(
        "python -m bench --sections 1,4,7,8", "2026-11-30 09:30", 67.3
    )
    shown = [(f.key, f.shown(), f.target, f.passed, f.note) for f in back.figures]
    assert shown == [(f.key, f.shown(), f.target, f.passed, f.note) for f in figures]
    assert [(n.section, n.title, n.lines) for n in back.notes] == [
        (n.section, n.title, n.lines) for n in notes
    ]
    assert from_markdown("# some other document\n") is None


def test_a_section_re_measured_at_fewer_sizes_keeps_the_other_figures_marked_as_earlier() -> None:
    old = Record(
        figures=[
            Figure(7, "sf_idle_cpu_10k", "idle 10k", 0.010, "s"),
            Figure(7, "sf_idle_cpu_1m", "idle 1M", 0.054, "s", note="wall 0.06 s"),
            Figure(7, "sf_idle_cpu_ratio", "1M / 10k", 5.1, "x", "<= 3 x", False),
        ],
        notes=[SectionNotes(7, "Cycle cost at scale", ["old text"])],
        runs={7: FULL_RUN},
    )
    new = Record(
        figures=[Figure(7, "sf_idle_cpu_10k", "idle 10k", 0.009, "s")],
        notes=[SectionNotes(7, "Cycle cost at scale", ["new text"])],
        runs={7: PARTIAL},
    )

    merged = merge(old, new, {7})

    by_key = {f.key: f for f in merged.figures}
    assert by_key["sf_idle_cpu_10k"].value == 0.009
    assert by_key["sf_idle_cpu_1m"].value == 0.054
    assert by_key["sf_idle_cpu_1m"].note == (
        "from the earlier run of 2026-11-30 09:30 UTC (`python -m bench --sections 1,9`): "
        "wall 0.06 s"
    )
    assert by_key["sf_idle_cpu_ratio"].passed is False  # the earlier run's ratio, as it was
    assert by_key["sf_idle_cpu_ratio"].note.startswith("from the earlier run of 2026-11-30 09:30")
    assert [n.lines for n in merged.notes] == [["new text"]]


def test_a_cycle_run_at_smaller_sizes_reports_its_idle_ratio_beside_the_1m_target_not_over_it() -> (
    None
):
    from bench.cycle_cost import CostRun, Measure
    from bench.cycle_figures import cost_figures

    def idle(cpu: float) -> Measure:
        return Measure(0.01, cpu, cpu, Counter(), 1, 0, 0, 0, "run")

    def run(n: int, cpu: float) -> CostRun:
        return CostRun("salesforce", n, "sqlite", first=idle(1.0), idle=[idle(cpu)] * 3)

    def ratios(*runs: CostRun) -> dict[str, Figure]:
        figures, _ = cost_figures(list(runs))
        return {f.key: f for f in figures if "_idle_cpu_ratio" in f.key}

    target = ratios(run(10_000, 0.002), run(1_000_000, 0.003))
    assert list(target) == ["sf_idle_cpu_ratio"] and target["sf_idle_cpu_ratio"].passed is True
    smaller = ratios(run(10_000, 0.002), run(100_000, 0.003))
    assert (
        list(smaller) == ["sf_idle_cpu_ratio_100k"]
        and smaller["sf_idle_cpu_ratio_100k"].passed is None
    )
    old = Record(list(target.values()), [], {7: FULL_RUN})
    merged = merge(old, Record(list(smaller.values()), [], {7: PARTIAL}), {7})
    assert {f.key for f in merged.figures} == {"sf_idle_cpu_ratio", "sf_idle_cpu_ratio_100k"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_code_version_ignores_the_bench_outputs_but_not_the_code(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "docs").mkdir()
    for name in ("docs/benchmarks.md", "docs/benchmarks.json", "syncd.py"):
        (tmp_path / name).write_text("one\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = code_version(tmp_path)
    assert clean and not clean.endswith("-dirty")

    (tmp_path / "docs/benchmarks.md").write_text("rewritten by --update\n")
    (tmp_path / "docs/benchmarks.json").write_text("{}\n")
    assert code_version(tmp_path) == clean

    (tmp_path / "syncd.py").write_text("two\n")
    assert code_version(tmp_path) == f"{clean}-dirty"
