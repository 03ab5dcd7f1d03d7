"""``python -m bench --quick`` runs end to end and reports every figure with a number.

Targets are not asserted (they are what the benchmark measures, on whatever machine runs it);
what is asserted is that no section silently drops out of the report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Figure keys (prefixes: some carry the N they were measured at) every run must report.
EXPECTED = {
    1: [
        "sf_calls_ratio_",
        "sf_first_sync_read_calls_",
        "hs_calls_ratio_",
        "hs_first_sync_read_calls_",
    ],
    2: ["naive_call_ratio_", "peer_call_ratio_", "naive_wall_ratio_"],
    3: [
        "hs_backfill_share_of_ceiling",
        "hs_backfill_429s",
        "hs_connector_share_of_ceiling",
        "hs_backfill_with_history_share",
    ],
    4: [
        "engine_leads_per_s",
        "engine_eval_leads_per_s",
        "rule_engine_leads_per_s",
        "engine_vs_rule_engine",
        "twin_agreement",
    ],
    5: ["rss_", "rss_ratio"],
    6: ["sf_idle_calls_", "hs_idle_calls_"],
    7: [
        "sf_first_sync_wall_",
        "sf_idle_cpu_",
        "sf_idle_wall_",
        "sf_cycle1_cpu_",
        "sf_cycle30_cpu_",
        "sf_idle_cpu_ratio",
        "hs_idle_cpu_",
    ],
    8: ["pg_first_sync_ratio_", "pg_idle_ratio_"],
    10: ["drain_ahead_", "drain_serial_", "drain_ahead_ratio_"],
}
#: Every figure of these is the median of at least three runs, shown with min and max.
REPEATED = [
    "sf_calls_ratio_",
    "sf_idle_cpu_",
    "sf_idle_wall_",
    "pg_idle_ratio_",
    "hs_backfill_share_of_ceiling",
    "hs_backfill_429s",
    "hs_backfill_with_history_share",
]
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?( [^|]*)?$")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,  # a hang, not a slow machine: about three minutes here
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out.read_text(encoding="utf-8")


def _rows(text: str) -> dict[str, str]:
    """``key -> value`` from the per-section tables (``| `key` | value | what |``)."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([^`]+)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_quick_bench_reports_every_figure_of_the_section_with_a_number(
    report: str, section: int
) -> None:
    rows = _rows(report)
    if section == 8 and "no PostgreSQL server binaries" in report:
        pytest.skip("no PostgreSQL server binaries here: §8 says so instead of a number")
    for prefix in EXPECTED[section]:
        # A key may carry the N it was measured at ("sf_idle_cpu_ratio_100k" in a quick run).
        stem = prefix if prefix.endswith("_") else prefix + "_"
        keys = [k for k in rows if k == prefix or k.startswith(stem)]
        assert keys, f"§{section}: no figure {prefix!r} in the report"
        for key in keys:
            assert _NUMBER.match(rows[key]), f"§{section}: {key} has no number: {rows[key]!r}"


@pytest.mark.slow
def test_quick_bench_repeated_figures_show_the_median_with_min_and_max_of_three_runs(
    report: str,
) -> None:
    rows = _rows(report)
    for prefix in REPEATED:
        keys = [k for k in rows if k.startswith(prefix)]
        assert keys, f"no figure {prefix!r} in the report"
        for key in keys:
            assert re.search(r"\(.+-.+, [3-9] runs\)$", rows[key]), f"{key}: {rows[key]!r}"


@pytest.mark.slow
def test_funnel_scale_figures_are_the_median_with_min_and_max_of_repeated_reports() -> None:
    # §9 is not part of the quick run (its report processes take minutes at full size); its
    # quick sizes on SQLite run here on their own.
    from bench import report_scale

    figures, _notes = report_scale.run(quick=True, backends_only=("sqlite",))
    repeated = [f for f in figures if not f.key.endswith("_rss_ratio")]
    assert {f.key for f in repeated} == {
        "report_sqlite_1k_s",
        "report_sqlite_3k_s",
        "ledger_share_of_cycle",
    }
    for figure in repeated:
        assert figure.runs == report_scale.QUICK_RUNS >= 2, figure
        assert figure.low is not None and figure.high is not None
        assert figure.low <= figure.value <= figure.high, figure  # type: ignore[operator]


def test_quick_bench_report_names_the_machine_the_date_and_the_command(report: str) -> None:
    assert "| cores |" in report and "| memory |" in report and "| Python |" in report
    assert re.search(
        r"Produced by `python -m bench --quick --output [^`]+` on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC",
        report,
    )
    assert "quick mode" in report
    assert "not measured" not in report.split("## Summary", 1)[1].split("\n## ", 1)[0]
