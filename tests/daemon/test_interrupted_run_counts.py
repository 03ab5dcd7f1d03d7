"""A run killed mid-write shows what it did: its run row is updated as each batch lands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.state import StateStore
from tests.daemon.harness import write_config


def _admin(url: str, name: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}/__emulator__/{name}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_after_sigkill_mid_write_status_shows_the_interrupted_runs_real_counts(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("hubspot",), leads=1500)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "sync", "--once", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = [
                m
                for line in list(lines)
                if (m := re.search(r"emulator for hubspot on (http://\S+)", line))
            ]
            url = found[0][1] if found else None
            time.sleep(0.01)
        assert url, "".join(lines)
        # Every batch answers late, so the kill lands while batches are still being sent.
        _admin(
            url,
            "faults",
            {"script": [{"kind": "slow", "count": 1000, "delay": 0.3, "path": "batch/update"}]},
        )
        writes: list[dict] = []
        while len(writes) < 3 and time.monotonic() < deadline and proc.poll() is None:
            writes = [
                e
                for e in _admin(url, "journal")["entries"]
                if "batch/update" in e["path"] and e["status"] == 200
            ]
            time.sleep(0.02)
        assert len(writes) >= 3, "".join(lines)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    [run] = store.last_runs(1)
    applied = [r for r in store.audit_of_run(run.run_id) if r.outcome == "applied"]
    store.close()
    assert run.outcome == "running"  # killed: no finish was recorded
    assert run.pulled == 1500
    # The third batch was sent, so the first two (100 records each) were recorded before it.
    assert run.planned > run.written >= 200
    assert run.written == len(applied)

    result = CliRunner().invoke(cli, ["status", "--config", str(config)], catch_exceptions=False)
    assert f"run {run.run_id} " in result.output
    assert f"running: pulled 1500, written {run.written}, failed 0" in result.output
