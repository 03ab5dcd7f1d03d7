"""With ``log.format: json`` every line ``syncd run`` writes, on stdout and stderr, is JSON."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from connectors.testing.salesforce import SalesforceEmulator
from tests.daemon.harness import sf_lead, standalone_sf_config
from tests.daemon.test_startup_failures import _env, _syncd


def _records(text: str, stream: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a {stream} line is not JSON: {line!r}\n{text}") from None
    return records


def test_a_cycle_with_changes_and_a_retry_logs_only_json_lines_tagged_with_the_cycle(
    tmp_path: Path,
) -> None:
    with SalesforceEmulator() as emu:
        emu.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst", activity_days=200)
                for i in range(12)
            ]
        )
        emu.faults.fail_next(1, status=503, path="/composite$")  # the pull retries once
        config = standalone_sf_config(tmp_path, emu)
        config.write_text(config.read_text() + "log: {format: json}\n")
        proc = _syncd("run", "-c", str(config), env=_env(emu), bufsize=1)
        seen: list[str] = []
        try:
            deadline = time.monotonic() + 60
            # The last line a cycle of 24 changes prints: "... and 16 more (syncd audit ...)".
            while time.monotonic() < deadline and not any(
                "syncd audit --run" in line for line in seen
            ):
                line = proc.stderr.readline()  # type: ignore[union-attr]
                if not line:
                    break
                seen.append(line)
            proc.send_signal(signal.SIGTERM)
            out, rest = proc.communicate(timeout=30)
            err = "".join(seen) + rest
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    stdout, stderr = _records(out, "stdout"), _records(err, "stderr")
    records = stdout + stderr
    retry = [r for r in records if "retrying in" in r["message"]]
    assert retry, err
    cycle = next(
        r for r in records if r["logger"] == "syncd.pipeline" and r["message"].startswith("cycle ")
    )
    assert retry[0]["crm"] == "salesforce" and retry[0]["run_id"] == cycle["run_id"]
    changes = [r for r in records if r["logger"] == "syncd.changes" and "lead_id" in r]
    assert changes, records
    assert {"crm", "lead_id", "field", "before", "after", "rule", "run_id"} <= set(changes[0])
    assert changes[0]["run_id"] == cycle["run_id"] and changes[0]["rule"] == "stale-nurture"


def test_start_up_errors_in_json_mode_are_json(tmp_path: Path) -> None:
    with SalesforceEmulator() as emu:
        config = standalone_sf_config(tmp_path, emu)
        # A config error (read before logging is set up) and, separately, a start-up failure.
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            config.read_text().replace("interval: 10s", "intervall: 10s") + "log: {format: json}\n"
        )
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


def test_a_config_error_is_json_when_the_log_format_variable_is_set_in_lower_case(
    tmp_path: Path,
) -> None:
    # Variable names are read in any case; so is this one, read before the config validates.
    with SalesforceEmulator() as emu:
        config = standalone_sf_config(tmp_path, emu)
        config.write_text(config.read_text().replace("interval: 10s", "intervall: 10s"))
        env = {**_env(emu), "syncd_log__format": "json"}
        proc = _syncd("run", "-c", str(config), env=env)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    (problem,) = _records(err, "stderr")
    assert "unknown setting 'intervall'" in problem["message"] and out == ""
