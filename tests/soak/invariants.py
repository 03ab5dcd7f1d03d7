"""The soak's judges: what must hold after any mix of faults, kills, restarts and replicas.

Each invariant is a function returning its violations, each naming the offending lead (by CRM
and id, and email where two worlds are compared), so a failing soak says *which* leads broke.
Counts are not invariants: a soak passes when every list is empty.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INVARIANTS", "Observed", "RepEdit", "check_all", "summarize"]

#: The largest write batch each CRM accepts (Salesforce sObject Collections, HubSpot batch).
BATCH_LIMIT = {"salesforce": 200, "hubspot": 100}
OPEN_STATES = ("planned", "pending", "sending")
#: Faults after which the client cannot know whether its write was applied: the one case where
#: a retry may legitimately carry a change the CRM already has.
RESPONSE_LOST = ("drop-after", "timeout")


@dataclass(frozen=True)
class RepEdit:
    """A person set ``status`` on a lead by hand once the journal held ``journal_len``
    requests."""

    crm: str
    lead_id: str
    email: str
    status: str
    journal_len: int


@dataclass
class Observed:
    """Everything the judges read at the end of one world's run (see ``Emulator.state``)."""

    state: dict[str, dict[str, Any]]  # crm -> {leads, members, duplicates, faults}
    journal: dict[str, list[dict[str, Any]]]  # crm -> journal entries with ``kind``
    outbox: list[dict[str, Any]]  # syncd's outbox rows
    audit: list[dict[str, Any]]  # syncd's audit rows
    rep_edits: list[RepEdit] = field(default_factory=list)
    #: what syncd showed: each daemon's output and the store's rows as text, by source
    shown: dict[str, str] = field(default_factory=dict)
    #: the credentials syncd was given, by name
    secrets: dict[str, str] = field(default_factory=dict)

    def leads(self, crm: str) -> dict[str, dict[str, Any]]:
        return dict(self.state[crm]["leads"])

    def by_email(self, crm: str) -> dict[str, tuple[str, dict[str, Any]]]:
        return {
            lead["email"]: (lead_id, lead)
            for lead_id, lead in self.leads(crm).items()
            if lead["email"]
        }

    def memberships(self, crm: str) -> dict[str, set[str]]:
        """lead id -> newsletter names it is in."""
        out: dict[str, set[str]] = defaultdict(set)
        for name, ids in self.state[crm]["members"].items():
            for lead_id in ids:
                out[lead_id].add(name)
        return out

    def applied(self, crm: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.journal[crm] if e.get("applied") and e.get("kind") == kind]

    def edited(self, crm: str) -> set[str]:
        return {e.email for e in self.rep_edits if e.crm == crm}


def final_statuses_equal_reference(chaos: Observed, ref: Observed) -> list[str]:
    """Every lead no person edited ends with the status a fault-free run gives it."""
    bad = []
    for crm in chaos.state:
        ours, theirs = chaos.by_email(crm), ref.by_email(crm)
        for email, (lead_id, lead) in sorted(ours.items()):
            if email in chaos.edited(crm) or email not in theirs:
                continue
            want = theirs[email][1]["status"]
            if lead["status"] != want:
                bad.append(
                    f"{crm} {lead_id} <{email}>: status {lead['status']!r}, reference {want!r}"
                )
        bad.extend(
            f"{crm} <{email}>: missing from the chaos world"
            for email in sorted(set(theirs) - set(ours))
        )
    return bad


def final_memberships_equal_reference(chaos: Observed, ref: Observed) -> list[str]:
    """Every lead no person edited is in exactly the newsletters the fault-free run put it in."""
    bad = []
    for crm in chaos.state:
        ours, theirs = chaos.by_email(crm), ref.by_email(crm)
        mine, reference = chaos.memberships(crm), ref.memberships(crm)
        for email in sorted((set(ours) & set(theirs)) - chaos.edited(crm)):
            got = mine.get(ours[email][0], set())
            want = reference.get(theirs[email][0], set())
            if got != want:
                bad.append(
                    f"{crm} {ours[email][0]} <{email}>: newsletters {sorted(got)}, "
                    f"reference {sorted(want)}"
                )
    return bad


def no_rep_edit_overwritten(chaos: Observed, _ref: Observed) -> list[str]:
    """No write reaches a lead after a person set its status, and the CRM shows their value."""
    bad = []
    for edit in chaos.rep_edits:
        for entry in chaos.applied(edit.crm, "update"):
            if entry["seq"] > edit.journal_len and edit.lead_id in entry.get("written", ()):
                bad.append(
                    f"{edit.crm} {edit.lead_id}: status set to {edit.status!r} by a "
                    f"person, then written by syncd (journal #{entry['seq']})"
                )
        final = chaos.leads(edit.crm).get(edit.lead_id, {}).get("status")
        if final != edit.status:
            bad.append(
                f"{edit.crm} {edit.lead_id}: a person set {edit.status!r}; the CRM shows {final!r}"
            )
    return bad


def no_duplicate_member(chaos: Observed, _ref: Observed) -> list[str]:
    """No lead was added to a newsletter twice (two campaign members, two sign-ups)."""
    return [
        f"{crm} newsletter/lead {pair}: added more than once"
        for crm in chaos.state
        for pair in chaos.state[crm]["duplicates"]
    ]


def no_outbox_row_stuck(chaos: Observed, _ref: Observed) -> list[str]:
    return [
        f"{r['crm']} {r['lead_id']}: outbox row {r['id']} ({r['kind']} {r['field']}) "
        f"left {r['state']}"
        for r in chaos.outbox
        if r["state"] in OPEN_STATES
    ]


def intents_delivered_whole(chaos: Observed, _ref: Observed) -> list[str]:
    """An intent with any part delivered has every part delivered, failed for good, or
    withdrawn because someone else changed the lead."""
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in chaos.outbox:
        by_intent[str(row["intent_id"])].append(row)
    bad = []
    for rows in by_intent.values():
        if not any(r["state"] == "done" for r in rows):
            continue
        for r in rows:
            if r["state"] in ("done", "failed"):
                continue
            if r["state"] == "withdrawn" and r.get("error_message"):
                continue
            bad.append(
                f"{r['crm']} {r['lead_id']}: {r['kind']} {r['field']} of a partly "
                f"delivered intent ended {r['state']} ({r.get('error_message')})"
            )
    return bad


def writes_match_audit(chaos: Observed, _ref: Observed) -> list[str]:
    """Every status write the CRM received has an audit row, every ``applied`` status audit
    row a write the CRM received; likewise every newsletter membership and its audit row."""
    bad = []
    for crm in chaos.state:
        written = {
            lead_id for e in chaos.applied(crm, "update") for lead_id in e.get("written", ())
        }
        # A write whose answer was lost and that a person then overrode is audited as withdrawn,
        # saying so: syncd cannot know whether the CRM applied it.
        audited = {
            r["lead_id"]
            for r in chaos.audit
            if r["crm"] == crm
            and r["field"] == "status"
            and (
                r["outcome"] in ("applied", "already_in_place")
                or "unconfirmed" in str(r.get("message") or "")
            )
        }
        applied = {
            r["lead_id"]
            for r in chaos.audit
            if r["crm"] == crm and r["field"] == "status" and r["outcome"] == "applied"
        }
        bad.extend(
            f"{crm} {lead}: the CRM received a status write with no audit row"
            for lead in sorted(written - audited)
        )
        bad.extend(
            f"{crm} {lead}: audit says a status write was applied; the CRM never received one"
            for lead in sorted(applied - written)
        )
        members = {lead for lead, names in chaos.memberships(crm).items() if names}
        joined = {
            r["lead_id"]
            for r in chaos.audit
            if r["crm"] == crm
            and str(r["field"]).startswith("newsletter:")
            and r["outcome"] in ("applied", "already_in_place")
        }
        # An add whose answer was lost and whose intent a person then overrode may have landed:
        # its audit row says so ("unconfirmed"), as for status writes above.
        unconfirmed = {
            r["lead_id"]
            for r in chaos.audit
            if r["crm"] == crm
            and str(r["field"]).startswith("newsletter:")
            and "unconfirmed" in str(r.get("message") or "")
        }
        bad.extend(
            f"{crm} {lead}: in a newsletter with no audit row"
            f" ({_newsletter_story(chaos, crm, lead)})"
            for lead in sorted(members - joined - unconfirmed)
        )
        bad.extend(
            f"{crm} {lead}: audit says it joined a newsletter; it is in none"
            for lead in sorted(joined - members)
        )
    return bad


def _newsletter_story(chaos: Observed, crm: str, lead: str) -> str:
    """What syncd recorded of ``lead``'s newsletter joins: its outbox and audit rows, for
    whoever reads a violation (the soak's directory is gone by then)."""
    rows = [
        f"outbox {r.get('state')}"
        f"{' may_have_landed' if r.get('may_have_landed') else ''} {r.get('run_id')}"
        for r in chaos.outbox
        if r["crm"] == crm and r["lead_id"] == lead and r.get("kind") == "membership"
    ]
    rows += [
        f"audit {r['outcome']} {r.get('run_id')}: {r.get('message') or ''}".rstrip(": ")
        for r in chaos.audit
        if r["crm"] == crm and r["lead_id"] == lead and str(r["field"]).startswith("newsletter:")
    ]
    return "; ".join(rows) or "no outbox or audit row"


def no_batch_over_limit(chaos: Observed, _ref: Observed) -> list[str]:
    bad = []
    for crm, entries in chaos.journal.items():
        for e in entries:
            n = int(e.get("records") or 0)
            if e.get("kind") and n > BATCH_LIMIT[crm]:
                bad.append(
                    f"{crm} journal #{e['seq']}: {e['method']} {e['path']} carried "
                    f"{n} records, over {BATCH_LIMIT[crm]}"
                )
    return bad


def no_change_sent_twice(chaos: Observed, _ref: Observed) -> list[str]:
    """No lead's status is written twice (each lead gets at most one status decision from the
    soak's rules): not by two daemons, not by a restart re-sending a batch the CRM had
    applied. The one exception no client can avoid: a retry after the CRM applied a write
    whose answer was lost in transit (``drop-after``, ``timeout``)."""
    bad = []
    for crm in chaos.state:
        seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in chaos.applied(crm, "update"):
            for lead_id in entry.get("written", ()):
                seen[lead_id].append(entry)
        for lead_id, entries in sorted(seen.items()):
            resent = [
                e
                for prev, e in itertools.pairwise(entries)
                if prev.get("fault") not in RESPONSE_LOST
            ]
            if resent:
                bad.append(
                    f"{crm} {lead_id}: status written {len(entries)} times (journal "
                    + ", ".join(f"#{e['seq']}" for e in entries)
                    + ")"
                )
    return bad


#: A Salesforce access token as the emulator issues them, as Salesforce does: the org id's
#: first 15 characters, "!", then the session's secret part.
_SF_SESSION = re.compile(r"00D\w{12}![\w.-]{20,}")


def no_secret_shown(chaos: Observed, _ref: Observed) -> list[str]:
    """No credential syncd was given, nor an access token a CRM issued to it, appears in its
    output (logs at every level the daemons wrote, under every fault) or in its store's audit,
    outbox, run and meta rows."""
    bad = []
    for source, text in chaos.shown.items():
        for name, secret in chaos.secrets.items():
            if secret and secret in text:
                bad.append(f"{name} shown in {source}")
        if _SF_SESSION.search(text):
            bad.append(f"a Salesforce access token shown in {source}")
    return bad


Judge = Callable[[Observed, Observed], list[str]]

#: name -> judge; a judge takes the chaos world and the reference world.
INVARIANTS: dict[str, Judge] = {
    "final statuses equal the reference": final_statuses_equal_reference,
    "final memberships equal the reference": final_memberships_equal_reference,
    "no rep edit overwritten": no_rep_edit_overwritten,
    "no duplicate member": no_duplicate_member,
    "no outbox row stuck non-terminal": no_outbox_row_stuck,
    "intents delivered whole": intents_delivered_whole,
    "every CRM write audited, every applied audit row written": writes_match_audit,
    "no write batch over the CRM's limit": no_batch_over_limit,
    "no change sent twice": no_change_sent_twice,
    "no secret shown": no_secret_shown,
}


def check_all(
    chaos: Observed, ref: Observed, names: Iterable[str] | None = None
) -> dict[str, list[str]]:
    chosen = list(names) if names is not None else list(INVARIANTS)
    return {name: INVARIANTS[name](chaos, ref) for name in chosen}


def summarize(results: Mapping[str, Sequence[str]], limit: int = 20) -> str:
    lines = []
    for name, violations in results.items():
        lines.append(f"{name}: {len(violations)}")
        lines.extend(f"    {v}" for v in violations[:limit])
        if len(violations) > limit:
            lines.append(f"    ... and {len(violations) - limit} more")
    return "\n".join(lines)
