"""README promises of "Why nothing is lost" that no other test pinned down.

Each test names the promise it holds; the README text it checks is quoted in a comment where
the name alone does not say which sentence it is. "Architecture" is in
test_readme_promises_reliability_and_architecture.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from rules import load_rulebook
from syncd import due, kpi
from syncd.cli import app as cli
from syncd.enrichment import EnrichmentSettings
from syncd.history_staging import StagedHistory
from syncd.plan import build_plan, status_report
from syncd.settings import CalendarSettings, LoopGuardSettings, load_settings
from syncd.state import StateStore
from tests.daemon import test_decisions_delivered_whole as dd
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config
from tests.daemon.test_kpi import _CountingKpis

ROOT = Path(__file__).resolve().parents[1]


# ---- Why nothing is lost: the planning fingerprint --------------------------------------------


def _fingerprint_inputs(**changes: Any) -> dict[str, Any]:
    settings = load_settings(write_config(Path(changes.pop("tmp")), crms=("salesforce",)))
    connector = settings.connectors()["salesforce"]
    calendar = changes.pop("calendar", CalendarSettings())
    inputs: dict[str, Any] = {
        "book": load_rulebook([ROOT / "rules" / "default.yaml"], calendar=calendar.calendar()),
        "settings": connector.model_copy(update=changes.pop("connector", {})),
        "enrichment": EnrichmentSettings(**changes.pop("enrichment", {})),
        "loop_guard": LoopGuardSettings(**changes.pop("loop_guard", {})),
    }
    assert not changes, changes
    return inputs


@pytest.mark.parametrize(
    "change",
    [
        {"calendar": CalendarSettings(timezone="Europe/Berlin")},
        {"calendar": CalendarSettings(holidays=["2026-12-24"])},
        {"connector": {"hold_rep_edits_for": timedelta(days=3)}},
        {"enrichment": {"extra_free_mail_domains": ["example.org"]}},
        {"loop_guard": {"max_changes": 5}},
    ],
    ids=["calendar-zone", "calendar-holidays", "connector", "enrichment", "loop-guard"],
)
def test_the_planning_fingerprint_changes_when_a_setting_verdicts_depend_on_changes(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    # "a hash of the rule-set version, the calendar, the enrichment and loop-guard settings,
    # the connector's settings and syncd's version"
    before = due.planning_fingerprint(**_fingerprint_inputs(tmp=tmp_path))
    assert due.planning_fingerprint(**_fingerprint_inputs(tmp=tmp_path)) == before
    after = due.planning_fingerprint(**_fingerprint_inputs(tmp=tmp_path, **change))
    assert after != before


def test_the_planning_fingerprint_changes_with_syncds_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _fingerprint_inputs(tmp=tmp_path)
    before = due.planning_fingerprint(**inputs)
    monkeypatch.setattr(due, "_version", lambda: "999.0")
    assert due.planning_fingerprint(**inputs) != before


def test_the_planning_fingerprint_is_kept_in_the_meta_table_per_connector(
    state_store: StateStore,
) -> None:
    assert due.record_fingerprint(state_store, "salesforce", "f1") is True
    assert state_store.get_meta(due.fingerprint_key("salesforce")) == "f1"
    assert due.record_fingerprint(state_store, "salesforce", "f1") is False
    # Another connector's fingerprint is its own: still unknown, so still a change there.
    assert due.fingerprint_changed(state_store, "hubspot", "f1") is True


# ---- Architecture: the Kubernetes pod's /tmp (the Salesforce history staging) ------------------


def _kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (for `kubectl kustomize`) is missing; make test installs it")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in YAML(typ="safe").load_all(out) if d]


@pytest.mark.parametrize("path", ["base", "overlays/postgres-ha"])
def test_the_kubernetes_manifests_give_tmp_256_mib(path: str) -> None:
    # "streamed into a temporary file ... (in TMPDIR ...; the Kubernetes manifests give /tmp
    # 256 MiB)"
    deployment = next(d for d in _kustomize(path) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("TMPDIR", "/tmp") == "/tmp"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["sizeLimit"] == "256Mi"


# ---- Why nothing is lost: what a cycle evaluates, and what it counts --------------------------


def test_funnel_kpis_refresh_every_15_minutes_without_ledger_growth_and_are_never_spaced_further(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "brought up to date only when the ledger grew or a merge moved rows of it (spaced by 20
    # times a refresh's duration) or every 15 minutes"
    t0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
    now = {"t": t0}
    kpis = _CountingKpis(load_settings(write_config(tmp_path)), lambda: now["t"])
    # The first refresh takes 120 s (20 x 120 s = 40 min); the later ones 10 ms.
    ticks = iter([0.0, 120.0, 5000.0, 5000.01, 9000.0, 9000.01])
    monkeypatch.setattr(kpi.time, "perf_counter", lambda: next(ticks))

    kpis.refresh("salesforce")
    kpis.mark += 1  # the ledger grew: due after 20 x 120 s, but never later than 15 min
    now["t"] = t0 + timedelta(minutes=15) - timedelta(seconds=1)
    kpis.refresh("salesforce")
    assert kpis.computed == 1
    now["t"] = t0 + timedelta(minutes=15)
    kpis.refresh("salesforce")
    assert kpis.computed == 2
    # The ledger does not grow: nothing until the gauges are 15 minutes old.
    now["t"] = t0 + timedelta(minutes=30) - timedelta(seconds=1)
    kpis.refresh("salesforce")
    assert kpis.computed == 2
    now["t"] = t0 + timedelta(minutes=30)
    kpis.refresh("salesforce")
    assert kpis.computed == 3


def test_plan_lists_every_held_lead_when_its_selection_evaluates_none_of_them(
    tmp_path: Path,
) -> None:
    # "syncd plan lists every held lead, and the blocked ones among the leads it evaluates"
    config = write_config(tmp_path, crms=("hubspot",))
    with running_app(config) as app:
        emu = app.embedded.hubspot
        ids = emu.add_contacts(
            [hs_contact(f"H{i}", f"h{i}@acme.com", title="Analyst") for i in range(3)]
        )
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        for contact in ids:
            emu.update_contact(contact, {"hs_lead_status": "IN_PROGRESS"})
        assert pipeline.run_cycle().held == 3
        # Nothing moved since: the plan's selection evaluates none of them.
        selected = due.iter_plan_rows(app.store, "hubspot", app.clock(), every=False)
        assert [r.lead_id for chunk in selected for r in chunk] == []
        part = build_plan(app)["crms"]["hubspot"]
        assert sorted(h["lead_id"] for h in part["held"]) == sorted(ids)

    shown = CliRunner().invoke(cli, ["plan", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "3 held:" in shown.output, shown.output
    assert all(f"{i}: " in shown.output for i in ids), shown.output


# ---- Why nothing is lost: what the ledger knows from HubSpot's history ------------------------


def test_hubspot_history_source_types_become_person_syncd_and_automation_in_the_ledger(
    tmp_path: Path,
) -> None:
    # "sourceType: CRM_UI a person, INTEGRATION syncd (another app writing the status counts as
    # syncd), anything else (WORKFLOW, IMPORT, forms) the CRM's automation"; "the value set at
    # creation is the oldest entry (from unknown)"
    now = datetime.now(UTC)
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        emu = app.embedded.hubspot
        (contact,) = emu.add_contacts([hs_contact("Src", "src@acme.com", title="CTO")])
        emu.update_contact(contact, {"hs_lead_status": "OPEN"})
        history = [
            ("NEW", now - timedelta(days=40), "IMPORT"),
            ("MQL", now - timedelta(days=30), "WORKFLOW"),
            ("NURTURE", now - timedelta(days=20), "INTEGRATION"),
            ("SAL", now - timedelta(days=10), "FORM"),
            ("OPEN", now - timedelta(days=2), "CRM_UI"),
        ]
        emu.set_history(contact, "hs_lead_status", history)
        report = app.pipelines["hubspot"].run_cycle()
        ledger = [
            (h.from_value, h.to_value, h.actor, h.source)
            for h in app.store.history_of_lead("hubspot", contact)
        ]
        status = emu.contact(contact)["hs_lead_status"]

    assert report.outcome == "ok" and report.held == 1
    assert status == "OPEN"  # the person's value, two days old: held, not overwritten
    assert ledger == [
        (None, "NEW", "automation", "backfill"),
        ("NEW", "MQL", "automation", "backfill"),
        ("MQL", "NURTURE", "syncd", "backfill"),
        ("NURTURE", "SAL", "automation", "backfill"),
        ("SAL", "OPEN", "person", "backfill"),
    ]


# ---- Why nothing is lost: writes in flight are in doubt, and settled ---------------------------


def test_a_person_who_puts_the_old_status_back_over_an_unconfirmed_write_is_held_and_it_withdrawn(
    tmp_path: Path,
) -> None:
    # "If someone other than syncd modified the lead after the request left and the CRM shows
    # another status, that status is treated as a person's -- held, and the change withdrawn
    # with an audit row saying the write was unconfirmed"; "The rest of such an overridden
    # intent that went out in the same request ... is withdrawn with it, audited as unconfirmed"
    config = write_config(tmp_path, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", "lag_seconds: 0\n    retry: {attempts: 1}")
    )
    old = "Open - Not Contacted"
    with running_app(config) as app:
        sf = app.embedded.salesforce
        seeded = datetime.fromtimestamp(sf.clock.now_second(), tz=UTC) - timedelta(minutes=1)
        (lead,) = sf.add_leads(
            [sf_lead("Back", "back@acme.com", title="Analyst", activity_days=200, status=old)],
            modstamp=seeded,
        )
        pipeline = app.pipelines["salesforce"]
        # The org applies the status write and the newsletter add; the answer is lost.
        sf.faults.drop_next(1, path="composite/sobjects", method="PATCH", after_applied=True)
        assert pipeline.run_cycle().outcome == "failed"
        assert sf.lead(lead)["Status"] == "Nurture"
        # A rep puts the old value back before syncd learns what became of its write.
        sf.update_lead(lead, {"Status": old})

        settled = pipeline.run_cycle()
        after = pipeline.run_cycle()
        status = sf.lead(lead)["Status"]
        audit = [(a.field, a.outcome, a.message) for a in app.store.audit_of_lead(lead)]
        mirror = app.store.lead("salesforce", lead)

    assert settled.outcome == "ok" and settled.written == 0 and settled.held == 1
    assert after.written == 0 and after.planned == 0
    assert status == old  # the person's value stands
    assert mirror is not None and mirror.rep_edit_status == old
    assert [(field, outcome) for field, outcome, _ in audit] == [
        ("status", "withdrawn"),
        ("newsletter:newsletter", "withdrawn"),
    ]
    assert all("unconfirmed" in (message or "") for _, _, message in audit), audit


# ---- Why nothing is lost: decisions delivered whole, and rep edits win -----------------------


def test_the_rest_of_a_half_delivered_decision_is_withdrawn_when_the_lead_is_converted(
    tmp_path: Path,
) -> None:
    # "The rest is withdrawn only when ... the lead was deleted or converted"
    crm = "salesforce"
    with running_app(dd._config(tmp_path, crm, one_attempt=True)) as app:
        ids = dd._seed(app, crm)
        pipeline = app.pipelines[crm]
        dd._fail_membership_once(app, crm)
        assert pipeline.run_cycle().outcome == "failed"
        dd._status_written_newsletter_pending(app, crm, ids)
        app.embedded.salesforce.convert_lead(ids[0])
        assert pipeline.run_cycle().outcome == "ok"
        assert dd._newsletter_outcomes(app, ids[0]) == [("withdrawn", "lead converted in the CRM")]
        assert dd._members(app, crm) == set(ids[1:])


def test_a_persons_status_edit_withdraws_syncds_change_still_waiting_for_that_lead(
    tmp_path: Path,
) -> None:
    # "a person changed it: syncd leaves that lead alone for hold_rep_edits_for, withdraws any
    # change of its own still waiting for that lead, counts it, and syncd status says why"
    crm = "salesforce"
    config = dd._config(tmp_path, crm, one_attempt=True)
    with running_app(config) as app:
        sf = app.embedded.salesforce
        seeded = datetime.fromtimestamp(sf.clock.now_second(), tz=UTC) - timedelta(minutes=1)
        ids = sf.add_leads(
            [
                sf_lead(f"W{i}", f"w{i}@acme{i}.com", title="Analyst", activity_days=200)
                for i in range(2)
            ],
            modstamp=seeded,
        )
        pipeline = app.pipelines[crm]
        # The status batch is refused with a 503: every change stays waiting in the outbox.
        sf.faults.fail_next(1, path="composite/sobjects", method="PATCH")
        assert pipeline.run_cycle().outcome == "failed"
        assert app.store.pending_count(crm) == 4  # 2 status writes, 2 joins
        sf.update_lead(ids[0], {"Status": "Working - Contacted"})  # a rep works the lead

        report = pipeline.run_cycle()
        status = {i: sf.lead(i)["Status"] for i in ids}
        audit = [(a.field, a.outcome, a.message) for a in app.store.audit_of_lead(ids[0])]
        held = status_report(app)["crms"][crm]["held"]

    assert report.outcome == "ok" and report.held == 1
    assert status == {ids[0]: "Working - Contacted", ids[1]: "Nurture"}
    reason = "status changed by a person (or the CRM) before syncd wrote it"
    assert audit == [
        ("status", "withdrawn", reason),
        ("newsletter:newsletter", "withdrawn", reason),
    ]
    assert [h["lead_id"] for h in held] == [ids[0]]
    assert "Working - Contacted" in held[0]["reason"]


# ---- Why nothing is lost: the Salesforce first sync's history staging -------------------------


def test_a_salesforce_first_sync_stages_the_orgs_history_in_tmpdir_for_the_pull_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "reads the org's whole Status history once, streamed into a temporary file for the pull
    # (in TMPDIR ...)"
    staging_dir = tmp_path / "tmpdir"
    staging_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(staging_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR anew
    seen: list[list[str]] = []
    add = StagedHistory.add

    def add_and_look(self: StagedHistory, entries: Any) -> None:
        seen.append(sorted(p.name for p in staging_dir.iterdir()))
        add(self, entries)

    monkeypatch.setattr(StagedHistory, "add", add_and_look)
    base = datetime.fromtimestamp(time.time(), tz=UTC).replace(microsecond=0)
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        emu = app.embedded.salesforce
        ids = emu.add_leads(
            (sf_lead(f"T{i}", f"t{i}@acme.com", title="CTO") for i in range(250)),
            modstamp=base - timedelta(days=30),
        )
        for lead_id in ids:
            emu.update_lead(
                lead_id, {"Status": "Working - Contacted"}, modstamp=base - timedelta(days=20)
            )
        report = app.pipelines["salesforce"].run_cycle()
        per_lead = [
            e
            for e in emu.journal.entries()
            if e.soql and "FROM LeadHistory" in e.soql and " IN (" in e.soql
        ]
        ledger = app.store.history_of_lead("salesforce", ids[0])

    assert report.outcome == "ok" and report.pulled == 250
    assert per_lead == []  # the org's history was read once, not per 200 leads
    staged = [[n for n in names if n.startswith("syncd-history-")] for names in seen]
    assert staged and all(len(names) == 1 for names in staged), seen
    # Removed when the pull ended (the emulator's own files stay).
    assert not [p for p in staging_dir.iterdir() if p.name.startswith("syncd-history-")]
    assert [(h.to_value, h.actor, h.source) for h in ledger] == [
        ("Working - Contacted", "person", "backfill")
    ]


# ---- Why nothing is lost: the chaos soak is the judge ------------------------------------------


def test_the_bounded_soak_faults_30_percent_of_calls_of_every_kind_over_2000_leads_a_crm() -> None:
    # "faults on about 30 % of API calls (every kind the emulators have ...)"; "A bounded soak
    # (2,000 leads a CRM) runs in make test"
    import argparse

    from connectors.testing.kit.cli import add_common_options
    from connectors.testing.kit.faults import FAULT_KINDS
    from tests.soak import scenario, world

    params = scenario.SoakParams()
    assert (params.leads, params.fault_rate) == (2000, 0.3)
    assert set(scenario.FAULT_KINDS) == set(FAULT_KINDS)
    # The soak starts each emulator with a fault rate and no kind filter: the default is all.
    parser = argparse.ArgumentParser()
    add_common_options(parser)
    assert parser.parse_args([]).fault_kinds.split(",") == list(FAULT_KINDS)
    source = Path(world.__file__).read_text()
    assert '"--fault-rate"' in source and '"--fault-kinds"' not in source


# ---- Why nothing is lost: what a cycle reads ---------------------------------------------------


def test_a_cycle_that_evaluates_and_writes_leads_never_reads_their_reasons(tmp_path: Path) -> None:
    # "the plan reads only the columns rules need (never reasons, which only explain shows)"
    from sqlalchemy import event

    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        app.embedded.salesforce.add_leads(
            sf_lead(f"R{i}", f"r{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(5)
        )
        reads: list[str] = []

        def sent(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                reads.append(statement)

        event.listen(app.store.engine, "before_cursor_execute", sent)
        try:
            report = app.pipelines["salesforce"].run_cycle()
        finally:
            event.remove(app.store.engine, "before_cursor_execute", sent)
        with app.store.begin() as conn:
            (row,) = conn.exec_driver_sql(
                "SELECT count(*) FROM lead WHERE reasons IS NOT NULL"
            ).one()

    assert report.outcome == "ok" and report.evaluated == 5 and report.written > 0
    assert row == 5  # the pull stored them
    assert reads and not [s for s in reads if "reasons" in s]


# ---- Why nothing is lost: what a pull can know -------------------------------------------------


def test_two_status_changes_between_pulls_are_one_pulled_ledger_row(tmp_path: Path) -> None:
    # "A pull sees only the latest value: two changes between pulls are one pulled row."
    with running_app(write_config(tmp_path, crms=("hubspot",))) as app:
        emu = app.embedded.hubspot
        (contact,) = emu.add_contacts([hs_contact("Two", "two@acme.com", title="CTO")])
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        before = emu.contact(contact)["hs_lead_status"]
        emu.update_contact(contact, {"hs_lead_status": "OPEN"})
        emu.update_contact(contact, {"hs_lead_status": "IN_PROGRESS"})
        assert pipeline.run_cycle().outcome == "ok"
        pulled = [
            (h.from_value, h.to_value, h.actor)
            for h in app.store.history_of_lead("hubspot", contact)
            if h.source == "pulled"
        ]

    assert before not in ("OPEN", "IN_PROGRESS")
    assert pulled == [(before, "IN_PROGRESS", "person")]


def test_the_hubspot_emulator_keeps_20_past_values_a_property_as_the_readme_says() -> None:
    # "the emulator and the tests assume 20 (history_max_values), so that the cut-off path ...
    # is exercised"
    from connectors.testing.hubspot import EmulatorConfig

    assert EmulatorConfig().history_max_values == 20
