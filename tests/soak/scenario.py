"""The chaos soak: faults, kills, restarts, two replicas and reps, judged against a calm run.

``run_soak`` builds two worlds from the same seed: a *reference* world synced without faults
and a *chaos* world where every kind of fault the emulators support hits about 30 % of API
calls, daemons are SIGKILLed (and SIGTERMed) at random moments, two daemons start together on
one state store and one of them is killed mid-run, and simulated reps change statuses between
runs. The chaos world then runs fault-free cycles until quiet, and the judges in
:mod:`tests.soak.invariants` compare it with the reference.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

from tests.soak.invariants import Observed, RepEdit, check_all
from tests.soak.world import Daemon, SoakWorld, rep_status

__all__ = ["SoakParams", "SoakResult", "run_soak"]

FAULT_KINDS = (
    "429",
    "503",
    "401",
    "lock",
    "drop-before",
    "drop-after",
    "slow",
    "timeout",
    "partial",
)


@dataclass(frozen=True)
class SoakParams:
    leads: int = 2000  # per CRM
    seed: int = 11
    fault_rate: float = 0.3
    kills: int = 4  # single-daemon SIGKILL/SIGTERM rounds
    run_seconds: tuple[float, float] = (1.5, 5.0)  # how long a daemon runs before the signal
    sigterm_share: float = 0.25  # of the rounds end with SIGTERM instead of SIGKILL
    #: of the rounds time the signal from the process's start (it often lands in start-up: the
    #: imports, the CRM checks retrying under faults); the others from its first cycle's start,
    #: so that it lands in a cycle however long a loaded machine takes to start
    startup_share: float = 0.25
    dual_rounds: int = 1  # rounds with two daemons started together
    rep_edits_per_round: int = 3
    max_quiet_cycles: int = 12
    #: The chaos world's state store (None: a SQLite file); the reference world's is SQLite.
    state_url: str | None = None


@dataclass
class SoakResult:
    params: SoakParams
    violations: dict[str, list[str]]
    kills: int = 0
    terms: int = 0
    #: signals sent to a daemon that was running cycles (the rest landed in start-up)
    cycling_signals: int = 0
    dual_rounds: int = 0
    quiet_cycles: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    #: Salesforce Composite requests (``requests``) and those faulted (``faulted``)
    composite: Counter[str] = field(default_factory=Counter)
    api_calls: Counter[str] = field(default_factory=Counter)
    status_writes: Counter[str] = field(default_factory=Counter)  # leads written, per CRM
    memberships: Counter[str] = field(default_factory=Counter)  # final members, per CRM
    rep_edits: int = 0
    cycles: int = 0  # cycles run in the chaos world (run rows), before the quiet ones
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


def _rows(state_url: str, table: str) -> list[dict[str, Any]]:
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def _mirrored(state_url: str, crm: str) -> set[str]:
    engine = create_engine(state_url)
    try:
        if not inspect(engine).has_table("lead"):
            return set()  # the daemon was killed before it made the store (a loaded machine)
        with engine.connect() as conn:
            return {
                r[0]
                for r in conn.execute(
                    text("SELECT lead_id FROM lead WHERE crm = :crm AND deleted = :no"),
                    {"crm": crm, "no": False},
                )
            }
    finally:
        engine.dispose()


def _quiet(state_url: str) -> bool:
    """No open outbox row, and the last run of each connector planned nothing."""
    outbox = _rows(state_url, "outbox")
    if any(r["state"] in ("planned", "pending", "sending") for r in outbox):
        return False
    runs = sorted(_rows(state_url, "run"), key=lambda r: str(r["started_at"]))
    last: dict[str, dict[str, Any]] = {}
    for run in runs:
        last[run["crm"]] = run
    return len(last) >= 2 and all(r["outcome"] == "ok" and r["planned"] == 0 for r in last.values())


def _sync_until_quiet(world: SoakWorld, limit: int, rep_edit: Any = None) -> int:
    for cycle in range(1, limit + 1):
        daemon = world.sync_once()
        if daemon.proc.returncode not in (0, 1):
            raise AssertionError(
                f"sync --once exited {daemon.proc.returncode}:\n{daemon.output()[-3000:]}"
            )
        if rep_edit is not None and cycle == 1:
            rep_edit()
            continue
        if _quiet(world.state_url):
            return cycle
    raise AssertionError(
        f"not quiet after {limit} fault-free cycles; last output:\n"
        f"{world.daemons[-1].output()[-3000:]}"
    )


def _edit_some(world: SoakWorld, rng: random.Random, k: int, edits: list[RepEdit]) -> None:
    """Simulated reps set a status by hand on leads syncd has already mirrored (syncd can only
    tell a person's edit from a status it has seen), between daemon runs."""
    for crm, emu in world.emulators.items():
        mirrored = _mirrored(world.state_url, crm)
        leads = emu.state()["leads"]
        taken = {e.lead_id for e in edits}
        candidates = sorted(
            lid
            for lid in mirrored
            if lid in leads
            and lid not in taken
            and not leads[lid]["converted"]
            and not leads[lid]["deleted"]
        )
        journal_len = emu.journal_len()
        for lead_id in rng.sample(candidates, k=min(k, len(candidates))):
            status = rep_status(crm, leads[lead_id]["status"])
            emu.edit(lead_id, status)
            edits.append(RepEdit(crm, lead_id, leads[lead_id]["email"], status, journal_len))


def _wait_for_writes(world: SoakWorld, timeout: float) -> None:
    """Until some CRM receives a write it had not seen when called (or ``timeout``)."""

    def writes() -> int:
        return sum(1 for emu in world.emulators.values() for e in emu.journal() if e.get("kind"))

    before, deadline = writes(), time.monotonic() + timeout
    while time.monotonic() < deadline and writes() == before:
        time.sleep(0.1)


def _wait_until_cycling(daemon: Daemon, timeout: float) -> bool:
    """Until ``daemon`` schedules its cycles (the first starts at once); False if it exited
    or took longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.alive():
        if "a cycle every" in daemon.output():  # syncd.scheduler, as it starts the first
            return True
        time.sleep(0.05)
    return False


def _leader(world: SoakWorld, pair: list[Daemon]) -> Daemon:
    """The daemon of the pair holding a lease (the first if neither does yet)."""
    holders = {int(r["pid"]) for r in _rows(world.state_url, "lease") if str(r["expires_at"]) > ""}
    return next((d for d in pair if d.proc.pid in holders and d.alive()), pair[0])


def _composite_counts(journal: list[dict[str, Any]]) -> dict[str, int]:
    """Salesforce Composite write requests in a (flattened) journal, and those faulted: the
    request itself or one of its subrequests. (A Composite request of queries only is a pull's
    chained pages, not a write.)"""
    writing = {e["seq"] for e in journal if e.get("subrequest") and e["method"] != "GET"}
    requests = {e["seq"] for e in journal if e["path"].endswith("/composite")} & writing
    faulted = {e["seq"] for e in journal if e["seq"] in requests and e.get("fault")}
    # A write call right after another (no read between them): a cycle whose writes took
    # several calls, the next sent ahead of the last one's recording (syncd.call_ahead).
    calls = sorted(
        e["seq"] for e in journal if not e.get("subrequest") and "oauth" not in e["path"]
    )
    in_a_row = sum(1 for a, b in itertools.pairwise(calls) if a in requests and b in requests)
    return {"requests": len(requests), "faulted": len(faulted), "in_a_row": in_a_row}


def _observe(world: SoakWorld, edits: list[RepEdit]) -> Observed:
    outbox, audit = _rows(world.state_url, "outbox"), _rows(world.state_url, "audit")
    tables = {"outbox": outbox, "audit": audit}
    tables.update({t: _rows(world.state_url, t) for t in ("run", "meta")})
    return Observed(
        state={c: e.state() for c, e in world.emulators.items()},
        journal={c: e.journal() for c, e in world.emulators.items()},
        outbox=outbox,
        audit=audit,
        rep_edits=list(edits),
        shown={
            **{d.name: d.output() for d in world.daemons},
            **{f"the {t} table": json.dumps(rows, default=str) for t, rows in tables.items()},
        },
        secrets=world.secrets(),
    )


def _keep(path: Path, obs: Observed) -> None:
    """What the judges read, kept beside the soak's logs for whoever debugs a violation."""
    path.write_text(
        json.dumps(
            {
                "state": obs.state,
                "journal": obs.journal,
                "rep_edits": [vars(e) for e in obs.rep_edits],
            },
            default=str,
            indent=1,
        )
    )


def _reference(root: Path, params: SoakParams, chaos_edits: list[RepEdit]) -> Observed:
    world = SoakWorld(root, leads=params.leads, seed=params.seed, fault_rate=0.0, fault_seed=0)
    try:
        edits: list[RepEdit] = []

        def replay() -> None:
            # The same people edit the same leads (matched by email) once syncd has mirrored
            # them, as in the chaos world.
            for crm, emu in world.emulators.items():
                by_email = {
                    lead["email"]: lead_id for lead_id, lead in emu.state()["leads"].items()
                }
                journal_len = emu.journal_len()
                for e in chaos_edits:
                    if e.crm == crm and e.email in by_email:
                        emu.edit(by_email[e.email], e.status)
                        edits.append(
                            RepEdit(crm, by_email[e.email], e.email, e.status, journal_len)
                        )

        _sync_until_quiet(world, params.max_quiet_cycles + 2, rep_edit=replay)
        return _observe(world, edits)
    finally:
        world.stop()


def run_soak(root: Path, params: SoakParams) -> SoakResult:
    """Run the chaos world and the reference world; judge every invariant."""
    started = time.monotonic()
    rng = random.Random(params.seed)
    result = SoakResult(params, {})
    edits: list[RepEdit] = []
    world = SoakWorld(
        root / "chaos",
        leads=params.leads,
        seed=params.seed,
        fault_rate=params.fault_rate,
        fault_seed=params.seed,
        state_url=params.state_url,
    )
    try:
        # Random faults pick among the kinds a request can produce; the two that only write
        # batches can produce are also scripted, so every soak sees them whatever the dice say.
        world.emulators["salesforce"].script_faults(
            {"kind": "lock", "count": 2, "path": "composite/sobjects", "method": "PATCH"},
            # Composite requests carry the status and newsletter collections: lose the answer
            # of one after it was applied, whatever the dice say. (Scripted for the collection
            # subrequest's path, the drop hits the Composite request carrying it: a write, not
            # a pull's chained query pages.)
            {"kind": "drop-after", "count": 1, "path": "composite/sobjects", "method": "PATCH"},
        )
        world.emulators["hubspot"].script_faults(
            {"kind": "partial", "count": 2, "path": "batch/update", "method": "POST"}
        )
        for _ in range(params.kills):
            daemon = world.start_daemon()
            if rng.random() >= params.startup_share:
                result.cycling_signals += _wait_until_cycling(daemon, timeout=60)
            time.sleep(rng.uniform(*params.run_seconds))
            if rng.random() < params.sigterm_share:
                code = daemon.term()
                if code != 0:
                    raise AssertionError(f"SIGTERM exit {code}:\n{daemon.output()[-3000:]}")
                result.terms += 1
            else:
                daemon.kill()
                result.kills += 1
            _edit_some(world, rng, params.rep_edits_per_round, edits)
        for _ in range(params.dual_rounds):
            # Two daemons on one store, as a rolling update starts them; the leader is killed
            # as soon as a write batch of its reaches a CRM (mid-run, often mid-batch), and the
            # standby must take over without sending anything twice.
            pair = [world.start_daemon(), world.start_daemon()]
            _wait_for_writes(world, timeout=15)
            leader = _leader(world, pair)
            leader.kill()
            result.kills += 1
            time.sleep(rng.uniform(*params.run_seconds) + 4)  # the standby takes over
            for daemon in pair:
                if daemon.alive():
                    daemon.kill()
                    result.kills += 1
            result.dual_rounds += 1
            _edit_some(world, rng, params.rep_edits_per_round, edits)
        result.cycles = len(_rows(world.state_url, "run"))
        for emu in world.emulators.values():
            emu.set_faults(0.0)
            result.faults.update({f"{emu.crm} {k}": v for k, v in emu.state()["faults"].items()})
        if not _composite_counts(world.emulators["salesforce"].journal())["faulted"]:
            # The chaos rounds ended before a Composite write (a loaded machine runs few
            # cycles): the quiet phase's first one loses its answer after it was applied, so
            # every soak settles an in-doubt Composite request.
            world.emulators["salesforce"].script_faults(
                {"kind": "drop-after", "count": 1, "path": "composite/sobjects", "method": "PATCH"}
            )
        result.quiet_cycles = _sync_until_quiet(world, params.max_quiet_cycles)
        chaos = _observe(world, edits)
        _keep(root / "chaos" / "observed.json", chaos)
        result.composite.update(_composite_counts(chaos.journal["salesforce"]))
        for crm, entries in chaos.journal.items():
            result.api_calls[crm] = sum(1 for e in entries if not e.get("subrequest"))
            result.status_writes[crm] = len(
                {i for e in chaos.applied(crm, "update") for i in e.get("written", ())}
            )
            result.memberships[crm] = sum(1 for names in chaos.memberships(crm).values() if names)
    finally:
        world.stop()
    reference = _reference(root / "reference", params, edits)
    result.rep_edits = len(edits)
    result.violations = check_all(chaos, reference)
    result.seconds = time.monotonic() - started
    return result
