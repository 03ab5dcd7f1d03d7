"""A connector instance's own ``connector:`` block is validated when the config is loaded.

README "Configuration": every problem in the file is reported at once, with file:line:column,
and the process exits 2. The ``connector:`` block used to be validated only when the daemon
built its connectors, so ``syncd plan`` and ``syncd status`` ran on a block ``syncd run``
refuses, and a file with a top-level typo and a bad block needed two runs to show both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli

RULES = Path(__file__).parents[2] / "rules" / "default.yaml"
SECRET = "s3cret-value-never-shown"

VALID_SALESFORCE = """\
      instance_url: https://acme.my.salesforce.com
      token_url: https://acme.my.salesforce.com/services/oauth2/token
      auth: {type: client_credentials, client_id: 3MVG9abc, client_secret: {env: SF_SECRET}}
"""


def _config(tmp_path: Path, salesforce_block: str, extra: str = "") -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(
        f"""\
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: ["{RULES}"], fixtures: null}}
server: {{enabled: false}}
connectors:
  salesforce:
    type: salesforce
    connector:
{salesforce_block}{extra}"""
    )
    return path


def _plan(config: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("SF_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["plan", "-c", str(config)], catch_exceptions=False)
    return result.exit_code, result.output


BAD_BLOCKS = {
    "page_size_out_of_range": (
        VALID_SALESFORCE + "      page_size: 5000\n",
        r":11:7: connectors\.salesforce\.connector\.page_size: .*less than or equal to 2000",
    ),
    "typo_of_a_key": (
        VALID_SALESFORCE + "      batch_sise: 100\n",
        r":11:7: connectors\.salesforce\.connector\.batch_sise: unknown setting 'batch_sise' "
        r"\(did you mean 'batch_size'\?\)",
    ),
    "secret_written_inline": (
        VALID_SALESFORCE.replace("{env: SF_SECRET}", SECRET),
        r":10:\d+: connectors\.salesforce\.connector\.auth\.client_secret: secrets must not be "
        r"written in the config; use \{env: NAME\} or \{file: PATH\}",
    ),
    "ca_bundle_missing": (
        VALID_SALESFORCE + "      ca_bundle: missing-ca.pem\n",
        r":11:7: connectors\.salesforce\.connector\.ca_bundle: cannot read .*missing-ca\.pem "
        r"\(No such file or directory\); fix the path",
    ),
}


@pytest.mark.parametrize(("block", "expected"), list(BAD_BLOCKS.values()), ids=list(BAD_BLOCKS))
def test_plan_refuses_a_bad_connector_block_at_its_place_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: str, expected: str
) -> None:
    config = _config(tmp_path, block)
    code, output = _plan(config, monkeypatch)
    assert code == 2, output
    assert "Traceback" not in output
    assert re.search(re.escape(str(config)) + expected, output), output
    assert SECRET not in output


def test_plan_runs_when_the_connector_block_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _plan(_config(tmp_path, VALID_SALESFORCE), monkeypatch)
    assert code == 0, output
    assert "salesforce: 0 live leads" in output


def test_plan_runs_without_the_urls_and_credentials_only_the_crm_calls_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.app import StartupError, connector_config
    from syncd.settings import load_settings

    config = _config(tmp_path, "      page_size: 2000\n")
    code, output = _plan(config, monkeypatch)
    assert code == 0, output
    settings = load_settings(config)
    with pytest.raises(StartupError, match=r"connector\.instance_url: missing required setting"):
        connector_config(settings, "salesforce", settings.connectors()["salesforce"])


def test_a_top_level_problem_and_a_bad_connector_block_are_reported_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, VALID_SALESFORCE + "      page_size: 5000\n", "log: {level: loud}\n")
    code, output = _plan(config, monkeypatch)
    assert code == 2, output
    assert f"{config}:12:7: log.level: " in output, output
    assert f"{config}:11:7: connectors.salesforce.connector.page_size: " in output, output


def test_an_embedded_instance_needs_no_urls_or_credentials_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator fills instance_url, token_url, auth and ca_bundle when the demo starts.
    config = _config(tmp_path, "      page_size: 2000\n", "embedded: {enabled: true}\n")
    code, output = _plan(config, monkeypatch)
    assert code == 0, output


def test_a_disabled_instance_is_not_checked_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "      page_size: 5000\n").read_text()
    path = tmp_path / "syncd.yaml"
    path.write_text(
        config.replace("    type: salesforce\n", "    type: salesforce\n    enabled: false\n")
    )
    code, output = _plan(path, monkeypatch)
    # plan refuses a config with no instance enabled, but not for the disabled block's values.
    assert code == 2 and "no connector instance is enabled" in output, output
    assert "page_size" not in output, output
