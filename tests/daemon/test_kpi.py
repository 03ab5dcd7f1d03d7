"""The funnel KPI gauges: set after a cycle, equal to what `syncd report --by crm` shows."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from syncd import kpi
from syncd.cli import app as cli
from syncd.kpi import FunnelKpis
from syncd.report import Report
from syncd.settings import Settings, load_settings
from syncd.state import StatusHistoryRow
from tests.daemon.harness import running_app, write_config
from tests.daemon.test_report import GROUPS


def _seed_ledger(engine: object, config: Path, monday: datetime) -> None:
    """The 40 leads of test_report, three weeks ago, as the CRM's values of this config."""
    settings = load_settings(config)
    with Session(engine) as session:  # type: ignore[call-overload]
        for prefix, count, crm, _owner, _source, _activity, steps in GROUPS:
            to_crm = settings.connectors()[crm].status_values
            for n in range(count):
                previous: str | None = None
                for written, day, hour in steps:
                    status = "Unqualified" if written == "Closed - Not Converted" else written
                    value = to_crm.get(status, status)
                    session.add(
                        StatusHistoryRow(
                            crm=crm,
                            lead_id=f"{prefix}{n:02d}",
                            from_value=previous,
                            to_value=value,
                            at=monday + timedelta(days=day, hours=hour),
                            actor="person",
                            source="pulled",
                        )
                    )
                    previous = value
        session.commit()


def test_funnel_gauges_equal_the_report_after_a_cycle(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    monday = today - timedelta(days=today.weekday() + 21)
    with running_app(config) as app:
        _seed_ledger(app.store.engine, config, monday)
        registry = app.metrics.registry
        assert registry.get_sample_value("syncd_sla_open_breaches", {"crm": "hubspot"}) is None
        for name in ("salesforce", "hubspot"):
            assert app.pipelines[name].run_cycle().outcome == "ok"
        gauges = {
            crm: {
                "stages": {
                    stage: registry.get_sample_value(
                        "syncd_funnel_leads", {"crm": crm, "stage": stage}
                    )
                    for stage in ("New", "MQL", "SAL", "SQL", "Converted")
                },
                "acceptance": registry.get_sample_value("syncd_acceptance_rate", {"crm": crm}),
                "open": registry.get_sample_value("syncd_sla_open_breaches", {"crm": crm}),
            }
            for crm in ("salesforce", "hubspot")
        }
    since = (now - timedelta(days=90)).isoformat()
    result = CliRunner().invoke(
        cli, ["report", "--config", str(config), "--since", since, "--by", "crm", "--json"]
    )
    assert result.exit_code == 0, result.output
    groups = {g["group"]: g for g in json.loads(result.output)["groups"]}
    for crm, seen in gauges.items():
        expected = groups[crm]
        assert seen["stages"] == {s["stage"]: s["any_order"] for s in expected["stages"]}
        assert seen["open"] == len(expected["open_breaches"])
        rate = expected["acceptance_rate"]
        assert (seen["acceptance"] == rate) or (rate is None and math.isnan(seen["acceptance"]))
    # And they are the fixture's numbers: hubspot holds groups B and D, salesforce A, C and E.
    assert gauges["hubspot"]["open"] == 5 and gauges["salesforce"]["open"] == 0
    assert gauges["hubspot"]["stages"]["SAL"] == 15 and gauges["salesforce"]["stages"]["SAL"] == 15
    assert gauges["salesforce"]["acceptance"] == 15 / 25  # A, E accepted; C's 10 rejected


class _CountingKpis(FunnelKpis):
    """The refresh policy alone: a ledger mark the test moves, a computation it counts."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.mark = 0
        self.computed = 0
        super().__init__(cast(Engine, None), settings, lambda crm, report: None, clock)

    def compute(self, crm: str, mark: int | None = None) -> Report:
        self.computed += 1
        return cast(Report, object())

    def _ledger_mark(self) -> int | None:
        return self.mark


def test_a_slow_refresh_spaces_the_next_one_by_twenty_times_its_duration_even_as_the_ledger_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
    now = {"t": t0}
    kpis = _CountingKpis(load_settings(write_config(tmp_path)), lambda: now["t"])
    # perf_counter around each computation: the first takes 2 s, the next two 10 ms.
    ticks = iter([0.0, 2.0, 100.0, 100.01, 200.0, 200.01])
    monkeypatch.setattr(kpi.time, "perf_counter", lambda: next(ticks))

    kpis.refresh("salesforce")
    for after in (10, 39):  # the ledger grew, but within 20 x 2 s of the slow refresh
        kpis.mark += 1
        now["t"] = t0 + timedelta(seconds=after)
        kpis.refresh("salesforce")
    assert kpis.computed == 1
    now["t"] = t0 + timedelta(seconds=41)
    kpis.refresh("salesforce")
    assert kpis.computed == 2
    kpis.mark += 1
    now["t"] = t0 + timedelta(seconds=42)  # that one took 10 ms: the next may follow soon
    kpis.refresh("salesforce")
    assert kpis.computed == 3
    now["t"] = t0 + timedelta(seconds=43)  # the ledger did not grow: nothing to recompute
    kpis.refresh("salesforce")
    assert kpis.computed == 3


def test_a_refresh_is_due_after_a_cycle_moved_ledger_rows_when_the_ledger_did_not_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
    now = {"t": t0}
    kpis = _CountingKpis(load_settings(write_config(tmp_path)), lambda: now["t"])
    ticks = iter([0.0, 0.01, 1.0, 1.01, 2.0, 2.01])  # each computation takes 10 ms
    monkeypatch.setattr(kpi.time, "perf_counter", lambda: next(ticks))

    kpis.refresh("hubspot")
    now["t"] = t0 + timedelta(seconds=5)
    kpis.refresh("hubspot")  # nothing changed
    assert kpis.computed == 1
    kpis.ledger_moved("hubspot")  # a merge moved rows: same newest id, other sums
    kpis.refresh("hubspot")
    assert kpis.computed == 2
    now["t"] = t0 + timedelta(seconds=10)
    kpis.refresh("hubspot")  # the move was counted once
    assert kpis.computed == 2


def test_a_one_shot_refresh_gives_the_daemons_gauges_and_keeps_no_per_lead_state(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    with running_app(config) as app:
        _seed_ledger(app.store.engine, config, today - timedelta(days=today.weekday() + 21))
        fixed = lambda: now  # noqa: E731
        daemon = FunnelKpis(app.store.engine, app.settings, lambda *_: None, fixed)
        once = FunnelKpis(app.store.engine, app.settings, lambda *_: None, fixed, incremental=False)
        for crm in ("salesforce", "hubspot"):
            kept, streamed = daemon.compute(crm), once.compute(crm)
            assert streamed.stages == kept.stages
            assert streamed.open_breaches == kept.open_breaches
            assert streamed.acceptance_rate == kept.acceptance_rate
        assert set(daemon._states) == {"salesforce", "hubspot"}
        assert once._states == {}


def test_sync_once_keeps_no_funnel_state_and_the_daemon_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[bool] = []

    class _Recording(FunnelKpis):
        def __init__(self, *args: object, incremental: bool = True, **kw: object) -> None:
            built.append(incremental)
            super().__init__(*args, incremental=incremental, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(kpi, "FunnelKpis", _Recording)
    config = write_config(tmp_path, crms=("salesforce",))
    result = CliRunner().invoke(cli, ["sync", "--once", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with running_app(config):
        pass
    assert built == [False, True]
