"""`make native` on a machine without a working C compiler: a warning, then pure Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.native.build import ROOT

_SKIP = shutil.ignore_patterns("*.so", "__pycache__", "*.pyc", "build")


def _checkout_copy(tmp_path: Path) -> Path:
    """What mypyc reads of this checkout (the packages, the build files), without its builds."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements-dev.lock", "setup.py"):
        shutil.copy2(ROOT / name, copy / name)
    for package in ("syncd", "rules", "connectors"):
        shutil.copytree(ROOT / package, copy / package, ignore=_SKIP)
    return copy


def _venv_of_this_interpreter(tmp_path: Path) -> Path:
    """A venv directory make accepts as installed, whose python is the one running the tests."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (venv / ".installed").touch()
    return venv


@pytest.mark.slow
def test_without_a_working_c_compiler_make_native_warns_and_syncd_runs_on_its_sources(
    tmp_path: Path,
) -> None:
    copy = _checkout_copy(tmp_path)
    earlier = time.time() - 120  # the copied pyproject.toml and lock predate the install
    for name in ("pyproject.toml", "requirements-dev.lock"):
        os.utime(copy / name, (earlier, earlier))
    venv = _venv_of_this_interpreter(tmp_path)
    # Not the settings of a make this test runs under (`make test SYNCD_COMPILE=0` hands its
    # command line down in MAKEFLAGS): a compiling build, whose compiler fails.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["CC"] = "false"
    built = subprocess.run(
        ["make", "--no-print-directory", "native", f"VENV={venv}", "SYNCD_COMPILE=1"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "warning: could not compile" in built.stdout
    assert "runs on its pure-Python sources" in built.stdout
    # It got as far as the C compiler (mypyc itself ran): the failure is the one staged here.
    assert "failed with exit code" in (venv / "native.log").read_text()
    assert not list(copy.rglob("*.so")), "a failed build left extension modules behind"
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import syncd.enrichment as m, rules.engine as e; print(m.__file__); print(e.__file__)",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    files = imported.stdout.split()
    assert files == [str(copy / "syncd" / "enrichment.py"), str(copy / "rules" / "engine.py")]
