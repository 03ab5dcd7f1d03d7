"""The daemon as operators run it: a separate process, stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon.harness import write_config


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_finishes_the_cycle_checkpoints_and_exits_zero(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """As systemd or Kubernetes stop it (SIGTERM), and as Ctrl-C stops `make run` (SIGINT)."""
    config = write_config(tmp_path, leads=120)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            seen = {
                crm
                for line in lines
                if "syncd.pipeline: cycle" in line
                for crm in ("salesforce", "hubspot")
                if f" {crm}: pulled" in line
            }
            if seen >= {"salesforce", "hubspot"}:
                break
        assert any(" salesforce: pulled 120," in line for line in lines), "".join(lines)
        proc.send_signal(stop)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert f"{stop.name} received: finishing the batch in flight, then stopping" in rest
    assert "stopped cleanly" in rest and "Traceback" not in rest
    from syncd.state import StateStore

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    runs = store.last_runs(10)
    assert runs and all(r.outcome in ("ok", "stopped") for r in runs)
    assert store.cursor("salesforce") is not None and store.cursor("hubspot") is not None
    store.close()
