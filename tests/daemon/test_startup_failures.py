"""Start-up as operators meet it: a separate ``syncd`` process against a Salesforce emulator.

Every local failure (port, store, CA file) is one line and exit 2 before any CRM request; a
daily API budget already spent pauses the connector instead of crashing; SIGTERM stops the
process within 5 s whatever the CRM does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
from syncd.cli import app as cli
from tests.daemon.harness import E2E_RULES, FAST_RETRY, sf_lead, standalone_sf_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api_calls(emu: SalesforceEmulator) -> list[Any]:
    """Requests counted against the org's API limit (token grants are not)."""
    return [e for e in emu.journal.entries() if "/oauth2/" not in e.path]


@pytest.fixture
def emu() -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as org:
        yield org


def _env(emu: SalesforceEmulator) -> dict[str, str]:
    return {**os.environ, "SF_SECRET": emu.client_secret, "PYTHONUNBUFFERED": "1"}


def _syncd(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_for(
    what: str, check: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            pytest.fail(f"syncd exited ({proc.returncode}) before {what}: {proc.communicate()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


# ---- budget already spent at start ------------------------------------------------------


def test_run_started_past_the_budget_share_stays_up_paused_and_exits_0_on_sigterm(
    tmp_path: Path,
) -> None:
    with SalesforceEmulator(EmulatorConfig(api_usage_start=95_000)) as emu:
        port = _free_port()
        config = standalone_sf_config(tmp_path, emu, server=f"{{host: 127.0.0.1, port: {port}}}")
        proc = _syncd("run", "-c", str(config), env=_env(emu))
        try:

            def paused() -> bool:
                try:
                    _, body = _get_json(port, "/readyz")
                except OSError:
                    return False
                entry = body.get("connectors", {}).get("salesforce", {})
                # paused from start-up; the first (paused) cycle has reported
                return "paused_until" in entry and entry.get("outcome") == "budget"

            _wait_for("/readyz to say paused", paused, proc)
            status, body = _get_json(port, "/readyz")
            entry = body["connectors"]["salesforce"]
            assert entry["outcome"] == "budget" and "budget" in entry["paused_because"]
            assert status == 200, "a connector waiting for its budget is not broken"
            calls = _api_calls(emu)
            assert len(calls) == 1, [c.path for c in calls]  # the call that reported the usage
            shown = CliRunner().invoke(
                cli,
                ["status", "-c", str(config)],
                env={"SF_SECRET": emu.client_secret},
                catch_exceptions=False,
            )
            assert shown.exit_code == 0 and "paused until" in shown.output, shown.output
            time.sleep(1.5)
            assert len(_api_calls(emu)) == 1, "no further call while paused"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    assert "budget is spent" in err and "stays paused until" in err


def test_sync_once_past_the_budget_share_says_so_in_one_line_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SalesforceEmulator(EmulatorConfig(api_usage_start=95_000)) as emu:
        config = standalone_sf_config(tmp_path, emu)
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        result = CliRunner().invoke(
            cli, ["sync", "--once", "-c", str(config)], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        summary = [line for line in result.stdout.splitlines() if line.startswith("salesforce:")]
        assert len(summary) == 1 and "budget: paused until" in summary[0], result.stdout
        assert len(_api_calls(emu)) == 1


# ---- local failures: one line, exit 2, no CRM request -----------------------------------


def _port_in_use(tmp_path: Path, emu: SalesforceEmulator) -> tuple[Path, Callable[[], None]]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = standalone_sf_config(tmp_path, emu, server=f"{{host: 127.0.0.1, port: {port}}}")
    return config, holder.close


def _postgres_unreachable(
    tmp_path: Path, emu: SalesforceEmulator
) -> tuple[Path, Callable[[], None]]:
    # The password is written in a secret file, as README asks of a state.url holding one.
    secret = tmp_path / "database-url"
    secret.write_text(f"postgresql+psycopg://syncd:hunter2@127.0.0.1:{_free_port()}/syncd\n")
    config = standalone_sf_config(tmp_path, emu)
    sqlite = f'state: {{url: "sqlite:///{tmp_path / "state.db"}"}}'
    config.write_text(config.read_text().replace(sqlite, f"state: {{url: {{file: {secret}}}}}"))
    return config, lambda: None


def _ca_file_missing(tmp_path: Path, emu: SalesforceEmulator) -> tuple[Path, Callable[[], None]]:
    config = standalone_sf_config(tmp_path, emu)
    config.write_text(
        config.read_text().replace(str(emu.ca_pem_path), str(tmp_path / "missing-ca.pem"))
    )
    return config, lambda: None


def _sqlite_read_only(tmp_path: Path, emu: SalesforceEmulator) -> tuple[Path, Callable[[], None]]:
    from syncd.state import StateStore

    db = tmp_path / "state.db"
    StateStore(f"sqlite:///{db}").close()
    if os.geteuid() == 0:  # root writes through file modes; the immutable flag stops it
        made = subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip("running as root on a file system without chattr +i")

        def undo() -> None:
            subprocess.run(["chattr", "-i", str(db)], check=False)
    else:
        db.chmod(0o444)

        def undo() -> None:
            db.chmod(0o644)

    return standalone_sf_config(tmp_path, emu), undo


def _state_path_unusable(
    tmp_path: Path, emu: SalesforceEmulator
) -> tuple[Path, Callable[[], None]]:
    (tmp_path / "blocker").write_text("a file where the state directory should be")
    url = f"sqlite:///{tmp_path / 'blocker' / 'state.db'}"
    return standalone_sf_config(tmp_path, emu, state_url=url), lambda: None


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (_port_in_use, "is already in use"),
        (_postgres_unreachable, "cannot reach the state store"),
        (_ca_file_missing, "missing-ca.pem"),
        (_sqlite_read_only, "refuses writes"),
        (_state_path_unusable, "cannot create the directory"),
    ],
    ids=[
        "health-port-in-use",
        "postgres-unreachable",
        "ca-file-missing",
        "sqlite-file-read-only",
        "state-path-unusable",
    ],
)
def test_local_start_up_failure_is_one_line_exit_2_and_no_crm_call(
    tmp_path: Path, emu: SalesforceEmulator, setup: Any, expected: str
) -> None:
    config, undo = setup(tmp_path, emu)
    try:
        proc = _syncd("run", "-c", str(config), env=_env(emu))
        out, err = proc.communicate(timeout=60)
    finally:
        undo()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and expected in lines[0], err
    assert lines[0].startswith(f"{config}:"), "located in the config file"
    assert "Traceback" not in out + err and "hunter2" not in err
    assert len(emu.journal) == 0, "no request to the CRM, not even a token grant"


# ---- SIGTERM while the CRM fails ----------------------------------------------------------


# Preflight reads through /query/; the cycle's pull through /composite (chained query pages).
@pytest.mark.parametrize(
    "failing", ["/composite$", "/query/"], ids=["during-a-cycle", "during-start-up-checks"]
)
def test_sigterm_during_a_503_retry_chain_exits_0_within_5_seconds(
    tmp_path: Path, emu: SalesforceEmulator, failing: str
) -> None:
    emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
    emu.faults.fail_next(1000, status=503, path=failing)
    config = standalone_sf_config(tmp_path, emu)
    proc = _syncd("run", "-c", str(config), env=_env(emu), bufsize=1)
    try:
        seen: list[str] = []

        def retrying() -> bool:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            seen.append(line)
            return "retrying in" in line

        _wait_for("a retry of the pull", retrying, proc)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + err
    assert took < 5, f"took {took:.1f}s to stop"
    assert "Traceback" not in out + err


# From the interpreter importing syncd, through the config loading (which imports the
# connectors), to the CRM checks and the first cycle: each delay lands in a different stage on
# any machine, and before syncd.launch noted a SIGTERM the early ones ended the process with
# Python's default (-15) or as an interrupted command (143). (Not earlier than 0.3 s: before
# the interpreter runs syncd.launch, tens of milliseconds on a quiet machine, nothing of syncd
# runs to handle a signal; Python's default end by SIGTERM is then a clean stop to systemd.)
@pytest.mark.parametrize("delay", [0.3, 0.7, 1.2, 2.0, 4.0])
def test_sigterm_at_any_moment_of_start_up_stops_run_with_exit_0(
    tmp_path: Path, emu: SalesforceEmulator, delay: float
) -> None:
    emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
    config = standalone_sf_config(tmp_path, emu)
    # `python -m syncd` starts as the `syncd` console script does (syncd.launch).
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)],
        env=_env(emu),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"exit {proc.returncode} after a SIGTERM at {delay}s:\n{err}"
    assert "Traceback" not in out + err


# The delays above land where they land on a given machine; these two put the SIGTERM in the
# narrow windows a CI run hit (exit 143, then -2), whatever the machine's speed.
_SIGNALLED_AT = """
import os, signal, sys
import syncd.cli

def signalled_first(real):
    def call(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # handled before the next line runs
        return real(*args, **kwargs)
    return call

syncd.cli.{name} = signalled_first(syncd.cli.{name})
sys.argv = ["syncd", *sys.argv[1:]]
from syncd.launch import main
main()
"""


def _signalled_at(name: str, emu: SalesforceEmulator, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_AT.format(name=name), *args],
        env=_env(emu),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr


def test_sigterm_after_the_command_line_loaded_but_before_it_chose_run_stops_run_with_exit_0(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    """Typer still parsing the arguments: an interrupt raised there ended `run` with 143."""
    config = standalone_sf_config(tmp_path, emu)
    code, err = _signalled_at("app", emu, "run", "-c", str(config))
    assert code == 0, err
    assert "stopped during start-up; nothing was written" in err
    assert _api_calls(emu) == []


def test_sigterm_between_the_import_and_cli_main_taking_over_is_not_lost(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    """syncd.launch noted it after it had read its notes: `run` went on as if never stopped
    (here it would run until the 60 s timeout)."""
    config = standalone_sf_config(tmp_path, emu)
    code, err = _signalled_at("main", emu, "run", "-c", str(config))
    assert code == 0, err
    assert "stopped during start-up; nothing was written" in err


def test_sigterm_before_another_command_is_chosen_interrupts_it_with_143(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    config = standalone_sf_config(tmp_path, emu)
    code, err = _signalled_at("app", emu, "sync", "--once", "-c", str(config))
    assert code == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM before the command finished" in err
    assert _api_calls(emu) == []


def test_sigterm_while_sync_once_is_loading_ends_it_as_an_interrupted_command_143(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    config = standalone_sf_config(tmp_path, emu)
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sync", "--once", "-c", str(config)],
        env=_env(emu),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.2)  # still importing: not a cycle run to its end, so not a success
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM before the command finished" in err
    assert "Traceback" not in out + err
    assert _api_calls(emu) == []


# ---- a CRM that cannot answer at start-up --------------------------------------------------


def _writes(emu: SalesforceEmulator) -> list[Any]:
    return [e for e in _api_calls(emu) if e.method in ("PATCH", "POST") and e.status < 300]


def test_a_crm_down_at_start_up_leaves_the_daemon_up_and_its_cycles_check_before_writing(
    tmp_path: Path, emu: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 outage through the start-up check's retries: `run` used to exit 2, which systemd
    reads as a configuration problem and does not restart. Now the connector starts
    unchecked; each cycle checks the rules first, fails while the CRM cannot answer, and
    pulls and writes only once it has."""
    from tests.daemon.harness import running_app

    (lead,) = emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
    config = standalone_sf_config(tmp_path, emu, connector_extra=FAST_RETRY)
    monkeypatch.setenv("SF_SECRET", emu.client_secret)
    emu.faults.fail_next(1000, status=503, path="/query/")
    with running_app(config, defer_unreachable=True) as app:
        pipeline = app.pipelines["salesforce"]
        down = pipeline.run_cycle()
        assert down.outcome == "failed" and down.pulled == 0, down.message
        assert _writes(emu) == []
        emu.faults.clear()
        up = pipeline.run_cycle()
        assert (up.outcome, up.pulled) == ("ok", 1) and up.written, up.message
    assert emu.lead(lead)["Status"] == "Nurture"


def test_rules_a_crm_refuses_write_nothing_when_its_start_up_check_was_deferred(
    tmp_path: Path, emu: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.daemon.harness import running_app

    emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
    config = standalone_sf_config(tmp_path, emu, connector_extra=FAST_RETRY)
    (tmp_path / "rules.yaml").write_text(
        E2E_RULES.replace("set_status: Nurture", "set_status: Bogus").replace(
            "  Nurture: {}", "  Nurture: {}\n  Bogus: {}"
        )
    )
    monkeypatch.setenv("SF_SECRET", emu.client_secret)
    emu.faults.fail_next(1000, status=503, path="/query/")
    with running_app(config, defer_unreachable=True) as app:
        emu.faults.clear()
        for _ in range(2):
            report = app.pipelines["salesforce"].run_cycle()
            assert report.outcome == "failed" and "Bogus" in report.message, report.message
    assert _writes(emu) == [], "a rule set the CRM refuses writes nothing, however it started"


def test_a_deferred_start_up_check_checks_provenance_too_and_the_writes_carry_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provenance is checked with the rules when the start-up check was deferred (it was
    skipped, and the connector wrote no provenance for the life of the process)."""
    from tests.daemon.harness import running_app

    with SalesforceEmulator(EmulatorConfig(lead_custom_fields=frozenset({"syncd_Rule__c"}))) as emu:
        (lead,) = emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst", activity_days=200)])
        config = standalone_sf_config(tmp_path, emu, connector_extra=FAST_RETRY)
        config.write_text(
            config.read_text().replace(
                "salesforce:\n  interval: 10s",
                "salesforce:\n  provenance: {rule: syncd_Rule__c}\n  interval: 10s",
            )
        )
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        emu.faults.fail_next(1000, status=503, path="/query/")
        with running_app(config, defer_unreachable=True) as app:
            emu.faults.clear()
            report = app.pipelines["salesforce"].run_cycle()
            assert report.outcome == "ok" and report.written, report.message
        assert emu.lead(lead)["syncd_Rule__c"] == "stale-nurture"


def test_run_stays_up_while_the_crm_cannot_answer_its_start_up_check_and_stops_with_0(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    config = standalone_sf_config(tmp_path, emu, connector_extra=FAST_RETRY)
    emu.faults.fail_next(1000, status=503, path="/query/")
    proc = _syncd("run", "-c", str(config), env=_env(emu), bufsize=1)
    try:
        seen: list[str] = []

        def deferred() -> bool:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            seen.append(line)
            return "could not answer its start-up check" in line

        _wait_for("the deferred check", deferred, proc)
        _wait_for("a cycle that checks first", lambda: _cycle_failed(proc, seen), proc)
        assert proc.poll() is None, "still running"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + err
    assert "Traceback" not in "".join(seen) + out + err


def _cycle_failed(proc: subprocess.Popen[str], seen: list[str]) -> bool:
    line = proc.stderr.readline()  # type: ignore[union-attr]
    seen.append(line)
    return "salesforce:" in line and "failed" in line and "cycle" in line


def test_credentials_refused_at_start_up_is_one_line_naming_the_setting_and_exit_2(
    tmp_path: Path, emu: SalesforceEmulator
) -> None:
    config = standalone_sf_config(tmp_path, emu)
    proc = _syncd(
        "sync", "--once", "-c", str(config), env={**_env(emu), "SF_SECRET": "not-the-secret"}
    )
    out, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and "salesforce.connector.auth.client_secret" in lines[0], err
    assert "Traceback" not in out + err and "not-the-secret" not in err
    assert _api_calls(emu) == [], "nothing past the refused token grant"


@pytest.mark.parametrize("command", [["run"], ["sync", "--once"]])
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_state_store_in_memory_is_refused_at_state_url_before_any_crm_call(
    tmp_path: Path, emu: SalesforceEmulator, command: list[str], url: str
) -> None:
    # The outbox's intents, the cursors, the holds and the audit would end with the process.
    config = standalone_sf_config(tmp_path, emu, state_url=url)
    proc = _syncd(*command, "-c", str(config), env=_env(emu))
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 2, err
    assert "Traceback" not in out + err
    assert f"{config}:1:" in err and "state.url keeps syncd's state in memory" in err, err
    assert len(emu.journal) == 0, "no request to the CRM, not even a token grant"
