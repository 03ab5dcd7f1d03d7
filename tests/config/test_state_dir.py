"""A relative SQLite path lands in the state directory, never beside a read-only config."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.settings import load_settings
from syncd.store_open import state_url


def _config(tmp_path: Path) -> Path:
    config_dir = tmp_path / "etc" / "syncd"  # a ConfigMap mount: read-only
    config_dir.mkdir(parents=True)
    config = config_dir / "config.yaml"
    config.write_text('state: {url: "sqlite:///var/syncd-state.db"}\n')
    return config


def test_syncd_state__dir_places_a_relative_sqlite_path_as_the_image_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    state = tmp_path / "var" / "lib" / "syncd"
    settings = load_settings(_config(tmp_path), env={"SYNCD_STATE__DIR": str(state)})
    assert state_url(settings) == f"sqlite:///{state / 'var' / 'syncd-state.db'}"
    assert (state / "var").is_dir()


def test_systemds_state_directory_is_the_default_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd-state"))
    settings = load_settings(_config(tmp_path), env={})
    assert state_url(settings).startswith(f"sqlite:///{tmp_path / 'systemd-state'}/")


def test_without_a_state_dir_a_relative_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = _config(tmp_path)
    settings = load_settings(config, env={})
    assert state_url(settings) == f"sqlite:///{config.parent / 'var' / 'syncd-state.db'}"
