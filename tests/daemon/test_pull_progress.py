"""A 20,000-lead backfill shows how far it got: percent lines in a log, a bar on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.testing.leads import generate_scale_leads
from connectors.testing.salesforce import SalesforceEmulator
from tests.daemon.harness import standalone_sf_config
from tests.daemon.test_startup_failures import _env

LEADS = 20_000
# Matches nothing: the backfill only pulls and plans, so the test measures the pull.
QUIET_RULES = """\
version: 1
name: quiet
mode: first_match
statuses: {New: {}, Open: {}, Nurture: {}, Archived: {}, Converted: {converted: true}}
rules:
  - id: never
    when: {field: status, eq: Nurture}
    then: [{set_status: Nurture}]
"""


@pytest.fixture(scope="module")
def org() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as emu:
        emu.seed_leads(generate_scale_leads(LEADS, seed=5, now=datetime.now(UTC)))
        yield emu


def _config(tmp_path: Path, emu: SalesforceEmulator) -> Path:
    config = standalone_sf_config(tmp_path, emu)
    (tmp_path / "rules.yaml").write_text(QUIET_RULES)
    return config


@pytest.mark.slow
def test_without_a_terminal_a_backfill_logs_percent_lines(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    config = _config(tmp_path, org)
    result = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "sync", "--once", "-c", str(config)],
        env=_env(org),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = re.findall(
        r"salesforce: pulled (\d+) of 20000 leads \((\d+)%\), \d+ leads/s, "
        r"about \S+ left",
        result.stderr,
    )
    percents = [int(p) for _, p in lines]
    assert len(percents) >= 5 and percents == sorted(percents), result.stderr
    assert percents[-1] == 100 and f"pulled {LEADS}," in result.stdout


@pytest.mark.slow
def test_on_a_terminal_a_backfill_shows_a_progress_bar_with_rate_and_eta(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    config = _config(tmp_path, org)
    master, slave = pty.openpty()
    env = {**_env(org), "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "sync", "--once", "-c", str(config)],
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=600)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, screen
    assert "salesforce: pulling" in screen and "━" in screen, screen[-2000:]
    assert "/20000" in screen and "leads/s" in screen and "ETA" in screen
    assert "pulled 2000 of 20000 leads" not in screen  # the bar, not log lines
