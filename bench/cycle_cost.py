"""Cycle cost at scale: what a cycle costs syncd (CPU, wall, mirror rows) and the CRM (counted
calls), for a first sync, an idle cycle and cycles where 1 %, 5 % and 30 % of the leads changed.

Each (CRM, N, store) runs in its own syncd ``App`` built from a config file, exactly as ``syncd
sync`` builds one, against a loopback emulator in this process (seeded in bulk, in memory: a
million leads take about two minutes). The App, its connector and the emulator share the
emulator's clock, so "five minutes later" is a clock step, not a wait.

The sequence per (CRM, N, store):

1. seed N leads as varied as a real org (``bench.realistic.realistic_leads``: unique domains,
   companies and titles in realistic proportions), of which ``SEED_SHARE`` need a change under
   ``bench/rules20.yaml``;
2. the first sync (measured once: it is the one cycle that cannot be repeated on the same
   mirror), then cycles until one writes nothing (rule chains, the echo of syncd's own writes);
3. ``runs`` idle cycles, five minutes apart: nothing changed in the CRM;
4. for each change share: another user sets that share of the leads (ones no rule touches) to
   ``New`` with no activity for 200 days, five minutes pass, a cycle runs (measured), then cycles
   until one writes nothing; ``runs`` times, each on other leads.

Counted calls come from the emulators: Salesforce's own usage counter (``Sforce-Limit-Info``,
what the org's daily limit is charged) and the request journals for the breakdown by kind.
CPU is the cycle's thread (``time.thread_time``): syncd runs a cycle on the thread that calls
``run_cycle``, and the in-process emulator serves on other threads, so its work is not counted;
on PostgreSQL the server's CPU is in its own processes, so only wall times are compared there.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from bench.common import HS_STATUS_VALUES, RULES20, SF_STATUS_VALUES, salesforce_connector
from bench.data import marked
from bench.lockstep import Lockstep
from bench.minimum import Minimum, hubspot_minimum, salesforce_minimum

__all__ = ["SHARES", "CostRun", "Measure", "run_hubspot", "run_salesforce"]

#: Change shares of the measured change cycles.
SHARES = (0.01, 0.05, 0.30)
#: Share of the seeded leads that need a change at the first sync.
SEED_SHARE = 0.05
INTERVAL_S = 300  # the connectors' default cycle interval (5 min)
SEED_CHUNK = 10_000
#: The bench's "other user" resets statuses; with the default hold (14 days) syncd would leave
#: those leads alone and the cycle would only read them.
_HOLD = "0s"
_FROM_LEAD = re.compile(r"\bFROM\s+Lead\b", re.IGNORECASE)
_FROM_HISTORY = re.compile(r"\bFROM\s+LeadHistory\b", re.IGNORECASE)


@dataclass
class Measure:
    """One cycle: its cost to syncd and to the CRM."""

    wall: float
    cpu: float  # the cycle's thread
    process_cpu: float  # the whole process, the in-process emulator included
    calls: Counter[str]  # journal requests by kind
    counted: int  # what the CRM charges against its API limit
    rows: int  # mirror rows the store's lead reads returned to the cycle
    pulled: int
    written: int
    run_id: str
    judged: int = 0  # leads the plan step judged (pulled, with open changes, or come due)
    minimum: Minimum | None = None
    changed: int = 0  # leads another user changed before the cycle
    updates: int = 0  # leads whose fields syncd wrote
    members: dict[str, int] = field(default_factory=dict)  # membership inserts per newsletter
    member_leads: list[str] = field(default_factory=list)  # leads added to a newsletter
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # lead -> field -> value
    #: Wall time of what the cycle ran after its own work (``Metrics.after_cycle``: the funnel
    #: KPI refresh when due, then alerts), part of ``wall`` and ``cpu``.
    after_cycle: float = 0.0

    @property
    def work_calls(self) -> int:
        """Reads and writes: what the minimum covers (not the ledger's history reads)."""
        return sum(v for k, v in self.calls.items() if k in ("read", "write", "membership"))


@dataclass
class CostRun:
    crm: str
    n: int
    store: str  # "sqlite" | "postgresql"
    seed_s: float = 0.0
    first: Measure | None = None
    first_settle: list[Measure] = field(default_factory=list)
    idle: list[Measure] = field(default_factory=list)
    shares: dict[float, list[Measure]] = field(default_factory=dict)
    echo: dict[float, list[Measure]] = field(default_factory=dict)  # settling after each
    fields: dict[str, str] = field(default_factory=dict)  # canonical -> CRM field names
    campaign: str = ""
    emulator: Any = None  # kept running when the caller asks (the script comparison)
    #: (wall, CPU) of a first, full funnel KPI refresh over the mirror's ledger after the
    #: share cycles (what a daemon's first refresh, or one after a settings change, costs).
    kpi_refresh: tuple[float, float] | None = None
    #: (wall, CPU) of the next refresh of the same gauges after one more 1 % cycle: the
    #: incremental one a daemon makes after each cycle that grew the ledger (syncd.kpi).
    kpi_incremental: tuple[float, float] | None = None


# ------------------------------------------------------------------------------ data


def org_leads(n: int, *, now: datetime, share: float) -> Iterator[dict[str, Any]]:
    """``n`` canonical leads as varied as a real org; ``share`` of them need a change.

    Values from :func:`bench.realistic.realistic_leads` (unique domains, companies and titles
    in realistic proportions). Marked leads are made ``New`` with no activity for 200 days
    (rules20 changes every such lead); the others ``SQL``, which no rule touches.
    """
    from bench.realistic import realistic_leads

    for i, lead in enumerate(realistic_leads(n, seed=3, now=now)):
        lead.pop("_status_changed_at", None)
        if marked(i, share):
            lead.update(
                status="New",
                last_activity_at=now - timedelta(days=200),
                created_at=now - timedelta(days=300),
            )
        else:
            lead["status"] = "SQL"
        yield lead


def _rotation(ids: Sequence[str]) -> Callable[[int], list[str]]:
    """Take ``k`` ids at a time, each call after the last, wrapping around."""
    state = {"at": 0}

    def take(k: int) -> list[str]:
        out = [ids[(state["at"] + j) % len(ids)] for j in range(min(k, len(ids)))]
        state["at"] = (state["at"] + k) % max(1, len(ids))
        return out

    return take


# ------------------------------------------------------------------------------ app


def write_config(
    directory: Path,
    crm: str,
    connector: dict[str, Any],
    status_values: dict[str, str],
    *,
    store_url: str | None = None,
    hold_rep_edits_for: str | None = None,
) -> Path:
    """The syncd config file of one CRM (a fresh SQLite file in ``directory`` by default)."""
    # JSON is YAML: the file is what an admin would write, only in flow style.
    body = {
        "state": {"url": store_url or f"sqlite:///{directory / 'state.db'}"},
        "rules": {"files": [str(RULES20)], "fixtures": None, "watch": False},
        # 30 % of leads change on purpose: past the default breaker (20 %), as an admin would
        # approve a large run.
        "breaker": {"max_change_share": 1.0, "min_changes": 1},
        "server": {"enabled": False},
        "log": {"level": "WARNING"},
        crm: {
            "interval": f"{INTERVAL_S}s",
            "status_values": status_values,
            "connector": connector,
        },
    }
    if hold_rep_edits_for is not None:
        body[crm]["hold_rep_edits_for"] = hold_rep_edits_for
    path = directory / "syncd.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def build_app(
    config: Path,
    env: dict[str, str],
    crm: str,
    make_connector: Callable[[Any], Any],
    clock: Callable[[], datetime],
) -> Any:
    from syncd.app import App, connector_config
    from syncd.settings import load_settings

    settings = load_settings(config, env=env)
    cs = settings.connectors()[crm]
    connector = make_connector(connector_config(settings, crm, cs))
    app = App.build(settings, clock=clock, connectors={crm: connector})
    _lead(app, settings, crm)
    from syncd.heap import freeze_startup_heap

    # As `syncd sync` does once its App is built (syncd.heap). Here it also freezes the
    # in-process emulator's seeded org, a heap no daemon holds: left tracked, each full
    # collection on the cycle's thread traversed it (at 100k about a fifth of a 1 % cycle's
    # CPU), charging syncd for the emulator's memory.
    freeze_startup_heap()
    return app


def salesforce_app(
    emu: Any,
    campaign: str,
    directory: Path,
    *,
    store_url: str | None = None,
    edit_config: Callable[[Path], None] | None = None,
) -> Any:
    """syncd's App on the Salesforce emulator ``emu``, built from a config file in ``directory``
    as ``syncd sync`` builds one (``edit_config`` may change the file first), sharing the
    emulator's clock and holding the connector's lease."""
    from connectors.salesforce.connector import SalesforceConnector

    path = write_config(
        directory,
        "salesforce",
        salesforce_connector(emu, campaign),
        SF_STATUS_VALUES,
        store_url=store_url,
        hold_rep_edits_for=_HOLD,
    )
    if edit_config is not None:
        edit_config(path)
    return build_app(
        path,
        {"BENCH_SF_CLIENT_SECRET": emu.client_secret},
        "salesforce",
        lambda cfg: SalesforceConnector(cfg, clock=emu.clock.now),
        emu.clock.now,
    )


def _lead(app: Any, settings: Any, crm: str) -> None:
    """Hold ``crm``'s lease as the daemon does (``syncd.scheduler``) for the app's life: every
    stored page, plan and batch is fenced by it, and an idle cycle of a leader keeps its
    answers (``syncd.idle_memo``). Without it the bench would measure cycles no daemon runs."""
    import logging

    from syncd.lease import connector_lease

    lease = connector_lease(app.store, settings, crm, announce=logging.DEBUG)
    if not lease.try_acquire():
        raise RuntimeError(f"the bench's store already has a {crm} lease holder")
    lease.start(standby=False)
    app.pipelines[crm].lease = lease
    close = app.close

    def close_leading(**kwargs: Any) -> None:
        lease.close()
        close(**kwargs)

    app.close = close_leading


class RowCounter:
    """Counts the mirror rows the store's lead reads return: every public method of the store
    with ``lead`` in its name (chunk iterations, lookups by id), and the plan step's reads of
    the leads it judges (``syncd.due.iter_plan_rows``, which reads through the store's
    connection rather than a store method)."""

    def __init__(self, store: Any) -> None:
        self.rows = 0
        for name in dir(type(store)):
            if name.startswith("_") or "lead" not in name or "history" in name or "audit" in name:
                continue  # ledger and audit rows are not mirror rows
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, self._wrap(method))
        _count_plan_reads()
        _PLAN_READ_COUNTERS[store] = self

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def counted(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if isinstance(result, dict | list):
                self.rows += len(result)
                return result
            if isinstance(result, Iterator):
                return self.iterate(result)
            if result is not None and not isinstance(result, int | str | bool):
                self.rows += 1
            return result

        return counted

    def iterate(self, it: Iterator[Any]) -> Iterator[Any]:
        """``it``, counting the rows of each list it yields (one row for anything else)."""
        for item in it:
            self.rows += len(item) if isinstance(item, list) else 1
            yield item


#: The counter of each store whose plan reads are counted (the bench may hold several stores).
_PLAN_READ_COUNTERS: weakref.WeakKeyDictionary[Any, RowCounter] = weakref.WeakKeyDictionary()


def _count_plan_reads() -> None:
    """Routes ``syncd.due.iter_plan_rows`` (the planner calls it through its module) through
    the counter of the store it reads, once per process."""
    from syncd import due

    if getattr(due.iter_plan_rows, "bench_counted", False):
        return
    original = due.iter_plan_rows

    def counted(store: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        chunks = original(store, *args, **kwargs)
        counter = _PLAN_READ_COUNTERS.get(store)
        return chunks if counter is None else counter.iterate(chunks)

    counted.bench_counted = True  # type: ignore[attr-defined]
    due.iter_plan_rows = counted


class _Driver:
    """Runs and measures cycles of one App against one emulator."""

    def __init__(
        self,
        app: Any,
        crm: str,
        advance: Callable[[float], None],
        journal_clear: Callable[[], None],
        journal_counts: Callable[[], Counter[str]],
        usage: Callable[[], int],
    ) -> None:
        self.app, self.crm = app, crm
        self.pipeline = app.pipelines[crm]
        self.rows = RowCounter(app.store)
        self.after_cycle = 0.0
        # The pipeline ends a cycle with Metrics.observe_cycle, which runs ``after_cycle``
        # (the funnel KPI refresh when due, then alerts) on the cycle's thread: timed apart.
        after = app.metrics.after_cycle
        if after is not None:

            def timed(report: Any) -> None:
                started = time.perf_counter()
                try:
                    after(report)
                finally:
                    self.after_cycle += time.perf_counter() - started

            app.metrics.after_cycle = timed
        self.advance, self.clear, self.counts, self.usage = (
            advance,
            journal_clear,
            journal_counts,
            usage,
        )

    def cycle(self, *, wait: bool = True) -> Measure:
        if wait:
            self.advance(INTERVAL_S)
        self.clear()
        used, rows, after = self.usage(), self.rows.rows, self.after_cycle
        wall, cpu, pcpu = time.perf_counter(), time.thread_time(), time.process_time()
        report = self.pipeline.run_cycle()
        wall, cpu, pcpu = (
            time.perf_counter() - wall,
            time.thread_time() - cpu,
            time.process_time() - pcpu,
        )
        if report.outcome != "ok":
            raise RuntimeError(f"{self.crm} cycle ended {report.outcome}: {report.message}")
        m = Measure(
            wall=wall,
            cpu=cpu,
            process_cpu=pcpu,
            calls=self.counts(),
            counted=self.usage() - used,
            rows=self.rows.rows - rows,
            pulled=report.pulled,
            written=report.written,
            run_id=report.run_id,
            judged=report.evaluated,
            after_cycle=self.after_cycle - after,
        )
        if report.written:
            self._record_changes(m)
        return m

    def _record_changes(self, m: Measure) -> None:
        rows = self.app.store.changes_of_run(
            self.crm, m.run_id, ["done", "failed", "pending", "sending"]
        )
        for r in rows:
            if r.kind == "field":
                m.changes.setdefault(r.lead_id, {})[r.field] = r.value
            else:
                m.members[r.field] = m.members.get(r.field, 0) + 1
                m.member_leads.append(r.lead_id)
        m.updates = len(m.changes)

    def kpi_refreshes(
        self, change: Callable[[list[str]], None], leads: list[str]
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """(wall, CPU) of a first, full refresh of the funnel KPI gauges (``syncd.kpi``) on a
        fresh ``FunnelKpis``, then of its next one after a cycle with ``leads`` changed: the
        incremental refresh the daemon makes after a cycle that grew the ledger."""
        from syncd.kpi import FunnelKpis

        kpis = FunnelKpis(self.app.store.engine, self.app.settings, lambda *_: None, self.app.clock)
        full = self._timed(lambda: kpis.compute(self.crm))
        change(leads)
        self.cycle()
        return full, self._timed(lambda: kpis.compute(self.crm))

    @staticmethod
    def _timed(call: Callable[[], object]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        return time.perf_counter() - wall, time.thread_time() - cpu

    def settle(self, limit: int = 8) -> list[Measure]:
        """Cycles until one writes nothing (rule chains, the echo of syncd's own writes)."""
        out = [self.cycle()]
        while out[-1].written and len(out) < limit:
            out.append(self.cycle())
        return out


def _measure_all(
    run: CostRun,
    driver: _Driver,
    change: Callable[[list[str]], None],
    pool: Sequence[str],
    minimum: Callable[[Measure], Minimum],
    *,
    runs: int,
    shares: Sequence[float],
    share_runs: int,
    turns: Turns,
) -> None:
    run.first = driver.cycle(wait=False)
    run.first.minimum = minimum(run.first)
    _say(f"{run.crm} N={run.n:,}: seeded in {run.seed_s:.0f} s, first sync {run.first.wall:.1f} s")
    run.first_settle = driver.settle()
    turns.ready()
    for _ in range(runs):
        with turns.turn():
            run.idle.append(driver.cycle())
    _say(f"{run.crm} N={run.n:,}: idle cycles " + ", ".join(f"{m.wall:.2f}" for m in run.idle))
    take = _rotation(pool)
    for share in shares:
        for _ in range(share_runs):
            k = max(1, round(run.n * share))
            with turns.turn():
                change(take(k))
                m = driver.cycle()
            m.changed = k
            m.minimum = minimum(m)
            run.shares.setdefault(share, []).append(m)
            with turns.turn():
                run.echo.setdefault(share, []).extend(driver.settle())
        walls = ", ".join(f"{m.wall:.2f}" for m in run.shares.get(share, []))
        _say(f"{run.crm} N={run.n:,}: {share:.0%} cycles {walls} s")
    with turns.turn():
        run.kpi_refresh, run.kpi_incremental = driver.kpi_refreshes(
            change, take(max(1, round(run.n * 0.01)))
        )
    _say(
        f"{run.crm} N={run.n:,}: funnel KPI refresh {run.kpi_refresh[0]:.2f} s full, "
        f"{run.kpi_incremental[0]:.3f} s after a 1 % cycle"
    )


@dataclass(frozen=True)
class Turns:
    """A sequence's place in a :class:`bench.lockstep.Lockstep` (§8's store pairs), or none:
    the sequence then runs on its own and every turn is its own."""

    step: Lockstep | None = None
    name: str = ""

    def setting_up(self) -> AbstractContextManager[None]:
        return nullcontext() if self.step is None else self.step.setting_up(self.name)

    def ready(self) -> None:
        if self.step is not None:
            self.step.ready(self.name)

    def turn(self) -> AbstractContextManager[None]:
        return nullcontext() if self.step is None else self.step.turn(self.name)


def _say(text: str) -> None:
    print(f"    {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ Salesforce


def sf_kind(entry: Any) -> str:
    """What one Salesforce request was for."""
    path, method = entry.path, entry.method
    if path.endswith("/oauth2/token"):
        return "token"
    if "/jobs/query" in path:
        return "read"  # Bulk API 2.0: create, poll, result pages
    if method == "GET" and "/query" in path:
        soql = entry.soql or ""
        if _FROM_HISTORY.search(soql):
            return "history"
        return "read" if _FROM_LEAD.search(soql) or not soql else "preflight"
    if path.rstrip("/").endswith("/composite"):
        # Composite: updates and CampaignMember inserts together (a trailing query is the race
        # check riding along); only queries: a pull's chained query pages (5 a call), the race
        # check taking one of the first call's slots when it rides there. That call is a read
        # call: were the slot to cost the pull one more call, the read is charged with it.
        subs = getattr(entry, "subrequests", None) or ()
        return "read" if subs and all(sr.method == "GET" for sr in subs) else "write"
    if path.endswith("/composite/sobjects"):
        return "write" if method == "PATCH" else "membership"
    if "/sobjects/Lead/" in path and method == "PATCH":
        return "single_update"
    if "/sobjects/CampaignMember" in path and method == "POST":
        return "single_member"
    if method == "GET":
        return "preflight"
    return "other"


def _sf_records(leads: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    from connectors.salesforce.config import DEFAULT_FIELDS
    from connectors.testing.salesforce.embedded import crm_record

    for lead in leads:
        record = crm_record(lead, DEFAULT_FIELDS, SF_STATUS_VALUES)
        value = record.get("LastActivityDate")
        if isinstance(value, datetime):
            record["LastActivityDate"] = value.date()
        yield record


def _bulk_page(app: Any, crm: str) -> int:
    from bench.minimum import BULK_PAGE

    config = app.connectors[crm]._config  # noqa: SLF001 - the page size the connector uses
    return int(getattr(config, "bulk_results_page_size", BULK_PAGE))


def run_salesforce(
    n: int,
    *,
    runs: int = 3,
    shares: Sequence[float] = SHARES,
    share_runs: int | None = None,
    store_url: str | None = None,
    keep_emulator: bool = False,
    turns: Turns | None = None,
) -> CostRun:
    """Seed ``n`` leads in a Salesforce emulator and measure the cycle sequence against it.

    ``runs``: idle cycles, and cycles of each change share unless ``share_runs`` says otherwise
    (§8 measures 15 idle cycles and one 1 % cycle). ``store_url`` None: a fresh SQLite file.
    ``keep_emulator``: leave the emulator running in ``CostRun.emulator`` (the caller stops it).
    ``turns``: its place in a lockstep with another sequence (``bench.lockstep``, §8).
    """
    turns = turns or Turns()
    with turns.setting_up():
        from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

        run = CostRun("salesforce", n, "postgresql" if store_url else "sqlite")
        config = EmulatorConfig(daily_api_limit=1_000_000_000, journal_limit=1_000_000)
        emu = SalesforceEmulator(config).start()
        try:
            started = time.perf_counter()
            now = emu.clock.now()
            chunks = math.ceil(n / SEED_CHUNK)
            records = _sf_records(org_leads(n, now=now, share=SEED_SHARE))
            pool: list[str] = []
            for k in range(chunks):
                block = [next(records) for _ in range(min(SEED_CHUNK, n - k * SEED_CHUNK))]
                # Last modified over the past hours, one block an hour, as in an org in use.
                ids = emu.add_leads(block, modstamp=now - timedelta(hours=chunks - k))
                pool += [
                    rid for j, rid in enumerate(ids) if not marked(k * SEED_CHUNK + j, SEED_SHARE)
                ]
            run.campaign = emu.add_campaign("Newsletter")
            run.seed_s = time.perf_counter() - started
            emu.clock.advance(60)  # past the connector's lag: the seeded leads are settled
            stale = (now - timedelta(days=200)).date()
            new_status = SF_STATUS_VALUES["New"]

            def change(ids: list[str]) -> None:
                for rid in ids:
                    emu.update_lead(rid, {"Status": new_status, "LastActivityDate": stale})

            with tempfile.TemporaryDirectory(prefix="syncd-bench-sf-") as tmp:
                app = salesforce_app(emu, run.campaign, Path(tmp), store_url=store_url)
                try:
                    page = _bulk_page(app, "salesforce")

                    def least(m: Measure) -> Minimum:
                        return salesforce_minimum(
                            read=m.changed or n,
                            updates=m.updates,
                            members=sum(m.members.values()),
                            bulk_page=page,
                        )

                    driver = _Driver(
                        app,
                        "salesforce",
                        emu.clock.advance,
                        emu.journal.clear,
                        lambda: Counter(sf_kind(e) for e in emu.journal.entries()),
                        lambda: int(emu.api_usage),
                    )
                    _measure_all(
                        run,
                        driver,
                        change,
                        pool,
                        least,
                        runs=runs,
                        shares=shares,
                        share_runs=runs if share_runs is None else share_runs,
                        turns=turns,
                    )
                    run.fields = dict(app.connectors["salesforce"]._config.fields)  # noqa: SLF001
                finally:
                    app.close()
        finally:
            if keep_emulator:
                run.emulator = emu
            else:
                emu.stop()
        return run


# ------------------------------------------------------------------------------ HubSpot


def hs_kind(entry: Any) -> str:
    """What one HubSpot request was for."""
    path, method = entry.path, entry.method
    if path.endswith("/contacts/search"):
        return "read"
    if method == "GET" and path == "/crm/v3/objects/contacts":
        return "archived_scan"
    if path.endswith("/batch/update"):
        return "write"
    if path.endswith("/batch/read"):
        return "history"  # syncd's only batch read in a cycle: the status history
    if path.endswith("/memberships/add"):
        return "membership"
    if path.startswith("/oauth/"):
        return "token"
    return "preflight"


def run_hubspot(
    n: int,
    *,
    runs: int = 3,
    shares: Sequence[float] = SHARES,
) -> CostRun:
    """Seed ``n`` contacts in a HubSpot emulator and measure the cycle sequence against it."""
    from connectors.hubspot.config import DEFAULT_FIELDS
    from connectors.hubspot.connector import HubSpotConnector
    from connectors.testing.hubspot import HubSpotEmulator
    from connectors.testing.hubspot.embedded import crm_record

    run = CostRun("hubspot", n, "sqlite")
    emu = HubSpotEmulator().start()
    try:
        started = time.perf_counter()
        now = emu.clock.now()
        now_ms = emu.clock.now_ms() - 60_000

        def records() -> Iterator[dict[str, Any]]:
            for i, lead in enumerate(org_leads(n, now=now, share=SEED_SHARE)):
                record = crm_record(lead, DEFAULT_FIELDS, HS_STATUS_VALUES)
                record.pop("hubspot_owner_id", None)  # an owner id must name a HubSpot user
                # Last modified over the past days, ten seconds apart, as in a portal in use.
                record["lastmodifieddate"] = now_ms - (n - i) * 10_000
                yield record

        ids = emu.add_contacts(records())
        pool = [cid for i, cid in enumerate(ids) if not marked(i, SEED_SHARE)]
        list_id = emu.add_list("Newsletter", "MANUAL")
        run.seed_s = time.perf_counter() - started
        stale_ms = str(int((now - timedelta(days=200)).timestamp() * 1000))

        def change(contact_ids: list[str]) -> None:
            for cid in contact_ids:
                emu.update_contact(
                    cid, {"hs_lead_status": HS_STATUS_VALUES["New"], "notes_last_updated": stale_ms}
                )

        with tempfile.TemporaryDirectory(prefix="syncd-bench-hs-") as tmp:
            path = write_config(
                Path(tmp),
                "hubspot",
                {
                    "base_url": emu.base_url,
                    "auth": {"type": "private_app", "access_token": {"env": "BENCH_HS_TOKEN"}},
                    "newsletters": {"newsletter": list_id},
                    "allow_add_status_options": True,
                },
                HS_STATUS_VALUES,
                hold_rep_edits_for=_HOLD,
            )
            app = build_app(
                path,
                {"BENCH_HS_TOKEN": emu.access_token},
                "hubspot",
                lambda cfg: HubSpotConnector(cfg, clock=emu.clock.now),
                emu.clock.now,
            )
            try:

                def kinds() -> Counter[str]:
                    return Counter(hs_kind(e) for e in emu.journal.entries())

                def least(m: Measure) -> Minimum:
                    return hubspot_minimum(
                        read=m.changed or n,
                        updates=m.updates,
                        members=m.members,
                        archived_scan=m.calls["archived_scan"] > 0,
                    )

                driver = _Driver(
                    app,
                    "hubspot",
                    emu.clock.advance,
                    emu.journal.clear,
                    kinds,
                    # HubSpot charges every request against its limits (crm-api C7).
                    lambda: sum(
                        1 for e in emu.journal.entries() if not e.path.startswith("/oauth/")
                    ),
                )
                # The journal is cleared before each cycle, so "usage" restarts at 0 there.
                _measure_all(
                    run,
                    driver,
                    change,
                    pool,
                    least,
                    runs=runs,
                    shares=shares,
                    share_runs=runs,
                    turns=Turns(),
                )
            finally:
                app.close()
    finally:
        emu.stop()
    return run
