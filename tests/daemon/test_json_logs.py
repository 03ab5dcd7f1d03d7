"""With ``log.format: json`` every line ``syncd run`` writes, on stdout and stderr, is JSON."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from connectors.testing.salesforce import SalesforceEmulator
from tests.daemon.harness import sf_lead
from tests.daemon.test_startup_failures import _env, _syncd, _write_config


def _records(text: str, stream: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a {stream} line is not JSON: {line!r}\n{text}") from None
    return records


def test_a_cycle_with_changes_and_a_retry_logs_only_json_lines_tagged_with_the_cycle(
        tmp_path: Path) -> None:
    with SalesforceEmulator() as emu:
        emu.add_leads([sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst", activity_days=200)
                       for i in range(12)])
        emu.faults.fail_next(1, status=503, path="/queryAll/")  # the pull retries once
        config = _write_config(tmp_path, emu)
        config.write_text(config.read_text() + "log: {format: json}\n")
        proc = _syncd("run", "-c", str(config), env=_env(emu))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _finished_runs(tmp_path):
                time.sleep(0.3)
            time.sleep(0.5)  # the cycle's lines are printed after its run row closes
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    stdout, stderr = _records(out, "stdout"), _records(err, "stderr")
    records = stdout + stderr
    retry = [r for r in records if "retrying in" in r["message"]]
    assert retry, err
    cycle = next(r for r in records if r["logger"] == "syncd.pipeline"
                 and r["message"].startswith("cycle "))
    assert retry[0]["crm"] == "salesforce" and retry[0]["run_id"] == cycle["run_id"]
    changes = [r for r in records if r["logger"] == "syncd.changes" and "lead_id" in r]
    assert changes, records
    assert {"crm", "lead_id", "field", "before", "after", "rule", "run_id"} <= set(changes[0])
    assert changes[0]["run_id"] == cycle["run_id"] and changes[0]["rule"] == "stale-nurture"


def _finished_runs(tmp_path: Path) -> list[Any]:
    from syncd.state import StateStore

    if not (tmp_path / "state.db").exists():
        return []
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        return [r for r in store.last_runs(5) if r.finished_at is not None]
    except Exception:  # noqa: BLE001 - the daemon may still be creating the schema
        return []
    finally:
        store.close()


def test_start_up_errors_in_json_mode_are_json(tmp_path: Path) -> None:
    with SalesforceEmulator() as emu:
        config = _write_config(tmp_path, emu)
        # A config error (read before logging is set up) and, separately, a start-up failure.
        bad = tmp_path / "bad.yaml"
        bad.write_text(config.read_text().replace("interval: 10s", "intervall: 10s")
                       + "log: {format: json}\n")
        proc = _syncd("run", "-c", str(bad), env=_env(emu))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        (problem,) = _records(err, "stderr")
        assert "unknown setting 'intervall' (did you mean 'interval'?)" in problem["message"]
        assert problem["level"] == "error" and out == ""
        env = {**_env(emu), "SYNCD_LOG__FORMAT": "json", "SF_SECRET": "wrong"}
        proc = _syncd("run", "-c", str(config), env=env)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    records = _records(err, "stderr") + _records(out, "stdout")
    assert any("syncd cannot start" in r["message"] for r in records), records
