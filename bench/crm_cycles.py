"""§1 API calls per cycle vs the minimum, §2 against a naive script, §6 idle cost.

Each CRM runs in its own syncd ``App`` built from a config file, exactly as ``syncd sync`` builds
one, pointed at a loopback emulator in this process. The App, its connector and the emulator
share the emulator's clock, so "five minutes later" is a clock step, not a wait.

Per N the sequence is: seed N leads (30 % need a change) -> start-up (token, preflight) ->
cycle 1 (pull everything, plan, write: the figure for §1) -> +5 min, cycle 2 (reads back syncd's
own writes) -> +5 min, cycle 3 (nothing changed in the CRM: §6) -> for Salesforce, the naive
script (§2). Calls are counted from the emulators' request journals, not from syncd's counters.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import HS_STATUS_VALUES, RULES20, SF_STATUS_VALUES, Stopwatch
from bench.data import cycle_leads
from bench.report import Figure, SectionNotes

__all__ = ["CycleResult", "run_hubspot", "run_salesforce"]

SHARE = 0.3
_FROM_LEAD = re.compile(r"\bFROM\s+Lead\b", re.IGNORECASE)
_FROM_HISTORY = re.compile(r"\bFROM\s+LeadHistory\b", re.IGNORECASE)
#: Seeded leads were last modified over the past weeks, one chunk per hour, as in an org that
#: has been in use; syncd's first cycle is then a backfill of old records.
SEED_CHUNK = 1000
INTERVAL_S = 300  # the connectors' default cycle interval (5 min)


@dataclass
class CycleResult:
    """Journal counts of one cycle, by kind, plus the cycle's report and wall time."""

    calls: Counter[str]
    wall: float
    report: Any

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass
class CrmRun:
    crm: str
    n: int
    startup: Counter[str] = field(default_factory=Counter)
    cycles: list[CycleResult] = field(default_factory=list)  # first, echo, idle
    settle: list[CycleResult] = field(default_factory=list)  # cycles that still wrote
    changed_leads: int = 0
    memberships: dict[str, int] = field(default_factory=dict)
    minimum: dict[str, int] = field(default_factory=dict)
    naive: CycleResult | None = None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def _write_config(
    directory: Path, crm: str, connector: dict[str, Any], status_values: dict[str, str]
) -> Path:
    # JSON is YAML: the file is what an admin would write, only in flow style.
    body = {
        "state": {"url": f"sqlite:///{directory / 'state.db'}"},
        "rules": {"files": [str(RULES20)], "fixtures": None, "watch": False},
        # 30 % of leads change on purpose: past the default breaker (20 %), as an admin would
        # approve a large first run.
        "breaker": {"max_change_share": 1.0, "min_changes": 1},
        "server": {"enabled": False},
        "log": {"level": "WARNING"},
        crm: {"interval": f"{INTERVAL_S}s", "status_values": status_values, "connector": connector},
    }
    path = directory / "syncd.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def _build_app(
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
    return App.build(settings, clock=clock, connectors={crm: connector})


def _run_cycles(
    app: Any,
    run: CrmRun,
    journal_clear: Callable[[], None],
    journal_counts: Callable[[], Counter[str]],
    advance: Callable[[float], None],
) -> None:
    pipeline = app.pipelines[run.crm]

    def cycle(k: int) -> CycleResult:
        if k:
            advance(INTERVAL_S)
        journal_clear()
        with Stopwatch() as sw:
            report = pipeline.run_cycle()
        if report.outcome != "ok":
            raise RuntimeError(f"{run.crm} cycle {k + 1} ended {report.outcome}: {report.message}")
        return CycleResult(journal_counts(), sw.wall, report)

    run.cycles.append(cycle(0))  # §1: the first cycle
    echo = cycle(1)  # reads back syncd's own writes
    run.cycles.append(echo)
    # Rule chains (SAL -> MQL today, MQL -> Nurture once stale) make a cycle after a large
    # first sync write again; §6 measures a cycle after one that wrote nothing, when the CRM
    # really holds no change syncd has not seen.
    k, last = 2, echo
    while last.report.written and k < 8:
        last = cycle(k)
        run.settle.append(last)
        k += 1
    run.cycles.append(cycle(k))
    first = run.cycles[0].report
    rows = app.store.changes_of_run(run.crm, first.run_id, ["done", "failed", "pending"])
    field_rows = [r for r in rows if r.kind == "field"]
    run.changed_leads = len({r.lead_id for r in field_rows})
    run.memberships = dict(Counter(r.field for r in rows if r.kind == "membership"))
    for r in field_rows:
        run.changes.setdefault(r.lead_id, {})[r.field] = r.value


# ---------------------------------------------------------------------------- Salesforce


def _sf_kind(entry: Any) -> str:
    path = entry.path
    if path.endswith("/oauth2/token"):
        return "token"
    if entry.method == "GET" and ("/query" in path):
        soql = entry.soql or ""
        if _FROM_HISTORY.search(soql):
            return "history"
        return "read" if _FROM_LEAD.search(soql) or not soql else "preflight"
    if entry.method == "GET":
        return "preflight"
    if path.endswith("/composite/sobjects"):
        return "write" if entry.method == "PATCH" else "membership"
    if "/sobjects/Lead/" in path:
        return "single_update"
    return "other"


def _sf_record(lead: dict[str, Any]) -> dict[str, Any]:
    from connectors.salesforce.config import DEFAULT_FIELDS
    from connectors.testing.salesforce.embedded import crm_record

    record = crm_record(lead, DEFAULT_FIELDS, SF_STATUS_VALUES)
    value = record.get("LastActivityDate")
    if isinstance(value, datetime):
        record["LastActivityDate"] = value.date()
    return record


def run_salesforce(n: int, *, naive: bool = True) -> CrmRun:
    """Seed ``n`` leads in a Salesforce emulator and run the cycle sequence (and the naive
    script) against it."""
    from connectors.salesforce.connector import SalesforceConnector
    from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

    run = CrmRun("salesforce", n)
    config = EmulatorConfig(daily_api_limit=10_000_000, journal_limit=1_000_000)
    emu = SalesforceEmulator(config).start()
    try:
        now = emu.clock.now()
        leads = [_sf_record(lead) for lead in cycle_leads(n, now=now, share=SHARE)]
        chunks = math.ceil(n / SEED_CHUNK)
        for k in range(chunks):
            emu.add_leads(
                leads[k * SEED_CHUNK : (k + 1) * SEED_CHUNK],
                modstamp=now - timedelta(hours=chunks - k),
            )
        del leads
        campaign = emu.add_campaign("Newsletter")
        # Past the connector's lag (5 s): the seeded leads are settled, as in a real org.
        emu.clock.advance(60)
        with tempfile.TemporaryDirectory(prefix="syncd-bench-sf-") as tmp:
            path = _write_config(
                Path(tmp),
                "salesforce",
                {
                    "instance_url": emu.base_url,
                    "token_url": emu.token_url,
                    "auth": {
                        "type": "client_credentials",
                        "client_id": emu.client_id,
                        "client_secret": {"env": "BENCH_SF_CLIENT_SECRET"},
                    },
                    "ca_bundle": emu.ca_pem_path,
                    "newsletters": {"newsletter": campaign},
                },
                SF_STATUS_VALUES,
            )

            def counts() -> Counter[str]:
                return Counter(_sf_kind(e) for e in emu.journal.entries())

            emu.journal.clear()
            app = _build_app(
                path,
                {"BENCH_SF_CLIENT_SECRET": emu.client_secret},
                "salesforce",
                lambda cfg: SalesforceConnector(cfg, clock=emu.clock.now),
                emu.clock.now,
            )
            try:
                run.startup = counts()
                _run_cycles(app, run, emu.journal.clear, counts, emu.clock.advance)
                fields = dict(app.connectors["salesforce"]._config.fields)  # noqa: SLF001
            finally:
                app.close()
        # The CRM's status history (README "The status history ledger"): one query per 200
        # leads first mirrored, one after each batch of status writes.
        run.minimum = {
            "read": math.ceil(n / 2000),
            "history": math.ceil(n / 200) + math.ceil(run.changed_leads / 200),
            "write": math.ceil(run.changed_leads / 200),
            "membership": sum(math.ceil(m / 200) for m in run.memberships.values()),
        }
        if naive:
            emu.journal.clear()
            with Stopwatch() as sw:
                _naive_script(emu, run.changes, fields)
            run.naive = CycleResult(counts(), sw.wall, None)
    finally:
        emu.stop()
    return run


def _naive_script(emu: Any, changes: dict[str, dict[str, Any]], fields: dict[str, str]) -> None:
    """What a hand-written cron job does with simple-salesforce: read every lead with
    ``query_all``, then ``sf.Lead.update(id, {...})`` once per lead to change."""
    import requests
    from simple_salesforce import Salesforce

    session = requests.Session()
    # REQUESTS_CA_BUNDLE and friends would override a session's verify= (crm-api B2).
    session.trust_env = False
    session.verify = emu.ca_pem_path
    token = session.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        timeout=30,
    ).json()
    sf = Salesforce(instance_url=emu.base_url, session_id=token["access_token"], session=session)
    columns = ", ".join(dict.fromkeys(["Id", *fields.values()]))
    leads = sf.query_all(f"SELECT {columns} FROM Lead")["records"]
    wanted = {lead["Id"] for lead in leads} & set(changes)
    for lead_id, values in changes.items():
        if lead_id in wanted:
            sf.Lead.update(lead_id, {fields[k]: _wire(v) for k, v in values.items()})
    session.close()


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------- HubSpot


def _hs_kind(entry: Any) -> str:
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


def _hs_records(leads: Iterable[dict[str, Any]], now_ms: int, n: int) -> Iterable[dict[str, Any]]:
    from connectors.hubspot.config import DEFAULT_FIELDS
    from connectors.testing.hubspot.embedded import crm_record

    for i, lead in enumerate(leads):
        record = crm_record(lead, DEFAULT_FIELDS, HS_STATUS_VALUES)
        record.pop("hubspot_owner_id", None)  # an owner id must name a HubSpot user
        # Last modified over the past days, ten seconds apart, as in a portal in use.
        record["lastmodifieddate"] = now_ms - (n - i) * 10_000
        yield record


def run_hubspot(n: int) -> CrmRun:
    """Seed ``n`` contacts in a HubSpot emulator and run the cycle sequence against it."""
    from connectors.hubspot.connector import HubSpotConnector
    from connectors.testing.hubspot import HubSpotEmulator

    run = CrmRun("hubspot", n)
    emu = HubSpotEmulator().start()
    try:
        now = emu.clock.now()
        emu.add_contacts(
            _hs_records(cycle_leads(n, now=now, share=SHARE), emu.clock.now_ms() - 60_000, n)
        )
        list_id = emu.add_list("Newsletter", "MANUAL")
        with tempfile.TemporaryDirectory(prefix="syncd-bench-hs-") as tmp:
            path = _write_config(
                Path(tmp),
                "hubspot",
                {
                    "base_url": emu.base_url,
                    "auth": {"type": "private_app", "access_token": {"env": "BENCH_HS_TOKEN"}},
                    "newsletters": {"newsletter": list_id},
                    "allow_add_status_options": True,
                },
                HS_STATUS_VALUES,
            )

            def counts() -> Counter[str]:
                return Counter(_hs_kind(e) for e in emu.journal.entries())

            emu.journal.clear()
            app = _build_app(
                path,
                {"BENCH_HS_TOKEN": emu.access_token},
                "hubspot",
                lambda cfg: HubSpotConnector(cfg, clock=emu.clock.now),
                emu.clock.now,
            )
            try:
                run.startup = counts()
                _run_cycles(app, run, emu.journal.clear, counts, emu.clock.advance)
                stats = app.connectors["hubspot"].stats
                run.startup["_429"] = sum(stats.rate_limited.values())
            finally:
                app.close()
        # The archived listing has no time filter (crm-api C3): one page is the least a cycle
        # that notices deletions can read.
        # The status history: one batch read per 50 contacts first mirrored, and per 50 of
        # each batch of status writes.
        run.minimum = {
            "read": math.ceil(n / 200) + 1,
            "history": math.ceil(n / 50) + 2 * math.ceil(run.changed_leads / 100),
            "write": math.ceil(run.changed_leads / 100),
            "membership": sum(math.ceil(m / 100) for m in run.memberships.values()),
        }
    finally:
        emu.stop()
    return run


# ---------------------------------------------------------------------------- figures


def figures(runs: list[CrmRun]) -> tuple[list[Figure], list[SectionNotes]]:
    """Figures and notes for §1, §2 and §6 from finished runs."""
    s1 = SectionNotes(1, "API calls per cycle vs the minimum")
    s2 = SectionNotes(2, "Against a naive script (simple-salesforce, one update per lead)")
    s6 = SectionNotes(6, "Idle cost")
    figs: list[Figure] = []
    short = {"salesforce": "sf", "hubspot": "hs"}
    for run in runs:
        tag, lbl = short[run.crm], _label(run.n)
        first, echo, idle = run.cycles
        minimum = sum(run.minimum.values())
        ratio = first.total / minimum if minimum else None
        made = ", ".join(f"{v} {k}" for k, v in sorted(first.calls.items()))
        least = ", ".join(f"{v} {k}" for k, v in run.minimum.items())
        figs.append(
            Figure(
                1,
                f"{tag}_cycle_ratio_{lbl}",
                f"{run.crm} calls per cycle / minimum, N={run.n:,}, 30 % change",
                ratio,
                "x",
                "<= 1.02 x",
                ratio is not None and ratio <= 1.02,
                f"{first.total} calls ({made}) vs minimum {minimum} ({least}); "
                f"{run.changed_leads:,} leads changed, memberships {run.memberships}; "
                f"cycle took {first.wall:.1f} s",
            )
        )
        startup = {k: v for k, v in run.startup.items() if not k.startswith("_")}
        figs.append(
            Figure(
                1,
                f"{tag}_startup_calls_{lbl}",
                f"{run.crm} start-up calls (token, preflight)",
                sum(startup.values()),
                "calls",
                note="once per daemon start, not per cycle: "
                + ", ".join(f"{v} {k}" for k, v in sorted(startup.items())),
            )
        )
        figs.append(
            Figure(
                6,
                f"{tag}_idle_calls_{lbl}",
                f"{run.crm} calls in a cycle with no CRM changes, N={run.n:,} (1 object)",
                idle.total,
                "calls",
                "1 per object",
                idle.total <= 1,
                f"{dict(idle.calls)}; pulled {idle.report.pulled:,} leads again; "
                f"{idle.wall:.2f} s wall",
            )
        )
        figs.append(
            Figure(
                6,
                f"{tag}_idle_wall_{lbl}",
                f"{run.crm} idle cycle wall time, N={run.n:,}",
                idle.wall,
                "s",
                note=f"before it: cycle 2 read back syncd's own writes "
                f"({echo.total} calls, {echo.report.pulled:,} leads, "
                f"{echo.wall:.1f} s, {echo.report.written:,} more writes from "
                "rule chains)"
                + "".join(
                    f"; a settling cycle read {c.report.pulled:,} and "
                    f"wrote {c.report.written:,} ({c.total} calls)"
                    for c in run.settle
                ),
            )
        )
        if run.naive is not None:
            ours = first.calls["read"] + first.calls["write"]
            # The token grant is start-up on both sides (syncd's is in its start-up calls).
            theirs = run.naive.total - run.naive.calls["token"]
            figs.append(
                Figure(
                    2,
                    f"naive_call_ratio_{lbl}",
                    f"naive script calls / syncd calls, same {run.changed_leads:,} updates, "
                    f"N={run.n:,}",
                    theirs / ours if ours else None,
                    "x",
                    ">= 150 x",
                    bool(ours) and theirs / ours >= 150,
                    f"naive {theirs:,} ({dict(run.naive.calls)}) vs syncd {ours} "
                    f"({first.calls['read']} read + {first.calls['write']} write)",
                )
            )
            figs.append(
                Figure(
                    2,
                    f"naive_wall_ratio_{lbl}",
                    f"naive script wall time / syncd cycle, N={run.n:,}",
                    run.naive.wall / first.wall if first.wall else None,
                    "x",
                    note=f"naive {run.naive.wall:.1f} s vs syncd's whole cycle 1 {first.wall:.1f} s "
                    "(which also enriches, evaluates, audits and adds memberships)",
                )
            )
    s1.lines += [
        "Cycle 1 of a fresh daemon: pull every lead, evaluate, write the 30 % that need a "
        "change. The minimum is what any client must spend for the same work: read pages at the "
        "page maximum (Salesforce query batch 2,000; HubSpot search 200, plus one page of the "
        "archived-contacts listing, which is the only way to see deletions, crm-api C3), update "
        "batches at the batch maximum (200 / 100) and newsletter batches at their maximum "
        "(200 / 100 per newsletter). Start-up calls (OAuth token, preflight: LeadStatus, "
        "describe, Campaign / properties, list, status options) are reported separately: a "
        "steady-state daemon pays them once per start.",
    ]
    if any(
        f.key.startswith(("sf_cycle_ratio", "hs_cycle_ratio")) and f.passed is False for f in figs
    ):
        s1.lines += [
            "",
            "Where a ratio misses, the per-kind counts in its row show which kind of call "
            "exceeds its minimum (reads, update batches or newsletter batches): a partial "
            "batch where a full one was possible, or a page read twice.",
        ]
    s2.lines += [
        "The naive script is what a cron job written against simple-salesforce does: "
        "`sf.query_all(...)` over every lead, then `sf.Lead.update(id, {...})` per lead to "
        "change (the emulator's `PATCH sobjects/Lead/{id}`). It applies exactly syncd's field "
        "changes of cycle 1, so the call ratio compares like with like: naive (query pages + "
        "one call per lead) vs syncd's reads and update batches of that cycle. Newsletter "
        "memberships are left out on both sides (a naive script would add one more call per "
        "member, raising the ratio). With 30 % of leads changing, a perfect batcher reaches "
        "(N/2000 + 0.3 N) / (N/2000 + 0.3 N/200) = 150.25 x, so the 150 x target allows no "
        "wasted call at all.",
    ]
    s6.lines += [
        "The idle cycle: five minutes after the last cycle that wrote anything (rule chains "
        "such as SAL -> MQL -> Nurture make cycle 2 write again; the cycles after it run until "
        "one writes nothing), so nothing changed in the CRM that syncd has not seen. One CRM "
        "object (Lead / contacts) is read per connector, so the target is one call (one query or "
        "one "
        "search page). Each connector re-reads an overlap window behind its cursor (Salesforce "
        "`overlap_seconds` 300 for late commits, crm-api A3.2; HubSpot `overlap_seconds` 60 for "
        "search-index lag, crm-api C2), bounded by when the previous read started "
        "(`connectors.base.overlap_start`). A row that shows more than one call names how many "
        "leads the idle cycle read again: those are leads syncd itself wrote in cycle 1, still "
        "inside the window.",
    ]
    return figs, [s1, s2, s6]
