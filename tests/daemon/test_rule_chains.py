"""A lead the rules move twice in a row (SAL -> MQL -> Nurture) is written once, with the final
status, and audited once per change naming the whole chain of rules."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import (
    hs_contact,
    hs_write_calls,
    newsletter_id,
    running_app,
    write_config,
)

CHAIN_RULES = """\
version: 1
name: chain
statuses: {New: {}, Open: {}, MQL: {}, SAL: {}, Nurture: {}, Unqualified: {}, Archived: {},
           Converted: {converted: true}}
protected: [Converted]
rules:
  - id: sal-follow-up-breached
    when:
      all:
        - {field: status, eq: SAL}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: MQL
  - id: stale-90d
    when:
      all:
        - {field: status, eq: MQL}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""


def test_a_chain_of_two_rules_is_one_write_and_one_audit_row_naming_both(tmp_path: Path) -> None:
    config = write_config(tmp_path, rules=CHAIN_RULES, crms=("hubspot",))
    with running_app(config) as app:
        hs = app.embedded.hubspot
        (lead,) = hs.add_contacts(
            [hs_contact("Quiet", "q@acme.com", title="VP Sales", status="SAL", activity_days=120)]
        )
        report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok", report
        assert hs.contact(lead)["hs_lead_status"] == "NURTURE"
        assert hs.list_members(newsletter_id(app, "hubspot")) == {lead}
        status_writes = [c for c in hs_write_calls(app) if b"hs_lead_status" in c.body]
        assert len(status_writes) == 1, status_writes
        assert b"MQL" not in status_writes[0].body
        audit = app.store.audit_of_lead(lead, "hubspot")
        assert {(a.field, a.after, a.rule_id) for a in audit} == {
            ("status", "NURTURE", "sal-follow-up-breached -> stale-90d"),
            ("newsletter:newsletter", True, "sal-follow-up-breached -> stale-90d"),
        }
        # The next cycle finds the lead settled: nothing more to write.
        again = app.pipelines["hubspot"].run_cycle()
        assert (again.outcome, again.planned) == ("ok", 0)


FIELD_FLIP = """\
version: 1
name: flip
statuses: {New: {}, Open: {}, MQL: {}, SAL: {}, Nurture: {}, Unqualified: {}, Archived: {},
           Converted: {converted: true}}
rules:
  - id: webinar-to-event
    when: {field: industry, eq: Webinar}
    then: [{set_field: {field: industry, value: Event}}]
  - id: event-to-webinar
    when: {field: industry, eq: Event}
    then: [{set_field: {field: industry, value: Webinar}}]
"""


def test_a_lead_whose_rules_undo_each_other_is_blocked_and_never_written(tmp_path: Path) -> None:
    # Field-only loops pass `rules check` (it follows statuses); the engine catches them.
    config = write_config(tmp_path, rules=FIELD_FLIP, crms=("hubspot",))
    config.write_text(
        config.read_text().replace(
            "hubspot:\n  enabled: true", "hubspot:\n  enabled: true\n  settable_fields: [industry]"
        )
    )
    with running_app(config) as app:
        hs = app.embedded.hubspot
        (lead,) = hs.add_contacts(
            [hs_contact("Loop", "l@acme.com", title="VP Sales", industry="Webinar")]
        )
        before = len(hs_write_calls(app))
        report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok", report
        assert (report.planned, report.blocked) == (0, 1)
        assert len(hs_write_calls(app)) == before
        assert hs.contact(lead)["industry"] == "Webinar"


FLIP = """\
version: 1
name: flip
statuses: {New: {}, Nurture: {}}
rules:
  - id: new-to-nurture
    when: {field: status, eq: New}
    then: [{set_status: Nurture}]
  - id: nurture-to-new
    when: {field: status, eq: Nurture}
    then: [{set_status: New}]
"""


def test_rules_check_rejects_rules_that_undo_each_other_naming_both(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from syncd.cli import app as cli

    path = tmp_path / "flip.yaml"
    path.write_text(FLIP)
    result = CliRunner().invoke(cli, ["rules", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert (
        "rules 'new-to-nurture' and 'nurture-to-new' undo each other: New (new-to-nurture)"
        " -> Nurture (nurture-to-new) -> New" in result.output
    )
    assert f"{path}:5:5:" in result.output
