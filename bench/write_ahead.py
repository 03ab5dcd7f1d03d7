"""§10: Salesforce writes with calls sent ahead against a CRM that takes time to answer.

A drain of many Composite calls spends, per call, the CRM's time to apply it and syncd's time
to record the answers (outbox states, audit rows, the mirror). Since commit `syncd.call_ahead`
landed, the next call leaves as soon as the last has answered and the last's answers are
recorded while the next is on its way. This section measures the drain's wall time both ways,
in the same process, on the same emulator and store, the two ways alternating cycle by cycle:

* with the emulator answering each Composite request ``latency`` seconds late (its ``slow``
  fault: the request is applied, then the answer waits), standing in for the time a real org
  takes to apply 1,000 records with its triggers and flows;
* with no added latency: the emulator runs in this process, so its work and syncd's take turns
  on one interpreter lock, and there is nothing to overlap.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import cycle_cost
from bench.common import SF_STATUS_VALUES
from bench.data import marked
from bench.report import Figure, SectionNotes, measured

__all__ = ["run"]

SECTION = 10
#: The Composite request's added answer time of the slow runs.
LATENCY_S = 0.5


def run(n: int, *, share: float, runs: int) -> tuple[list[Figure], SectionNotes]:
    """Seed ``n`` leads; ``runs`` times for each latency and each way, change ``share`` of
    them and time the drain of the cycle that writes them back."""
    from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

    emu = SalesforceEmulator(EmulatorConfig(daily_api_limit=1_000_000_000)).start()
    drains: dict[tuple[float, bool], list[float]] = {}
    calls: list[int] = []
    try:
        now = emu.clock.now()
        records = cycle_cost._sf_records(  # noqa: SLF001 - the §7 seed, reused
            cycle_cost.org_leads(n, now=now, share=cycle_cost.SEED_SHARE)
        )
        ids = emu.add_leads(list(records), modstamp=now - timedelta(hours=1))
        pool = [rid for j, rid in enumerate(ids) if not marked(j, cycle_cost.SEED_SHARE)]
        campaign = emu.add_campaign("Newsletter")
        emu.clock.advance(60)
        stale = (now - timedelta(days=200)).date()
        with tempfile.TemporaryDirectory(prefix="syncd-bench-ahead-") as tmp:
            app = cycle_cost.salesforce_app(emu, campaign, Path(tmp), edit_config=_allow_rechanges)
            try:
                pipeline = app.pipelines["salesforce"]
                timed = _timed_drain(pipeline)
                _settle(pipeline, emu)  # the first sync and its echo
                take = cycle_cost._rotation(pool)  # noqa: SLF001
                k = max(1, round(n * share))
                for i in range(runs):
                    for latency in (LATENCY_S, 0.0):
                        # Which way goes first alternates from run to run.
                        for ahead in (i % 2 == 0, i % 2 == 1):
                            for rid in take(k):
                                emu.update_lead(
                                    rid,
                                    {"Status": SF_STATUS_VALUES["New"], "LastActivityDate": stale},
                                )
                            emu.clock.advance(cycle_cost.INTERVAL_S)
                            if latency:
                                emu.faults.slow_next(
                                    10_000, delay=latency, path="/composite$", method="POST"
                                )
                            _send_ahead(pipeline, ahead)
                            emu.journal.clear()
                            timed.clear()
                            report = pipeline.run_cycle()
                            emu.faults.clear()
                            if report.outcome != "ok":
                                raise RuntimeError(
                                    f"cycle ended {report.outcome}: {report.message}"
                                )
                            drains.setdefault((latency, ahead), []).append(timed[-1])
                            calls.append(
                                sum(
                                    1
                                    for e in emu.journal.entries()
                                    if e.path.endswith("/composite")
                                )
                            )
                            _settle(pipeline, emu)
            finally:
                app.close()
    finally:
        emu.stop()
    return _figures(n, share, runs, drains, calls)


def _allow_rechanges(config: Path) -> None:
    """The same leads are changed back in turn about six times in a simulated hour: past the
    loop guard's default of 3 status writes a week (syncd.loop_guard), which would hold them."""
    body = json.loads(config.read_text())
    body["loop_guard"] = {"max_changes": 50}
    config.write_text(json.dumps(body, indent=2))


def _timed_drain(pipeline: Any) -> list[float]:
    """Wall times of the pipeline's drains, one per cycle, in order."""
    walls: list[float] = []
    drain: Callable[[Any], None] = pipeline.drain

    def timed(report: Any) -> None:
        started = time.perf_counter()
        try:
            drain(report)
        finally:
            walls.append(time.perf_counter() - started)

    pipeline.drain = timed
    return walls


def _send_ahead(pipeline: Any, ahead: bool) -> None:
    """Calls ahead on or off for the pipeline's next drains (the product always sends ahead
    where it can; off is the way it drained before)."""
    pipeline._sends_ahead = lambda: ahead  # noqa: SLF001


def _settle(pipeline: Any, emu: Any, limit: int = 8) -> None:
    """Cycles until one writes nothing (the echo of syncd's own writes); their drains untimed."""
    for _ in range(limit):
        emu.clock.advance(cycle_cost.INTERVAL_S)
        report = pipeline.run_cycle()
        if not report.written:
            break


def _figures(
    n: int,
    share: float,
    runs: int,
    drains: dict[tuple[float, bool], list[float]],
    calls: list[int],
) -> tuple[list[Figure], SectionNotes]:
    figs: list[Figure] = []
    for latency in (LATENCY_S, 0.0):
        ahead, serial = drains.get((latency, True), []), drains.get((latency, False), [])
        tag = f"{int(latency * 1000)}ms"
        what = f"the CRM {latency:.1f} s late per call" if latency else "no added latency"
        figs += [
            measured(SECTION, f"drain_ahead_{tag}", f"drain wall, calls ahead, {what}", ahead, "s"),
            measured(
                SECTION,
                f"drain_serial_{tag}",
                f"drain wall, one call after the other's recording, {what}",
                serial,
                "s",
            ),
            measured(
                SECTION,
                f"drain_ahead_ratio_{tag}",
                f"drain wall, calls ahead / one after the other, {what}",
                [a / s for a, s in zip(ahead, serial, strict=False)],
                "x",
            ),
        ]
    k = max(1, round(n * share))
    notes = SectionNotes(
        SECTION,
        "Writes with calls sent ahead",
        [
            f"{n:,} leads seeded in the Salesforce emulator (`bench/cycle_cost.py`'s realistic "
            f"org), then {runs} times for each latency and each way: {k:,} leads "
            "(ones no rule touches) set to New with no activity for 200 days by another user, "
            "five minutes pass, and a cycle writes them back: status updates and newsletter "
            f"adds, {min(calls, default=0)}-{max(calls, default=0)} Composite calls of up to "
            "five collections of 200. The figure is the wall time of that cycle's drain "
            "(`Pipeline.drain`); ratios pair each run's two ways, which went first alternating.",
            "",
            "Calls ahead (`syncd/call_ahead.py`): the next call leaves as soon as the last has "
            "answered, and the last's answers are recorded while the next is on its way. One "
            "call at a time still reaches the CRM, and every call's rows are marked `sending` "
            "before it leaves. The cycle's last call, which carries the race check, leaves "
            "after every answer before it is recorded.",
            "",
            f"What the {LATENCY_S:.1f} s stands for: a Composite request of 1,000 records "
            "that the org applies with its validation rules, triggers and flows; the figure "
            "shows what syncd's own recording costs when it is hidden behind that time. What "
            "limits the no-latency figure: the emulator serves from a thread of this process, "
            "so its work and syncd's take turns on one interpreter lock and nothing overlaps; "
            "it shows the calls ahead cost nothing there. What the emulator leaves out: it "
            "applies a request in a few milliseconds per hundred records, far less than an org, "
            "so the drain without added latency is mostly syncd's own work.",
        ],
    )
    return figs, notes
