"""``syncd retry``: writes the CRM refused for good are planned again once the admin fixed
their cause, and only then; delivered to the connector's leader, even on kept answers.

Every test drives whole cycles against the emulators through the real client libraries and
runs the command as a user would (typer's runner on the same config and state store)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text
from typer.testing import CliRunner

from syncd.app import App
from syncd.cli import app as cli
from syncd.lease import Lease, connector_lease
from syncd.plan import status_report
from syncd.state import RetryRequestRow, StateStore

from .harness import hs_contact, newsletter_id, running_app, sf_lead, write_config

VALIDATION = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
RULE_TEXT = "Nurture needs a Rating"

#: Status and newsletter are decided by separate rules, so a lead's one refusal is one write.
SPLIT_RULES = """\
version: 1
name: retry
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: buyers-newsletter
    when: {field: title, eq: Buyer}
    then:
      - add_to_newsletter: newsletter
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
"""


def _retry(config: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["retry", "-c", str(config), *args])


def _status(config: Path) -> str:
    shown = CliRunner().invoke(cli, ["status", "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    return str(shown.output)


def _outcomes(app: App, lead_id: str, field: str) -> list[str]:
    return [str(a.outcome) for a in app.store.audit_of_lead(lead_id) if a.field == field]


def _failed(app: App) -> dict[str, str]:
    return {
        f["lead_id"]: f["error_code"] for f in status_report(app)["crms"]["salesforce"]["failed"]
    }


def _requests(store: StateStore) -> list[Any]:
    table = RetryRequestRow.__table__
    with store.reading() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


def test_a_refused_status_write_is_sent_once_after_syncd_retry_when_the_admin_fixed_the_org(
    tmp_path: Path, store_url: str
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url, rules=SPLIT_RULES)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        [lead_id] = sf.add_leads(
            [sf_lead("V", "v@acme.com", title="Analyst", activity_days=200)],
            modstamp=datetime.now(UTC) - timedelta(minutes=1),
        )
        sf.faults.validation_error([lead_id], RULE_TEXT)
        pipeline = app.pipelines["salesforce"]

        first = pipeline.run_cycle()
        assert (first.outcome, first.written, first.failed) == ("ok", 0, 1), first.message
        for _ in range(2):  # refused for good: not sent again while nothing changes
            again = pipeline.run_cycle()
            assert (again.outcome, again.written, again.failed) == ("ok", 0, 0), again.message
        assert _failed(app) == {lead_id: VALIDATION}
        assert _outcomes(app, lead_id, "status") == ["failed"]
        assert "syncd retry --crm salesforce" in _status(config)

        sf.faults.clear()  # the admin fixes the validation rule
        queued = _retry(config, "--crm", "salesforce", "--yes")
        assert queued.exit_code == 0, queued.output
        assert "queued retry request 1 for salesforce" in queued.output
        assert sf.lead(lead_id)["Status"] == "Open - Not Contacted"  # the command writes no lead
        assert "retry request 1 by " in _status(config)

        retried = pipeline.run_cycle()
        assert (retried.outcome, retried.written, retried.failed) == ("ok", 1, 0), retried.message
        assert sf.lead(lead_id)["Status"] == "Nurture"
        for _ in range(2):
            after = pipeline.run_cycle()
            assert (after.outcome, after.written) == ("ok", 0), after.message
        assert _outcomes(app, lead_id, "status") == ["failed", "applied"]
        assert _failed(app) == {}
        assert "retry request" not in _status(config)
        [request] = _requests(app.store)
        assert (request.applied_run_id, request.applied_leads) == (retried.run_id, 1)
        [asked] = [a for a in app.store.audit_of_lead(lead_id) if a.outcome == "retry_requested"]
        assert asked.run_id == retried.run_id and asked.error_code == VALIDATION
        assert "retry requested by " in (asked.message or "") and RULE_TEXT in (asked.message or "")
    shown = CliRunner().invoke(cli, ["audit", lead_id, "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "retry_requested: retry requested by" in shown.output


def test_a_newsletter_add_refused_for_a_deleted_campaign_is_made_once_after_restore_and_retry(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        [lead_id] = sf.add_leads(
            [sf_lead("B", "b@acme.com", title="Buyer")],
            modstamp=datetime.now(UTC) - timedelta(minutes=1),
        )
        campaign = newsletter_id(app, "salesforce")
        sf.delete_campaign(campaign)
        pipeline = app.pipelines["salesforce"]

        first = pipeline.run_cycle()
        assert (first.outcome, first.written, first.failed) == ("ok", 0, 1), first.message
        again = pipeline.run_cycle()
        assert (again.written, again.failed) == (0, 0)
        assert _failed(app) == {lead_id: "ENTITY_IS_DELETED"}

        sf.undelete_campaign(campaign)  # the admin restores it from the recycle bin
        queued = _retry(config, "--crm", "salesforce", "--code", "ENTITY_IS_DELETED", "--yes")
        assert queued.exit_code == 0, queued.output

        retried = pipeline.run_cycle()
        assert (retried.outcome, retried.written, retried.failed) == ("ok", 1, 0), retried.message
        after = pipeline.run_cycle()
        assert (after.written, after.failed) == (0, 0)
        assert sf.campaign_members(campaign) == {lead_id}
        assert _outcomes(app, lead_id, "newsletter:newsletter") == ["failed", "applied"]


def test_a_hubspot_status_refused_for_a_removed_option_is_written_once_after_retry(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("hubspot",), rules=SPLIT_RULES)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        [contact] = hs.add_contacts(
            [hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)]
        )
        # An admin removes the option start-up checked (HubSpot's property settings).
        kept = [{"value": v} for v in hs.status_options() if v != "NURTURE"]
        hs.properties.set_options("hs_lead_status", kept, merge=False, stamp="2026-01-01T00:00:00Z")
        pipeline = app.pipelines["hubspot"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.written, first.failed) == ("ok", 0, 1), first.message
        again = pipeline.run_cycle()
        assert (again.written, again.failed) == (0, 0)

        hs.properties.set_options(
            "hs_lead_status", [{"value": "NURTURE"}], merge=True, stamp="2026-01-01T00:00:00Z"
        )  # and puts it back
        queued = _retry(config, "--crm", "hubspot", "--code", "INVALID_OPTION", "--yes")
        assert queued.exit_code == 0, queued.output
        retried = pipeline.run_cycle()
        assert (retried.outcome, retried.written, retried.failed) == ("ok", 1, 0), retried.message
        after = pipeline.run_cycle()
        assert (after.written, after.failed) == (0, 0)
        assert hs.contact(contact)["hs_lead_status"] == "NURTURE"
        assert _outcomes(app, contact, "status") == ["failed", "applied"]
        assert _outcomes(app, contact, "retry") == ["retry_requested"]


def test_a_lead_a_person_edited_stays_held_when_a_retry_is_applied(tmp_path: Path) -> None:
    # "early": a rep edits its status before the retry is asked (the edit holds it and clears
    # the refusal: nothing to retry). "late": a rep edits it after the request was queued and
    # before the leader applied it: the request clears the refusal, and the pull of the same
    # cycle sees the edit, which holds the lead before anything is planned.
    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        early, late, free = sf.add_leads(
            [
                sf_lead(n, f"{n.lower()}@acme.com", title="Analyst", activity_days=200)
                for n in ("E", "L", "F")
            ],
            modstamp=datetime.now(UTC) - timedelta(minutes=1),
        )
        sf.faults.validation_error([early, late, free], RULE_TEXT)
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.failed) == ("ok", 3), first.message

        sf.update_lead(early, {"Status": "Working - Contacted"})
        seen = pipeline.run_cycle()
        assert (seen.outcome, seen.written, seen.held) == ("ok", 0, 1), seen.message
        sf.faults.clear()
        dry = _retry(config, "--crm", "salesforce")
        assert late in dry.output and free in dry.output and early not in dry.output, dry.output
        assert _retry(config, "--crm", "salesforce", "--yes").exit_code == 0
        sf.update_lead(late, {"Status": "Working - Contacted"})

        retried = pipeline.run_cycle()
        assert (retried.outcome, retried.written, retried.held) == ("ok", 1, 2), retried.message
        assert [sf.lead(i)["Status"] for i in (early, late, free)] == [
            "Working - Contacted",
            "Working - Contacted",
            "Nurture",
        ]
        assert _outcomes(app, late, "retry") == ["retry_requested"]
        assert _outcomes(app, early, "retry") == []
        assert _outcomes(app, late, "status") == _outcomes(app, early, "status") == ["failed"]
        assert _requests(app.store)[0].applied_leads == 2


def _three_refusals(app: App) -> tuple[str, str, str]:
    """Two leads whose status write a validation rule refused, one whose newsletter add the
    deleted Campaign refused; each refusal recorded by a cycle."""
    sf = app.embedded.salesforce
    a, b, c = sf.add_leads(
        [
            sf_lead("A", "a@acme.com", title="Analyst", activity_days=200),
            sf_lead("B", "b@acme.com", title="Analyst", activity_days=200),
            sf_lead("C", "c@acme.com", title="Buyer"),
        ],
        modstamp=datetime.now(UTC) - timedelta(minutes=1),
    )
    sf.faults.validation_error([a, b], RULE_TEXT)
    sf.delete_campaign(newsletter_id(app, "salesforce"))
    report = app.pipelines["salesforce"].run_cycle()
    assert (report.outcome, report.failed) == ("ok", 3), report.message
    return a, b, c


def _store_rows(store: StateStore) -> dict[str, list[Any]]:
    with store.reading() as conn:
        return {
            t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).all()), key=repr)
            for t in ("lead", "outbox", "audit", "retry_request", "meta")
        }


def test_a_dry_run_lists_by_code_and_writes_nothing_and_code_and_lead_narrow_it(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config) as app:
        a, b, c = _three_refusals(app)
        sf = app.embedded.salesforce
        sf.faults.clear()
        calls, before = len(sf.journal.entries()), _store_rows(app.store)

        dry = _retry(config, "--crm", "salesforce")
        assert dry.exit_code == 0, dry.output
        assert "3 leads whose refused writes would be planned again" in dry.output
        assert f"{VALIDATION} ×2: {RULE_TEXT}" in dry.output
        assert "ENTITY_IS_DELETED ×1: " in dry.output
        assert all(i in dry.output for i in (a, b, c))
        assert "dry run: nothing was queued" in dry.output
        by_code = _retry(config, "--crm", "salesforce", "--code", "ENTITY_IS_DELETED")
        assert c in by_code.output and a not in by_code.output and b not in by_code.output
        by_lead = _retry(config, "--crm", "salesforce", "--lead", a, "--lead", "C@acme.com")
        assert a in by_lead.output and c in by_lead.output and b not in by_lead.output
        unknown = _retry(config, "--crm", "salesforce", "--lead", "00Q000000000000AAA", "-y")
        assert unknown.exit_code == 2
        assert "--lead '00Q000000000000AAA': no salesforce lead in the mirror" in unknown.output
        none = _retry(config, "--crm", "salesforce", "--code", "NO_SUCH_CODE")
        assert none.exit_code == 0 and "nothing to retry" in none.output
        assert _store_rows(app.store) == before
        assert len(sf.journal.entries()) == calls  # no CRM call

        narrowed = _retry(config, "--crm", "salesforce", "--code", VALIDATION, "--lead", a, "-y")
        assert narrowed.exit_code == 0, narrowed.output
        retried = app.pipelines["salesforce"].run_cycle()
        assert (retried.outcome, retried.written, retried.failed) == ("ok", 1, 0), retried.message
        assert sf.lead(a)["Status"] == "Nurture"
        assert sf.lead(b)["Status"] == "Open - Not Contacted"
        assert _failed(app) == {b: VALIDATION, c: "ENTITY_IS_DELETED"}


def test_retry_lead_finds_the_lead_when_given_its_15_character_salesforce_id(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config) as app:
        a, b, c = _three_refusals(app)
        short = _retry(config, "--crm", "salesforce", "--lead", a[:15])
        assert short.exit_code == 0, short.output
        assert "1 lead whose refused writes would be planned again" in short.output
        assert a in short.output and b not in short.output and c not in short.output
        malformed = _retry(config, "--crm", "salesforce", "--lead", a[:14] + "-")
        assert malformed.exit_code == 2
        assert "no salesforce lead in the mirror has this id or email" in malformed.output


def test_an_unknown_connector_is_a_clear_error_with_exit_2_when_retry_names_it(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    result = _retry(config, "--crm", "pipedrive", "--yes")
    assert result.exit_code == 2
    assert "--crm 'pipedrive' is not a connector configured" in result.output
    assert "configured: salesforce" in result.output
    assert "Traceback" not in result.output


# ---- a running daemon's leader on kept answers ------------------------------------------------


@contextmanager
def _leading(
    tmp_path: Path, store_url: str, now: dict[str, datetime]
) -> Iterator[tuple[App, Path, Lease]]:
    """An app on the clock ``now`` whose Salesforce pipeline holds the lease as a daemon's
    does; its heartbeat is driven by the test (``Lease.renew``, what the heartbeat thread runs
    every ``lease.renewal``)."""
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url, rules=SPLIT_RULES)
    with running_app(config, clock=lambda: now["t"]) as app:
        lease = connector_lease(app.store, app.settings, "salesforce", announce=logging.DEBUG)
        assert lease.try_acquire()
        app.pipelines["salesforce"].lease = lease
        try:
            yield app, config, lease
        finally:
            lease.close()


def _sent(app: App, work: Any) -> tuple[Any, list[str]]:
    """``work()``'s result and the statements it sent to the store."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(app.store.engine, "before_cursor_execute", capture)
    try:
        return work(), sent
    finally:
        event.remove(app.store.engine, "before_cursor_execute", capture)


def test_a_leader_on_kept_answers_applies_a_retry_at_the_first_cycle_after_a_lease_renewal(
    tmp_path: Path, store_url: str, starts: list[str]
) -> None:
    now = {"t": datetime.now(UTC)}

    def cycle() -> Any:  # as the scheduler runs them, an interval apart
        now["t"] += timedelta(seconds=60)
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        return report

    with _leading(tmp_path, store_url, now) as (app, config, lease):
        sf = app.embedded.salesforce
        [lead_id] = sf.add_leads(
            [sf_lead("V", "v@acme.com", title="Analyst", activity_days=200)],
            modstamp=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
        )
        sf.faults.validation_error([lead_id], RULE_TEXT)
        pipeline = app.pipelines["salesforce"]
        assert cycle().failed == 1
        idle = [cycle() for _ in range(3)]
        assert all(r.written == r.pulled == 0 for r in idle)
        assert idle[-1].run_id not in starts  # the leader's idle cycles are on kept answers

        sf.faults.clear()
        assert _retry(config, "--crm", "salesforce", "--yes").exit_code == 0
        # Before the heartbeat renews, the cycle stands on its kept answers: it reads nothing,
        # the request included (no statement added to an idle cycle).
        kept, statements = _sent(app, cycle)
        assert kept.run_id not in starts and kept.written == 0
        assert not [s for s in statements if "retry_request" in s], statements
        assert _requests(app.store)[0].applied_at is None

        assert lease.renew()  # the heartbeat's renewal, every lease.renewal
        retried = cycle()  # the next cycle reads the store and applies it
        assert retried.run_id in starts
        assert (retried.written, retried.failed) == (1, 0), retried.message
        assert sf.lead(lead_id)["Status"] == "Nurture"
        [request] = _requests(app.store)
        assert (request.applied_run_id, request.applied_leads) == (retried.run_id, 1)

        # Applied, the request no longer keeps the leader off its kept answers.
        assert lease.renew()
        settled = [cycle() for _ in range(3)]
        assert all(r.written == 0 for r in settled)
        assert settled[-1].run_id not in starts


def test_a_leader_whose_heartbeat_runs_applies_a_retry_within_a_renewal_and_a_cycle(
    tmp_path: Path, starts: list[str]
) -> None:
    """The heartbeat thread itself, renewing every 0.1 s, and cycles as far apart: a cycle
    soon after the request applies it (README: within one lease.renew_every plus one
    interval), where kept answers alone would have stood for an hour of cycles."""
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config, clock=lambda: now["t"]) as app:
        renew_every = timedelta(milliseconds=100)
        lease = Lease(app.store, "salesforce", ttl=timedelta(seconds=5), renew_every=renew_every)
        assert lease.try_acquire()
        pipeline = app.pipelines["salesforce"]
        pipeline.lease = lease
        lease.start(standby=False)
        try:
            sf = app.embedded.salesforce
            [lead_id] = sf.add_leads(
                [sf_lead("V", "v@acme.com", title="Analyst", activity_days=200)],
                modstamp=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
            )
            sf.faults.validation_error([lead_id], RULE_TEXT)
            reports = []
            for _ in range(4):
                now["t"] += timedelta(seconds=60)
                reports.append(pipeline.run_cycle())
            assert reports[0].failed == 1 and reports[-1].run_id not in starts

            sf.faults.clear()
            assert _retry(config, "--crm", "salesforce", "--yes").exit_code == 0
            # Cycles a (fake) minute apart, spaced by one heartbeat period in real time (the
            # scheduler's interval, shrunk); fewer than LIFE's worth of them, so kept answers
            # would stand throughout but for the renewal's news.
            spacing = threading.Event()
            for _ in range(20):
                spacing.wait(renew_every.total_seconds())
                now["t"] += timedelta(seconds=60)
                applied = pipeline.run_cycle()
                if _requests(app.store)[0].applied_at is not None:
                    break
            else:
                raise AssertionError("20 cycles later the request was still not applied")
            assert applied.run_id in starts and applied.written == 1, applied.message
            assert sf.lead(lead_id)["Status"] == "Nurture"
        finally:
            lease.close()
