"""The soak's world: both CRM emulators and syncd daemons, each a separate process.

Everything goes over loopback sockets, as in production: the emulators run as
``python -m connectors.testing.<crm>`` processes that outlive every daemon restart, and each
daemon is a real ``syncd run`` (or ``syncd sync --once``) process, killed with real signals. The
harness talks to the emulators only through their admin API (``/__emulator__/...``), which is
never faulted and never counted as API usage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.soak.invariants import RESPONSE_LOST

__all__ = ["SOAK_RULES", "Daemon", "Emulator", "SoakWorld"]

#: Rules of the soak: a status decision with a newsletter join in one intent, and an archive
#: path. Each lead gets at most one status write from them (no rule leads out of Nurture or
#: Archived), so a lead written twice is a change sent twice.
SOAK_RULES = """\
version: 1
name: soak
mode: first_match
statuses:
  New: {}
  Open: {}
  MQL: {}
  SAL: {}
  Nurture: {}
  Unqualified: {}
  Archived: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: misfit-archive
    when:
      all:
        - {field: free_mail, eq: true}
        - {field: title, missing: true}
        - {field: status, in: [New, Open, MQL, Nurture, Unqualified]}
    then:
      - archive: {}
  - id: stale-nurture
    when:
      all:
        - {field: status, in: [New, Open, MQL]}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""

#: Statuses a simulated person sets by hand, per CRM (values no soak rule writes); the first that
#: differs from the lead's current status (saving the value a lead already has changes nothing).
REP_STATUSES = {
    "salesforce": ("Working - Contacted", "Closed - Not Converted"),
    "hubspot": ("IN_PROGRESS", "ATTEMPTED_TO_CONTACT"),
}


def rep_status(crm: str, current: str | None) -> str:
    return next(s for s in REP_STATUSES[crm] if s != current)


_PY = sys.executable


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclass
class Emulator:
    """One emulator process and its admin API."""

    crm: str
    proc: subprocess.Popen[str]
    info: dict[str, Any]
    http: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def start(
        cls,
        crm: str,
        *,
        leads: int,
        seed: int,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        log: Path | None = None,
    ) -> Emulator:
        args = [
            _PY,
            "-m",
            f"connectors.testing.{crm}",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--leads",
            str(leads),
            "--seed",
            str(seed),
            "--fault-rate",
            str(fault_rate),
            "--fault-seed",
            str(fault_seed),
            "--slow-seconds",
            "0.5",
            "--timeout-seconds",
            "6",
        ]
        stderr = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - lives with proc
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=_env())
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            proc.kill()
            raise RuntimeError(f"the {crm} emulator did not start: {args}")
        emu = cls(crm, proc, json.loads(line))
        emu.http.trust_env = False
        ca = emu.info.get("ca_pem_path")
        emu.http.verify = ca if ca else True
        return emu

    @property
    def base_url(self) -> str:
        return str(self.info["url"])

    def newsletter_id(self) -> str:
        ids = self.info["campaigns"] if self.crm == "salesforce" else self.info["lists"]
        return str(ids["Newsletter"])

    def _admin(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, f"{self.base_url}/__emulator__/{path}", timeout=30, **kw)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def journal(self) -> list[dict[str, Any]]:
        """Every API request the emulator saw, each with ``kind``: ``update`` (a lead status
        write), ``membership`` (a newsletter add) or None.

        A Salesforce Composite request is followed by its subrequests, flattened: each with
        ``subrequest`` true, the carrying request's ``seq``, applied only if the request was
        and the subrequest succeeded, and the request's fault when it lost the answer (a lost
        answer loses every subrequest's answer, whatever befell the subrequest: a row lock's
        answer lost in transit is still lost) or when the subrequest had none of its own."""
        out: list[dict[str, Any]] = []
        for entry in self._admin("GET", "journal?since=0")["entries"]:
            entry["kind"] = _kind(self.crm, entry["method"], entry["path"])
            out.append(entry)
            for sub in entry.pop("subrequests", ()):
                sub.update(
                    kind=_kind(self.crm, sub["method"], sub["path"]),
                    seq=entry["seq"],
                    applied=bool(entry["applied"] and sub["applied"]),
                    fault=_subrequest_fault(entry.get("fault"), sub.get("fault")),
                    subrequest=True,
                )
                out.append(sub)
        return out

    def journal_len(self) -> int:
        return int(self._admin("GET", "journal?since=0")["last"])

    def state(self) -> dict[str, Any]:
        """``leads``: id -> {status, email, converted}; ``members``: newsletter name -> lead
        ids; ``duplicates``: newsletter/lead pairs added more than once; ``faults``: counts of
        injected faults by kind (Composite subrequests' included)."""
        raw = self._admin("GET", "state")
        email = "Email" if self.crm == "salesforce" else "email"
        leads = {
            str(lead["id"]): {
                "status": lead["status"],
                "email": str(lead["fields"].get(email) or "").lower(),
                "converted": bool(lead.get("converted")),
                "deleted": bool(lead.get("deleted")),
            }
            for lead in raw["leads"]
        }
        members: dict[str, list[str]] = {}
        for m in raw["memberships"]:
            name = str(m.get("campaign") or m.get("list"))
            members.setdefault(name, []).append(str(m.get("lead_id") or m.get("contact_id")))
        faults: dict[str, int] = {}
        for entry in self._admin("GET", "journal?since=0")["entries"]:
            for one in [entry, *entry.get("subrequests", ())]:
                if one.get("fault"):
                    faults[one["fault"]] = faults.get(one["fault"], 0) + 1
        # HubSpot lists hold a contact once however often it is added (an add is idempotent);
        # its emulator lists repeated adds, which are re-sends, not duplicate members.
        duplicates = list(raw["duplicate_memberships"]) if self.crm == "salesforce" else []
        readds = len(raw["duplicate_memberships"]) if self.crm == "hubspot" else 0
        return {
            "leads": leads,
            "members": members,
            "duplicates": duplicates,
            "repeated_adds": readds,
            "faults": faults,
        }

    def edit(self, lead_id: str, status: str) -> None:
        """A person sets the lead's status by hand."""
        self._admin("POST", "edit", json={"id": lead_id, "status": status})

    def script_faults(self, *faults: Mapping[str, Any]) -> None:
        """Faults that hit the next matching requests, on top of the random ones."""
        self._admin("POST", "faults", json={"script": [dict(f) for f in faults]})

    def set_faults(self, rate: float, kinds: Sequence[str] | None = None) -> None:
        body: dict[str, Any] = {"rate": rate, "clear": rate == 0}
        if kinds is not None:
            body["kinds"] = list(kinds)
        self._admin("POST", "faults", json=body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Daemon:
    """One ``syncd`` process."""

    name: str
    proc: subprocess.Popen[str]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self, timeout: float = 15) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _subrequest_fault(request: str | None, subrequest: str | None) -> str | None:
    """The fault a Composite subrequest's outcome owes to: the request's when it lost the
    answer, else the subrequest's own, else the request's."""
    if request in RESPONSE_LOST:
        return request
    return subrequest or request


def _kind(crm: str, method: str, path: str) -> str | None:
    if crm == "salesforce" and "composite/sobjects" in path:
        return {"PATCH": "update", "POST": "membership"}.get(method)
    if crm == "salesforce" and method == "PATCH" and "/sobjects/Lead/" in path:
        return "update"
    if crm == "hubspot" and (
        "/batch/update" in path or (method == "PATCH" and "/objects/contacts/" in path)
    ):
        return "update"
    if crm == "hubspot" and method == "PUT" and path.endswith("/memberships/add"):
        return "membership"
    return None


class SoakWorld:
    """Two emulators, a state store, a config, and the daemons run against them."""

    def __init__(
        self,
        root: Path,
        *,
        leads: int,
        seed: int,
        fault_rate: float,
        fault_seed: int,
        state_url: str | None = None,
        interval: str = "10s",
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.emulators = {
            crm: Emulator.start(
                crm,
                leads=leads,
                seed=seed,
                fault_rate=fault_rate,
                fault_seed=fault_seed + i,
                log=root / f"{crm}-emulator.log",
            )
            for i, crm in enumerate(("salesforce", "hubspot"))
        }
        self.state_url = state_url or f"sqlite:///{root / 'state.db'}"
        self.config = self._write_config(interval)
        if not self.state_url.startswith("sqlite"):
            # As an operator does: PostgreSQL's schema is upgraded on purpose, not at start-up.
            subprocess.run(
                [_PY, "-m", "syncd.cli", "db", "upgrade", "--config", str(self.config)],
                env=self._daemon_env(),
                check=True,
                capture_output=True,
            )
        self.daemons: list[Daemon] = []
        self._count = 0

    # ---- config -----------------------------------------------------------------------

    def _write_config(self, interval: str) -> Path:
        sf, hs = self.emulators["salesforce"].info, self.emulators["hubspot"].info
        (self.root / "rules.yaml").write_text(SOAK_RULES)
        # A PostgreSQL URL may hold a password: a secret file, as README asks of one.
        (self.root / "state-url").write_text(self.state_url + "\n")
        body = f"""
        state: {{url: {{file: state-url}}}}
        rules: {{files: [rules.yaml], fixtures: null}}
        breaker: {{max_change_share: 1.0, min_changes: 1}}
        outbox: {{max_attempts: 50, retry_base: 1s}}
        server: {{enabled: false}}
        lease: {{ttl: 3s}}
        salesforce:
          interval: {interval}
          status_values: {{New: Open - Not Contacted, Open: Working - Contacted,
                          Converted: Closed - Converted}}
          connector:
            instance_url: {sf["url"]}
            token_url: {sf["token_url"]}
            ca_bundle: {sf["ca_pem_path"]}
            auth: {{type: client_credentials, client_id: "{sf["client_id"]}",
                   client_secret: {{env: SOAK_SF_CLIENT_SECRET}}}}
            newsletters: {{newsletter: "{self.emulators["salesforce"].newsletter_id()}"}}
            lag_seconds: 0
            timeout_seconds: 2.5
            # 50 records a Composite call (five collections of 10): the soak writes a few
            # hundred Salesforce leads, and even a cycle that writes only some of them takes
            # several calls, so faults and kills hit calls sent ahead of the last one's
            # recording however few cycles a loaded machine runs.
            batch_size: 10
        hubspot:
          interval: {interval}
          status_values: {{New: NEW, Open: OPEN, Nurture: NURTURE, Archived: ARCHIVED, MQL: MQL,
                          SAL: SAL, Unqualified: UNQUALIFIED, Converted: CONVERTED}}
          connector:
            base_url: {hs["url"]}
            auth: {{type: private_app, access_token: {{env: SOAK_HS_TOKEN}}}}
            newsletters: {{newsletter: "{self.emulators["hubspot"].newsletter_id()}"}}
            allow_add_status_options: true
            timeout_seconds: 2.5
        """
        path = self.root / "syncd.yaml"
        path.write_text(textwrap.dedent(body))
        return path

    def secrets(self) -> dict[str, str]:
        """The credentials the daemons are given, by name."""
        sf, hs = self.emulators["salesforce"].info, self.emulators["hubspot"].info
        return {
            "the Salesforce client secret": str(sf["client_secret"]),
            "the HubSpot access token": str(hs["access_token"]),
        }

    def _daemon_env(self) -> dict[str, str]:
        sf, hs = self.emulators["salesforce"].info, self.emulators["hubspot"].info
        return {
            **_env(),
            "SOAK_SF_CLIENT_SECRET": str(sf["client_secret"]),
            "SOAK_HS_TOKEN": str(hs["access_token"]),
        }

    # ---- daemons ----------------------------------------------------------------------

    def start_daemon(self, *args: str) -> Daemon:
        self._count += 1
        name = f"daemon-{self._count}"
        log = self.root / f"{name}.log"
        # `python -m syncd`, as the console script starts: a signal while it imports is handled
        cmd = [_PY, "-m", "syncd", *(args or ("run",)), "--config", str(self.config)]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=self._daemon_env()
            )
        daemon = Daemon(name, proc, log)
        self.daemons.append(daemon)
        return daemon

    def sync_once(self, timeout: float = 120) -> Daemon:
        daemon = self.start_daemon("sync", "--once", "--approve-large-run", "--wait")
        try:
            daemon.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise AssertionError(
                f"sync --once did not finish in {timeout}s:\n{daemon.output()[-3000:]}"
            ) from None
        return daemon

    def live(self) -> Iterator[Daemon]:
        return (d for d in self.daemons if d.alive())

    def stop(self) -> None:
        for daemon in self.daemons:
            if daemon.alive():
                daemon.kill()
        for emu in self.emulators.values():
            emu.stop()
