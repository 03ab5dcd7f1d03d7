"""An admin or operator changes the config or the rules while changes wait in the outbox.

Each test leaves intents waiting (the CRM answers 503 to the write, so they stay ``pending``),
then changes one thing -- a restart with an edited config, or a rule file the running daemon
reloads -- and runs again against the same Salesforce org: the waiting change must be sent under
the new settings or ended with a reason, never sent as it was planned under the old ones, never
sent twice, never lost silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator
from syncd.app import App
from syncd.cli import app as cli
from syncd.open_changes import HELD_BY_LOOP_GUARD, HELD_FOR_PERSONS_EDIT, HELD_FOR_REMAP
from syncd.plan import build_plan, status_report
from syncd.state import AuditOutcome, OutboxState
from tests.daemon.harness import outbox_states, running_app, sf_lead

RULES = """\
version: 1
name: stale
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: stale-nurture
    when:
      all:
        - {field: status, in: [New, Open]}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""

# The same statuses, the stale rule gone: nothing is wanted of the stale leads any more.
RULES_WITHOUT_STALE = RULES.split("rules:\n")[0] + (
    "rules:\n"
    "  - id: ceo-open\n"
    "    when: {field: title, eq: CEO}\n"
    "    then:\n"
    "      - set_status: Open\n"
)

# The stale rule's outcome changed: the leads are parked in another status.
RULES_STALE_TO_OPEN = RULES.replace("set_status: Nurture", "set_status: Open")

TIER_RULES = """\
version: 1
name: tiers
mode: first_match
statuses: {New: {}, Open: {}, Nurture: {}}
rules:
  - id: ceo-tier
    when: {field: title, eq: CEO}
    then:
      - set_field: {field: tier, value: Hot}
"""

# A person's status edit, then a rule that wants the lead (the hold tests).
HOLD_RULES = """\
version: 1
name: hold
mode: first_match
statuses: {New: {}, Open: {}, Nurture: {}}
rules:
  - id: ceo-nurture
    when: {field: title, eq: CEO}
    then:
      - set_status: Nurture
"""

N_LEADS = 4


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    emu = SalesforceEmulator(
        EmulatorConfig(lead_custom_fields=frozenset({"Tier__c", "Need__c"}))
    ).start()
    yield emu
    emu.stop()


def _config(
    tmp_path: Path,
    org: SalesforceEmulator,
    *,
    rules: str = RULES,
    status_values: str = "{New: Open - Not Contacted, Open: Working - Contacted}",
    newsletters: str,
    extra: str = "",
    connector_extra: str = "",
) -> Path:
    """A Salesforce config whose calls are not retried within a cycle (one 503 leaves the batch
    pending) and whose status and newsletter batches go as separate calls."""
    (tmp_path / "rules.yaml").write_text(rules)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""\
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
salesforce:
  interval: 10s
  status_values: {status_values}
  settable_fields: [tier]
{extra}  connector:
    instance_url: {org.base_url}
    token_url: {org.token_url}
    ca_bundle: {org.ca_pem_path}
    auth:
      {{type: client_credentials, client_id: {org.client_id}, client_secret: {{env: SF_SECRET}}}}
    lag_seconds: 0
    composite: false
    retry: {{attempts: 1}}
    newsletters: {newsletters}
{connector_extra}""")
    return config


@pytest.fixture(autouse=True)
def _secret(org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)


def _stale_leads(org: SalesforceEmulator) -> list[str]:
    return org.add_leads(
        (
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(N_LEADS)
        ),
        modstamp=_seconds_ago(5),
    )


def _seconds_ago(seconds: int) -> datetime:
    """A SystemModstamp before syncd's writes (Salesforce stamps whole seconds), so a pull
    after a write tells the write's stamp from the seed's."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds)


def _cycle(app: App) -> str:
    report = app.pipelines["salesforce"].run_cycle()
    return f"{report.outcome}: {report.message}"


def _statuses_sent(org: SalesforceEmulator) -> list[str]:
    """The Status values of every Lead update request syncd sent, answered or not."""
    out = []
    for e in org.journal.writes():
        if e.method == "PATCH" and e.body:
            body = json.loads(e.body)
            out += [r["Status"] for r in body.get("records", []) if "Status" in r]
    return out


def _members_sent(org: SalesforceEmulator) -> int:
    """Leads sent in answered CampaignMember inserts."""
    return sum(
        e.records or 0
        for e in org.journal.writes()
        if e.method == "POST" and "composite/sobjects" in e.path and e.status == 200
    )


def _outcomes(app: App, lead_id: str, field: str) -> list[tuple[str, object, str | None]]:
    return [
        (a.outcome, a.after, a.message)
        for a in app.store.audit_of_lead(lead_id)
        if a.field == field
    ]


# ---- 1. status_values ------------------------------------------------------------------------


def test_waiting_status_write_is_sent_as_the_new_crm_value_when_status_values_remap_it(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    ids = _stale_leads(org)
    old = _config(tmp_path, org, newsletters=f"{{newsletter: {campaign}}}")
    with running_app(old) as app:
        org.faults.fail_next(1, method="PATCH")  # the status batch: nothing applied
        assert _cycle(app).startswith("failed")
        assert app.store.pending_count("salesforce") == 2 * N_LEADS
    assert all(org.lead(i)["Status"] == "Open - Not Contacted" for i in ids)

    # The admin now parks stale leads in "Closed - Not Converted" instead of "Nurture".
    remapped = _config(
        tmp_path,
        org,
        status_values="{New: Open - Not Contacted, Open: Working - Contacted, "
        "Nurture: Closed - Not Converted}",
        newsletters=f"{{newsletter: {campaign}}}",
    )
    with running_app(remapped) as app:
        assert _cycle(app).startswith("ok")
        assert all(org.lead(i)["Status"] == "Closed - Not Converted" for i in ids)
        assert org.campaign_members(campaign) == set(ids)
        assert _members_sent(org) == N_LEADS, "each join sent once"
        for i in ids:
            assert _outcomes(app, i, "status") == [
                (
                    AuditOutcome.SUPERSEDED,
                    "Nurture",
                    "replaced by a newer decision for the same field",
                ),
                (AuditOutcome.APPLIED, "Closed - Not Converted", None),
            ]
        assert app.store.pending_count("salesforce") == 0
        assert _cycle(app).startswith("ok")
    sent = _statuses_sent(org)
    assert sent.count("Nurture") == N_LEADS, "the old value went only in the refused batch"
    assert sent.count("Closed - Not Converted") == N_LEADS


# ---- 2. the rule file ------------------------------------------------------------------------


def _decisions_waiting(app: App, org: SalesforceEmulator) -> list[str]:
    """Stale leads whose whole decision (status and join) waits: the status batch got a 503."""
    ids = _stale_leads(org)
    org.faults.fail_next(1, method="PATCH")
    assert _cycle(app).startswith("failed")
    assert app.store.pending_count("salesforce") == 2 * N_LEADS
    return ids


def _nothing_written(org: SalesforceEmulator, campaign: str, ids: list[str]) -> None:
    assert all(org.lead(i)["Status"] == "Open - Not Contacted" for i in ids)
    assert org.campaign_members(campaign) == set()
    assert _members_sent(org) == 0


@pytest.mark.parametrize("how", ["restart", "live_reload"])
def test_waiting_decision_is_superseded_unsent_when_the_rule_that_made_it_is_removed(
    tmp_path: Path, org: SalesforceEmulator, how: str
) -> None:
    campaign = org.add_campaign("Newsletter")
    config = _config(tmp_path, org, newsletters=f"{{newsletter: {campaign}}}")
    with running_app(config) as app:
        ids = _decisions_waiting(app, org)
        (tmp_path / "rules.yaml").write_text(RULES_WITHOUT_STALE)
        if how == "live_reload":  # the running daemon reloads the file before its next cycle
            assert _cycle(app).startswith("ok")
    if how == "restart":
        with running_app(config) as app:
            assert _cycle(app).startswith("ok")
    _nothing_written(org, campaign, ids)
    assert _statuses_sent(org) == ["Nurture"] * N_LEADS, "only the refused batch"
    with running_app(config) as app:
        for i in ids:
            assert {(o, m) for o, _, m in _outcomes(app, i, "status")} == {
                (AuditOutcome.SUPERSEDED, "no longer wanted by the rules")
            }
            assert {(o, m) for o, _, m in _outcomes(app, i, "newsletter:newsletter")} == {
                (AuditOutcome.SUPERSEDED, "no longer wanted by the rules")
            }
        part = status_report(app)["crms"]["salesforce"]
        assert part["pending"] == 0
        assert part["unsent"] == [
            {
                "outcome": "superseded",
                "reason": "no longer wanted by the rules",
                "count": 2 * N_LEADS,
            }
        ]


@pytest.mark.parametrize("how", ["restart", "live_reload"])
def test_waiting_status_is_replaced_by_the_new_outcome_when_the_rule_now_sets_another_status(
    tmp_path: Path, org: SalesforceEmulator, how: str
) -> None:
    campaign = org.add_campaign("Newsletter")
    config = _config(tmp_path, org, newsletters=f"{{newsletter: {campaign}}}")
    with running_app(config) as app:
        ids = _decisions_waiting(app, org)
        (tmp_path / "rules.yaml").write_text(RULES_STALE_TO_OPEN)
        if how == "live_reload":
            assert _cycle(app).startswith("ok")
    if how == "restart":
        with running_app(config) as app:
            assert _cycle(app).startswith("ok")
    assert all(org.lead(i)["Status"] == "Working - Contacted" for i in ids)
    assert _statuses_sent(org) == ["Nurture"] * N_LEADS + ["Working - Contacted"] * N_LEADS
    assert org.campaign_members(campaign) == set(ids), "the join the new rule still wants"
    assert _members_sent(org) == N_LEADS
    with running_app(config) as app:
        for i in ids:
            assert [(o, a) for o, a, _ in _outcomes(app, i, "status")] == [
                (AuditOutcome.SUPERSEDED, "Nurture"),
                (AuditOutcome.APPLIED, "Working - Contacted"),
            ]
        assert app.store.pending_count("salesforce") == 0


# ---- 3. a newsletter's target ----------------------------------------------------------------


def _joins_waiting(app: App, org: SalesforceEmulator) -> list[str]:
    """Stale leads whose status was written and whose join waits (the insert got a 503)."""
    ids = _stale_leads(org)
    org.faults.fail_next(1, path="composite/sobjects", method="POST")
    assert _cycle(app).startswith("failed")
    assert all(org.lead(i)["Status"] == "Nurture" for i in ids)
    assert app.store.pending_count("salesforce") == N_LEADS
    return ids


def test_waiting_join_goes_to_the_new_campaign_when_the_newsletter_is_pointed_elsewhere(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    old, new = org.add_campaign("Newsletter 2025"), org.add_campaign("Newsletter 2026")
    with running_app(_config(tmp_path, org, newsletters=f"{{newsletter: {old}}}")) as app:
        ids = _joins_waiting(app, org)
    with running_app(_config(tmp_path, org, newsletters=f"{{newsletter: {new}}}")) as app:
        assert _cycle(app).startswith("ok")
        assert org.campaign_members(old) == set(), "nothing added to the old campaign"
        assert org.campaign_members(new) == set(ids)
        assert _members_sent(org) == N_LEADS
        for i in ids:
            assert [o for o, _, _ in _outcomes(app, i, "newsletter:newsletter")] == [
                AuditOutcome.APPLIED
            ]


def test_waiting_join_is_withdrawn_with_a_reason_when_the_newsletter_is_removed_with_its_rule(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    with running_app(_config(tmp_path, org, newsletters=f"{{newsletter: {campaign}}}")) as app:
        ids = _joins_waiting(app, org)
    # The admin retires the newsletter: gone from the config and from the rule.
    rules = RULES.replace("      - add_to_newsletter: newsletter\n", "")
    with running_app(_config(tmp_path, org, rules=rules, newsletters="{}")) as app:
        assert _cycle(app).startswith("ok")
        version = app.rules.book.version
        reason = f"rule set changed to version {version} and no longer wants it"
        for i in ids:
            assert _outcomes(app, i, "newsletter:newsletter") == [
                (AuditOutcome.WITHDRAWN, True, reason)
            ]
        part = status_report(app)["crms"]["salesforce"]
        assert part["pending"] == 0
        assert part["unsent"] == [{"outcome": "withdrawn", "reason": reason, "count": N_LEADS}]
    assert org.campaign_members(campaign) == set() and _members_sent(org) == 0


# ---- 4. a custom field's mapping -------------------------------------------------------------


def _tier_config(
    tmp_path: Path,
    org: SalesforceEmulator,
    campaign: str,
    field: str,
    *,
    rules: str,
    extra: str = "",
) -> Path:
    """A config mapping ``tier`` to the Lead field ``field`` (``need`` unmapped: Need__c is the
    BANT default, and may be ``tier``'s field here)."""
    return _config(
        tmp_path,
        org,
        rules=rules,
        newsletters=f"{{newsletter: {campaign}}}",
        extra=extra,
        connector_extra=f"    fields: {{tier: {field}, need: null}}\n",
    )


def test_a_remapped_field_a_rule_sets_is_written_only_a_hold_after_the_change_not_over_a_person(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    """tier moves from Tier__c to Need__c while a write of it waits, and a person set Need__c
    half an hour before: syncd never read Need__c, so it cannot tell that edit from a value
    left alone. For one hold after the change it writes no tier (the waiting write is not
    sent), then writes it with Need__c's value as the audited before. It used to send Hot over
    the person's value at once, audited as replacing nothing (the mirror held Tier__c's)."""
    campaign = org.add_campaign("Newsletter")
    (ceo,) = org.add_leads(
        [sf_lead("Boss", "boss@acme.com", title="CEO")], modstamp=_seconds_ago(5)
    )
    now = {"t": datetime.now(UTC)}

    def config(field: str) -> Path:
        return _tier_config(tmp_path, org, campaign, field, rules=TIER_RULES, extra=_hold(1))

    with running_app(config("Tier__c"), clock=lambda: now["t"]) as app:
        org.faults.fail_next(1, method="PATCH")
        assert _cycle(app).startswith("failed")
        assert app.store.pending_count("salesforce") == 1
    org.update_lead(ceo, {"Need__c": "Cold"}, modstamp=_seconds_ago(1800))
    with running_app(config("Need__c"), clock=lambda: now["t"]) as app:
        # A plan without a pull says the next cycle reads every lead first.
        assert build_plan(app)["crms"]["salesforce"]["remapped"] == ["tier: Tier__c -> Need__c"]
        shown = CliRunner().invoke(cli, ["plan", "-c", str(config("Need__c"))])
        assert "fields mapped otherwise than the mirror was read under (tier: Tier__c -> " in (
            " ".join(shown.output.split())
        ), shown.output
        report = app.pipelines["salesforce"].run_cycle()
        assert (report.outcome, report.pulled, report.written) == ("ok", 1, 0), report.message
        assert org.lead(ceo)["Need__c"] == "Cold", "a person's value stands"
        assert app.store.pending_count("salesforce") == 0, "the waiting write is not sent"
        assert _outcomes(app, ceo, "tier") == [(AuditOutcome.SUPERSEDED, "Hot", HELD_FOR_REMAP)], (
            "not 'no longer wanted': the rules want it, the remap holds it back"
        )
        part = build_plan(app)["crms"]["salesforce"]
        assert part["remapped"] == [] and list(part["remap_held"]) == ["tier"]
        assert part["changing_leads"] == 0, "the plan shows what the cycle does"
        shown = CliRunner().invoke(cli, ["plan", "-c", str(config("Need__c"))])
        assert shown.exit_code == 0, shown.output
        assert "tier is written by no rule until " in " ".join(shown.output.split())
        now["t"] += timedelta(days=1, minutes=1)  # the hold after the change has ended
        after = app.pipelines["salesforce"].run_cycle()
        assert (after.outcome, after.written) == ("ok", 1), after.message
        assert [(o, a) for o, a, _ in _outcomes(app, ceo, "tier")][-1] == (
            AuditOutcome.APPLIED,
            "Hot",
        )
        audit = app.store.audit_of_run(after.run_id)
        assert [(r.field, r.before, r.after) for r in audit] == [("tier", "Cold", "Hot")]
    assert org.lead(ceo)["Need__c"] == "Hot"
    assert org.lead(ceo)["Tier__c"] is None, "the old field is left alone"


GOLD_RULES = """\
version: 1
name: tiers
mode: first_match
statuses: {New: {}, Open: {}, Nurture: {}}
rules:
  - id: gold-nurture
    when: {field: tier, eq: Gold}
    then:
      - set_status: Nurture
"""


def test_rules_reading_a_remapped_field_see_the_new_crm_fields_values_in_the_first_cycle(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    """Leads the CRM did not change since are read again at once: the rules never decide from
    the old field's values (which the mirror kept until each lead changed)."""
    campaign = org.add_campaign("Newsletter")
    gold_before, gold_after = org.add_leads(
        [
            sf_lead("A", "a@acme.com", title="Analyst", Tier__c="Gold", Need__c="Silver"),
            sf_lead("B", "b@acme.com", title="Analyst", Tier__c="Silver", Need__c="Gold"),
        ],
        modstamp=_seconds_ago(5),
    )

    def config(field: str) -> Path:
        return _tier_config(tmp_path, org, campaign, field, rules=GOLD_RULES)

    with running_app(config("Tier__c")) as app:
        assert _cycle(app).startswith("ok")
        assert _cycle(app).startswith("ok")
    assert org.lead(gold_before)["Status"] == "Nurture"
    assert org.lead(gold_after)["Status"] == "Open - Not Contacted"
    with running_app(config("Need__c")) as app:
        report = app.pipelines["salesforce"].run_cycle()
        assert (report.outcome, report.pulled, report.written) == ("ok", 2, 1), report.message
        mirrored = {
            lead: record.fields["tier"]
            for lead in (gold_before, gold_after)
            if (record := app.store.lead("salesforce", lead)) is not None
        }
        assert mirrored == {gold_before: "Silver", gold_after: "Gold"}
        again = app.pipelines["salesforce"].run_cycle()
        assert again.outcome == "ok" and again.pulled <= 1, "read again once, not every cycle"
    assert org.lead(gold_after)["Status"] == "Nurture"


# ---- 5. a connector disabled, then enabled ---------------------------------------------------


def test_waiting_decisions_are_delivered_once_when_the_connector_is_disabled_then_enabled(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    newsletters = f"{{newsletter: {campaign}}}"
    config = _config(tmp_path, org, newsletters=newsletters)
    with running_app(config) as app:
        ids = _decisions_waiting(app, org)
    disabled = _config(tmp_path, org, newsletters=newsletters, extra="  enabled: false\n")
    with running_app(disabled) as app:
        assert "salesforce" not in app.pipelines
    _nothing_written(org, campaign, ids)
    with running_app(_config(tmp_path, org, newsletters=newsletters)) as app:
        assert _cycle(app).startswith("ok")
        assert _cycle(app).startswith("ok")
        assert outbox_states(app) == {
            ("field", OutboxState.DONE): N_LEADS,
            ("membership", OutboxState.DONE): N_LEADS,
        }
    assert all(org.lead(i)["Status"] == "Nurture" for i in ids)
    assert _statuses_sent(org) == ["Nurture"] * (2 * N_LEADS), "refused once, applied once"
    assert org.campaign_members(campaign) == set(ids) and _members_sent(org) == N_LEADS


# ---- 6. batch size -------------------------------------------------------------------------


@pytest.mark.parametrize("lost", [False, True], ids=["refused", "answer_lost"])
def test_waiting_decisions_are_delivered_whole_and_once_when_batch_size_shrinks(
    tmp_path: Path, org: SalesforceEmulator, lost: bool
) -> None:
    campaign = org.add_campaign("Newsletter")
    newsletters = f"{{newsletter: {campaign}}}"
    with running_app(_config(tmp_path, org, newsletters=newsletters)) as app:
        ids = _stale_leads(org)
        if lost:  # applied, its answer lost: the rows are in doubt
            org.faults.drop_next(1, method="PATCH", after_applied=True)
        else:
            org.faults.fail_next(1, method="PATCH")
        assert _cycle(app).startswith("failed")
    small = _config(tmp_path, org, newsletters=newsletters, connector_extra="    batch_size: 1\n")
    with running_app(small) as app:
        assert _cycle(app).startswith("ok")
        assert outbox_states(app) == {
            ("field", OutboxState.DONE): N_LEADS,
            ("membership", OutboxState.DONE): N_LEADS,
        }
    patches = [e for e in org.journal.writes() if e.method == "PATCH" and e.applied]
    applied = sorted(r for e in patches for r in e.record_ids)
    assert applied == sorted(ids), "each status applied once"
    if not lost:
        assert all(len(e.record_ids) == 1 for e in patches), "sent in batches of the new size"
    assert org.campaign_members(campaign) == set(ids) and _members_sent(org) == N_LEADS


# ---- 7. holds ------------------------------------------------------------------------------


def _hold(days: int) -> str:
    return f"  hold_rep_edits_for: {days}d\n"


def test_waiting_status_write_is_not_sent_when_a_longer_hold_now_covers_a_persons_edit(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    newsletters = f"{{newsletter: {campaign}}}"
    (lead,) = org.add_leads(
        [sf_lead("Rep", "rep@acme.com", title="Analyst")], modstamp=_seconds_ago(10)
    )
    now = {"t": datetime.now(UTC)}
    short = _config(tmp_path, org, rules=HOLD_RULES, newsletters=newsletters, extra=_hold(1))
    with running_app(short, clock=lambda: now["t"]) as app:
        assert _cycle(app).startswith("ok")
        # A person sets the status and the title (which makes the rule want the lead).
        edited = _seconds_ago(0)
        org.update_lead(lead, {"Status": "Working - Contacted", "Title": "CEO"}, modstamp=edited)
        now["t"] = edited + timedelta(days=2)  # the 1-day hold has ended
        org.faults.fail_next(1, method="PATCH")
        assert _cycle(app).startswith("failed")
        assert app.store.pending_count("salesforce") == 1
    long = _config(tmp_path, org, rules=HOLD_RULES, newsletters=newsletters, extra=_hold(7))
    with running_app(long, clock=lambda: now["t"]) as app:
        now["t"] = edited + timedelta(days=2, minutes=1)
        report = app.pipelines["salesforce"].run_cycle()
        assert (report.outcome, report.held, report.written) == ("ok", 1, 0), report.message
        assert org.lead(lead)["Status"] == "Working - Contacted"
        assert app.store.pending_count("salesforce") == 0
        # Not "no longer wanted by the rules": they still want it; the hold keeps it back.
        assert _outcomes(app, lead, "status") == [
            (AuditOutcome.SUPERSEDED, "Nurture", HELD_FOR_PERSONS_EDIT)
        ]
        part = status_report(app)["crms"]["salesforce"]
        assert part["unsent"] == [
            {"outcome": "superseded", "reason": HELD_FOR_PERSONS_EDIT, "count": 1}
        ]

        now["t"] = edited + timedelta(days=7, minutes=1)  # the new hold has ended
        after = app.pipelines["salesforce"].run_cycle()
        assert (after.outcome, after.held, after.written) == ("ok", 0, 1), after.message
    assert org.lead(lead)["Status"] == "Nurture"


def test_held_lead_is_written_at_the_first_cycle_after_a_restart_shortens_the_hold_past_it(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    newsletters = f"{{newsletter: {campaign}}}"
    (lead,) = org.add_leads(
        [sf_lead("Rep", "rep@acme.com", title="Analyst")], modstamp=_seconds_ago(10)
    )
    now = {"t": datetime.now(UTC)}
    # No overlap re-read: the held lead is not pulled again, so only the new setting can make
    # it due before its old hold's end.
    once = "    overlap_seconds: 0\n"
    long = _config(
        tmp_path,
        org,
        rules=HOLD_RULES,
        newsletters=newsletters,
        extra=_hold(14),
        connector_extra=once,
    )
    with running_app(long, clock=lambda: now["t"]) as app:
        assert _cycle(app).startswith("ok")
        edited = _seconds_ago(0)
        org.update_lead(lead, {"Status": "Working - Contacted", "Title": "CEO"}, modstamp=edited)
        now["t"] = edited + timedelta(days=2)
        held = app.pipelines["salesforce"].run_cycle()
        assert (held.outcome, held.held, held.written) == ("ok", 1, 0), held.message
        now["t"] += timedelta(minutes=1)
        idle = app.pipelines["salesforce"].run_cycle()
        assert (idle.pulled, idle.evaluated) == (0, 0), "due only when its hold ends"
    short = _config(
        tmp_path,
        org,
        rules=HOLD_RULES,
        newsletters=newsletters,
        extra=_hold(1),
        connector_extra=once,
    )
    with running_app(short, clock=lambda: now["t"]) as app:
        now["t"] += timedelta(minutes=1)
        after = app.pipelines["salesforce"].run_cycle()
        assert (after.outcome, after.held, after.written) == ("ok", 0, 1), after.message
        assert status_report(app)["crms"]["salesforce"]["held"] == []
    assert org.lead(lead)["Status"] == "Nurture"


# Another integration puts every MQL back (not held: hold_rep_edits_for 0s); the rule moves it
# to MQL again, a loop the loop guard stops.
LOOP_RULES = """\
version: 1
name: qualify
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}}
rules:
  - id: new-to-mql
    when: {field: status, eq: New}
    then:
      - set_status: MQL
"""


def _loop_config(tmp_path: Path, org: SalesforceEmulator, campaign: str, max_changes: int) -> Path:
    config = _config(
        tmp_path, org, rules=LOOP_RULES, newsletters=f"{{newsletter: {campaign}}}", extra=_hold(0)
    )
    config.write_text(
        config.read_text() + f"loop_guard: {{max_changes: {max_changes}, window: 7d}}\n"
    )
    return config


def test_waiting_status_write_is_superseded_saying_the_loop_guard_holds_it_when_its_limit_drops(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    campaign = org.add_campaign("Newsletter")
    (lead,) = org.add_leads(
        [sf_lead("Loop", "loop@acme.com", title="CTO")], modstamp=_seconds_ago(10)
    )
    with running_app(_loop_config(tmp_path, org, campaign, 3)) as app:
        for _ in range(2):
            assert _cycle(app).startswith("ok")
            assert org.lead(lead)["Status"] == "MQL"
            org.update_lead(lead, {"Status": "Open - Not Contacted"})  # undone
        org.faults.fail_next(1, method="PATCH")
        assert _cycle(app).startswith("failed")
        assert app.store.pending_count("salesforce") == 1
    with running_app(_loop_config(tmp_path, org, campaign, 2)) as app:
        report = app.pipelines["salesforce"].run_cycle()
        assert (report.outcome, report.written) == ("ok", 0), report.message
        assert org.lead(lead)["Status"] == "Open - Not Contacted"
        # Not "no longer wanted by the rules": they still want it; the loop guard keeps it back.
        assert _outcomes(app, lead, "status")[-1] == (
            AuditOutcome.SUPERSEDED,
            "MQL",
            HELD_BY_LOOP_GUARD,
        )
        part = status_report(app)["crms"]["salesforce"]
        assert part["unsent"] == [
            {"outcome": "superseded", "reason": HELD_BY_LOOP_GUARD, "count": 1}
        ]
        assert [h["lead_id"] for h in part["loop_held"]] == [lead]


def test_a_leader_of_either_mapping_reads_every_lead_again_after_the_other_held_the_lease(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    """A rolling update runs replicas of both configs on one store, and the lease may pass
    back and forth: each time a replica leads after one of the other mapping pulled, it reads
    every lead again, so the mirror never keeps the other mapping's values."""
    from syncd.lease import Identity, Lease

    campaign = org.add_campaign("Newsletter")
    (lead,) = org.add_leads(
        [sf_lead("A", "a@acme.com", title="Analyst", Tier__c="T", Need__c="N")],
        modstamp=_seconds_ago(7200),  # out of the pull's overlap: read again only on purpose
    )
    configs = {}
    for field in ("Tier__c", "Need__c"):
        (tmp_path / field).mkdir()
        path = _tier_config(tmp_path / field, org, campaign, field, rules=GOLD_RULES)
        own = f"sqlite:///{tmp_path / field / 'state.db'}"
        path.write_text(path.read_text().replace(own, f"sqlite:///{tmp_path / 'shared.db'}"))
        configs[field] = path
    ttl = timedelta(seconds=30)
    with running_app(configs["Need__c"]) as new, running_app(configs["Tier__c"]) as old:

        def lead_with(app: App, holder: str) -> object:
            lease = Lease(
                app.store,
                "salesforce",
                ttl=ttl,
                renew_every=ttl / 3,
                identity=Identity(holder, 1, holder),
            )
            assert lease.try_acquire()
            app.pipelines["salesforce"].lease = lease
            report = app.pipelines["salesforce"].run_cycle()
            lease.release()
            assert report.outcome == "ok", report.message
            record = app.store.lead("salesforce", lead)
            assert record is not None
            return record.fields["tier"]

        assert lead_with(new, "new") == "N"
        assert lead_with(old, "old") == "T"
        assert lead_with(new, "new") == "N", "the new leader of the same process read it again"
