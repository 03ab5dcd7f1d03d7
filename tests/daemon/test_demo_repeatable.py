"""The embedded demo is repeatable: each start is a new world with a fresh state."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.state import RunRow, StateStore
from tests.daemon.test_admin_workflow import _demo_config


def _sync_once(config: Path) -> str:
    result = CliRunner().invoke(
        cli, ["sync", "--once", "--config", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _status_changes(output: str, crm: str) -> int:
    match = re.search(rf"^{crm}: pulled (\d+), changed (\d+), written (\d+)", output, re.M)
    assert match, output
    assert "status: " in output  # the changed leads are listed with their new status
    return int(match[3])


def test_two_demo_runs_in_a_row_both_change_statuses_in_their_first_cycle(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    config.write_text(config.read_text().replace("interval: 20s", "interval: 10s"))
    first = _sync_once(config)
    second = _sync_once(config)
    for crm in ("salesforce", "hubspot"):
        assert _status_changes(first, crm) > 0
        assert _status_changes(second, crm) == _status_changes(first, crm)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert len(store.last_runs(10)) == 2  # the first demo's runs went with its world
    store.close()


def test_a_store_of_real_crms_is_never_cleared_by_the_demo(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    with store.begin() as conn:
        conn.execute(
            RunRow.__table__.insert(),
            [
                {
                    "run_id": "real",
                    "crm": "salesforce",
                    "started_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "outcome": "ok",
                }
            ],
        )
    store.close()
    result = CliRunner().invoke(
        cli, ["sync", "--once", "--config", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert re.search(
        rf"^{re.escape(str(config))}:\d+:\d+: state.url \(sqlite:.*from a daemon "
        "that talked to real CRMs",
        result.output,
        re.M,
    ), result.output
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert [r.run_id for r in store.last_runs(10)] == ["real"]
    store.close()


def test_a_demo_another_live_process_runs_is_not_cleared_from_under_it(tmp_path: Path) -> None:
    from datetime import timedelta

    from syncd.app import App, StartupError
    from syncd.settings import load_settings
    from syncd.state import LeaseRow

    config = _demo_config(tmp_path)
    _sync_once(config)
    now = datetime.now(UTC)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    with store.begin() as conn:
        conn.execute(LeaseRow.__table__.delete())
        conn.execute(
            LeaseRow.__table__.insert(),
            [
                {
                    "connector": "salesforce",
                    "token": 7,
                    "host": "elsewhere",
                    "pid": 1,
                    "process_id": "another",
                    "acquired_at": now,
                    "renewed_at": now,
                    "expires_at": now + timedelta(minutes=5),
                }
            ],
        )
    runs = len(store.last_runs(10))
    store.close()
    with pytest.raises(StartupError, match=r"another syncd \(host elsewhere, pid 1"):
        App.build(load_settings(config))
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert len(store.last_runs(10)) == runs == 2
    store.close()
