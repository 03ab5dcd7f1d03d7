"""A command that only reads opens a SQLite state file it may not write (an operator's own
account beside the daemon's) when no daemon has it open: read as it stands, with nothing
written or created beside it (``store_open.read_only_snapshot``).

The tests run as root, who may write anything, so the account's rights are ``os.access``'s
answer for the state file and its directory; the file, SQLite and syncd's code are real."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

from syncd import store_open
from syncd.cli import app as cli
from syncd.settings import load_settings
from syncd.state import StateStore
from syncd.store_open import open_store, read_only_snapshot


def _state(tmp_path: Path) -> tuple[Path, Path]:
    """A closed state file with one meta row, and a config pointing at it."""
    db = tmp_path / "state" / "syncd-state.db"
    db.parent.mkdir()
    store = StateStore(f"sqlite:///{db}")
    store.set_meta("written_by", "the daemon")
    store.close()
    assert not Path(f"{db}-wal").exists(), "the last close removed the WAL file"
    config = tmp_path / "config.yaml"
    config.write_text(f'state: {{url: "sqlite:///{db}"}}\n')
    return db, config


def _not_writable_by_us(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    real = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path) in (db, db.parent):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(store_open.os, "access", access)


def test_a_state_file_this_account_may_not_write_is_read_as_it_stands_creating_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, config = _state(tmp_path)
    _not_writable_by_us(monkeypatch, db)
    before = sorted(p.name for p in db.parent.iterdir())
    store = open_store(load_settings(config, env={}), writable=False)
    try:
        assert "immutable=1" in str(store.engine.url) and "mode=ro" in str(store.engine.url)
        assert store.get_meta("written_by") == "the daemon"
        with pytest.raises(SQLAlchemyError, match="readonly"):
            store.set_meta("written_by", "a reader")
        assert sorted(p.name for p in db.parent.iterdir()) == before  # no -wal, no -shm
    finally:
        store.close()


def test_a_state_file_a_daemon_has_open_is_read_the_usual_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's WAL file is there: SQLite's own read-only open reads it, with what the
    daemon wrote since its last checkpoint."""
    db, _config = _state(tmp_path)
    daemon = StateStore(f"sqlite:///{db}")
    try:
        daemon.set_meta("written_by", "the running daemon")
        assert Path(f"{db}-wal").exists()
        _not_writable_by_us(monkeypatch, db)
        assert read_only_snapshot(f"sqlite:///{db}") is None
    finally:
        daemon.close()


def test_a_state_file_this_account_may_write_is_opened_the_usual_way(tmp_path: Path) -> None:
    db, _config = _state(tmp_path)
    assert read_only_snapshot(f"sqlite:///{db}") is None
    assert read_only_snapshot("postgresql+psycopg://syncd@db/syncd") is None
    assert read_only_snapshot(f"sqlite:///{tmp_path / 'missing.db'}") is None


def test_syncd_report_reads_a_state_file_this_account_may_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, config = _state(tmp_path)
    _not_writable_by_us(monkeypatch, db)
    opened: list[str] = []
    init = StateStore.__init__

    def noting(self: StateStore, url: str, **kwargs: Any) -> None:
        opened.append(url)
        init(self, url, **kwargs)

    monkeypatch.setattr(StateStore, "__init__", noting)
    result = CliRunner().invoke(cli, ["report", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert len(opened) == 1 and "immutable=1" in opened[0]
    assert json.loads(result.stdout)  # the report itself, read from the snapshot
