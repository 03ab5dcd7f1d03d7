"""The Dockerfile lints clean and the systemd unit verifies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_user_and_does_not_default_to_the_demo() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert "/etc/syncd/config.yaml" in text and "COPY config.example.yaml /etc/syncd" not in text


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing; make test installs Debian's systemd package")
    unit = (ROOT / "deploy" / "systemd" / "syncd.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's syncd.
    syncd = Path(sys.executable).parent / "syncd"
    assert "ExecStart=/opt/syncd/.venv/bin/syncd " in unit
    target = tmp_path / "syncd.service"
    target.write_text(unit.replace("/opt/syncd/.venv/bin/syncd", str(syncd)))
    result = subprocess.run(
        [analyze, "verify", str(target)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr


def test_the_unit_is_hardened_and_its_stop_timeout_covers_the_shutdown_bound() -> None:
    unit = (ROOT / "deploy" / "systemd" / "syncd.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=syncd",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "DynamicUser=yes",
        "ReadWritePaths=/var/lib/syncd",
    ):
        assert line in unit
    stop = int(
        next(line for line in unit.splitlines() if line.startswith("TimeoutStopSec=")).split("=")[1]
    )
    assert stop > 5  # syncd stops within 5 s of SIGTERM


def test_without_a_mounted_config_syncd_refuses_in_one_line_naming_the_file(tmp_path: Path) -> None:
    # The image's SYNCD_CONFIG points at /etc/syncd/config.yaml; a pod without its ConfigMap
    # must not fall back to the demo.
    missing = tmp_path / "etc" / "syncd" / "config.yaml"
    env = {**os.environ, "SYNCD_CONFIG": str(missing)}
    result = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
