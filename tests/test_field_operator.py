"""What an operator deploying syncd runs into: secrets as Kubernetes and systemd hand them over,
paths in a config read from another working directory, `syncd db` on a store that is not
there or not ours, and the shipped Kubernetes configs themselves."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import certifi
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from connectors.testing.hubspot.config import EmulatorConfig as HubSpotEmulatorConfig
from connectors.testing.hubspot.server import HubSpotEmulator
from connectors.testing.salesforce.server import SalesforceEmulator
from syncd import cli as cli_module
from syncd.cli import app as cli
from syncd.settings import load_settings
from syncd.yamlfile import YamlFileError

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules" / "default.yaml"

HUBSPOT_STATUS_VALUES = (
    "{New: NEW, Open: OPEN, MQL: MQL, SAL: SAL, SQL: OPEN_DEAL, Nurture: NURTURE, "
    "Unqualified: UNQUALIFIED, Archived: ARCHIVED, Converted: CONVERTED}"
)


def _hubspot_config(tmp_path: Path, base_url: str, token_ref: str, list_id: str = "1") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    shutil.copy(RULES, tmp_path / "rules" / "default.yaml")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
state: {{url: sqlite:///state.db}}
rules: {{files: [rules/default.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0}}
server: {{enabled: false}}
connectors:
  hubspot:
    type: hubspot
    status_values: {HUBSPOT_STATUS_VALUES}
    connector:
      base_url: {base_url}
      allow_add_status_options: true
      newsletters: {{newsletter: "{list_id}"}}
      auth: {{type: private_app, access_token: {token_ref}}}
"""
    )
    return config


def test_a_token_from_a_kubernetes_secret_with_a_trailing_newline_works_and_is_never_shown(
    tmp_path: Path,
) -> None:
    # `kubectl create secret --from-file` keeps the file's newline in the variable.
    with HubSpotEmulator(HubSpotEmulatorConfig()) as emu:
        newsletter = emu.add_list("Newsletter")
        config = _hubspot_config(tmp_path, emu.base_url, "{env: FIELD_HS_TOKEN}", newsletter)
        result = CliRunner().invoke(
            cli,
            ["sync", "--once", "-c", str(config)],
            env={"FIELD_HS_TOKEN": emu.access_token + "\n"},
        )
    assert result.exit_code == 0, result.output
    assert "hubspot: pulled 0" in result.output
    assert emu.access_token not in result.output


@pytest.mark.parametrize("kind", ["env", "file"])
def test_an_empty_secret_is_refused_at_its_place_before_any_crm_is_asked(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "token").write_text("\n")
    ref = "{env: FIELD_HS_TOKEN}" if kind == "env" else f"{{file: {tmp_path / 'token'}}}"
    config = _hubspot_config(tmp_path, "http://127.0.0.1:9", ref)
    with pytest.raises(YamlFileError) as caught:
        load_settings(config, env={"FIELD_HS_TOKEN": " \n"})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{config}:13:33: ")
    assert problem.message.startswith("connectors.hubspot.connector.auth.access_token: ")
    assert problem.message.endswith(
        "environment variable FIELD_HS_TOKEN is empty; set it to the secret"
        if kind == "env"
        else f"secret file {tmp_path / 'token'} is not usable: it is empty; write the secret into it"
    )


def test_relative_secret_files_and_ca_bundles_are_found_beside_the_config_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.app import connector_config

    etc = tmp_path / "etc"
    (etc / "secrets").mkdir(parents=True)
    (etc / "secrets" / "sf").write_text("the-client-secret\n")
    shutil.copy(certifi.where(), etc / "secrets" / "ca.pem")
    config = etc / "config.yaml"
    config.write_text(
        """\
connectors:
  salesforce:
    type: salesforce
    connector:
      instance_url: https://acme.my.salesforce.com
      token_url: https://acme.my.salesforce.com/services/oauth2/token
      ca_bundle: secrets/ca.pem
      auth: {type: client_credentials, client_id: 3MVG9x, client_secret: {file: secrets/sf}}
"""
    )
    # systemd starts the daemon in / (or WorkingDirectory=), never beside the config.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config, env={})
    sf = connector_config(settings, "salesforce", settings.connectors()["salesforce"])
    assert sf.auth.client_secret.get_secret_value() == "the-client-secret"  # type: ignore[attr-defined]
    assert sf.ca_bundle == etc / "secrets" / "ca.pem"  # type: ignore[attr-defined]


def _config_with_state(tmp_path: Path, url: str) -> Path:
    """A config whose state.url is ``url``, read from a secret file as README asks of a URL
    that holds a password."""
    (tmp_path / "state-url").write_text(url + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("state: {url: {file: state-url}}\n")
    return config


@pytest.mark.parametrize(
    "command", [["db", "current"], ["db", "upgrade"], ["db", "prune"], ["report"]]
)
@pytest.mark.parametrize("store", ["refused", "not_a_database"])
def test_db_commands_and_report_on_a_store_that_cannot_be_used_say_why_at_state_url_and_exit_2(
    tmp_path: Path, command: list[str], store: str
) -> None:
    if store == "refused":  # port 9 (discard) has no PostgreSQL on loopback
        url = "postgresql+psycopg://syncd:Hunter2Secret@127.0.0.1:9/syncd"
    else:
        (tmp_path / "state.db").write_text("these bytes are no SQLite database\n")
        url = "sqlite:///state.db"
    config = _config_with_state(tmp_path, url)
    result = CliRunner().invoke(cli, [*command, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert f"{config}:1:" in result.output and "state.url:" in result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert "Hunter2Secret" not in result.output
    expected = "cannot reach the state store" if store == "refused" else "not a database"
    assert expected in result.output


def test_db_current_and_upgrade_refuse_a_store_a_newer_syncd_made_and_advise_no_upgrade(
    tmp_path: Path,
) -> None:
    config = _config_with_state(tmp_path, "sqlite:///state.db")
    assert CliRunner().invoke(cli, ["db", "upgrade", "-c", str(config)]).exit_code == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for command in (["db", "current"], ["db", "upgrade"]):
        result = CliRunner().invoke(cli, [*command, "-c", str(config)])
        assert result.exit_code == 2, result.output
        assert "revision 9999, made by a newer syncd" in result.output
        assert "syncd db upgrade" not in result.output and "unexpected" not in result.output
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]


@pytest.mark.parametrize("command", [["status"], ["db", "current"], ["report"]])
def test_a_database_password_with_an_unencoded_at_sign_is_refused_without_showing_any_of_it(
    tmp_path: Path, command: list[str]
) -> None:
    # Parsed as it stands, "Hunter2" would be hidden and "Secret9@127.0.0.1" shown as the host.
    config = _config_with_state(
        tmp_path, "postgresql+psycopg://syncd:Hunter2@Secret9@127.0.0.1:9/db"
    )
    result = CliRunner().invoke(cli, [*command, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert "Hunter2" not in result.output and "Secret9" not in result.output
    assert "'@' that is not percent-encoded; write it as %40" in result.output
    assert result.output.startswith(f"{config}:1:")


@pytest.mark.parametrize("command", [["run"], ["sync", "--once"]])
@pytest.mark.parametrize("text", ["", "connectors:\n  hubspot: {type: hubspot, enabled: false}\n"])
def test_a_config_with_no_enabled_connector_is_refused_by_run_and_sync_not_run_idle(
    tmp_path: Path, command: list[str], text: str
) -> None:
    # An empty ConfigMap key or a templating step that wrote nothing: a daemon that answered
    # /readyz 200 and synced nothing, or a `sync --once` that exited 0 in silence.
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = CliRunner().invoke(cli, [*command, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{config}:1:1: no connector instance is enabled")


@pytest.mark.parametrize("path", ["base", "overlays/postgres-ha"])
def test_the_kubernetes_config_starts_against_the_crms_once_its_placeholders_are_filled_in(
    tmp_path: Path, path: str
) -> None:
    """The ConfigMap's config with the org's URL, consumer key and list ids written where it
    says `example` / `replace-me`, secrets from the Secret's variables: start-up's checks of
    both CRMs pass (the portal has the statuses' options; this config does not add them)."""
    from syncd.app import App

    k8s = REPO / "deploy" / "kubernetes"
    (tmp_path / "rules").mkdir()
    shutil.copy(k8s / "base" / "rules" / "default.yaml", tmp_path / "rules" / "default.yaml")
    options = ["MQL", "SAL", "OPEN_DEAL", "NURTURE", "UNQUALIFIED", "ARCHIVED", "CONVERTED"]
    sf = SalesforceEmulator().start()
    try:
        campaign = sf.add_campaign("Newsletter")
        with HubSpotEmulator(HubSpotEmulatorConfig(extra_status_options=options)) as hs:
            text = (k8s / path / "config.yaml").read_text()
            text = text.replace("https://example.my.salesforce.com", sf.base_url)
            text = text.replace("3MVG9...replace-me", sf.client_id)
            text = text.replace("701...replace-me", campaign)
            list_id = hs.add_list("Newsletter")
            text = text.replace("{newsletter: replace-me}", f"{{newsletter: '{list_id}'}}")
            text = text.replace(
                "  connector:\n    auth: {type: private_app",
                (f"  connector:\n    base_url: {hs.base_url}\n    auth: {{type: private_app"),
            )
            text = text.replace(
                f"    instance_url: {sf.base_url}",
                f"    instance_url: {sf.base_url}\n    ca_bundle: {sf.ca_pem_path}",
            )
            # README: every placeholder says `replace-me` or `example`; all are filled in now.
            assert "replace-me" not in text and "example" not in text
            (tmp_path / "config.yaml").write_text(text)
            env = {
                "SF_CLIENT_SECRET": sf.client_secret,
                "HUBSPOT_TOKEN": hs.access_token,
                "SYNCD_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
                "SYNCD_STATE__URL": f"sqlite:///{tmp_path / 'state.db'}",
                "SYNCD_SERVER__ENABLED": "false",
            }
            settings = load_settings(tmp_path / "config.yaml", env=env)
            App.build(settings).close()
    finally:
        sf.stop()


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_a_health_host_that_cannot_be_bound_is_blamed_on_server_host_not_on_another_process(
    tmp_path: Path, host: str
) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): no interface of this machine has it.
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / "default.yaml")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"server: {{host: {host}, port: 9}}\n"
        "connectors:\n  hubspot: {type: hubspot, connector: {auth: {type: private_app, access_token: {env: T}}}}\n"
    )
    result = CliRunner().invoke(cli, ["run", "-c", str(config)], env={"T": "pat-x"})
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{config}:1:10: server.host: {host}:9 cannot be bound")
    assert "another process" not in result.output


def test_sigterm_stops_sync_once_as_ctrl_c_does_releasing_its_leases_without_a_traceback(
    tmp_path: Path,
) -> None:
    """A systemd stop or a Kubernetes Job's deadline sends SIGTERM: the leases must not stay
    held by a dead process (status naming it, the next sync refused) for lease.ttl."""
    from tests.daemon.harness import write_config

    config = write_config(tmp_path, leads=2000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "sync", "--once", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        # The leases are taken before the embedded emulators start.
        while time.monotonic() < deadline and not any("emulator for" in x for x in lines):
            lines.append(proc.stdout.readline())
        assert any("emulator for" in x for x in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, rest
    assert "Traceback" not in rest
    status = CliRunner().invoke(cli, ["status", "-c", str(config)])
    assert status.exit_code == 0, status.output
    assert "salesforce:" in status.output and "written by" not in status.output


def _main_outcome(monkeypatch: pytest.MonkeyPatch, command: Any, *, terminated: bool) -> Any:
    """What ``syncd.cli.main`` ends with when the command line runs ``command``: the exception
    that leaves it (SystemExit with its code, or anything else), the test's own SIGTERM
    handler restored."""
    stop = threading.Event()
    if terminated:
        stop.set()
    monkeypatch.setattr(cli_module, "_terminated", stop)
    monkeypatch.setattr(cli_module, "app", command)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        cli_module.main()
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: it must not leave main
        return exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    return None


def test_an_interrupt_raised_outside_typers_handling_still_ends_the_command_with_143_after_sigterm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Left to Python, an interrupt escaping the command line ends the process by SIGINT
    (a CI run saw exit -2 after a SIGTERM): a service manager would read a crash."""

    def interrupted_in_clean_up() -> None:
        raise KeyboardInterrupt

    outcome = _main_outcome(monkeypatch, interrupted_in_clean_up, terminated=True)
    assert isinstance(outcome, SystemExit) and outcome.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before the command finished" in capsys.readouterr().err
    outcome = _main_outcome(monkeypatch, interrupted_in_clean_up, terminated=False)
    assert isinstance(outcome, SystemExit) and outcome.code == 128 + signal.SIGINT
    assert "stopped by Ctrl-C (SIGINT)" in capsys.readouterr().err


def test_a_second_sigterm_does_not_break_into_the_first_ones_clean_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_module, "_terminated", threading.Event())
    with pytest.raises(KeyboardInterrupt):
        cli_module._interrupt(signal.SIGTERM, None)
    try:
        cli_module._interrupt(signal.SIGTERM, None)
    except KeyboardInterrupt:  # left to propagate, it would stop the test session itself
        pytest.fail("a second SIGTERM raised another KeyboardInterrupt")


class _Meta(dict[str, Any]):
    def get_meta(self, key: str) -> Any:
        return self.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self[key] = value


SCHEMELESS_HOOK = "hooks.slack.com/services/T000/B000/XXSECRETXX"  # the scheme left out


def test_a_webhook_url_without_a_scheme_is_refused_at_its_place_without_quoting_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("alerts:\n  channels:\n    - {name: ops, url: {env: HOOK}}\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(config, env={"HOOK": SCHEMELESS_HOOK})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{config}:3:19: alerts.channels.0.url: not an http://")
    assert "XXSECRETXX" not in str(problem)


def test_an_unusable_webhook_url_fails_its_alert_in_a_line_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Request() refuses such a URL with a message quoting it; that went to the log through
    the funnel refresh, which it also stopped."""
    from syncd.alerts import Alerter
    from syncd.settings import AlertChannelSettings, AlertSettings

    channel = AlertChannelSettings.model_construct(
        name="ops",
        url=SecretStr(SCHEMELESS_HOOK),
        events=["breaker_tripped"],
        timeout=timedelta(seconds=1),
        max_per_hour=20,
    )
    failed: list[str] = []
    alerter = Alerter(AlertSettings(channels=[channel]), _Meta(), on_failure=failed.append)
    cycle = SimpleNamespace(
        crm="hubspot", run_id="r1", outcome="breaker", failed=0, written=0, planned=99
    )
    with caplog.at_level(logging.WARNING):
        alerter.after_cycle(cycle, None)
    assert failed == ["ops"]
    assert "alert channel ops: could not send breaker_tripped" in caplog.text
    assert "XXSECRETXX" not in caplog.text


@pytest.mark.parametrize("path", ["/services/oauth2/tokens", "/"])
def test_a_salesforce_token_url_that_is_no_token_endpoint_is_named_not_the_credentials(
    tmp_path: Path, path: str
) -> None:
    with SalesforceEmulator() as sf:
        (tmp_path / "rules").mkdir()
        shutil.copy(RULES, tmp_path / "rules" / "default.yaml")
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""\
server: {{enabled: false}}
connectors:
  salesforce:
    type: salesforce
    connector:
      instance_url: {sf.base_url}
      token_url: {sf.base_url}{path}
      ca_bundle: {sf.ca_pem_path}
      auth: {{type: client_credentials, client_id: {sf.client_id}, client_secret: {{env: S}}}}
"""
        )
        result = CliRunner().invoke(
            cli, ["sync", "--once", "-c", str(config)], env={"S": sf.client_secret}
        )
    assert result.exit_code == 2, result.output
    assert f"token URL {sf.base_url}{path} is no OAuth token endpoint" in result.output
    assert "check salesforce.connector.token_url" in result.output
    assert "client_secret" not in result.output


def test_an_instance_added_by_the_environment_without_a_type_is_a_config_error_not_a_crash(
    tmp_path: Path,
) -> None:
    # README: a variable naming no instance of the file adds one; the key it adds has no
    # place in the file, which locating the missing `type` stumbled over (KeyError).
    config = tmp_path / "config.yaml"
    config.write_text("connectors:\n  hubspot: {type: hubspot}\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(config, env={"SYNCD_CONNECTORS__EMEA__INTERVAL": "5m"})
    (problem,) = caught.value.problems
    assert str(problem) == f"{config}:1:1: connectors.emea.type: missing required setting 'type'"


@pytest.mark.parametrize("auth", ["private_app", "oauth"])
def test_a_hubspot_tls_failure_is_named_with_what_to_check_not_an_attribute_error(
    tmp_path: Path, auth: str
) -> None:
    """An https:// URL on a server without TLS (or a proxy whose CA this machine does not
    trust): hubspot-api-client fails while building its own error (e.body is None)."""
    with HubSpotEmulator(HubSpotEmulatorConfig()) as emu:
        https = emu.base_url.replace("http://", "https://")
        if auth == "private_app":
            ref, url, setting = "{env: FIELD_HS_TOKEN}", https, "base_url"
        else:  # the API over plain HTTP, the OAuth token endpoint over TLS
            ref, url, setting = "{env: FIELD_HS_TOKEN}", emu.base_url, "auth.token_url"
        config = _hubspot_config(tmp_path, url, ref)
        if auth == "oauth":
            config.write_text(
                config.read_text().replace(
                    "{type: private_app, access_token: {env: FIELD_HS_TOKEN}}",
                    f"{{type: oauth, client_id: {emu.oauth_client_id}, client_secret: "
                    "{env: FIELD_HS_TOKEN}, refresh_token: {env: FIELD_HS_REFRESH}, "
                    f"token_url: {https}/oauth/v1/token}}",
                )
            )
        secret = emu.access_token if auth == "private_app" else emu.oauth_client_secret
        result = CliRunner().invoke(
            cli,
            ["sync", "--once", "-c", str(config)],
            env={"FIELD_HS_TOKEN": secret, "FIELD_HS_REFRESH": emu.refresh_token},
        )
    assert result.exit_code == 2, result.output
    assert f"TLS with {'the HubSpot token URL ' if auth == 'oauth' else ''}{https}" in result.output
    assert "failed ([SSL: WRONG_VERSION_NUMBER]" in result.output
    assert f"check hubspot.connector.{setting}" in result.output
    assert "AttributeError" not in result.output and secret not in result.output


def test_python_dash_m_syncd_runs_the_same_command_line_as_the_syncd_script() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "syncd", "rules", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "Traceback" not in result.stderr


def test_ctrl_c_while_the_command_line_is_still_importing_exits_130_without_a_traceback() -> None:
    """The console script (syncd.launch): an interrupt during the ~1 s import of syncd.cli."""
    import subprocess
    import sys

    interrupted_import = """
import sys

class CtrlC:  # the interrupt arrives while syncd.cli is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "syncd.cli":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from syncd.launch import main
main()
"""
    result = subprocess.run(
        [sys.executable, "-c", interrupted_import],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == "" and result.stdout == ""
