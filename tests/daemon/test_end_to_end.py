"""Whole cycles against both emulators through the real client libraries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.testing.salesforce import SalesforceEmulator
from syncd.cli import app as cli
from tests.daemon.harness import (
    hs_contact,
    hs_write_calls,
    newsletter_id,
    running_app,
    sf_lead,
    sf_write_calls,
    write_config,
)


def _seed_three(app) -> dict[str, dict[str, str]]:
    sf = app.embedded.salesforce
    hs = app.embedded.hubspot
    sf_ids = sf.add_leads(
        [
            sf_lead(
                "Stale",
                "ann@acme.com",
                title="VP Marketing",
                status="Working - Contacted",
                activity_days=120,
            ),
            sf_lead("Student", "kid@gmail.com", title=None),
            sf_lead("Fresh", "bo@globex.com", title="Director of Sales", activity_days=3),
        ]
    )
    hs_ids = hs.add_contacts(
        [
            hs_contact(
                "Stale", "ann@acme.com", title="VP Marketing", status="OPEN", activity_days=120
            ),
            hs_contact("Student", "kid@gmail.com", title=None),
            hs_contact("Fresh", "bo@globex.com", title="Director of Sales", activity_days=3),
        ]
    )
    names = ("stale", "misfit", "fresh")
    return {
        "salesforce": dict(zip(names, sf_ids, strict=True)),
        "hubspot": dict(zip(names, hs_ids, strict=True)),
    }


def test_full_cycle_moves_expected_leads_to_status_newsletter_and_archive(
    tmp_path: Path, store_url: str
) -> None:
    with running_app(write_config(tmp_path, state_url=store_url)) as app:
        ids = _seed_three(app)
        reports = {name: p.run_cycle() for name, p in app.pipelines.items()}
        assert all(r.outcome == "ok" for r in reports.values()), reports
        sf, hs = app.embedded.salesforce, app.embedded.hubspot
        s = ids["salesforce"]
        assert sf.lead(s["stale"])["Status"] == "Nurture"
        assert sf.lead(s["misfit"])["Status"] == "Archived"
        assert sf.lead(s["fresh"])["Status"] == "Open - Not Contacted"
        assert sf.campaign_members(newsletter_id(app, "salesforce")) == {s["stale"]}
        h = ids["hubspot"]
        assert hs.contact(h["stale"])["hs_lead_status"] == "NURTURE"
        assert hs.contact(h["misfit"])["hs_lead_status"] == "ARCHIVED"
        assert hs.contact(h["fresh"])["hs_lead_status"] == "NEW"
        assert hs.list_members(newsletter_id(app, "hubspot")) == {h["stale"]}
        # one audit row per applied change, naming rule and rule-set version
        audit = app.store.audit_of_lead(s["stale"], "salesforce")
        assert {(a.field, a.after, a.rule_id, a.outcome) for a in audit} == {
            ("status", "Nurture", "stale-nurture", "applied"),
            ("newsletter:newsletter", True, "stale-nurture", "applied"),
        }
        assert all(a.ruleset_version == app.rules.book.version for a in audit)
        found = app.store.find_leads("ANN@acme.com")  # explain/audit look leads up by email
        assert {(r.crm, r.lead_id) for r in found} == {
            ("salesforce", s["stale"]),
            ("hubspot", h["stale"]),
        }


def test_writes_go_in_full_batches_of_the_crm_maximum_and_never_above_it(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        # 2,100 leads: more outbox rows than one drain chunk (2,000), so batches must fill
        # across chunk boundaries to reach the minimum number of calls.
        # Every fourth lead is a misfit (archived, no newsletter), so outbox rows do not fall
        # into chunk-aligned multiples of the batch size.
        app.embedded.salesforce.add_leads(
            sf_lead(f"L{i}", f"l{i}@gmail.com", title=None)
            if i % 4 == 0
            else sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(2100)
        )
        app.embedded.hubspot.add_contacts(
            hs_contact(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(250)
        )
        for p in app.pipelines.values():
            assert p.run_cycle().outcome == "ok"
        # Collections of at most 200 records, ceil(n / 200) of each kind (no partial batch
        # wasted): 11 status and 8 newsletter collections, 5 to a Composite request: 4 counted
        # calls. The race check (people's status edits since the reads) rides in the last
        # call's free slot: no call of its own.
        calls = sf_write_calls(app)
        assert [e.path.rsplit("/", 1)[-1] for e in calls] == ["composite"] * 4
        assert [[s.method for s in e.subrequests] for e in calls] == [
            ["PATCH"] * 5,
            ["PATCH"] * 5,
            ["PATCH"] + ["POST"] * 4,
            ["POST"] * 4 + ["GET"],
        ]
        sf_writes = [s for e in calls for s in e.subrequests if s.method != "GET"]
        assert all("composite/sobjects" in s.path for s in sf_writes)
        assert max(s.records for s in sf_writes) <= 200
        patches = [s.records for s in sf_writes if s.method == "PATCH"]
        members = [s.records for s in sf_writes if s.method == "POST"]
        assert (sum(patches), sum(members)) == (2100, 1575)
        assert (len(patches), len(members)) == (11, 8)
        hs_batches = [e.records for e in hs_write_calls(app) if "/batch/update" in e.path]
        assert sum(hs_batches) == 250 and len(hs_batches) == 3 and max(hs_batches) <= 100
        hs_members = app.embedded.hubspot.journal.entries("PUT", "/memberships/add")
        assert len(hs_members) == 3


def test_second_cycle_without_crm_changes_writes_nothing(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        _seed_three(app)
        for p in app.pipelines.values():
            assert p.run_cycle().written > 0
        app.embedded.salesforce.journal.clear()
        app.embedded.hubspot.journal.clear()
        for p in app.pipelines.values():
            report = p.run_cycle()
            assert (report.outcome, report.planned, report.written) == ("ok", 0, 0)
        assert sf_write_calls(app) == []
        assert hs_write_calls(app) == []


class _CrashAfterWrite(BaseException):  # a dying process, not an error a cycle reports
    """Stands for the process dying after the CRM confirmed a batch."""


def test_crash_after_confirmed_write_before_checkpoint_neither_repeats_nor_loses(
    tmp_path: Path,
) -> None:
    # Without Composite: the crash comes after the first status batch alone.
    with running_app(write_config(tmp_path, crms=("salesforce",), sf_composite=False)) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(450)
        )
        pipeline = app.pipelines["salesforce"]
        connector = pipeline.connector
        real_write = connector.write_batch
        calls = {"n": 0}

        def write_then_crash(changes):
            results = real_write(changes)
            calls["n"] += 1
            if calls["n"] == 1:
                raise _CrashAfterWrite  # the CRM has the batch; syncd never recorded it
            return results

        connector.write_batch = write_then_crash
        with pytest.raises(_CrashAfterWrite):
            pipeline.run_cycle()
        # Nor was the cursor saved: roll it back as if the crash came before the checkpoint.
        with app.store.begin() as conn:
            conn.exec_driver_sql("DELETE FROM cursor")
        connector.write_batch = real_write
        report = pipeline.run_cycle()
        assert report.outcome == "ok"
        written = [rid for e in sf.journal.writes() if e.method == "PATCH" for rid in e.record_ids]
        assert sorted(written) == sorted(ids), "every lead written exactly once"
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)
        outcomes = [
            a.outcome for i in ids for a in app.store.audit_of_lead(i) if a.field == "status"
        ]
        assert outcomes.count("already_in_place") == 200 and outcomes.count("applied") == 250


def test_rule_file_typo_exits_2_with_location_and_the_crm_gets_no_request(
    tmp_path: Path, monkeypatch
) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text("""\
version: 1
name: broken
mode: first_match
statuses: {Open: {}, Nurture: {}}
rules:
  - id: stale-nurture
    when: {field: last_activty_at, older_than: 90d}
    then:
      - set_status: Nurture
""")
    with SalesforceEmulator() as emu:
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        config = tmp_path / "syncd.yaml"
        config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
server: {{enabled: false}}
salesforce:
  connector:
    instance_url: {emu.base_url}
    token_url: {emu.token_url}
    ca_bundle: {emu.ca_pem_path}
    auth: {{type: client_credentials, client_id: {emu.client_id},
            client_secret: {{env: SF_SECRET}}}}
""")
        result = CliRunner().invoke(cli, ["sync", "--once", "--config", str(config)])
        assert result.exit_code == 2
        assert f"{broken}:7:" in result.output
        assert "stale-nurture" in result.output and "last_activity_at" in result.output
        assert len(emu.journal) == 0
        assert emu.client_secret not in result.output


def test_salesforce_org_of_2500_leads_is_read_through_next_records_url(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        sf.add_leads(sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(2500))
        sf.journal.clear()
        report = app.pipelines["salesforce"].run_cycle()
        assert report.pulled == 2500
        assert app.store.count_live("salesforce") == 2500
        # One call: a Composite request of the first page and its nextRecordsUrl, chained.
        (read,) = [e for e in sf.journal.entries() if e.path.endswith("/composite")]
        pages = [s for s in read.subrequests if s.status == 200]
        assert "queryAll" in pages[0].path and "/query/" in pages[1].path
        assert [s.records for s in pages] == [2000, 500]


@pytest.mark.slow
def test_hubspot_portal_with_more_than_10000_matches_is_read_completely(tmp_path: Path) -> None:
    config = write_config(tmp_path, crms=("hubspot",))
    # Pacing has its own test; here the search bucket is widened on both sides to stay quick.
    config.write_text(
        config.read_text().replace(
            "allow_add_status_options: true",
            "allow_add_status_options: true\n    search_per_second: 200",
        )
    )
    with running_app(config) as app:
        hs = app.embedded.hubspot
        hs.config.search_per_second = 400
        hs.add_contacts(
            hs_contact(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(10_500)
        )
        report = app.pipelines["hubspot"].run_cycle()
        assert report.outcome == "ok", report.message
        assert app.store.count_live("hubspot") == 10_500
        searches = hs.journal.entries("POST", "/search")
        assert all(e.status == 200 for e in searches), "no search paged past the 10,000 cap"


def test_overlap_window_rereads_other_peoples_late_commits_but_not_syncds_own_writes(
    tmp_path: Path,
) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(30)
        )
        pipeline = app.pipelines["salesforce"]
        time.sleep(1.1)  # SystemModstamp has whole seconds: let syncd's writes land in a later one
        assert pipeline.run_cycle().written == 60  # 30 statuses + 30 newsletter adds

        def records_read() -> int:
            # Query pages, alone or chained in a Composite request of queries.
            reads = [e for e in sf.journal.entries() if not e.is_write]
            pages = [
                p
                for e in reads
                for p in (e.subrequests or [e])
                if p.method == "GET" and "/query" in p.path
            ]
            return sum(p.records or 0 for p in pages)

        sf.journal.clear()
        assert pipeline.run_cycle().pulled == 30  # the echo of syncd's writes, read once
        sf.journal.clear()
        pipeline.run_cycle()
        assert records_read() == 0, "syncd's own writes are not re-read by the overlap"
        (late,) = sf.commit_late(
            [sf_lead("Late", "late@acme.com", title="Analyst")], seconds_ago=60
        )  # a rep's transaction committing late
        sf.journal.clear()
        report = pipeline.run_cycle()
        assert records_read() == 1 and report.pulled == 1
        assert app.store.lead("salesforce", late) is not None
