"""README.md lines 1-633, continued (tests/test_readme_promises_setup_and_config.py is the first
part): the daemon as `make run` runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon.harness import write_config


def test_ctrl_c_stops_make_run_cleanly_after_the_cycle_in_flight(tmp_path: Path) -> None:
    """`make run` prints each cycle; Ctrl-C (SIGINT) stops it cleanly, exit 0."""
    config = write_config(tmp_path, crms=("salesforce",), leads=50)
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "syncd.pipeline: cycle" in line and " salesforce: pulled 50," in line:
                break
        assert any(" salesforce: pulled 50," in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "SIGINT received: finishing the batch in flight, then stopping" in rest
    assert "stopped cleanly" in rest and "Traceback" not in rest
