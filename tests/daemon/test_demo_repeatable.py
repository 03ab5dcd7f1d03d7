"""The embedded demo is repeatable: each start is a new world with a fresh state."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.state import RunRow, StateStore
from tests.daemon.test_admin_workflow import _demo_config


def _sync_once(config: Path) -> str:
    result = CliRunner().invoke(cli, ["sync", "--once", "--config", str(config)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _status_changes(output: str, crm: str) -> int:
    match = re.search(rf"^{crm}: pulled (\d+), changed (\d+), written (\d+)", output, re.M)
    assert match, output
    assert "status: " in output  # the changed leads are listed with their new status
    return int(match[3])


def test_two_demo_runs_in_a_row_both_change_statuses_in_their_first_cycle(
        tmp_path: Path) -> None:
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
        conn.execute(RunRow.__table__.insert(), [{
            "run_id": "real", "crm": "salesforce", "started_at": datetime(2026, 1, 1, tzinfo=UTC),
            "outcome": "ok"}])
    store.close()
    result = CliRunner().invoke(cli, ["sync", "--once", "--config", str(config)],
                                catch_exceptions=False)
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(config))}:\d+:\d+: state.url \(sqlite:.*from a daemon "
                     "that talked to real CRMs", result.output, re.M), result.output
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert [r.run_id for r in store.last_runs(10)] == ["real"]
    store.close()
