"""`syncd revert`: a run's changes undone as a run of its own, on both emulators."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.app import App
from syncd.pipeline import CycleReport
from syncd.revert import REVERT_PREFIX, RevertPlan, execute_revert, plan_revert
from syncd.state import StateStore
from tests.daemon.harness import (
    E2E_RULES,
    hs_contact,
    newsletter_id,
    running_app,
    sf_lead,
    write_config,
)

# The admin fixed the rule set: no rule moves stale leads any more.
FIXED_RULES = E2E_RULES.split("  - id: stale-nurture")[0]

CRMS = ("salesforce", "hubspot")


def _seed(app: App, crm: str, n: int) -> list[str]:
    if crm == "salesforce":
        return app.embedded.salesforce.add_leads(
            [
                sf_lead(
                    f"L{i}",
                    f"l{i}@acme{i}.com",
                    title="Analyst",
                    status="Working - Contacted",
                    activity_days=200,
                )
                for i in range(n)
            ]
        )
    return app.embedded.hubspot.add_contacts(
        [
            hs_contact(
                f"L{i}", f"l{i}@acme{i}.com", title="Analyst", status="OPEN", activity_days=200
            )
            for i in range(n)
        ]
    )


def _status(app: App, crm: str, lead_id: str) -> str:
    if crm == "salesforce":
        return str(app.embedded.salesforce.lead(lead_id)["Status"])
    return str(app.embedded.hubspot.contact(lead_id)["hs_lead_status"])


def _person_sets(app: App, crm: str, lead_id: str, status: str) -> None:
    if crm == "salesforce":
        app.embedded.salesforce.update_lead(lead_id, {"Status": status})
    else:
        app.embedded.hubspot.update_contact(lead_id, {"hs_lead_status": status})


def _members(app: App, crm: str) -> set[str]:
    list_id = newsletter_id(app, crm)
    if crm == "salesforce":
        return app.embedded.salesforce.campaign_members(list_id)
    return app.embedded.hubspot.list_members(list_id)


def _fix_rules(tmp_path: Path) -> None:
    time.sleep(0.01)  # a new mtime, so the holder reloads the file
    (tmp_path / "rules.yaml").write_text(FIXED_RULES)


def _plan(app: App, crm: str, run_id: str) -> tuple[RevertPlan, Any]:
    pipeline = app.pipelines[crm]
    book = app.rules.current()
    now = app.clock()
    pipeline.pull(CycleReport(crm, "plan"), until=now)
    return plan_revert(app.store, pipeline, run_id, book, now), book


@pytest.mark.parametrize("crm", CRMS)
def test_run_moving_300_leads_is_reverted_except_3_a_person_changed_since(
    tmp_path: Path, crm: str
) -> None:
    before, nurture = (
        ("Working - Contacted", "Nurture") if crm == "salesforce" else ("OPEN", "NURTURE")
    )
    by_hand = "Unqualified" if crm == "salesforce" else "UNQUALIFIED"
    with running_app(write_config(tmp_path, crms=(crm,))) as app:
        ids = _seed(app, crm, 300)
        report = app.pipelines[crm].run_cycle()
        assert report.outcome == "ok" and report.written == 600, report
        assert {_status(app, crm, i) for i in ids} == {nurture}
        assert _members(app, crm) == set(ids)
        edited = ids[:3]
        for lead_id in edited:
            _person_sets(app, crm, lead_id, by_hand)
        _fix_rules(tmp_path)

        plan, book = _plan(app, crm, report.run_id)
        restored = {r.lead_id for r in plan.restores if r.field == "status"}
        assert restored == set(ids[3:])
        assert {(s.lead_id, s.field) for s in plan.skipped} == {(i, "status") for i in edited}
        assert all("changed since by a person" in s.reason for s in plan.skipped)
        removals = {r.lead_id for r in plan.restores if r.kind == "membership"}
        assert removals == set(ids)  # the joins are undone for every lead the run added
        assert plan.rules_again == {}  # the fixed rules do not move them again

        result = execute_revert(app.pipelines[crm], plan, book)
        revert = result.report
        assert revert.outcome == "ok", revert
        assert result.mismatches == [] and result.read_back == 297
        assert {_status(app, crm, i) for i in ids[3:]} == {before}
        assert {_status(app, crm, i) for i in edited} == {by_hand}  # not clobbered
        assert _members(app, crm) == set()
        # a run of its own: a run row, audit rows naming the original run as their rule
        runs = {r.run_id: r for r in app.store.last_runs(crm=crm)}
        assert runs[revert.run_id].outcome == "ok"
        assert runs[revert.run_id].written == 297 + 300
        assert "revert of run " + report.run_id in runs[revert.run_id].message
        audit = app.store.audit_of_run(revert.run_id)
        assert {a.rule_id for a in audit} == {REVERT_PREFIX + report.run_id}
        assert len(audit) == 597 and {a.outcome for a in audit} == {"applied"}


@pytest.mark.parametrize("crm", CRMS)
def test_reverting_the_revert_restores_the_original_runs_values(tmp_path: Path, crm: str) -> None:
    nurture = "Nurture" if crm == "salesforce" else "NURTURE"
    with running_app(write_config(tmp_path, crms=(crm,))) as app:
        ids = _seed(app, crm, 5)
        original = app.pipelines[crm].run_cycle()
        _fix_rules(tmp_path)
        plan, book = _plan(app, crm, original.run_id)
        first = execute_revert(app.pipelines[crm], plan, book).report
        assert first.outcome == "ok" and _members(app, crm) == set()

        plan, book = _plan(app, crm, first.run_id)
        assert {(r.field, r.restored) for r in plan.restores} == {
            ("status", nurture),
            ("newsletter", True),
        }
        second = execute_revert(app.pipelines[crm], plan, book)
        assert second.report.outcome == "ok" and second.mismatches == []
        assert {_status(app, crm, i) for i in ids} == {nurture}
        assert _members(app, crm) == set(ids)
        # the original run cannot be reverted twice over the revert's writes
        again, _ = _plan(app, crm, original.run_id)
        assert again.restores == []
        assert {s.reason.split(":")[0] for s in again.skipped} == {"changed since by syncd"}


def test_dry_run_writes_nothing_and_its_plan_is_what_the_revert_writes(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path)) as app:
        originals = {}
        for crm in CRMS:
            ids = _seed(app, crm, 40)
            originals[crm] = app.pipelines[crm].run_cycle().run_id
            _person_sets(app, crm, ids[0], "Unqualified" if crm == "salesforce" else "UNQUALIFIED")
        _fix_rules(tmp_path)
        for crm in CRMS:
            emulator = app.embedded.salesforce if crm == "salesforce" else app.embedded.hubspot
            journal_before = len(emulator.journal.entries())
            dry, book = _plan(app, crm, originals[crm])  # what `revert --dry-run` shows
            reads = emulator.journal.entries()[journal_before:]
            # Reads only (a Composite request of chained query pages is a read).
            assert all(not e.is_write or "search" in e.path for e in reads), [
                (e.method, e.path) for e in reads
            ]
            assert app.store.pending_count(crm) == 0

            result = execute_revert(app.pipelines[crm], dry, book)
            written = {
                (a.lead_id, a.field, a.after) for a in app.store.audit_of_run(result.report.run_id)
            }
            planned = {(r.lead_id, r.label, r.restored) for r in dry.restores}
            assert written == planned and len(planned) == 2 * 40 - 1


def test_revert_writes_in_the_minimum_batches(tmp_path: Path) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        _seed(app, "salesforce", 450)
        original = app.pipelines["salesforce"].run_cycle()
        _fix_rules(tmp_path)
        plan, book = _plan(app, "salesforce", original.run_id)
        sf = app.embedded.salesforce
        start = len(sf.journal.entries())
        execute_revert(app.pipelines["salesforce"], plan, book, read_back=False)
        calls = [
            (e.method, e.path.rsplit("/", 1)[-1])
            for e in sf.journal.entries()[start:]
            if "token" not in e.path
        ]
        history = [e for e in sf.journal.entries()[start:] if "LeadHistory" in (e.soql or "")]
        # 450 status writes: 3 collections in one Composite call, ending with their leads'
        # status history (a person's edit made while the batch was in flight), no call of its
        # own; 450 removals: 3 member queries + 3 deletes
        (composite,) = [e for e in sf.journal.entries()[start:] if e.path.endswith("/composite")]
        assert [s.method for s in composite.subrequests] == ["PATCH"] * 3 + ["GET"]
        assert "LeadHistory" in (composite.subrequests[-1].soql or "")
        assert sum(1 for m, _ in calls if m == "DELETE") == 3
        assert history == []
        assert len(calls) == 7, calls


# ---- the command, as an admin runs it --------------------------------------------------------


def _cli_config(tmp_path: Path, emu: Any, campaign: str) -> Path:
    (tmp_path / "rules.yaml").write_text(E2E_RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
salesforce:
  status_values: {{New: Open - Not Contacted, Open: Working - Contacted}}
  connector:
    instance_url: {emu.base_url}
    token_url: {emu.token_url}
    ca_bundle: {emu.ca_pem_path}
    lag_seconds: 0
    auth:
      type: client_credentials
      client_id: {emu.client_id}
      client_secret: {{env: SF_SECRET}}
    newsletters: {{newsletter: {campaign}}}
""")
    return config


def test_revert_command_shows_the_plan_then_writes_it_as_a_run_status_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from connectors.testing.salesforce import SalesforceEmulator
    from syncd.cli import app as cli

    runner = CliRunner()
    with SalesforceEmulator() as emu:
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        campaign = emu.add_campaign("Newsletter")
        ids = emu.add_leads(
            sf_lead(
                f"L{i}",
                f"l{i}@acme{i}.com",
                title="Analyst",
                status="Working - Contacted",
                activity_days=200,
            )
            for i in range(4)
        )
        config = str(_cli_config(tmp_path, emu, campaign))
        assert runner.invoke(cli, ["sync", "--once", "-c", config]).exit_code == 0
        run_id = next(r.run_id for r in _runs(tmp_path))
        emu.update_lead(ids[0], {"Status": "Unqualified"})  # a person, since

        missing = runner.invoke(cli, ["revert", "nosuchrun", "-c", config])
        assert missing.exit_code == 2 and "no run 'nosuchrun'" in missing.output
        assert "Traceback" not in missing.output

        writes = len(emu.journal.writes())
        dry = runner.invoke(cli, ["revert", run_id, "--dry-run", "-c", config])
        assert dry.exit_code == 0, dry.output
        assert len(emu.journal.writes()) == writes
        assert f"Revert of run {run_id} on salesforce: 7 changes to write, 1 skipped" in dry.output
        assert "newsletter removals: 4 leads out of newsletter" in dry.output
        assert f"{ids[0]} status: changed since by a person" in dry.output
        assert "cannot undo what the CRM did" in dry.output
        # the rule still matches: the plan warns that the next cycle would move them again
        assert (
            "would change 3 of these leads again on the next cycle (rule stale-nurture)"
            in dry.output
        )
        assert "dry run: nothing was written" in dry.output

        as_json = runner.invoke(cli, ["revert", run_id, "--dry-run", "--json", "-c", config])
        planned = {
            (r["lead_id"], r["field"], r["restored"])
            for r in json.loads(as_json.output)["restores"]
        }
        assert len(emu.journal.writes()) == writes

        done = runner.invoke(cli, ["revert", run_id, "--yes", "-c", config])
        assert done.exit_code == 0, done.output
        revert_id = done.output.rsplit("syncd revert ", 1)[1].split()[0]
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            written = {(a.lead_id, a.field, a.after) for a in store.audit_of_run(revert_id)}
        finally:
            store.close()
        assert written == planned  # the dry run's plan is what the revert wrote
        assert [emu.lead(i)["Status"] for i in ids] == ["Unqualified"] + ["Working - Contacted"] * 3
        assert emu.campaign_members(campaign) == set()
        assert "read back 3 leads, all match" in done.output
        status = runner.invoke(cli, ["status", "-c", config])
        assert f"revert of run {run_id}: 7 written, 0 failed, 1 skipped" in status.output


def _runs(tmp_path: Path) -> list[Any]:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        return store.last_runs()
    finally:
        store.close()


def test_rule_and_lead_filters_revert_only_those_changes(tmp_path: Path) -> None:
    from syncd.revert import RevertFilter

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        stale = sf.add_leads(
            [
                sf_lead(f"S{i}", f"s{i}@acme{i}.com", title="Analyst", activity_days=200)
                for i in range(2)
            ]
        )
        misfits = sf.add_leads([sf_lead(f"M{i}", f"m{i}@gmail.com", title=None) for i in range(2)])
        run_id = app.pipelines["salesforce"].run_cycle().run_id
        pipeline, book, now = app.pipelines["salesforce"], app.rules.current(), app.clock()

        by_rule = plan_revert(
            app.store, pipeline, run_id, book, now, RevertFilter(rule_id="misfit-archive")
        )
        assert {(r.lead_id, r.field, r.restored) for r in by_rule.restores} == {
            (i, "status", "Open - Not Contacted") for i in misfits
        }
        by_lead = plan_revert(
            app.store, pipeline, run_id, book, now, RevertFilter(lead_id=stale[0])
        )
        assert {(r.lead_id, r.label) for r in by_lead.restores} == {
            (stale[0], "status"),
            (stale[0], "newsletter:newsletter"),
        }
        later = plan_revert(
            app.store, pipeline, run_id, book, now, RevertFilter(since=now + timedelta(minutes=1))
        )
        assert later.restores == [] and later.skipped == []


@pytest.mark.parametrize(
    ("write_after_edit", "reverted"),
    [(timedelta(milliseconds=500), False), (timedelta(seconds=30), True)],
    ids=["same-second", "well-after"],
)
def test_a_person_s_status_edit_stamped_within_the_clock_skew_of_the_write_is_never_reverted(
    tmp_path: Path, write_after_edit: timedelta, reverted: bool
) -> None:
    """Salesforce stamps a person's edit to the second by its own clock, and syncd stamps its
    write by its own after the answer: an edit that may have come after the write is kept."""
    from sqlalchemy import update

    from syncd.state import AuditRow

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        (lead_id,) = sf.add_leads(
            [sf_lead("L0", "l0@acme0.com", title="Analyst", status="Working - Contacted",
                     activity_days=200)]
        )  # fmt: skip
        pipeline = app.pipelines["salesforce"]
        run_id = pipeline.run_cycle().run_id
        assert sf.lead(lead_id)["Status"] == "Nurture"
        sf.update_lead(lead_id, {"Status": "Unqualified"})  # a rep moves it, then back again
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        sf.update_lead(lead_id, {"Status": "Nurture"})
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())
        mirrored = app.store.lead("salesforce", lead_id)
        assert mirrored is not None and mirrored.rep_edit_at is not None
        edited = mirrored.rep_edit_at
        with app.store.begin() as conn:  # syncd's write, as its own clock stamped it
            audit = AuditRow.__table__
            conn.execute(
                update(audit).where(audit.c.run_id == run_id).values(at=edited + write_after_edit)
            )
        plan = plan_revert(app.store, pipeline, run_id, app.rules.current(), app.clock())

        restored = {(r.lead_id, r.field) for r in plan.restores}
        assert ((lead_id, "status") in restored) is reverted
        if not reverted:
            (skip,) = [s for s in plan.skipped if s.field == "status"]
            assert skip.reason.startswith("status set by a person at ")
            assert skip.reason.endswith("at about the time syncd wrote it")


@dataclass
class _SyncedByCli:
    """Two leads synced once by `syncd sync --once`: the run a CLI revert names."""

    emu: Any
    ids: list[str]
    config: str
    run_id: str

    def revert(self, *args: str) -> Any:
        from typer.testing import CliRunner

        from syncd.cli import app as cli

        return CliRunner().invoke(cli, ["revert", self.run_id, *args, "-c", self.config])


@contextmanager
def _synced_by_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_SyncedByCli]:
    from typer.testing import CliRunner

    from connectors.testing.salesforce import SalesforceEmulator
    from syncd.cli import app as cli

    with SalesforceEmulator() as emu:
        monkeypatch.setenv("SF_SECRET", emu.client_secret)
        campaign = emu.add_campaign("Newsletter")
        ids = emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(2)
        )
        config = str(_cli_config(tmp_path, emu, campaign))
        assert CliRunner().invoke(cli, ["sync", "--once", "-c", config]).exit_code == 0
        yield _SyncedByCli(emu, ids, config, next(r.run_id for r in _runs(tmp_path)))


def test_revert_lead_takes_the_15_character_id_when_the_ui_shows_that_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        ids = synced.ids

        def planned(lead: str) -> set[tuple[str, str]]:
            shown = synced.revert("--dry-run", "--json", "--lead", lead)
            assert shown.exit_code == 0, shown.output
            return {(r["lead_id"], r["field"]) for r in json.loads(shown.output)["restores"]}

        assert (
            planned(ids[0][:15])
            == planned(ids[0])
            == {
                (ids[0], "status"),
                (ids[0], "newsletter:newsletter"),
            }
        )


def test_revert_exits_2_and_names_the_filter_when_its_lead_matches_no_applied_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        emu, ids, run_id = synced.emu, synced.ids, synced.run_id
        statuses = [emu.lead(i)["Status"] for i in ids]
        typo = ids[0][:-1] + "X"
        for dry in ([], ["--dry-run"]):
            shown = synced.revert("--lead", typo, "--yes", *dry)
            assert shown.exit_code == 2, shown.output
            assert f"no applied change of run {run_id} matches --lead {typo}" in shown.output
            assert "retention" not in shown.output
        assert [emu.lead(i)["Status"] for i in ids] == statuses
        assert len(_runs(tmp_path)) == 1, "a revert run was recorded"
