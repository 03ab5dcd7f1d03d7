"""The status history ledger holds exactly the transitions that happened: syncd's confirmed
writes (``written``) and a person's edits seen by a pull (``pulled``), written in the same
transactions as the mirror, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.daemon.test_lifecycle_stage import stage_config

STALE_RULES = """\
version: 1
name: ledger
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
"""

SF_SECTION = """
salesforce:
  status_values: {New: Open - Not Contacted, Open: Working - Contacted, Nurture: Nurture,
                  Converted: Closed - Converted}
"""


def _transitions(app: Any, crm: str, lead_id: str) -> list[tuple[Any, ...]]:
    return [
        (h.field, h.from_value, h.to_value, h.actor, h.source, h.rule_id)
        for h in app.store.history_of_lead(crm, lead_id)
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


def test_ledger_equals_the_rule_writes_and_the_persons_edit_salesforce(
    tmp_path: Path, state_url: str | None
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",), state_url=state_url)
    with running_app(config) as app:
        emu = app.embedded.salesforce
        stale, fresh = emu.add_leads(
            [
                sf_lead("Stale", "s@acme.com", title="CTO", activity_days=200),
                sf_lead("Fresh", "f@acme.com", title="CTO", activity_days=2),
            ]
        )
        pipeline = app.pipelines["salesforce"]
        assert pipeline.run_cycle().written == 1
        run_id = app.store.audit_of_lead(stale)[-1].run_id
        # A rep works the fresh lead, and takes the stale one back from Nurture (a second
        # later: Salesforce stamps whole seconds).
        time.sleep(1.1)
        emu.update_lead(fresh, {"Status": "Working - Contacted"})
        emu.update_lead(stale, {"Status": "Working - Contacted"})
        second = pipeline.run_cycle()
        assert second.written == 0 and second.held == 2
        pipeline.run_cycle()  # nothing changed: nothing added
        stale_rows = app.store.history_of_lead("salesforce", stale)
        fresh_rows = app.store.history_of_lead("salesforce", fresh)
        rep = emu.rep_user_id

    assert [
        (h.field, h.from_value, h.to_value, h.actor, h.source, h.rule_id, h.run_id)
        for h in stale_rows
    ] == [
        ("status", "Open - Not Contacted", "Nurture", "syncd", "written", "stale-nurture", run_id),
        ("status", "Nurture", "Working - Contacted", "person", "pulled", None, None),
    ]
    assert stale_rows[1].actor_id == rep  # Salesforce says who: LastModifiedById
    assert [(h.from_value, h.to_value, h.actor, h.source, h.actor_id) for h in fresh_rows] == [
        ("Open - Not Contacted", "Working - Contacted", "person", "pulled", rep)
    ]


def test_ledger_records_hubspot_status_writes_and_a_reps_edit_without_a_user_id(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("hubspot",))
    with running_app(config) as app:
        emu = app.embedded.hubspot
        (stale,) = emu.add_contacts([hs_contact("S", "s@acme.com", title="CTO", activity_days=200)])
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 1
        time.sleep(0.01)  # HubSpot stamps milliseconds
        emu.update_contact(stale, {"hs_lead_status": "OPEN"})
        assert pipeline.run_cycle().held == 1
        rows = _transitions(app, "hubspot", stale)

    assert rows == [
        # HubSpot's history, read at the first sync: the contact was created (imported) as NEW.
        ("status", None, "NEW", "automation", "backfill", None),
        ("status", "NEW", "NURTURE", "syncd", "written", "stale-nurture"),
        ("status", "NURTURE", "OPEN", "person", "pulled", None),
    ]


def test_ledger_records_lifecycle_stage_writes_and_a_persons_stage_change(tmp_path: Path) -> None:
    with running_app(stage_config(tmp_path)) as app:
        emu = app.embedded.hubspot
        (buyer,) = emu.add_contacts(
            [hs_contact("Fwd", "fwd@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 1
        time.sleep(0.01)  # HubSpot stamps milliseconds
        emu.update_contact(buyer, {"lifecyclestage": "customer"})
        pipeline.run_cycle()
        rows = [r for r in _transitions(app, "hubspot", buyer) if r[0] == "lifecycle_stage"]

    # HubSpot does not say who modified a contact; a stage a rule sets is judged as the status
    # is (syncd.holds): not syncd's write, so a person's.
    assert rows == [
        ("lifecycle_stage", "lead", "opportunity", "syncd", "written", "to-sql"),
        ("lifecycle_stage", "opportunity", "customer", "person", "pulled", None),
    ]
