"""Lead data as real orgs hold it, and CRM APIs on a bad day: what syncd does with them.

Most tests drive whole cycles against the emulators through the real client libraries; the
enrichment ones call the enricher, the list-removal and Bulk ones a connector, directly."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.base import Outcome
from connectors.errors import RetriableError
from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
from connectors.salesforce import SalesforceConnector
from connectors.testing.hubspot import HubSpotEmulator
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator, synthetic_leads
from syncd.cli import app as cli
from syncd.enrichment import Enricher, EnrichmentSettings
from syncd.plan import explain_lead, status_report
from tests.daemon.harness import hs_contact, newsletter_id, running_app, sf_lead, write_config
from tests.salesforce.support import T0, config_for


@pytest.mark.parametrize(
    ("title", "reason"),
    [
        ("VP\x00 Sales", "NUL"),
        # an emoji cut in half by a truncation in the CRM (Apex and Java count UTF-16 units)
        ("VP Sales \ud83d", "surrogate"),
    ],
    ids=["nul", "half-surrogate"],
)
def test_text_the_store_cannot_hold_is_quarantined_and_the_cycle_goes_on(
    tmp_path: Path, store_url: str, title: str, reason: str
) -> None:
    # PostgreSQL text and JSON hold neither U+0000 nor half a surrogate pair: storing one
    # failed the whole page, every cycle, for ever.
    with running_app(write_config(tmp_path, state_url=store_url)) as app:
        sf_ids = app.embedded.salesforce.add_leads(
            [
                sf_lead("Bad", "bad@acme.com", title=title, activity_days=200),
                sf_lead("Fine", "fine@acme.com", title="VP Sales", activity_days=200),
            ]
        )
        hs_ids = app.embedded.hubspot.add_contacts(
            [
                hs_contact("Bad", "bad@acme.com", title=title, activity_days=200),
                hs_contact("Fine", "fine@acme.com", title="VP Sales", activity_days=200),
            ]
        )
        for crm, ids in (("salesforce", sf_ids), ("hubspot", hs_ids)):
            report = app.pipelines[crm].run_cycle()
            assert report.outcome == "ok", report
            assert report.pulled == 2
            quarantined = {r.lead_id: r.quarantine for r in app.store.quarantined_leads(crm)}
            assert list(quarantined) == [ids[0]]
            [problem] = quarantined[ids[0]]
            assert problem["field"] == "title" and reason in problem["reason"]
        # Both leads were written (stale-nurture), the quarantined one too.
        assert {app.embedded.salesforce.lead(i)["Status"] for i in sf_ids} == {"Nurture"}
        assert {app.embedded.hubspot.contact(i)["hs_lead_status"] for i in hs_ids} == {"NURTURE"}
        # explain and audit find leads by email: the stored row reads back on both backends.
        found = app.store.find_leads("bad@acme.com")
        assert {(r.crm, r.lead_id) for r in found} == {
            ("salesforce", sf_ids[0]),
            ("hubspot", hs_ids[0]),
        }


def test_an_employee_count_int_cannot_read_is_unknown_not_an_error() -> None:
    # str.isdigit() accepts superscripts that int() refuses, and int() refuses more than
    # 4,300 digits: either raised out of enrich, which promises never to raise on odd values.
    enricher = Enricher(EnrichmentSettings())
    for employees in ("²", "9" * 5000, "1²-5", "3³+"):
        enrichment = enricher.enrich({"employees": employees, "email": "ann@acme.com"})
        assert enrichment.values["icp_score"] == 10  # business email only
        assert "employees unknown" in enrichment.reasons["icp_score"]


def test_audit_and_explain_find_a_lead_by_an_email_with_non_ascii_capitals_as_typed(
    tmp_path: Path, store_url: str
) -> None:
    # SQL lower() folds ASCII only on SQLite (and PostgreSQL's C locale): an email stored as
    # 'ANN@MÜLLER.DE' and typed as shown in the CRM was "no lead", though syncd had written it.
    config = write_config(tmp_path, state_url=store_url, crms=("hubspot",))
    with running_app(config) as app:
        [lead_id] = app.embedded.hubspot.add_contacts(
            [hs_contact("Mu", "ANN@MÜLLER.DE", title="VP Sales", activity_days=200)]
        )
        assert app.pipelines["hubspot"].run_cycle().written == 2
    runner = CliRunner()
    for ref in ("ANN@MÜLLER.DE", "ann@MÜLLER.de", " ANN@MÜLLER.DE "):
        audit = runner.invoke(cli, ["audit", "-c", str(config), ref])
        assert audit.exit_code == 0, audit.output
        assert f"hubspot  {lead_id}  status: NEW → NURTURE" in audit.output
        explain = runner.invoke(cli, ["explain", "-c", str(config), ref])
        assert explain.exit_code == 0, explain.output
        assert lead_id in explain.output


def test_a_hubspot_batch_update_answered_with_a_cut_off_body_is_sent_again_not_taken_as_written(
    tmp_path: Path,
) -> None:
    # The emulator answers 200 with half a BatchResponse and applies nothing. Taken as every
    # record written, the next pull read the unchanged status as a person's edit and held the
    # leads for 14 days while the audit said "applied".
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        ids = hs.add_contacts(
            [
                hs_contact(f"A{i}", f"a{i}@acme.com", title="Analyst", activity_days=200)
                for i in range(3)
            ]
        )
        hs.faults.fail_next(
            1,
            status=200,
            body='{"status":"COMPLETE","results":[{"id":"10',
            content_type="application/json",
            path="batch/update",
            method="POST",
        )
        first = app.pipelines["hubspot"].run_cycle()
        assert (first.outcome, first.written, first.failed) == ("ok", 6, 0)
        assert {hs.contact(i)["hs_lead_status"] for i in ids} == {"NURTURE"}
        updates = [e for e in hs.journal.entries() if e.path.endswith("/batch/update")]
        assert len(updates) == 2  # the cut-off answer, then the update sent again
        second = app.pipelines["hubspot"].run_cycle()
        assert (second.outcome, second.held, second.planned) == ("ok", 0, 0)


def test_a_hubspot_list_add_answered_with_a_page_not_the_api_answer_is_sent_again(
    tmp_path: Path,
) -> None:
    # A 200 whose body is no MembershipsUpdateResponse (a proxy's page) passed as every contact
    # added: the newsletter join was audited "applied" and never sent again.
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        [lead_id] = hs.add_contacts(
            [hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)]
        )
        hs.faults.fail_next(
            1, status=200, body="<html>ok</html>", content_type="text/html", path="memberships/add"
        )
        report = app.pipelines["hubspot"].run_cycle()
        assert (report.outcome, report.written, report.failed) == ("ok", 2, 0)
        assert hs.list_members(newsletter_id(app, "hubspot")) == {lead_id}
        adds = [e for e in hs.journal.entries() if e.path.endswith("/memberships/add")]
        assert len(adds) == 2


def test_a_hubspot_answer_the_client_cannot_read_is_logged_as_such_not_as_http_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An archived contact whose archivedAt is no date fails the client's model: no HTTP status
    # to show, and the log said "failed with HTTP 0".
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        hs.add_contacts([hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)])
        hs.faults.fail_next(
            1,
            status=200,
            body={"results": [{"id": "1001", "archived": True, "archivedAt": "yesterday"}]},
            path="/crm/v3/objects/contacts$",
            method="GET",
        )
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot"):
            report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok"
        [retry] = [r.getMessage() for r in caplog.records if "archived" in r.getMessage()]
        assert "answered with a body the client could not read; will retry" in retry
        assert "HTTP 0" not in retry


def test_a_bulk_results_page_with_fewer_rows_than_it_announces_fails_the_pull_not_the_leads() -> (
    None
):
    # A results page cut short between rows still parses as CSV. Taken whole, the job's read
    # ended "complete" without those leads and moved the cursor past them: they were never
    # mirrored until edited again.
    with SalesforceEmulator(EmulatorConfig()) as emu:
        emu.clock.freeze(T0)
        ids = emu.add_leads(synthetic_leads(3000, now=T0))
        answer = emu.bulk_jobs.results
        cut: list[int] = []

        def first_page_cut_short(*args: Any) -> Any:
            page = answer(*args)
            if not cut:  # header and two rows, Sforce-NumberOfRecords and locator as they were
                cut.append(page.records)
                page = dataclasses.replace(
                    page, body=b"\n".join(page.body.split(b"\n")[:3]) + b"\n"
                )
            return page

        emu.bulk_jobs.results = first_page_cut_short  # type: ignore[method-assign]
        # 200-lead REST pages, one a call: a query job is cheaper from a few hundred leads on.
        bulk = {"bulk_read_threshold": 1000, "bulk_poll_seconds": 0, "page_size": 200}
        connector = SalesforceConnector(
            config_for(emu, **bulk, composite=False, bulk_results_page_size=1000),
            clock=emu.clock.now,
            sleep=emu.clock.advance,
        )
        try:
            connector.check(statuses=set(), fields=set(), newsletters=set())
            with pytest.raises(RetriableError) as caught:
                for _ in connector.iter_pages(None, until=T0):
                    pass
            assert "results page 1 of Bulk API 2.0 query job" in str(caught.value)
            assert f"2 rows where Sforce-NumberOfRecords says {cut[0]}" in str(caught.value)
            assert "the next pull starts a new job" in str(caught.value)
            # the next pull reads every lead
            got = {lead.id for page in connector.iter_pages(None, until=T0) for lead in page.leads}
            assert got == set(ids)
        finally:
            connector.close()


def test_hubspot_counts_written_with_thousands_separators_are_read_as_numbers(
    tmp_path: Path,
) -> None:
    # Imports and enrichment tools fill numemployees with "1,000" or LinkedIn's size bands
    # ("1,001-5,000", "10,001+"): each was quarantined as "not a valid numemployees integer",
    # and the lead lost its company-size points.
    written = ["1,000", "1,001-5,000", "10,001+", "12,345,678", "1,5"]
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        ids = app.embedded.hubspot.add_contacts(
            hs_contact(f"L{i}", f"l{i}@acme.com", title="Analyst", numemployees=value)
            for i, value in enumerate(written)
        )
        assert app.pipelines["hubspot"].run_cycle().outcome == "ok"
        rows = [app.store.lead("hubspot", i) for i in ids]
        assert all(rows)
        assert [r.fields["employees"] for r in rows if r] == [1000, 1001, 10001, 12345678, None]
        assert rows[0] is not None and rows[0].enrichment["icp_score"] == 30
        (explained,) = explain_lead(app, ids[0])  # the reasons are derived when asked
        assert explained["reasons"]["icp_score"].startswith(
            "icp_score 30: 1000 employees in 50..5000 +20"
        )
        # "1,5" has no thousands in it (a decimal comma?): still quarantined, with its reason
        assert [r.lead_id for r in app.store.quarantined_leads("hubspot")] == [ids[-1]]


#: gmail.com typed with an East Asian input method: full-width letters (U+FF41..), the
#: full-width full stop (U+FF0E) or the ideographic one (U+3002).
FULL_WIDTH_GMAIL = [
    "ann@\uff47\uff4d\uff41\uff49\uff4c.com",
    "ann@gmail\uff0ecom",
    "ann@\uff27\uff2d\uff21\uff29\uff2c\u3002\uff23\uff2f\uff2d",
]


@pytest.mark.parametrize("email", FULL_WIDTH_GMAIL)
def test_a_free_mail_address_typed_in_full_width_characters_is_free_mail(email: str) -> None:
    # East Asian input methods type full-width letters and full stops; mail systems read the
    # domain as IDNA does (NFKC, ideographic full stops as dots), so this is a gmail.com
    # address. It counted as a business email (+10 ICP, never a free-mail misfit).
    enrichment = Enricher(EnrichmentSettings()).enrich({"email": email})
    assert enrichment.values["email_domain"] == "gmail.com"
    assert enrichment.values["free_mail"] is True
    assert "read as mail systems do" in enrichment.reasons["email_domain"]


def test_a_contact_a_partial_hubspot_answer_does_not_name_is_sent_again_not_taken_as_written(
    tmp_path: Path,
) -> None:
    # A 207 lists the contacts it updated and the errors with their ids. An error without ids
    # left its contact counted as written: audited "applied", and the next pull read the
    # unchanged status as a person's edit and held the lead for 14 days.
    now = {"t": datetime.now(UTC) + timedelta(seconds=1)}
    config = write_config(tmp_path, crms=("hubspot",))
    with running_app(config, clock=lambda: now["t"]) as app:
        hs = app.embedded.hubspot
        ids = hs.add_contacts(
            [
                hs_contact(f"A{i}", f"a{i}@acme.com", title="Analyst", activity_days=200)
                for i in range(2)
            ]
        )
        unnamed = {"status": "error", "category": "VALIDATION_ERROR", "message": "not valid"}
        hs.faults.fail_next(
            1,
            status=207,
            body={
                "status": "COMPLETE",
                "results": [],
                "errors": [unnamed, {**unnamed, "context": {}}],
                "startedAt": "2026-12-01T00:00:00Z",
                "completedAt": "2026-12-01T00:00:01Z",
            },
            path="batch/update",
        )
        pipeline = app.pipelines["hubspot"]
        first = pipeline.run_cycle()
        assert (first.written, first.retrying, first.failed) == (2, 2, 0)  # the list adds
        assert [a.field for a in app.store.audit_of_lead(ids[0], "hubspot")] == [
            "newsletter:newsletter"
        ]
        open_rows = status_report(app)["crms"]["hubspot"]
        assert open_rows["held"] == []
        now["t"] += app.settings.outbox.retry_base + timedelta(seconds=1)
        later = pipeline.run_cycle()
        assert (later.written, later.held) == (2, 0)
        assert {hs.contact(i)["hs_lead_status"] for i in ids} == {"NURTURE"}


def test_a_hubspot_list_removal_answered_with_a_page_not_the_api_answer_is_sent_again() -> None:
    # A revert takes contacts out of the newsletter list. A 200 whose body is no
    # MembershipsUpdateResponse passed as removed: the revert said done, the contacts stayed.
    with HubSpotEmulator() as emu:
        ids = emu.add_contacts(
            [hs_contact(f"A{i}", f"a{i}@acme.com", title="Analyst") for i in range(2)]
        )
        list_id = emu.add_list("Newsletter")
        connector = HubSpotConnector(
            HubSpotConfig(
                base_url=emu.base_url,
                auth=PrivateAppAuth(access_token=emu.access_token),
                timeout_seconds=5,
                newsletters={"news": list_id},
                retry={"initial_backoff_seconds": 0},
            )
        )
        try:
            connector.add_to_newsletter("news", ids)
            emu.faults.fail_next(
                1,
                status=200,
                body="<html>ok</html>",
                content_type="text/html",
                path="memberships/remove",
            )
            results = connector.remove_from_newsletter("news", ids)
            assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
            assert emu.list_members(list_id) == set()
            removals = [e for e in emu.journal.entries() if e.path.endswith("/memberships/remove")]
            assert len(removals) == 2
        finally:
            connector.close()


def test_a_contact_edited_while_a_hubspot_pull_pages_skips_no_other_contact(
    tmp_path: Path,
) -> None:
    # Search pages by offset over contacts sorted by lastmodifieddate. A rep's edit between two
    # pages moves that contact past the window's end and every later one up a place: the next
    # offset skipped the contact at the page boundary, and the cursor moved past it for good.
    start = datetime.now(UTC) - timedelta(days=2)
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        ids = hs.add_contacts(
            hs_contact(
                f"L{i}",
                f"l{i}@acme.com",
                title="Analyst",
                lastmodifieddate=(start + timedelta(minutes=i)).isoformat(),
            )
            for i in range(450)
        )
        search = hs.store.search
        searches: list[int] = []

        def a_rep_edits_after_the_first_page(*args: Any) -> Any:
            answer = search(*args)
            searches.append(len(answer[1]))
            if len(searches) == 1:  # between page 1 and page 2 of the pull
                hs.update_contact(ids[5], {"firstname": "Edited"})
            return answer

        hs.store.search = a_rep_edits_after_the_first_page  # type: ignore[method-assign]
        report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok"
        assert [i for i in ids if app.store.lead("hubspot", i) is None] == []
        assert len(searches) == 4  # 3 pages, and page 2 asked again from the newest contact


def test_a_hubspot_429_without_a_policy_waits_the_retry_after_it_gives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # README: a 429's Retry-After is honoured as given. The emulator dropped the headers of a
    # scripted answer without a body, so this was never seen: syncd waited the 10 s window.
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        hs.add_contacts([hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)])
        hs.faults.fail_next(1, status=429, headers={"Retry-After": "1"}, path="batch/update")
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot"):
            report = app.pipelines["hubspot"].run_cycle()
        assert (report.outcome, report.written) == ("ok", 2)
        [retry] = [r.getMessage() for r in caplog.records if "batch update" in r.getMessage()]
        assert "retrying in 1s" in retry


def test_a_hubspot_search_page_whose_next_offset_is_not_a_number_is_retried_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The reader pages a search by its numeric `after` up to the 10,000-result cap: `int()` of
    # anything else ended the cycle as "unexpected ValueError", a bug.
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        hs = app.embedded.hubspot
        hs.add_contacts([hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)])
        hs.faults.fail_next(
            1,
            status=200,
            body={"total": 5, "results": [], "paging": {"next": {"after": "MTAw"}}},
            path="contacts/search",
            method="POST",
        )
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot"):
            report = app.pipelines["hubspot"].run_cycle()
        assert (report.outcome, report.pulled) == ("ok", 1), report.message
        assert any(
            "contact search answered with a body that is not what the API documents"
            in r.getMessage()
            for r in caplog.records
        )


def test_a_salesforce_lead_record_without_its_id_fails_the_pull_by_name_and_the_next_recovers(
    tmp_path: Path,
) -> None:
    # A record with no Id cannot be mirrored or quarantined (nothing to key it by): the cycle
    # said "unexpected KeyError: 'Id'", a bug, instead of what the CRM answered.
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        sf.add_leads([sf_lead("A", "a@acme.com", title="Analyst")])
        record = {
            "attributes": {"type": "Lead"},
            "LastName": "A",
            "SystemModstamp": "2026-11-30T10:00:00.000+0000",
        }
        sf.faults.fail_next(
            1,
            status=200,
            body={"totalSize": 1, "done": True, "records": [record]},
            path="/query",
            method="GET",
        )
        failed = app.pipelines["salesforce"].run_cycle()
        assert (failed.outcome, failed.reason) == ("failed", "crm_unavailable"), failed.message
        assert "a Lead record without its Id" in failed.message
        assert "unexpected" not in failed.message
        recovered = app.pipelines["salesforce"].run_cycle()
        assert (recovered.outcome, recovered.pulled) == ("ok", 1), recovered.message


def test_a_cycle_the_crm_failed_after_every_retry_says_will_retry_once(tmp_path: Path) -> None:
    # The connector's "...; will retry" (its own retries, spent) and the cycle's "(will retry
    # next cycle)" read "; will retry (will retry next cycle)".
    config = write_config(tmp_path, crms=("hubspot",))
    text = config.read_text().replace(
        "    allow_add_status_options: true\n",
        "    allow_add_status_options: true\n"
        "    retry: {attempts: 2, initial_backoff_seconds: 0, jitter_seconds: 0}\n",
    )
    config.write_text(text)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        hs.add_contacts([hs_contact("A", "a@acme.com", title="Analyst", activity_days=200)])
        hs.faults.fail_next(2, status=503, path="contacts/search", method="POST")
        report = app.pipelines["hubspot"].run_cycle()
    assert (report.outcome, report.reason) == ("failed", "crm_unavailable"), report.message
    assert report.message is not None and report.message.endswith(
        "failed with HTTP 503 (will retry next cycle)"
    )
