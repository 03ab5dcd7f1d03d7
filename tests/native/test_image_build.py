"""The image's build stage compiles what `make native` compiles, into the wheel the image installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.native.build import ROOT, compiled_sources

_SKIP = shutil.ignore_patterns("*.so", "__pycache__", "*.pyc", "build")


def _build_stage() -> str:
    text = (ROOT / "Dockerfile").read_text()
    return text.split("FROM base AS build", 1)[1].split("\nFROM ", 1)[0]


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        if version:
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_image_build_stage_installs_mypy_and_every_stub_at_the_dev_extras_pins() -> None:
    # mypyc type-checks the modules it compiles: without PyYAML's stubs, or with another mypy
    # than `make check` uses, the image build fails or compiles against other inferences.
    with (ROOT / "pyproject.toml").open("rb") as f:
        dev = _pins(tomllib.load(f)["project"]["optional-dependencies"]["dev"])
    needed = {name: v for name, v in dev.items() if name == "mypy" or name.startswith("types-")}
    installed = _pins(re.findall(r"([A-Za-z0-9_.-]+==[0-9][^\s\\]*)", _build_stage()))
    assert needed and {name: installed.get(name) for name in needed} == needed


@pytest.mark.slow
def test_the_wheel_the_image_installs_carries_every_compiled_module(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("syncd", "rules", "connectors"):
        shutil.copytree(ROOT / package, source / package, ignore=_SKIP)
    wheels = tmp_path / "wheels"
    # The Dockerfile's command, in this venv (which has the same mypy and stubs).
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            ".",
        ],
        cwd=source,
        env={
            "SYNCD_COMPILE": "1",
            "PIP_WHEEL_DIR": str(wheels),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("syncd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in compiled_sources():
        stem = path.relative_to(ROOT).with_suffix("")
        assert any(n.startswith(f"{stem}.cpython-") and n.endswith(".so") for n in names), stem
    assert any(n.startswith("syncd/_native__mypyc.") for n in names)
