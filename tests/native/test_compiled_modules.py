"""The modules every lead passes through run compiled (``make native``, setup.py) and do exactly
what their sources do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.native.build import ROOT, compiled_sources, loaded_compiled
from tests.native.parity import outcomes, reports

_PURE_RUN = os.environ.get("SYNCD_COMPILE") == "0"


def _on_sources(*args: str) -> Any:
    """What ``python -m tests.native.parity --sources ARGS`` prints: the same parity output
    computed in a child process with every compiled module imported from its source."""
    pure = subprocess.run(
        [sys.executable, "-m", "tests.native.parity", "--sources", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(pure.stdout)


def test_the_per_lead_modules_import_compiled_unless_a_pure_python_run_was_asked_for() -> None:
    if _PURE_RUN:
        pytest.skip("SYNCD_COMPILE=0: the suite runs on the pure-Python sources")
    missing = [str(p.relative_to(ROOT)) for p in compiled_sources() if not loaded_compiled(p)]
    assert not missing, f"not compiled (run `make native`): {missing}"


def test_compiled_and_pure_python_modules_give_the_same_enrichment_decisions_and_due_times() -> (
    None
):
    if not any(loaded_compiled(p) for p in compiled_sources()):
        pytest.skip("nothing compiled: the suite runs on the sources themselves")
    now = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)
    compiled = outcomes(3000, now)
    sources = _on_sources("3000", now.isoformat())
    assert len(sources) == len(compiled) == 3000
    differing = [(c, s) for c, s in zip(compiled, sources, strict=True) if c != s]
    assert not differing, differing[:3]


def test_compiled_and_pure_python_modules_give_the_same_funnel_reports(tmp_path: Path) -> None:
    if not any(loaded_compiled(p) for p in compiled_sources()):
        pytest.skip("nothing compiled: the suite runs on the sources themselves")
    from bench.report_scale import seed

    now = datetime(2026, 12, 1, 15, 45, tzinfo=UTC)
    db = tmp_path / "ledger.db"
    seed(f"sqlite:///{db}", 1500, 5, now)
    compiled = reports(str(db), now)
    sources = _on_sources("--report", str(db), str(now))
    assert len(compiled) == len(sources) == 4
    # Grouped by owner: the seed's 40 owners, each with leads at every stage.
    assert len(json.loads(compiled[0])["groups"]) == 41
    for mine, theirs in zip(compiled, sources, strict=True):
        assert mine == theirs


def test_the_pure_python_run_of_the_parity_check_imports_no_compiled_module() -> None:
    code = (
        "from bench.pure_python import use_sources; use_sources();"
        "from tests.native.build import compiled_sources, loaded_compiled;"
        "print(sum(loaded_compiled(p) for p in compiled_sources()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"
