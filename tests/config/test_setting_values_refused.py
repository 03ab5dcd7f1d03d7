"""Values of documented settings that cannot work are refused when the config loads.

Each case is a value an operator could write that syncd used to accept: it then failed at the
first CRM call without naming the setting (a Salesforce URL without ``https://``, an unknown
time zone), or quietly did something else (no backoff at all, one HubSpot call per ten
seconds, working hours of eight seconds a day). Each is now one line naming the file, the line and the setting, with exit 2 and no
traceback, from ``syncd plan``, which contacts no CRM.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli

RULES = Path(__file__).parents[2] / "rules" / "default.yaml"

CONFIG = """\
state: {{url: "sqlite:///{db}"}}
rules: {{files: ["{rules}"], fixtures: null}}
server: {{enabled: false}}
outbox: {{retry_base: 30s}}
connectors:
  salesforce:
    type: salesforce
    connector:
      instance_url: https://acme.my.salesforce.com
      token_url: https://acme.my.salesforce.com/services/oauth2/token
      auth: {{type: client_credentials, client_id: 3MVG9abc, client_secret: {{env: SF_SECRET}}}}
  hubspot:
    type: hubspot
    connector:
      daily_reset_timezone: America/New_York
      ten_second_limit: 100
      ten_second_headroom: 5
      auth: {{type: private_app, access_token: {{env: HS_TOKEN}}}}
"""

CASES = {
    "retry_base_zero": (
        "retry_base: 30s",
        "retry_base: 0s",
        r":4:10: outbox\.retry_base: Input should be greater than 0 seconds",
    ),
    "working_hours_as_numbers": (
        "server: {enabled: false}\n",
        "server: {enabled: false}\ncalendar: {hours: [9, 17]}\n",
        r":4:20: calendar\.hours\.0: 9 is not a time of day \(a number reads as seconds after "
        r"midnight\); write hours as text, e\.g\. \[\"09:00\", \"17:00\"\]",
    ),
    "salesforce_url_without_scheme": (
        "instance_url: https://acme",
        "instance_url: acme",
        r":9:7: connectors\.salesforce\.connector\.instance_url: 'acme\.my\.salesforce\.com' "
        r"is not an https:// URL with a host; write the whole URL, e.g. "
        r"https://acme\.my\.salesforce\.com",
    ),
    "salesforce_token_url_plain_http": (
        "token_url: https://",
        "token_url: http://",
        r":10:7: connectors\.salesforce\.connector\.token_url: 'http://acme\.my\.salesforce\.com"
        r"/services/oauth2/token' is not an https:// URL with a host; write the whole URL, e\.g\. "
        r"https://acme\.my\.salesforce\.com/services/oauth2/token",
    ),
    "salesforce_first_bulk_poll_above_the_longest": (
        "token_url: https://acme.my.salesforce.com/services/oauth2/token",
        "token_url: https://acme.my.salesforce.com/services/oauth2/token\n"
        "      bulk_poll_seconds: 60",
        r":8:5: connectors\.salesforce\.connector: bulk_poll_seconds \(60\) is above "
        r"bulk_poll_max_seconds \(30\), the longest wait between two looks at a query job; "
        r"lower it or raise the longest",
    ),
    "hubspot_oauth_token_url_without_scheme": (
        "auth: {type: private_app, access_token: {env: HS_TOKEN}}",
        "auth: {type: oauth, client_id: app, client_secret: {env: HS_TOKEN}, "
        "refresh_token: {env: HS_TOKEN}, token_url: api.hubapi.com/oauth/v1/token}",
        r":18:\d+: connectors\.hubspot\.connector\.auth\.token_url: 'api\.hubapi\.com/oauth/v1/"
        r"token' is not an http:// or https:// URL with a host; write the whole URL, e\.g\. "
        r"https://api\.hubapi\.com/oauth/v1/token",
    ),
    "hubspot_unknown_time_zone": (
        "daily_reset_timezone: America/New_York",
        "daily_reset_timezone: America/NewYork",
        r":15:7: connectors\.hubspot\.connector\.daily_reset_timezone: unknown time zone "
        r"'America/NewYork'; use an IANA name such as America/New_York or Europe/Berlin",
    ),
    "hubspot_headroom_takes_the_whole_limit": (
        "ten_second_headroom: 5",
        "ten_second_headroom: 100",
        r":14:5: connectors\.hubspot\.connector: ten_second_headroom \(100\) leaves none of "
        r"ten_second_limit \(100\) for syncd; keep it below the limit",
    ),
}


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[Path, int, str]:
    monkeypatch.setenv("SF_SECRET", "sf-secret")
    monkeypatch.setenv("HS_TOKEN", "hs-token")
    config = tmp_path / "syncd.yaml"
    config.write_text(text)
    result = CliRunner().invoke(cli, ["plan", "-c", str(config)], catch_exceptions=False)
    return config, result.exit_code, result.output


def _text(tmp_path: Path) -> str:
    return CONFIG.format(db=tmp_path / "state.db", rules=RULES)


def test_plan_runs_when_every_value_is_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, code, output = _plan(tmp_path, monkeypatch, _text(tmp_path))
    assert code == 0, output
    assert "hubspot: 0 live leads" in output


@pytest.mark.parametrize(("old", "new", "expected"), list(CASES.values()), ids=list(CASES))
def test_a_value_that_cannot_work_is_refused_at_its_place_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, expected: str
) -> None:
    text = _text(tmp_path)
    assert old in text
    config, code, output = _plan(tmp_path, monkeypatch, text.replace(old, new))
    assert code == 2, output
    assert "Traceback" not in output
    assert re.search(re.escape(str(config)) + expected, output), output
