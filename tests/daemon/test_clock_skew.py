"""Clocks that disagree: syncd's host, the CRM and the state store.

In the field the CRM stamps a change by its own clock (HubSpot ``lastmodifieddate``,
Salesforce ``SystemModstamp``), which runs seconds to minutes off syncd's, and NTP steps the
host's clock. Each test drives whole cycles of the real App against an emulator whose clock is
set apart from syncd's, through the real client libraries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
from connectors.kit.server_clock import answer_date, crm_behind, read_started
from connectors.salesforce import SalesforceConnector
from connectors.testing.hubspot import EmulatorClock, HubSpotEmulator
from connectors.testing.salesforce import SalesforceEmulator
from syncd.app import App
from syncd.pipeline import CycleReport
from syncd.revert import plan_revert
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.daemon.test_ledger import STALE_RULES
from tests.daemon.test_ledger_races import _edit_in_flight
from tests.salesforce.support import config_for

SKEW = timedelta(minutes=2)

RULES = """\
version: 1
name: skew
mode: first_match
statuses:
  New: {}
  Open: {}
  MQL: {}
rules:
  - id: cto-mql
    when: {field: title, eq: CTO}
    then:
      - set_status: MQL
"""


class HostClock:
    """syncd's clock: the CRM's plus ``offset`` (positive: syncd runs ahead of the CRM)."""

    def __init__(self, crm: EmulatorClock, offset: timedelta) -> None:
        self.crm, self.offset = crm, offset

    def now(self) -> datetime:
        return self.crm.now() + self.offset

    def advance(self, seconds: float) -> None:
        """Time passes for both (a pacing or retry wait)."""
        self.crm.advance(seconds)


@contextmanager
def _hubspot(
    tmp_path: Path, host_ahead_by: timedelta, *, overlap_seconds: int = 60, hold: str = "14d"
) -> Iterator[tuple[App, HubSpotEmulator, HostClock]]:
    crm = EmulatorClock(frozen_at=datetime.now(UTC).replace(microsecond=0) - timedelta(days=1))
    host = HostClock(crm, host_ahead_by)
    config = write_config(tmp_path, rules=RULES, crms=("hubspot",))
    config.write_text(
        config.read_text().replace(
            "  interval: 60s\n", f"  interval: 60s\n  hold_rep_edits_for: {hold}\n"
        )
    )
    with HubSpotEmulator(clock=crm) as hs:
        connector = HubSpotConnector(
            HubSpotConfig(
                base_url=hs.base_url,
                auth=PrivateAppAuth(access_token=hs.access_token),
                allow_add_status_options=True,
                archived_scan_interval_seconds=10**6,
                overlap_seconds=overlap_seconds,
                timeout_seconds=5,
            ),
            clock=host.now,
            sleep=host.advance,
        )
        with running_app(config, connectors={"hubspot": connector}, clock=host.now) as app:
            yield app, hs, host


def _cycles_until(pipeline: Any, done: Callable[[], bool], host: HostClock, *, cycles: int) -> int:
    """Run up to ``cycles`` cycles a minute apart; how many it took until ``done`` (0: never)."""
    for n in range(1, cycles + 1):
        report = pipeline.run_cycle()
        assert report.outcome == "ok", report.message
        if done():
            return n
        host.advance(60)
    return 0


def _title(app: App, contact: str) -> object:
    lead = app.store.lead("hubspot", contact)
    return None if lead is None else lead.fields.get("title")


@pytest.mark.parametrize("host_ahead_by", [SKEW, -SKEW], ids=["crm-behind", "crm-ahead"])
def test_a_contact_stamped_before_it_became_searchable_is_mirrored_when_the_crm_clock_is_skewed(
    tmp_path: Path, host_ahead_by: timedelta
) -> None:
    """A contact whose lastmodifieddate is earlier than a change the pull already read (search
    is eventually consistent, crm-api C2: it was not searchable yet): the cursor has passed it,
    and only the re-read behind the cursor finds it. That re-read reaches back from when the
    read happened; by syncd's clock, with the CRM's 2 min behind, it began past the contact's
    lastmodifieddate and the contact was never mirrored."""
    with _hubspot(tmp_path, host_ahead_by) as (app, hs, host):
        [early] = hs.add_contacts([hs_contact("Early", "early@acme.com", title="CFO")])
        host.advance(600)
        assert (
            _cycles_until(
                app.pipelines["hubspot"], lambda: _title(app, early) == "CFO", host, cycles=1
            )
            == 1
        )
        host.advance(600)

        stamped = hs.clock.now() - timedelta(seconds=5)
        hs.update_contact(early, {"jobtitle": "VP"})
        host.advance(1 + max(0, -host_ahead_by.total_seconds()))  # inside syncd's read window
        first = app.pipelines["hubspot"].run_cycle()
        assert first.outcome == "ok", first.message
        assert _title(app, early) == "VP", "the change is read: the cursor is past it"

        [late] = hs.add_contacts(
            [
                hs_contact(
                    "Late",
                    "late@acme.com",
                    title="CTO",
                    lastmodifieddate=stamped,
                    createdate=stamped,
                )
            ]
        )
        host.advance(60)
        took = _cycles_until(
            app.pipelines["hubspot"], lambda: _title(app, late) == "CTO", host, cycles=3
        )
        assert took in (1, 2), "the late contact is mirrored within a cycle or two"
        assert hs.contact(late)["hs_lead_status"] == "MQL", "and its rule acts on it"


@pytest.mark.parametrize("crm_ahead_by", [-SKEW, SKEW], ids=["crm-behind", "crm-ahead"])
@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_persons_edit_between_read_and_write_wins_when_the_crm_clock_is_skewed(
    tmp_path: Path, crm: str, crm_ahead_by: timedelta
) -> None:
    """The race check looks for people's edits since shortly before syncd's read. Salesforce's
    look is a LeadHistory query by CreatedDate, the CRM's clock (crm-api A16): reckoned by
    syncd's clock alone, with the CRM's 2 min behind, it started after the person's edit, found
    nothing, and syncd's write stood over the person's value."""
    config = write_config(tmp_path, rules=STALE_RULES, crms=(crm,))
    with running_app(config) as app:
        pipeline = app.pipelines[crm]
        emu: Any
        if crm == "salesforce":
            emu = app.embedded.salesforce
            raced, calm = emu.add_leads(
                [
                    sf_lead("Raced", "r@acme.com", title="CTO", activity_days=200),
                    sf_lead("Calm", "c@acme.com", title="CTO", activity_days=200),
                ]
            )
            person, nurture = "Working - Contacted", "Nurture"
            _edit_in_flight(pipeline, lambda: emu.update_lead(raced, {"Status": person}))

            def status_of(i: str) -> str:
                return str(emu.lead(i)["Status"])
        else:
            emu = app.embedded.hubspot
            raced, calm = emu.add_contacts(
                [
                    hs_contact("Raced", "r@acme.com", title="CTO", activity_days=200),
                    hs_contact("Calm", "c@acme.com", title="CTO", activity_days=200),
                ]
            )
            person, nurture = "OPEN", "NURTURE"
            _edit_in_flight(pipeline, lambda: emu.update_contact(raced, {"hs_lead_status": person}))

            def status_of(i: str) -> str:
                return str(emu.contact(i)["hs_lead_status"])

        emu.clock.advance(crm_ahead_by.total_seconds())
        first = pipeline.run_cycle()
        assert first.outcome == "ok", first.message
        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        raced_now, calm_now = status_of(raced), status_of(calm)
        audit = [(a.after, a.outcome, a.rule_id) for a in app.store.audit_of_lead(raced)]

    assert (raced_now, calm_now) == (person, nurture), "the person's edit stands"
    assert (person, "applied", "restore-rep-edit") in audit, audit


@pytest.mark.parametrize("host_ahead_by", [SKEW, -SKEW], ids=["crm-behind", "crm-ahead"])
def test_a_lead_committed_late_is_mirrored_when_the_salesforce_clock_is_skewed(
    tmp_path: Path, host_ahead_by: timedelta
) -> None:
    """A lead whose SystemModstamp is earlier than a change the pull already read (its
    transaction committed late, crm-api A3.2): only the re-read behind the cursor finds it.
    With overlap_seconds 60 and Salesforce's clock 2 min behind syncd's, that re-read, reckoned
    from the read's start by syncd's clock, began past the lead, and it was never mirrored."""
    crm = EmulatorClock(frozen_at=datetime.now(UTC).replace(microsecond=0) - timedelta(days=1))
    host = HostClock(crm, host_ahead_by)
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    with SalesforceEmulator(clock=crm) as sf:
        connector = SalesforceConnector(
            config_for(sf, overlap_seconds=60, lag_seconds=5), clock=host.now, sleep=host.advance
        )
        with running_app(config, connectors={"salesforce": connector}, clock=host.now) as app:
            pipeline = app.pipelines["salesforce"]

            def title(lead: str) -> object:
                row = app.store.lead("salesforce", lead)
                return None if row is None else row.fields.get("title")

            [early] = sf.add_leads([sf_lead("Early", "early@acme.com", title="CFO")])
            host.advance(600)
            assert pipeline.run_cycle().outcome == "ok"
            assert title(early) == "CFO"
            host.advance(600)

            stamped = crm.now() - timedelta(seconds=3)
            sf.update_lead(early, {"Title": "VP"})
            host.advance(10 + max(0, -host_ahead_by.total_seconds()))  # past the lag
            first = pipeline.run_cycle()
            assert first.outcome == "ok", first.message
            assert title(early) == "VP", "the change is read: the cursor is past it"

            [late] = sf.add_leads([sf_lead("Late", "late@acme.com", title="CTO")], modstamp=stamped)
            host.advance(60)
            took = _cycles_until(pipeline, lambda: title(late) == "CTO", host, cycles=3)
            assert took in (1, 2), "the late lead is mirrored within a cycle or two"


def test_nothing_is_lost_or_written_twice_when_syncds_clock_steps_back_ten_minutes(
    tmp_path: Path,
) -> None:
    """NTP steps syncd's clock back 10 min between two cycles: its read window then ends 10 min
    before HubSpot's now. A change made after the step waits until syncd's clock reaches its
    lastmodifieddate (no later than the step), the cursor never passes it, and a lead written
    before the step is not written again."""
    with _hubspot(tmp_path, timedelta(0)) as (app, hs, host):
        [before, after] = hs.add_contacts(
            [
                hs_contact("Before", "before@acme.com", title="CTO"),
                hs_contact("After", "after@acme.com", title="CFO"),
            ]
        )
        host.advance(60)
        pipeline = app.pipelines["hubspot"]
        assert _cycles_until(pipeline, lambda: _title(app, after) == "CFO", host, cycles=1) == 1
        assert hs.contact(before)["hs_lead_status"] == "MQL"

        host.offset = -timedelta(minutes=10)  # the step
        host.advance(60)
        hs.update_contact(after, {"jobtitle": "CTO"})
        host.advance(1)
        took = _cycles_until(pipeline, lambda: _title(app, after) == "CTO", host, cycles=14)
        assert took in (10, 11), "read once syncd's clock reaches the change, not later"
        assert hs.contact(after)["hs_lead_status"] == "MQL"
        host.advance(60)
        assert pipeline.run_cycle().outcome == "ok"

        applied = {
            lead: [a.after for a in app.store.audit_of_lead(lead) if a.outcome == "applied"]
            for lead in (before, after)
        }
    assert applied == {before: ["MQL"], after: ["MQL"]}, "each written once"


def test_a_person_who_puts_the_old_status_back_over_an_unconfirmed_write_is_held_when_salesforce_runs_behind(
    tmp_path: Path,
) -> None:
    """syncd's status write lands but its answer is lost; a person then puts the old status
    back. Only the lead's SystemModstamp, later than the write left, tells that apart from a
    write that never landed. Stamped by a Salesforce clock 2 min behind syncd's, the person's
    edit looked older than the write (5 s of skew allowed), and syncd sent its write again over
    the person's value."""
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
    )
    old = "Open - Not Contacted"
    with running_app(config) as app:
        sf = app.embedded.salesforce
        sf.clock.advance(-SKEW.total_seconds())
        seeded = datetime.fromtimestamp(sf.clock.now_second(), tz=UTC) - timedelta(minutes=1)
        (lead,) = sf.add_leads(
            [sf_lead("Back", "back@acme.com", title="Analyst", activity_days=200, status=old)],
            modstamp=seeded,
        )
        pipeline = app.pipelines["salesforce"]
        sf.faults.drop_next(1, path="composite/sobjects", method="PATCH", after_applied=True)
        assert pipeline.run_cycle().outcome == "failed"
        assert sf.lead(lead)["Status"] == "Nurture"
        sf.update_lead(lead, {"Status": old})

        settled = pipeline.run_cycle()
        after = pipeline.run_cycle()
        status = sf.lead(lead)["Status"]
        outcomes = [(a.field, a.outcome) for a in app.store.audit_of_lead(lead)]

    assert status == old, "the person's value stands"
    assert (settled.written, settled.held, after.written) == (0, 1, 0)
    assert outcomes == [("status", "withdrawn"), ("newsletter:newsletter", "withdrawn")]


def test_a_persons_edit_is_held_its_whole_hold_and_at_most_the_step_longer_when_syncds_clock_steps_back(
    tmp_path: Path,
) -> None:
    """The hold runs from the edit's lastmodifieddate by syncd's clock: stepped back 10 min,
    the lead stays alone 10 min longer, never less than hold_rep_edits_for."""
    with _hubspot(tmp_path, timedelta(0), hold="1h") as (app, hs, host):
        pipeline = app.pipelines["hubspot"]
        [lead] = hs.add_contacts([hs_contact("Cto", "cto@acme.com", title="CTO")])
        host.advance(60)
        assert pipeline.run_cycle().written == 1
        assert hs.contact(lead)["hs_lead_status"] == "MQL"
        host.advance(60)
        edited = hs.clock.now()
        hs.update_contact(lead, {"hs_lead_status": "OPEN"})  # a person
        host.advance(1)
        assert pipeline.run_cycle().held == 1
        host.offset = -timedelta(minutes=10)  # the step

        def status_at(after_edit: timedelta) -> str:
            host.advance((edited + after_edit - hs.clock.now()).total_seconds())
            report = pipeline.run_cycle()
            assert report.outcome == "ok", report.message
            return str(hs.contact(lead)["hs_lead_status"])

        assert status_at(timedelta(minutes=59)) == "OPEN"
        assert status_at(timedelta(minutes=61)) == "OPEN", "late by the step: never early"
        assert status_at(timedelta(minutes=71)) == "MQL", "released once the step is made up"


def test_a_revert_leaves_a_status_a_person_set_after_syncds_write_when_salesforce_runs_behind(
    tmp_path: Path,
) -> None:
    """A person moves the lead and then back to the status syncd wrote: only the edit's time,
    after syncd's write, says the status is now theirs. Stamped by a Salesforce clock 2 min
    behind syncd's, it looked 2 min older than the write (5 s of skew allowed), and a revert
    put the old status back over the person's."""
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        sf.clock.advance(-SKEW.total_seconds())
        seeded = datetime.fromtimestamp(sf.clock.now_second(), tz=UTC) - timedelta(minutes=1)
        (lead,) = sf.add_leads(
            [sf_lead("L0", "l0@acme0.com", title="Analyst", status="Working - Contacted",
                     activity_days=200)],
            modstamp=seeded,
        )  # fmt: skip
        pipeline = app.pipelines["salesforce"]
        run_id = pipeline.run_cycle().run_id
        assert sf.lead(lead)["Status"] == "Nurture"
        sf.update_lead(lead, {"Status": "Unqualified"})  # a rep moves it, then back again
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        sf.update_lead(lead, {"Status": "Nurture"})
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        mirrored = app.store.lead("salesforce", lead)
        assert mirrored is not None and mirrored.rep_edit_at is not None

        plan = plan_revert(app.store, pipeline, run_id, app.rules.current(), app.clock())

    assert (lead, "status") not in {(r.lead_id, r.field) for r in plan.restores}
    (skip,) = [s for s in plan.skipped if s.field == "status"]
    assert skip.reason.startswith("status set by a person at "), skip.reason


def test_a_date_header_that_cannot_be_read_or_is_days_off_moves_no_time_back_beyond_an_hour() -> (
    None
):
    """A proxy's or a broken ``Date`` header must neither fail a read nor hold every pull's
    window days back."""
    host = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    for text in ("", "garbage", "Mon, 99 Foo 2026 99:99:99 GMT", "Wed, 02 Dec 99999 05:00:00 GMT"):
        assert answer_date({"Date": text}) is None, text
        assert read_started(host, answer_date({"Date": text})) == host
    days_off = answer_date({"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert days_off is not None
    assert crm_behind(host, days_off) == timedelta(hours=1)
    assert read_started(host, days_off) == host - timedelta(hours=1)
    two_minutes = answer_date({"Date": "Wed, 02 Dec 2026 11:58:00 GMT"})
    assert two_minutes is not None
    assert crm_behind(host, two_minutes) == timedelta(minutes=2) - timedelta(seconds=1)
    assert crm_behind(host, host + SKEW) == timedelta(0), "a clock ahead moves nothing back"
