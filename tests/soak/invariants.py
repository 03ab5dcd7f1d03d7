"""The soak's judges: what must hold after any mix of faults, kills, restarts and replicas.

Each invariant is a function returning its violations, each naming the offending lead (by CRM
and id, or email where two worlds are compared), so a failing soak says *which* leads broke.
Counts are not invariants: a soak passes when every list is empty.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Observed", "RepEdit", "check_all", "INVARIANTS"]

#: The status field's API name and the largest write batch each CRM accepts.
STATUS_FIELD = {"salesforce": "Status", "hubspot": "hs_lead_status"}
EMAIL_FIELD = {"salesforce": "Email", "hubspot": "email"}
BATCH_LIMIT = {"salesforce": 200, "hubspot": 100}
OPEN_STATES = ("planned", "pending", "sending")


@dataclass(frozen=True)
class RepEdit:
    """A person set ``status`` on a lead by hand; ``journal_len`` writes had happened before."""

    crm: str
    lead_id: str
    email: str
    status: str
    journal_len: int


@dataclass
class Observed:
    """Everything the judges read at the end of one world's run."""

    state: dict[str, dict[str, Any]]  # crm -> emulator admin state
    journal: dict[str, list[dict[str, Any]]]  # crm -> journal entries
    outbox: list[dict[str, Any]]  # syncd's outbox rows
    audit: list[dict[str, Any]]  # syncd's audit rows
    rep_edits: list[RepEdit] = field(default_factory=list)
    dual_window: dict[str, tuple[int, int]] = field(default_factory=dict)  # journal index range

    # -- views ----------------------------------------------------------------------------

    def leads(self, crm: str) -> dict[str, dict[str, Any]]:
        return dict(self.state[crm]["leads"])

    def by_email(self, crm: str) -> dict[str, tuple[str, dict[str, Any]]]:
        out = {}
        for lead_id, lead in self.leads(crm).items():
            email = lead.get(EMAIL_FIELD[crm])
            if email:
                out[str(email).lower()] = (lead_id, lead)
        return out

    def members(self, crm: str) -> dict[str, list[str]]:
        """Newsletter/list -> member lead ids, duplicates kept."""
        return {str(k): list(v) for k, v in self.state[crm]["memberships"].items()}

    def writes(self, crm: str) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
        """(journal index, entry, record) of every record an applied write request carried."""
        out = []
        for i, entry in enumerate(self.journal[crm]):
            if entry.get("applied") and entry.get("kind") in ("update", "membership"):
                for record in entry.get("records", ()):
                    out.append((i, entry, record))
        return out


def final_statuses_equal_reference(chaos: Observed, ref: Observed) -> list[str]:
    """Every lead no person edited ends with the status a fault-free run gives it."""
    bad = []
    for crm in chaos.state:
        edited = {e.email for e in chaos.rep_edits if e.crm == crm}
        ours, theirs = chaos.by_email(crm), ref.by_email(crm)
        for email, (lead_id, lead) in sorted(ours.items()):
            if email in edited or email not in theirs:
                continue
            want = theirs[email][1].get(STATUS_FIELD[crm])
            got = lead.get(STATUS_FIELD[crm])
            if got != want:
                bad.append(f"{crm} {lead_id} <{email}>: status {got!r}, reference {want!r}")
        missing = sorted(set(theirs) - set(ours))
        bad.extend(f"{crm} <{email}>: missing from the chaos world" for email in missing)
    return bad


def final_memberships_equal_reference(chaos: Observed, ref: Observed) -> list[str]:
    """Every lead no person edited is in exactly the newsletters the fault-free run put it in."""
    bad = []
    for crm in chaos.state:
        edited = {e.email for e in chaos.rep_edits if e.crm == crm}
        ours, theirs = chaos.by_email(crm), ref.by_email(crm)
        mine = _membership_by_email(chaos, crm)
        ref_members = _membership_by_email(ref, crm)
        for email in sorted(set(ours) & set(theirs) - edited):
            got, want = mine.get(email, set()), ref_members.get(email, set())
            if got != want:
                bad.append(f"{crm} {ours[email][0]} <{email}>: newsletters {sorted(got)}, "
                           f"reference {sorted(want)}")
    return bad


def _membership_by_email(obs: Observed, crm: str) -> dict[str, set[str]]:
    emails = {lead_id: email for email, (lead_id, _) in obs.by_email(crm).items()}
    names = obs.state[crm].get("newsletter_names", {})
    out: dict[str, set[str]] = defaultdict(set)
    for newsletter, members in obs.members(crm).items():
        for lead_id in members:
            if lead_id in emails:
                out[emails[lead_id]].add(str(names.get(newsletter, newsletter)))
    return out


def no_rep_edit_overwritten(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    """No status write reaches a lead after a person set its status, and the person's value
    is the one the CRM shows at the end."""
    bad = []
    for edit in chaos.rep_edits:
        later = [(i, r) for i, _e, r in chaos.writes(edit.crm)
                 if i >= edit.journal_len and r.get("id") == edit.lead_id
                 and STATUS_FIELD[edit.crm] in r.get("fields", {})]
        for i, record in later:
            bad.append(f"{edit.crm} {edit.lead_id}: status set to {edit.status!r} by a person, "
                       f"then written {record['fields'][STATUS_FIELD[edit.crm]]!r} by syncd "
                       f"(journal #{i})")
        final = chaos.leads(edit.crm).get(edit.lead_id, {}).get(STATUS_FIELD[edit.crm])
        if final != edit.status and not any(
                e.lead_id == edit.lead_id and e.journal_len > edit.journal_len
                for e in chaos.rep_edits):
            bad.append(f"{edit.crm} {edit.lead_id}: a person set {edit.status!r}; the CRM "
                       f"shows {final!r}")
    return bad


def no_duplicate_member(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    bad = []
    for crm in chaos.state:
        for newsletter, members in chaos.members(crm).items():
            for lead_id, n in Counter(members).items():
                if n > 1:
                    bad.append(f"{crm} {lead_id}: {n} memberships of {newsletter}")
    return bad


def no_outbox_row_stuck(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    return [f"{r['crm']} {r['lead_id']}: outbox row {r['id']} ({r['kind']} {r['field']}) "
            f"left {r['state']}" for r in chaos.outbox if r["state"] in OPEN_STATES]


def intents_delivered_whole(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    """An intent with any part delivered has every part delivered, failed for good, or
    withdrawn with a reason (a person or the CRM changed the lead, or the rules changed)."""
    by_intent: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in chaos.outbox:
        if row.get("intent_id"):
            by_intent[row["intent_id"]].append(row)
    bad = []
    for rows in by_intent.values():
        if not any(r["state"] == "done" for r in rows):
            continue
        for r in rows:
            if r["state"] in ("done", "failed"):
                continue
            if r["state"] in ("superseded", "withdrawn") and r.get("error_message") and \
                    "no longer wanted by the rules" not in str(r["error_message"]):
                continue
            bad.append(f"{r['crm']} {r['lead_id']}: {r['kind']} {r['field']} of a partly "
                       f"delivered intent ended {r['state']} ({r.get('error_message')})")
    return bad


def writes_match_audit(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    """Every CRM write has an audit row, and every ``applied`` audit row a CRM write."""
    bad = []
    for crm in chaos.state:
        status_field = STATUS_FIELD[crm]
        written: set[tuple[str, str, str]] = set()
        for _i, entry, record in chaos.writes(crm):
            if entry.get("kind") == "membership":
                written.add((str(record["id"]), "newsletter:*", ""))
                continue
            for api, value in record.get("fields", {}).items():
                name = "status" if api == status_field else api
                written.add((str(record["id"]), name, str(value)))
        audited: set[tuple[str, str, str]] = set()
        for row in chaos.audit:
            if row["crm"] != crm or row["outcome"] not in ("applied", "already_in_place"):
                continue
            if str(row["field"]).startswith("newsletter:"):
                key = (str(row["lead_id"]), "newsletter:*", "")
            else:
                key = (str(row["lead_id"]), str(row["field"]), str(row["after"]))
            audited.add(key)
            if row["outcome"] == "applied" and key[1] in ("status", "newsletter:*") and \
                    key not in written:
                bad.append(f"{crm} {row['lead_id']}: audit says {row['field']} -> "
                           f"{row['after']!r} applied, but the CRM never received it")
        for lead_id, name, value in sorted(written - audited):
            if name in ("status", "newsletter:*"):
                bad.append(f"{crm} {lead_id}: the CRM received {name} {value!r} with no audit "
                           "row")
    return bad


def no_batch_over_limit(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    bad = []
    for crm, entries in chaos.journal.items():
        for i, entry in enumerate(entries):
            n = len(entry.get("records", ()))
            if n > BATCH_LIMIT[crm]:
                bad.append(f"{crm} journal #{i}: {entry.get('method')} {entry.get('path')} "
                           f"carried {n} records, over {BATCH_LIMIT[crm]}")
    return bad


def no_change_sent_twice(chaos: Observed, _ref: Observed | None = None) -> list[str]:
    """No status value reaches a lead twice (two daemons, a restart re-sending a batch the CRM
    had applied). A retry of a request whose response was lost in transit is the one exception
    no client can avoid; the emulator marks those (``response_lost``)."""
    bad = []
    for crm in chaos.state:
        seen: dict[tuple[str, str], list[int]] = defaultdict(list)
        lost: set[int] = {i for i, e in enumerate(chaos.journal[crm]) if e.get("response_lost")}
        for i, entry, record in chaos.writes(crm):
            if entry.get("kind") != "update":
                continue
            value = record.get("fields", {}).get(STATUS_FIELD[crm])
            if value is not None:
                seen[(str(record["id"]), str(value))].append(i)
        edits = {(e.lead_id, e.status) for e in chaos.rep_edits if e.crm == crm}
        for (lead_id, value), where in sorted(seen.items()):
            resent = [i for i in where[1:] if not (set(range(where[0], i)) & lost)]
            if resent and (lead_id, value) not in edits:
                bad.append(f"{crm} {lead_id}: status {value!r} written {len(where)} times "
                           f"(journal #{', #'.join(map(str, where))})")
    return bad


#: name -> judge; a judge takes the chaos world and the reference world.
INVARIANTS = {
    "final statuses equal the reference": final_statuses_equal_reference,
    "final memberships equal the reference": final_memberships_equal_reference,
    "no rep edit overwritten": no_rep_edit_overwritten,
    "no duplicate member": no_duplicate_member,
    "no outbox row stuck non-terminal": no_outbox_row_stuck,
    "intents delivered whole": intents_delivered_whole,
    "every CRM write audited, every applied audit row written": writes_match_audit,
    "no write batch over the CRM's limit": no_batch_over_limit,
    "no change sent twice": no_change_sent_twice,
}


def check_all(chaos: Observed, ref: Observed,
              names: Iterable[str] | None = None) -> dict[str, list[str]]:
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
