"""What an idle cycle costs syncd at a mirror size, and a cycle with 1 % of the leads changed.

``measure_idle(n_leads, db_url)`` seeds a Salesforce emulator (in this process, on loopback)
with ``n_leads`` leads of the benchmark mix, builds syncd's real ``App`` against it with the
state store at ``db_url``, runs cycles until one writes nothing (the first sync and the rule
chains it starts), then measures:

* ``idle``: a cycle five minutes later, nothing changed in the CRM;
* ``one_percent``: a cycle after 1 % of the leads were edited in the CRM (a rep's edit of the
  title: pulled, re-enriched, evaluated, nothing to write).

CPU is the calling thread's (``time.thread_time``): the cycle runs in it, the emulator answers
from its own threads, so the figure is syncd's alone. ``evaluated`` is the number of leads the
plan step read and evaluated (``CycleReport.evaluated``; on a syncd without it, every live lead).

Run it directly for a quick look: ``python -m bench.idle_cycle 10000 [sqlite:///path.db]``.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import RULES20, SF_STATUS_VALUES, salesforce_connector
from bench.data import cycle_leads

__all__ = ["measure_idle"]

_SEED_CHUNK = 1000
_INTERVAL_S = 300


def _config(directory: Path, db_url: str, connector: dict[str, Any]) -> Path:
    body = {
        "state": {"url": db_url},
        "rules": {"files": [str(RULES20)], "fixtures": None, "watch": False},
        "breaker": {"max_change_share": 1.0, "min_changes": 1},
        "server": {"enabled": False},
        "log": {"level": "WARNING"},
        "salesforce": {
            "interval": f"{_INTERVAL_S}s",
            "status_values": SF_STATUS_VALUES,
            "connector": connector,
        },
    }
    path = directory / "syncd.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def _timed(pipeline: Any, store: Any) -> dict[str, Any]:
    cpu, wall = time.thread_time(), time.perf_counter()
    report = pipeline.run_cycle()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if report.outcome != "ok":
        raise RuntimeError(f"cycle ended {report.outcome}: {report.message}")
    evaluated = getattr(report, "evaluated", None)
    if evaluated is None:  # a syncd that evaluated every live lead each cycle
        evaluated = store.count_live("salesforce")
    return {
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "evaluated": evaluated,
        "pulled": report.pulled,
        "written": report.written,
    }


def measure_idle(n_leads: int, db_url: str | None = None) -> dict[str, Any]:
    """Idle and 1 % cycle figures of syncd on ``n_leads`` leads, state at ``db_url`` (a fresh
    SQLite file in a temporary directory when None; a given database must be empty)."""
    from bench.crm_cycles import _sf_record
    from connectors.salesforce.connector import SalesforceConnector
    from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
    from syncd.app import App, connector_config
    from syncd.settings import load_settings

    emu = SalesforceEmulator(
        EmulatorConfig(daily_api_limit=100_000_000, journal_limit=10_000)
    ).start()
    try:
        now = emu.clock.now()
        leads = [_sf_record(lead) for lead in cycle_leads(n_leads, now=now, share=0.3)]
        chunks = math.ceil(n_leads / _SEED_CHUNK)
        ids: list[str] = []
        for k in range(chunks):
            ids += emu.add_leads(
                leads[k * _SEED_CHUNK : (k + 1) * _SEED_CHUNK],
                modstamp=now - timedelta(hours=chunks - k),
            )
        del leads
        campaign = emu.add_campaign("Newsletter")
        emu.clock.advance(60)
        with tempfile.TemporaryDirectory(prefix="syncd-idle-") as tmp:
            url = db_url or f"sqlite:///{Path(tmp) / 'state.db'}"
            path = _config(
                Path(tmp),
                url,
                salesforce_connector(emu, campaign),
            )
            settings = load_settings(path, env={"BENCH_SF_CLIENT_SECRET": emu.client_secret})
            cs = settings.connectors()["salesforce"]
            config: Any = connector_config(settings, "salesforce", cs)
            connector = SalesforceConnector(config, clock=emu.clock.now)
            app = App.build(settings, clock=emu.clock.now, connectors={"salesforce": connector})
            try:
                pipeline = app.pipelines["salesforce"]
                first = _timed(pipeline, app.store)
                settle = 0
                while True:  # the first sync's writes come back; rule chains go on
                    emu.clock.advance(_INTERVAL_S)
                    settle += 1
                    if _timed(pipeline, app.store)["written"] == 0 or settle > 8:
                        break
                emu.clock.advance(_INTERVAL_S)
                idle = _timed(pipeline, app.store)
                for rid in ids[::100][: max(1, n_leads // 100)]:
                    emu.update_lead(rid, {"Title": "Director of Operations"})
                emu.clock.advance(_INTERVAL_S)
                one_percent = _timed(pipeline, app.store)
            finally:
                app.close()
    finally:
        emu.stop()
    return {
        "n_leads": n_leads,
        "db": "sqlite" if db_url is None or db_url.startswith("sqlite") else "postgresql",
        "first": first,
        "idle": idle,
        "one_percent": one_percent,
    }


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(measure_idle(size, sys.argv[2] if len(sys.argv) > 2 else None), indent=2))
