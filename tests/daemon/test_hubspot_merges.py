"""A HubSpot merge makes a new contact of two and keeps the original ids as aliases of it
(docs/crm-api.md C12): syncd marks the originals deleted when it pulls the merged contact, so
nothing it decided from an original's data is ever written through the alias."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncd import kpi, kpi_incremental
from syncd.history_backfill import backfill
from syncd.kpi import FunnelKpis
from syncd.report import ReportOptions, compute
from syncd.report_read import read_inputs
from syncd.state import StatusHistoryRow

from .harness import hs_contact, hs_write_calls, running_app, write_config


def test_contacts_merged_into_a_new_one_are_marked_deleted_and_a_rule_coming_due_on_one_writes_nothing(
    tmp_path: Path,
) -> None:
    now = {"t": datetime.now(UTC)}
    with running_app(write_config(tmp_path, crms=("hubspot",)), clock=lambda: now["t"]) as app:
        hs = app.embedded.hubspot
        stale, fresh = hs.add_contacts(
            [
                hs_contact("Lovelace", "ada@acme.com", title="Analyst", activity_days=85),
                hs_contact("Lovelace", "ada.lovelace@acme.com", title="Analyst", activity_days=2),
            ]
        )
        start = now["t"] = datetime.now(UTC)  # the pull reads up to the daemon's now
        pipeline = app.pipelines["hubspot"]
        first = pipeline.run_cycle()
        assert (first.outcome, first.pulled, first.written) == ("ok", 2, 0), first.message

        # A person merges the two, keeping the fresh one's values: HubSpot makes a third.
        merged = hs.merge_contacts(fresh, stale)
        now["t"] = start + timedelta(days=10)  # the stale original's 90 days have passed
        second = pipeline.run_cycle()

        assert second.outcome == "ok", second.message
        assert second.deleted == 2
        for original in (stale, fresh):
            row = app.store.lead("hubspot", original)
            assert row is not None and row.deleted, original
        row = app.store.lead("hubspot", merged)
        assert row is not None and not row.deleted
        # The stale original came due, but it is no lead any more: a write to its id would
        # have moved the merged contact, whose activity is 12 days old, to Nurture.
        assert [e.path for e in hs_write_calls(app) if "/properties/" not in e.path] == []
        assert hs.contact(merged)["hs_lead_status"] == "NEW"
        assert pipeline.run_cycle().written == 0


def _two_contacts_that_entered_stages(app: Any, now: datetime) -> tuple[str, str]:
    """Two contacts whose history the first cycle backfills: one went New -> MQL, the other
    New -> MQL -> SAL, each step on a day of its own (milliseconds, as HubSpot keeps them)."""
    hs = app.embedded.hubspot
    mql, sal = hs.add_contacts(
        [
            hs_contact("Hopper", "grace@acme.com", title="CTO", status="MQL"),
            hs_contact("Hopper", "grace.hopper@acme.com", title="CTO", status="SAL"),
        ]
    )
    hs.set_history(
        mql,
        "hs_lead_status",
        [("NEW", now - timedelta(days=30), "IMPORT"), ("MQL", now - timedelta(days=20), "CRM_UI")],
    )
    hs.set_history(
        sal,
        "hs_lead_status",
        [
            ("NEW", now - timedelta(days=25), "IMPORT"),
            ("MQL", now - timedelta(days=15), "CRM_UI"),
            ("SAL", now - timedelta(days=10), "CRM_UI"),
        ],
    )
    return mql, sal


def _ledger_rows(app: Any) -> list[tuple[Any, ...]]:
    """The CRM's ledger: (lead, id, field, from, to, at, actor, source), in id order."""
    table = StatusHistoryRow.__table__
    with app.store.engine.connect() as conn:
        rows = conn.execute(
            select(
                table.c.lead_id,
                table.c.id,
                table.c.field,
                table.c.from_value,
                table.c.to_value,
                table.c.at,
                table.c.actor,
                table.c.source,
            )
            .where(table.c.crm == "hubspot")
            .order_by(table.c.id)
        ).all()
    return [tuple(r) for r in rows]


def _funnel_gauges(app: Any) -> dict[str, float | None]:
    registry = app.metrics.registry
    return {
        stage: registry.get_sample_value("syncd_funnel_leads", {"crm": "hubspot", "stage": stage})
        for stage in app.settings.report.stages
    }


@pytest.mark.parametrize("history", ["inline", "after_the_pull"])
def test_a_merge_counts_each_transition_before_it_once_under_the_merged_contact_when_a_cycle_reads_it(
    tmp_path: Path, store_url: str, history: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, crms=("hubspot",), state_url=store_url)
    now = datetime.now(UTC)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        mql, sal = _two_contacts_that_entered_stages(app, now)
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        before = _ledger_rows(app)
        assert {r[0] for r in before} == {mql, sal} and len(before) == 5

        merged = hs.merge_contacts(sal, mql)  # the SAL one's values are kept
        if history == "after_the_pull":
            # More new contacts than one history read takes (50): the pull mirrors them first
            # and reads their history, the merged contact's among them, after it.
            hs.add_contacts(
                hs_contact(f"N{i}", f"n{i}@acme.com", title="CTO", status="OPEN") for i in range(60)
            )
        with caplog.at_level(logging.INFO, logger="syncd.pipeline"):
            second = pipeline.run_cycle()
        after = [r for r in _ledger_rows(app) if r[0] == merged or r[0] in (mql, sal)]
        maps = FunnelKpis(app.store.engine, app.settings, lambda *_: None).status_maps
        # The full report over the whole ledger, as ``syncd report`` computes it.
        leads = read_inputs(app.store.engine, maps, crm="hubspot")
        funnel = compute(leads, ReportOptions(since=now - timedelta(days=90), until=now, now=now))[
            0
        ]

    assert second.outcome == "ok", second.message
    read_after = "read the status history of 61 leads after the pull" in caplog.text
    assert read_after == (history == "after_the_pull")
    # HubSpot gives the merged contact both histories. The ledger had every one of those
    # transitions under the originals: they are the merged contact's now, each once, with their
    # ids, times, actors and sources, and its history added none again.
    counted = {s.stage: s.any_order for s in funnel.stages}
    assert (counted["New"], counted["MQL"], counted["SAL"]) == (1, 1, 1)
    assert after == [(merged, *r[1:]) for r in before]
    assert second.ledger_moved == 5


def test_the_daemons_funnel_gauges_after_a_merge_equal_a_full_recompute_when_no_ledger_row_was_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every refresh is due at once (the test's cycles are milliseconds apart), and one that
    # may be incremental is (a refresh of few leads would read them all for cost).
    monkeypatch.setattr(kpi, "KPI_SPACING", 0)
    monkeypatch.setattr(kpi_incremental, "_INCREMENTAL_SHARE", float("inf"))
    config = write_config(tmp_path, crms=("hubspot",))
    now = datetime.now(UTC)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        mql, sal = _two_contacts_that_entered_stages(app, now)
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        assert _funnel_gauges(app)["MQL"] == 2  # two contacts entered MQL

        hs.merge_contacts(sal, mql)
        second = pipeline.run_cycle()
        kept = _funnel_gauges(app)
        full = FunnelKpis(app.store.engine, app.settings, lambda *_: None, incremental=False)
        recomputed = {s.stage: float(s.any_order) for s in full.compute("hubspot").stages}

    assert second.outcome == "ok" and second.ledger_moved == 5
    assert kept == recomputed
    assert (kept["New"], kept["MQL"], kept["SAL"]) == (1, 1, 1)


def test_a_history_backfill_adds_no_transition_twice_when_it_runs_between_a_merge_and_its_pull(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("hubspot",))
    now = datetime.now(UTC)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        mql, sal = _two_contacts_that_entered_stages(app, now)
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        before = _ledger_rows(app)

        merged = hs.merge_contacts(sal, mql)
        # The originals are still live in the mirror: their ids answer the merged contact.
        done = backfill(app.store, pipeline.connector, "hubspot")
        assert (done.leads, done.added) == (2, 0)
        assert pipeline.run_cycle().outcome == "ok"
        after = _ledger_rows(app)

    assert after == [(merged, *r[1:]) for r in before]


@pytest.mark.parametrize("history", ["inline", "after_the_pull"])
def test_the_merged_contacts_ledger_ends_at_its_status_when_the_merge_set_an_older_value_than_an_original_had(
    tmp_path: Path, history: str
) -> None:
    config = write_config(tmp_path, crms=("hubspot",))
    now = datetime.now(UTC)
    with running_app(config) as app:
        hs = app.embedded.hubspot
        mql, sal = _two_contacts_that_entered_stages(app, now)
        pipeline = app.pipelines["hubspot"]
        assert pipeline.run_cycle().outcome == "ok"
        hs.update_contact(mql, {"hs_lead_status": "OPEN"})  # a rep, in the UI
        assert pipeline.run_cycle().outcome == "ok"  # the ledger has the change: a pulled row
        before = _ledger_rows(app)
        assert before[-1][0] == mql and before[-1][4] == "OPEN" and before[-1][7] == "pulled"

        # The SAL one is kept: its value is older than the other's OPEN, so HubSpot's history
        # of the merged contact ends with SAL again, set at the merge.
        merged = hs.merge_contacts(sal, mql)
        if history == "after_the_pull":
            hs.add_contacts(
                hs_contact(f"N{i}", f"n{i}@acme.com", title="CTO", status="OPEN") for i in range(60)
            )
        assert pipeline.run_cycle().outcome == "ok"
        after = [r for r in _ledger_rows(app) if r[0] in (merged, mql, sal)]
        status = app.store.lead("hubspot", merged).status

    assert status == "SAL"
    assert after[: len(before)] == [(merged, *r[1:]) for r in before]
    # What no pull of an original saw: the merge's own change, once.
    assert [(r[0], r[3], r[4], r[7]) for r in after[len(before) :]] == [
        (merged, "OPEN", "SAL", "backfill")
    ]
