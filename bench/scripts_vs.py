"""§2 Against scripts: the calls a hand-written cron job spends for syncd's work, as a curve over
change shares, for a naive script and for a competent batched one.

Both scripts use simple-salesforce against the same emulator syncd's cycles ran against (the
§7 run at the scripts' N), after those cycles, and apply exactly the changes syncd made in its
last cycle at each change share: the field updates and the newsletter (CampaignMember)
inserts. Calls are counted the same way for all three: the emulator's usage counter.

* naive: ``sf.query_all`` over every lead, then ``sf.Lead.update(id, {...})`` per lead and
  ``sf.CampaignMember.create({...})`` per membership;
* batched peer: ``sf.query_all`` over every lead, then Composite requests
  (``sf.restful("composite", method="POST")``) of up to 5 sObject Collections of 200 records
  (updates and inserts), or plain Collections calls (200 a call) when the CRM answers no
  Composite resource.

Neither script keeps a cursor, so each reads every lead every time: that is what scripts do,
and the difference from syncd's incremental read is part of what the ratio shows.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from bench.cycle_cost import CostRun, Measure, sf_kind
from bench.cycle_figures import label, pct
from bench.report import Figure, SectionNotes, measured

__all__ = ["run"]

_COLLECTION = 200
_PER_COMPOSITE = 5


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _client(emu: Any) -> tuple[Any, Any]:
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
    return sf, session


def _read_all(sf: Any, fields: dict[str, str]) -> set[str]:
    columns = ", ".join(dict.fromkeys(["Id", *fields.values()]))
    return {lead["Id"] for lead in sf.query_all(f"SELECT {columns} FROM Lead")["records"]}


def naive_script(emu: Any, work: Measure, fields: dict[str, str], campaign: str) -> None:
    """One call per lead to change and per membership, after reading every lead."""
    from simple_salesforce.exceptions import SalesforceError

    sf, session = _client(emu)
    try:
        known = _read_all(sf, fields)
        for lead_id, values in work.changes.items():
            if lead_id in known:
                sf.Lead.update(lead_id, {fields[k]: _wire(v) for k, v in values.items()})
        for lead_id in work.member_leads:
            # Already a member (syncd added it): the call is spent all the same.
            with contextlib.suppress(SalesforceError):
                sf.CampaignMember.create({"CampaignId": campaign, "LeadId": lead_id})
    finally:
        session.close()


def composite_supported(emu: Any) -> bool:
    """Whether the CRM serves the Composite resource (asked once, before anything is counted):
    a 404 for the resource itself means no; any other answer, even a refused subrequest, yes."""
    from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound

    sf, session = _client(emu)
    try:
        version = sf.sf_version
        sub = {"method": "GET", "url": f"/services/data/v{version}/limits", "referenceId": "l"}
        sf.restful("composite", method="POST", json={"compositeRequest": [sub]})
        return True
    except SalesforceResourceNotFound:
        return False
    except SalesforceError:
        return True
    finally:
        session.close()


def batched_script(
    emu: Any, work: Measure, fields: dict[str, str], campaign: str, *, composite: bool
) -> None:
    """Composite requests of 5 collections of 200, or Collections calls of 200."""
    sf, session = _client(emu)
    try:
        known = _read_all(sf, fields)
        updates = [
            {"attributes": {"type": "Lead"}, "id": lead_id}
            | {fields[k]: _wire(v) for k, v in values.items()}
            for lead_id, values in work.changes.items()
            if lead_id in known
        ]
        members = [
            {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign, "LeadId": lead_id}
            for lead_id in work.member_leads
        ]
        step = _COLLECTION
        batches = [("PATCH", updates[i : i + step]) for i in range(0, len(updates), step)]
        batches += [("POST", members[i : i + step]) for i in range(0, len(members), step)]
        if not composite:
            for method, records in batches:
                sf.restful(
                    "composite/sobjects",
                    method=method,
                    json={"allOrNone": False, "records": records},
                )
            return
        version = sf.sf_version
        for start in range(0, len(batches), _PER_COMPOSITE):
            group = batches[start : start + _PER_COMPOSITE]
            sf.restful(
                "composite",
                method="POST",
                json={
                    "allOrNone": False,
                    "compositeRequest": [
                        {
                            "method": method,
                            "url": f"/services/data/v{version}/composite/sobjects",
                            "referenceId": f"c{start + k}",
                            "body": {"allOrNone": False, "records": records},
                        }
                        for k, (method, records) in enumerate(group)
                    ],
                },
            )
    finally:
        session.close()


def _count(emu: Any, fn: Callable[[], Any]) -> tuple[int, Counter[str], float, Any]:
    emu.journal.clear()
    used = int(emu.api_usage)
    started = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - started
    return int(emu.api_usage) - used, Counter(sf_kind(e) for e in emu.journal.entries()), wall, out


def run(cost: CostRun, *, runs: int = 3) -> tuple[list[Figure], list[SectionNotes]]:
    """The §2 figures against ``cost``'s emulator (kept running by the caller)."""
    emu = cost.emulator
    lbl = label(cost.n)
    figs: list[Figure] = []
    composite = composite_supported(emu)
    how = (
        "Composite requests of 5 sObject Collections of 200"
        if composite
        else "sObject Collections calls of 200 (this CRM answers no Composite resource)"
    )
    for share, ms in cost.shares.items():
        work = ms[-1]
        ours = work.work_calls
        naive: list[tuple[int, Counter[str], float, Any]] = []
        peer: list[tuple[int, Counter[str], float, Any]] = []
        for _ in range(runs):
            naive.append(
                _count(emu, lambda w=work: naive_script(emu, w, cost.fields, cost.campaign))
            )
            peer.append(
                _count(
                    emu,
                    lambda w=work: batched_script(
                        emu, w, cost.fields, cost.campaign, composite=composite
                    ),
                )
            )
        p = pct(share)
        figs.append(
            measured(
                2,
                f"naive_call_ratio_{lbl}_{p}",
                f"naive script calls / syncd calls, N={cost.n:,}, {p} % changed",
                [c / ours for c, *_ in naive],
                "x",
                note=f"naive {naive[-1][0]:,} ({_kinds(naive[-1][1])}) vs syncd {ours} "
                f"({_kinds(work.calls, ('read', 'write', 'membership'))}); "
                f"{work.updates:,} updates, {len(work.member_leads):,} memberships",
            )
        )
        figs.append(
            measured(
                2,
                f"peer_call_ratio_{lbl}_{p}",
                f"batched peer script calls / syncd calls, N={cost.n:,}, {p} % changed",
                [c / ours for c, *_ in peer],
                "x",
                note=f"peer {peer[-1][0]:,} ({_kinds(peer[-1][1])}) through {how}",
            )
        )
        figs.append(
            measured(
                2,
                f"naive_wall_ratio_{lbl}_{p}",
                f"naive script wall time / syncd cycle, N={cost.n:,}, {p} % changed",
                [w / work.wall for _, _, w, _ in naive],
                "x",
                note=f"syncd's cycle {work.wall:.2f} s (it also enriches, evaluates 20 rules, "
                "audits and keeps its ledger); batched peer "
                + ", ".join(f"{w:.2f}" for _, _, w, _ in peer)
                + " s",
            )
        )
    notes = SectionNotes(2, "Against scripts (simple-salesforce, naive and batched)")
    notes.lines += [
        "The same work three ways, counted by the same emulator counter: syncd's cycle with that "
        "share of leads changed (§1, §7), a naive cron script (`sf.query_all` over every lead, "
        "then `sf.Lead.update` per lead and `sf.CampaignMember.create` per membership), and a "
        "competent batched script (`sf.query_all`, then "
        f"{how}). Both scripts apply "
        "exactly syncd's changes of that cycle, against the emulator syncd just ran against.",
        "",
        "The curve over change shares is the point: at 1 % a script's full read dominates and "
        "its ratio to syncd is set by how many pages it reads; at 30 % the naive script's one "
        "call per lead dominates. What flatters syncd: neither script keeps a cursor (a script "
        "that did would read as little as syncd). What flatters the scripts: they evaluate no "
        "rules and keep no audit or ledger, so their wall time is not comparable work.",
    ]
    return figs, [notes]


def _kinds(calls: Counter[str], only: Sequence[str] | None = None) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in sorted(calls.items()) if only is None or k in only)
