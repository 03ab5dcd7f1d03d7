"""One writer per connector: real `syncd run` processes sharing one state store and one CRM.

The HubSpot emulator runs in this test process (its journal records every write); each daemon is
a separate process pointed at it, with a 2 s lease so hand-overs happen within seconds. Batch
writes are slowed down (0.25 s each) so a cycle is still writing when a test acts on it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from connectors.testing.hubspot import EmulatorConfig, HubSpotEmulator
from syncd.state import LeadRow, LeaseRow, StateStore
from tests.daemon.harness import hs_contact

TTL = 3.0  # long enough that a daemon starved of CPU by a busy test machine keeps its lease
TOKEN_ENV = "SYNCD_TEST_LEASE_HS_TOKEN"

RULES = """\
version: 1
name: lease
mode: first_match
statuses:
  New: {}
  Nurture: {}
rules:
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
"""


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    emu = HubSpotEmulator(EmulatorConfig(extra_status_options=["NURTURE"])).start()
    try:
        yield emu
    finally:
        emu.stop()


def seed(emu: HubSpotEmulator, n: int, *, slow_writes: float = 0.25) -> list[str]:
    """``n`` contacts the rules move to NURTURE; every batch write stalls ``slow_writes``."""
    ids = emu.add_contacts(
        hs_contact(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200) for i in range(n)
    )
    if slow_writes:
        emu.faults.slow_next(1_000_000, delay=slow_writes, path=r"batch/update", method="POST")
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    yield request.getfixturevalue("store_url_pg")


@pytest.fixture
def store_url_pg(postgres_url: str, request: pytest.FixtureRequest) -> str:
    from tests.pgdb import empty_database

    name = f"lease{abs(hash(request.node.nodeid)) % 10**8}"
    return empty_database(postgres_url, name, force=True)


def write_config(tmp_path: Path, emu: HubSpotEmulator, state_url: str | None = None) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
    path = tmp_path / "syncd.yaml"
    path.write_text(f"""
state: {{url: "{url}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: true, host: 127.0.0.1, port: 0}}
lease: {{ttl: {TTL}s}}
hubspot:
  interval: 60s
  status_values: {{New: NEW, Nurture: NURTURE}}
  connector:
    base_url: {emu.base_url}
    timeout_seconds: {TTL * 0.75}   # a send the killed leader left in flight ends within the ttl
    auth: {{type: private_app, access_token: {{env: {TOKEN_ENV}}}}}
""")
    return path


def env(emu: HubSpotEmulator) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", TOKEN_ENV: emu.access_token}


class Daemon:
    """One `syncd run` process; its output goes to a file the test reads as it grows."""

    def __init__(self, config: Path, emu: HubSpotEmulator, name: str) -> None:
        self.log = config.parent / f"{name}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env(emu),
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no {pattern!r} in the output of pid {self.proc.pid}:\n" + self.output()
        )

    def readyz(self) -> tuple[int, dict[str, Any]]:
        port = self.wait_for(r"health and metrics on http://127.0.0.1:(\d+)/")[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metric(self, name: str) -> str:
        port = self.wait_for(r"health and metrics on http://127.0.0.1:(\d+)/")[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        return "\n".join(line for line in body.splitlines() if line.startswith(name))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture
def daemons() -> Iterator[Callable[[Path, HubSpotEmulator, str], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path, emu: HubSpotEmulator, name: str) -> Daemon:
        daemon = Daemon(config, emu, name)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


# ---- journal helpers ------------------------------------------------------------------------


def sent_ids(emu: HubSpotEmulator) -> list[str]:
    """Every contact id in a batch update the emulator accepted, once per send."""
    out = []
    for entry in emu.journal.entries("POST", "batch/update"):
        if entry.status in (200, 207):
            out.extend(i["id"] for i in json.loads(entry.body)["inputs"])
    return out


def write_calls(emu: HubSpotEmulator) -> int:
    return sum(
        1
        for e in emu.journal.entries()
        if e.method in ("PATCH", "PUT", "DELETE")
        or (
            e.method == "POST"
            and "/search" not in e.path
            and "/read" not in e.path
            and "/token" not in e.path
        )
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def lease_row(url: str) -> Any:
    store = StateStore(url)
    table = LeaseRow.__table__
    try:
        with store.engine.connect() as conn:
            return conn.execute(select(table).where(table.c.connector == "hubspot")).first()
    finally:
        store.close()


def rep_edited(url: str) -> int:
    store = StateStore(url)
    try:
        with store.engine.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM lead WHERE rep_edit_at IS NOT NULL")
            ).scalar_one()
    finally:
        store.close()


def run_cli(
    config: Path, emu: HubSpotEmulator, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env(emu),
        timeout=timeout,
        check=False,
    )


def wait_behind(
    daemon: Daemon, config: Path, emu: HubSpotEmulator, *args: str
) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``syncd ARGS`` (a ``--wait`` command) while ``daemon`` leads: once it says it
    waits for the lease, it must still wait, having sent nothing, a lease ttl later; then stop
    the daemon and let it finish.

    Its saying so is awaited, not a fixed time: a loaded machine can take longer than a lease
    ttl to start Python, and a command that reached the lease only after the daemon stopped
    would not have waited at all."""
    before = len(emu.journal)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", *args, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(emu),
    )
    streams: dict[str, list[str]] = {"out": [], "err": []}
    pumps = [
        threading.Thread(target=lambda f=f, k=k: streams[k].extend(f), daemon=True)
        for k, f in (("out", waiting.stdout), ("err", waiting.stderr))
    ]
    for pump in pumps:
        pump.start()
    try:
        wait_until(
            lambda: (
                waiting.poll() is not None
                or any("waiting for the" in line for line in streams["err"])
            ),
            60,
            "the command to say it waits for the lease",
        )
        time.sleep(TTL)
        assert waiting.poll() is None, "".join(streams["err"])  # still waiting: the daemon renews
        assert len(emu.journal) == before
        daemon.stop()
        waiting.wait(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    for pump in pumps:
        pump.join(timeout=10)
    return waiting, "".join(streams["out"]), "".join(streams["err"])


# ---- tests ----------------------------------------------------------------------------------


def test_two_daemons_one_writes_and_a_killed_leader_is_replaced_within_two_lease_periods(
    tmp_path: Path, hubspot: HubSpotEmulator, state_url: str, daemons: Any
) -> None:
    ids = seed(hubspot, 1200)
    config = write_config(tmp_path, hubspot, state_url)
    first = daemons(config, hubspot, "first")
    first.wait_for(r"hubspot: this process .* now leads")
    second = daemons(config, hubspot, "second")
    second.wait_for(rf"hubspot: standby; host \S+, pid {first.proc.pid}, since")
    status, ready = second.readyz()
    assert status == 200 and ready["status"] == "standby", ready
    assert ready["connectors"]["hubspot"]["lease"] == "standby"
    assert 'syncd_lease_leader{connector="hubspot"} 0.0' in second.metric("syncd_lease_leader")
    assert f'pid="{first.proc.pid}"' in second.metric("syncd_lease_holder_info")
    assert 'syncd_lease_leader{connector="hubspot"} 1.0' in first.metric("syncd_lease_leader")

    wait_until(lambda: len(sent_ids(hubspot)) >= 300, 30, "the leader's first batches")
    store = StateStore(state_url)
    try:  # the standby left the leader's live run and its plan alone
        assert store.last_runs(1, crm="hubspot")[0].outcome == "running"
        with store.engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE state = 'superseded'")
                ).scalar_one()
                == 0
            )
    finally:
        store.close()
    first.proc.kill()  # SIGKILL: no release, no goodbye
    killed_at = datetime.now(UTC)
    first.proc.wait()
    second.wait_for(r"hubspot: this process .* now leads", timeout=4 * TTL + 5)
    took = (lease_row(state_url).acquired_at - killed_at).total_seconds()
    assert took <= 2 * TTL, f"took over {took:.1f}s after the kill"
    second.wait_for(r"syncd\.pipeline: cycle \w+ hubspot: pulled", timeout=45)

    assert "syncd.pipeline: cycle" not in second.output().split("now leads")[0]
    sent = Counter(sent_ids(hubspot))
    twice = sorted(i for i, n in sent.items() if n > 1)
    assert not twice, (
        f"{len(twice)} changes sent twice ({twice[:3]}...); the new leader took "
        f"over {took:.1f}s after the kill:\n{second.output()[-3000:]}"
    )
    assert set(sent) == set(ids)  # and the new leader finished the job
    assert all(hubspot.contact(i)["hs_lead_status"] == "NURTURE" for i in ids)
    store = StateStore(state_url)
    try:
        runs = store.last_runs(10, crm="hubspot")
    finally:
        store.close()
    assert {r.outcome for r in runs} <= {"ok", "interrupted"} and runs[0].outcome == "ok"


def test_sync_once_while_a_daemon_runs_is_refused_naming_the_holder_and_wait_runs_after_it(
    tmp_path: Path, hubspot: HubSpotEmulator, daemons: Any
) -> None:
    seed(hubspot, 300)
    config = write_config(tmp_path, hubspot)
    daemon = daemons(config, hubspot, "daemon")
    daemon.wait_for(r"syncd\.pipeline: cycle \w+ hubspot: pulled 300")
    hubspot.add_contacts([hs_contact("Late", "late@later.com", title="CTO", activity_days=200)])
    before = len(hubspot.journal)

    refused = run_cli(config, hubspot, "sync", "--once")
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert f"pid {daemon.proc.pid}, since " in lines[0] and "nothing was written" in lines[0]
    assert re.search(r"its lease runs out at \d\d:\d\d:\d\d UTC unless renewed", lines[0])
    assert "Traceback" not in refused.stderr
    assert len(hubspot.journal) == before  # not even a read: refused before connecting

    waiting, out, errs = wait_behind(daemon, config, hubspot, "sync", "--once", "--wait")
    assert waiting.returncode == 0, errs
    assert "waiting for the hubspot lease" in errs
    assert "changed 1, written 1" in out  # the contact added meanwhile; nothing twice


def test_revert_while_a_daemon_runs_is_refused_before_any_crm_call_and_wait_reverts_after_it(
    tmp_path: Path, hubspot: HubSpotEmulator, daemons: Any
) -> None:
    """A revert pulls into the mirror and writes to the CRM: a second writer beside the daemon
    would store pages the daemon's writes overtake (read as a person's edits) and race it."""
    ids = seed(hubspot, 20, slow_writes=0)
    config = write_config(tmp_path, hubspot)
    daemon = daemons(config, hubspot, "daemon")
    run_id = daemon.wait_for(r"syncd\.pipeline: cycle (\w+) hubspot: pulled 20, changed 20")[1]
    before = len(hubspot.journal)

    refused = run_cli(config, hubspot, "revert", run_id, "--yes")
    assert refused.returncode == 2, refused.stderr
    assert "syncd revert: hubspot is being written by another syncd (host " in refused.stderr
    assert f"pid {daemon.proc.pid}, since " in refused.stderr
    assert "nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    assert len(hubspot.journal) == before  # refused before connecting: not even a read

    waiting, out, errs = wait_behind(daemon, config, hubspot, "revert", run_id, "--yes", "--wait")
    assert waiting.returncode == 0, out + errs
    assert "waiting for the hubspot lease" in errs
    assert f"revert of run {run_id}: 20 written, 0 failed" in out
    assert {hubspot.contact(i)["hs_lead_status"] for i in ids} == {"NEW"}


def test_plan_pull_during_a_running_cycle_marks_no_lead_as_edited_by_a_person(
    tmp_path: Path, hubspot: HubSpotEmulator, daemons: Any
) -> None:
    seed(hubspot, 1000)
    config = write_config(tmp_path, hubspot)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    daemon = daemons(config, hubspot, "daemon")
    wait_until(lambda: len(sent_ids(hubspot)) >= 100, 30, "the cycle's first batch")

    refused = run_cli(config, hubspot, "plan", "--pull")
    assert refused.returncode == 2 and f"pid {daemon.proc.pid}" in refused.stderr

    # A pull that waits for the lease reads the CRM only after the cycle's writes: what it
    # stores is what syncd wrote, never an older read mistaken for a person's edit.
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.cli",
            "plan",
            "--pull",
            "--wait",
            "--json",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(hubspot),
    )
    try:
        daemon.wait_for(
            r"syncd\.pipeline: cycle \w+ hubspot: pulled 1000, changed 1000, "
            r"written 1000",
            timeout=45,
        )
        daemon.stop()
        out, errs = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, errs
    assert json.loads(out)["crms"]["hubspot"]["changing_leads"] == 0
    assert rep_edited(url) == 0


def test_a_process_whose_lease_was_taken_over_records_no_further_batch_and_sends_nothing(
    tmp_path: Path, hubspot: HubSpotEmulator, daemons: Any
) -> None:
    seed(hubspot, 1500)
    config = write_config(tmp_path, hubspot)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    daemon = daemons(config, hubspot, "daemon")
    wait_until(lambda: len(sent_ids(hubspot)) >= 300, 30, "the cycle's first batches")

    store = StateStore(url)
    try:
        table = LeaseRow.__table__
        with store.begin() as conn:  # another holder takes the lease: a new token
            conn.execute(
                update(table).values(
                    token=table.c.token + 1,
                    host="thief-host",
                    pid=1,
                    process_id="thief",
                    expires_at=datetime.now(UTC) + timedelta(hours=1),
                )
            )
        sent_at_steal = len(sent_ids(hubspot))
        with store.engine.connect() as conn:
            audited_at_steal = conn.execute(text("SELECT count(*) FROM audit")).scalar_one()

        daemon.wait_for(r"hubspot: lease lost", timeout=10)
        time.sleep(2 * TTL)  # a leader would have sent several more batches by now
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit")).scalar_one() == audited_at_steal
        assert len(sent_ids(hubspot)) - sent_at_steal <= 100  # at most the batch in flight
        run = store.last_runs(1, crm="hubspot")[0]
        assert run.outcome == "lease_lost" and "thief-host" in run.message
        assert len(store.held_leads("hubspot", datetime(2000, 1, 1, tzinfo=UTC))) == 0
    finally:
        store.close()
    status, ready = daemon.readyz()
    assert status == 200 and ready["connectors"]["hubspot"]["lease"] == "standby"
    assert "host thief-host, pid 1" in ready["connectors"]["hubspot"]["holder"]
    assert daemon.proc.poll() is None  # a standby, not a crash


def test_read_only_commands_work_while_a_daemon_holds_the_lease(
    tmp_path: Path, hubspot: HubSpotEmulator, daemons: Any
) -> None:
    ids = seed(hubspot, 50, slow_writes=0)
    config = write_config(tmp_path, hubspot)
    daemon = daemons(config, hubspot, "daemon")
    run_id = daemon.wait_for(r"syncd\.pipeline: cycle (\w+) hubspot: pulled 50")[1]
    assert lease_row(f"sqlite:///{tmp_path / 'state.db'}").pid == daemon.proc.pid

    from typer.testing import CliRunner

    from syncd.cli import app as cli

    def invoke(*args: str) -> Any:  # in-process: these commands take no lease
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(config)],
            env={TOKEN_ENV: hubspot.access_token},
            catch_exceptions=False,
        )

    status = invoke("status")
    assert status.exit_code == 0 and "hubspot: 0 pending writes" in status.stdout, status
    assert "written by the syncd on host " in status.stdout
    assert f"pid {daemon.proc.pid}, since" in status.stdout
    plan = invoke("plan")
    assert plan.exit_code == 0 and "50 live leads" in plan.stdout, plan
    explain = invoke("explain", ids[0])
    assert explain.exit_code == 0 and "stale-nurture" in explain.stdout, explain
    audit = invoke("audit", "--run", run_id)
    assert audit.exit_code == 0 and audit.stdout.count("applied") == 50, audit
    assert daemon.proc.poll() is None


def test_lease_row_fences_a_store_whose_token_was_replaced(tmp_path: Path) -> None:
    """The fencing check itself, on the store: no writing transaction passes a stale token."""
    from syncd.lease import Identity, Lease, LeaseLost

    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    other = StateStore(url)
    try:
        ttl, every = timedelta(seconds=TTL), timedelta(seconds=TTL / 3)
        mine = Lease(
            store,
            "salesforce/emea",
            ttl=ttl,
            renew_every=every,
            identity=Identity("here", 1, "mine"),
        )
        theirs = Lease(
            other,
            "salesforce/emea",
            ttl=ttl,
            renew_every=every,
            identity=Identity("there", 2, "theirs"),
        )
        assert mine.try_acquire() and not theirs.try_acquire()
        assert theirs.last_holder is not None and theirs.last_holder.host == "here"
        mine.before_send()
        mine.release()  # stopping hands over at once
        assert theirs.try_acquire() and theirs.token == 2
        # the fencing check ends the transaction before the write in it
        with pytest.raises(LeaseLost), store.begin() as conn:  # noqa: PT012
            mine.check(conn)
            conn.execute(LeadRow.__table__.delete())  # never reached
    finally:
        store.close()
        other.close()


def test_lease_settings_default_renewal_is_a_third_of_the_ttl_and_must_be_shorter(
    tmp_path: Path,
) -> None:
    from syncd.settings import load_settings
    from syncd.yamlfile import YamlFileError

    config = tmp_path / "syncd.yaml"
    config.write_text("lease: {ttl: 45s}\n")
    assert load_settings(config).lease.renewal == timedelta(seconds=15)
    config.write_text("lease:\n  ttl: 2s\n  renew_every: 3s\n")
    with pytest.raises(YamlFileError) as exc:
        load_settings(config)
    assert "renew_every must be shorter than lease.ttl" in str(exc.value)
    assert f"{config}:" in str(exc.value)


def test_a_send_holds_the_lease_for_the_request_timeout_and_renewals_never_shorten_it(
    tmp_path: Path,
) -> None:
    """A standby must not take over while a request the leader sent may still be applied."""
    from syncd.lease import Lease

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        lease = Lease(
            store,
            "hubspot",
            ttl=timedelta(seconds=TTL),
            renew_every=timedelta(seconds=TTL / 3),
            cover=timedelta(seconds=20),
        )
        assert lease.try_acquire()
        holder = lease.holder()
        assert holder is not None and holder.expires_at - datetime.now(UTC) <= timedelta(
            seconds=TTL
        )
        lease.before_send()
        assert lease.renew()  # the heartbeat's ttl is shorter than what the send needs
        holder = lease.holder()
        assert holder is not None and holder.expires_at - datetime.now(UTC) > timedelta(seconds=19)
        lease.release()
        holder = lease.holder()
        assert holder is not None and holder.expires_at <= datetime.now(UTC)
    finally:
        store.close()
