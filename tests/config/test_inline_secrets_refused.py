"""A password or webhook token written in the config file is refused, as a connector secret is.

README "Configuration": secrets are never written in the file; a secret setting takes
``{env: NAME}`` or ``{file: PATH}``. ``state.url`` holds the database password and an alert
channel's ``url`` its webhook token (README "Alerts"), yet both were taken as written.
A URL without a password, and either given by an environment variable, stay accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.settings import load_settings

RULES = Path(__file__).parents[2] / "rules" / "default.yaml"
PASSWORD = "hunter2-not-shown"


def _config(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "syncd.yaml"
    config.write_text(f'rules: {{files: ["{RULES}"], fixtures: null}}\n{body}')
    return config


def _rules_check(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["rules", "check", "-c", str(config), str(RULES)], catch_exceptions=False
    )
    return result.exit_code, result.output


CASES = {
    "database_password_in_the_url": (
        f"state:\n  url: postgresql+psycopg://syncd:{PASSWORD}@db.internal/syncd\n",
        r":3:3: state\.url: the URL holds a password, and secrets must not be written in the "
        r"config; give the URL as \{env: NAME\} or \{file: PATH\}",
    ),
    "database_password_as_a_query_parameter": (
        f"state:\n  url: postgresql+psycopg://syncd@db.internal/syncd?password={PASSWORD}\n",
        r":3:3: state\.url: the URL holds a password",
    ),
    "webhook_url_with_its_token": (
        f"alerts:\n  channels:\n    - {{name: ops, url: 'https://hooks.example/T0/{PASSWORD}'}}\n",
        r":4:19: alerts\.channels\.0\.url: a webhook URL holds its token, and secrets must not be "
        r"written in the config; give it as \{env: NAME\} or \{file: PATH\}",
    ),
}


@pytest.mark.parametrize(("body", "expected"), list(CASES.values()), ids=list(CASES))
def test_a_secret_written_in_the_file_is_refused_at_its_place_without_echoing_it(
    tmp_path: Path, body: str, expected: str
) -> None:
    config = _config(tmp_path, body)
    code, output = _rules_check(config)
    assert code == 2, output
    assert "Traceback" not in output
    assert re.search(re.escape(str(config)) + expected, output), output
    assert PASSWORD not in output


def test_a_database_url_without_a_password_may_be_written_in_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path, "state:\n  url: postgresql+psycopg://syncd@db.internal/syncd\n")
    assert load_settings(config, env={}).state.url.get_secret_value().endswith("/syncd")


def test_secret_urls_given_by_reference_or_environment_variable_are_accepted(
    tmp_path: Path,
) -> None:
    config = _config(
        tmp_path,
        "state: {url: {env: DB_URL}}\nalerts: {channels: [{name: ops, url: {env: HOOK}}]}\n",
    )
    url = f"postgresql+psycopg://syncd:{PASSWORD}@db.internal/syncd"
    settings = load_settings(config, env={"DB_URL": url, "HOOK": "https://hooks.example/T0/x"})
    assert settings.state.url.get_secret_value() == url
    plain = _config(tmp_path, "alerts: {channels: [{name: ops, url: {env: HOOK}}]}\n")
    overridden = load_settings(
        plain, env={"SYNCD_STATE__URL": url, "HOOK": "https://hooks.example/T0/x"}
    )
    assert overridden.state.url.get_secret_value() == url
