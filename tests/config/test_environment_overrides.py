"""Settings from SYNCD_<PATH> environment variables, secret-bearing state.url, did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.settings import load_settings
from syncd.store_open import open_store
from syncd.yamlfile import YamlFileError

CONFIG = """\
state: {url: "sqlite:///from-file.db"}
rules: {files: [rules/default.yaml]}
connectors:
  salesforce/emea:
    type: salesforce
    interval: 5m
  hubspot:
    type: hubspot
"""


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    return path


def _problems(path: Path, env: dict[str, str]) -> str:
    with pytest.raises(YamlFileError) as caught:
        load_settings(path, env=env)
    return str(caught.value)


def test_syncd_state__url_overrides_the_file(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path), env={"SYNCD_STATE__URL": "postgresql+psycopg://syncd:pw@db/syncd"}
    )
    assert settings.state.url.get_secret_value() == "postgresql+psycopg://syncd:pw@db/syncd"
    assert "pw" not in repr(settings) and "pw" not in str(settings.state)


def test_values_are_yaml_so_lists_and_durations_work(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path),
        env={
            "SYNCD_RULES__FILES": "[a.yaml, b.yaml]",
            "SYNCD_LOG__FORMAT": "json",
            "SYNCD_BREAKER__MAX_CHANGE_SHARE": "0.5",
            "SYNCD_HUBSPOT__INTERVAL": "90s",
        },
    )
    assert [p.name for p in settings.rules.files] == ["a.yaml", "b.yaml"]
    assert settings.log.format == "json" and settings.breaker.max_change_share == 0.5
    assert settings.connectors()["hubspot"].interval.total_seconds() == 90


def test_an_instance_name_with_a_slash_is_written_with_an_underscore(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path), env={"SYNCD_CONNECTORS__SALESFORCE_EMEA__INTERVAL": "20m"}
    )
    assert settings.connectors()["salesforce/emea"].interval.total_seconds() == 1200


def test_two_instances_mapping_to_one_variable_part_are_refused_as_ambiguous(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path, CONFIG + "  salesforce_emea:\n    type: salesforce\n")
    text = _problems(path, {"SYNCD_CONNECTORS__SALESFORCE_EMEA__INTERVAL": "20m"})
    assert "environment variable SYNCD_CONNECTORS__SALESFORCE_EMEA__INTERVAL" in text
    assert "salesforce/emea, salesforce_emea" in text


def test_a_bad_value_names_the_variable_not_a_file_position(tmp_path: Path) -> None:
    text = _problems(_config(tmp_path), {"SYNCD_CONNECTORS__SALESFORCE_EMEA__INTERVAL": "1s"})
    assert text.startswith(
        "environment variable SYNCD_CONNECTORS__SALESFORCE_EMEA__INTERVAL: "
        "connectors.salesforce/emea.interval: an interval of 1s is below"
    )
    assert "syncd.yaml:" not in text


def test_an_unknown_setting_in_a_variable_gets_a_did_you_mean(tmp_path: Path) -> None:
    text = _problems(_config(tmp_path), {"SYNCD_STAT__URL": "sqlite:///x.db"})
    assert "SYNCD_STAT__URL: unknown setting 'stat'" in text
    assert "(did you mean 'state'?)" in text


def test_variables_without_a_double_underscore_are_not_settings(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path), env={"SYNCD_CONFIG": "/etc/x.yaml", "SYNCD_DATABASE_URL": "whatever"}
    )
    assert settings.overrides == {}


def test_state_url_takes_an_env_reference(tmp_path: Path) -> None:
    path = _config(
        tmp_path, CONFIG.replace('{url: "sqlite:///from-file.db"}', "{url: {env: DATABASE_URL}}")
    )
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = load_settings(path, env={"DATABASE_URL": url})
    assert settings.state.url.get_secret_value() == url
    open_store(settings).close()
    assert (tmp_path / "state.db").exists()


def test_an_unreachable_state_url_hides_its_password(tmp_path: Path) -> None:
    from syncd.app import StartupError

    settings = load_settings(
        _config(tmp_path),
        env={"SYNCD_STATE__URL": "postgresql+psycopg://syncd:s3cr3t-pw@127.0.0.1:1/syncd"},
    )
    with pytest.raises(StartupError) as caught:
        open_store(settings)
    text = str(caught.value)
    assert "s3cr3t-pw" not in text
    assert text.startswith("environment variable SYNCD_STATE__URL: state.url: ")


def test_a_one_letter_state_url_password_is_hidden_and_the_error_stays_readable_when_unreachable(
    tmp_path: Path,
) -> None:
    from syncd.app import StartupError

    settings = load_settings(
        _config(tmp_path),
        env={"SYNCD_STATE__URL": "postgresql+psycopg://syncd:a@127.0.0.1:1/syncd"},
    )
    with pytest.raises(StartupError) as caught:
        open_store(settings)
    text = str(caught.value)
    # Every 'a' of the message was masked: "c***nnot re***ch the st***te store".
    assert "cannot reach the state store postgresql+psycopg://syncd:***@127.0.0.1:1/syncd" in text
    assert "start the database" in text


@pytest.mark.parametrize("password", ["hunter2-long", "pw", "p%40ss%20w0rd"])
def test_a_password_given_as_a_query_parameter_is_hidden_when_the_store_is_unreachable(
    tmp_path: Path, password: str
) -> None:
    # libpq takes `?password=...` as well as `user:password@`; the URL was shown as written.
    from syncd.app import StartupError

    url = f"postgresql+psycopg://syncd@127.0.0.1:1/syncd?password={password}"
    settings = load_settings(_config(tmp_path), env={"SYNCD_STATE__URL": url})
    with pytest.raises(StartupError) as caught:
        open_store(settings)
    text = str(caught.value)
    assert "postgresql+psycopg://syncd@127.0.0.1:1/syncd?password=*** (" in text
    assert "start the database" in text


def _driver_problem(tmp_path: Path, url: str, driver_says: str) -> str:
    from syncd.store_open import store_problem

    settings = load_settings(_config(tmp_path), env={"SYNCD_STATE__URL": url})
    return str(store_problem(settings, ValueError(driver_says)))


def test_a_short_password_is_hidden_where_it_stands_alone_when_a_driver_message_quotes_it(
    tmp_path: Path,
) -> None:
    text = _driver_problem(
        tmp_path,
        "postgresql+psycopg://syncd:pw1@db.internal/syncd",
        'password "pw1" rejected: host=db.internal user=syncd password=pw1 (pw1a is not it)',
    )
    assert 'password "***" rejected: host=db.internal user=syncd password=*** (pw1a' in text


@pytest.mark.parametrize("glued", ["xx{}yy", "{}", "password={}!"])
def test_a_password_of_ordinary_length_is_hidden_even_inside_a_word_of_a_driver_message(
    tmp_path: Path, glued: str
) -> None:
    text = _driver_problem(
        tmp_path,
        "postgresql+psycopg://syncd:Sup3rSecret@db.internal/syncd",
        "rejected " + glued.format("Sup3rSecret"),
    )
    assert "Sup3rSecret" not in text
    assert "rejected " + glued.format("***") in text


def test_a_percent_encoded_password_is_hidden_when_a_driver_quotes_the_url_as_written(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://syncd:p%40ss%20w0rd%3Alonger@db.internal/syncd"
    text = _driver_problem(tmp_path, url, f"cannot use {url}")
    assert "p%40ss%20w0rd%3Alonger" not in text
    assert "p@ss w0rd:longer" not in text
    assert "cannot use postgresql+psycopg://syncd:***@db.internal/syncd" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stat:\n  url: sqlite:///x.db\n", "unknown setting 'stat' (did you mean 'state'?)"),
        ("log:\n  levle: INFO\n", "log.levle: unknown setting 'levle' (did you mean 'level'?)"),
        (
            "connectors:\n  sf:\n    type: salesforce\n    intervall: 5m\n",
            "syncd.yaml:4:5: connectors.sf.intervall: unknown setting 'intervall' "
            "(did you mean 'interval'?)",
        ),
    ],
)
def test_unknown_keys_in_the_file_get_a_did_you_mean(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _problems(_config(tmp_path, text), {})


def test_an_unknown_key_in_a_connector_block_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = _config(
        tmp_path, "connectors:\n  sf:\n    type: salesforce\n    connector:\n      page_sise: 200\n"
    )
    problems = _problems(path, env={})
    assert (
        f"{path}:5:7: connectors.sf.connector.page_sise: unknown setting 'page_sise' (did you "
        "mean 'page_size'?)" in problems
    ), problems
