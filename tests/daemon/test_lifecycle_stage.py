"""Rules set HubSpot's lifecycle stage: forward once, declared backward moves cleared first and
audited twice, undeclared backward moves blocked with a reason (plan and explain show it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.lifecycle import LifecycleSettings
from syncd.pipeline import CycleReport
from syncd.plan import build_plan, explain_lead

from .harness import hs_contact, hs_write_calls, running_app

RULES = """\
version: 1
name: stages
mode: first_match
statuses:
  New: {}
rules:
  - id: to-mql
    when: {field: title, eq: Analyst}
    then:
      - set_field: {field: lifecycle_stage, value: MQL}
  - id: to-sql
    when: {field: title, eq: Buyer}
    then:
      - set_field: {field: lifecycle_stage, value: SQL}
"""


#: The lifecycle block these tests configure (HubSpot's default stage order).
LIFECYCLE = """\
  lifecycle:
    values: {MQL: marketingqualifiedlead, SAL: salesqualifiedlead, SQL: opportunity}
    backward: [[salesqualifiedlead, marketingqualifiedlead]]
"""


def stage_config(tmp_path: Path, *, rules: str = RULES, lifecycle: str = LIFECYCLE) -> Path:
    """An embedded HubSpot instance whose rules may set ``lifecycle_stage``, with the given
    ``lifecycle`` block ("" for none)."""
    (tmp_path / "rules.yaml").write_text(rules)
    path = tmp_path / "syncd.yaml"
    path.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
embedded: {{enabled: true, leads: 0, rep_activity: false}}
hubspot:
  interval: 60s
  settable_fields: [lifecycle_stage]
{lifecycle}""")
    return path


def test_rule_sets_lifecycle_stage_forward_once_backward_declared_clears_first_undeclared_blocked(
    tmp_path: Path,
) -> None:
    with running_app(stage_config(tmp_path)) as app:
        hs = app.embedded.hubspot
        forward, declared, undeclared = hs.add_contacts(
            [
                hs_contact("Fwd", "fwd@acme.com", title="Buyer", lifecyclestage="lead"),
                hs_contact(
                    "Back", "back@acme.com", title="Analyst", lifecyclestage="salesqualifiedlead"
                ),
                hs_contact("Stuck", "stuck@acme.com", title="Analyst", lifecyclestage="customer"),
            ]
        )
        pipeline = app.pipelines["hubspot"]
        pipeline.pull(CycleReport("hubspot", "plan"), until=app.clock())

        plan = build_plan(app)["crms"]["hubspot"]
        assert [b["lead_id"] for b in plan["blocked"]] == [undeclared]
        assert (
            "backward from 'customer' to 'marketingqualifiedlead'" in plan["blocked"][0]["reason"]
        )
        [explained] = explain_lead(app, "stuck@acme.com")
        assert "guard: lifecycle_stage would move backward" in explained["verdict"]

        report = pipeline.run_cycle()

        assert report.outcome == "ok" and report.blocked == 1 and report.failed == 0
        assert hs.contact(forward)["lifecyclestage"] == "opportunity"
        assert hs.contact(declared)["lifecyclestage"] == "marketingqualifiedlead"
        assert hs.contact(undeclared)["lifecyclestage"] == "customer"
        # the clear went alone, before the batch that set both stages
        batches = [
            (e.records, e.record_ids) for e in hs_write_calls(app) if "/batch/update" in e.path
        ]
        assert batches[0] == (1, (declared,))
        assert sum(n for n, _ in batches) == 3
        audit = app.store.audit_of_lead(declared, "hubspot")
        assert [(a.field, a.before, a.after, a.outcome) for a in audit] == [
            ("lifecycle_stage", "salesqualifiedlead", None, "applied"),
            ("lifecycle_stage", "salesqualifiedlead", "marketingqualifiedlead", "applied"),
        ]
        assert "cleared before moving" in (audit[0].message or "")
        assert [(a.before, a.after) for a in app.store.audit_of_lead(forward, "hubspot")] == [
            ("lead", "opportunity")
        ]
        assert app.store.audit_of_lead(undeclared, "hubspot") == []

        again = pipeline.run_cycle()  # the mirror holds the written stages: nothing to do
        assert (again.planned, again.written, again.blocked) == (0, 0, 1)


@pytest.mark.parametrize("backward", [[["lead", "customer"]], [["lead", "prospect"]]])
def test_lifecycle_backward_must_be_a_backward_move_of_the_order(backward) -> None:
    with pytest.raises(ValueError, match=r"lifecycle\.backward"):
        LifecycleSettings(backward=backward)


def test_the_lead_is_held_and_its_stage_not_set_again_when_a_person_edits_the_stage(
    tmp_path: Path,
) -> None:
    """README, "Lifecycle stage": a person's edit of a field a rule sets (the stage here) holds
    the lead like a status edit: the rule that still decides the stage does not set it again."""
    with running_app(stage_config(tmp_path)) as app:
        hs = app.embedded.hubspot
        [buyer] = hs.add_contacts(
            [hs_contact("Buyer", "buyer@acme.com", title="Buyer", lifecyclestage="lead")]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().written == 1
        assert hs.contact(buyer)["lifecyclestage"] == "opportunity"

        hs.update_contact(buyer, {"lifecyclestage": ""})  # a rep moves it back in the UI:
        hs.update_contact(buyer, {"lifecyclestage": "salesqualifiedlead"})  # cleared, then set
        again = pipeline.run_cycle()
        [explained] = explain_lead(app, "buyer@acme.com")

        assert (again.outcome, again.held, again.written) == ("ok", 1, 0)
        assert hs.contact(buyer)["lifecyclestage"] == "salesqualifiedlead"
        assert [(a.before, a.after) for a in app.store.audit_of_lead(buyer, "hubspot")] == [
            ("lead", "opportunity")
        ]
        assert explained["verdict"].startswith(
            "held: lifecycle_stage set to 'salesqualifiedlead' by a person at "
        )
