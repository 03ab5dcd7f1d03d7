"""A cycle evaluates the leads whose verdict could have changed, not every lead (syncd.due):
pulled or written since their last evaluation, with open outbox rows, come due by time, or all
after the rules or their settings changed. What it leaves out, full evaluation would not move."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd import pipeline as pipeline_module
from syncd.app import App
from syncd.plan import build_plan
from syncd.planner import LeadVerdict, Planner, iter_verdicts
from syncd.state import OutboxState

from .harness import E2E_RULES, running_app, sf_lead, write_config


@pytest.fixture
def evaluated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the leads ``Planner.verdict`` judges, in order (a spy on syncd's own code)."""
    seen: list[str] = []
    original = Planner.verdict

    def spy(self: Planner, row: Any, now: datetime) -> LeadVerdict:
        seen.append(row.lead_id)
        return original(self, row, now)

    monkeypatch.setattr(pipeline_module.Planner, "verdict", spy)
    return seen


def _pulled_at(app: App, lead_id: str) -> datetime:
    row = app.store.lead("salesforce", lead_id)
    assert row is not None
    return row.pulled_at


def _query_rows(app: App) -> int:
    pages = [
        e
        for e in app.embedded.salesforce.journal.entries()
        if e.method == "GET" and "/query" in e.path
    ]
    return sum(e.records or 0 for e in pages)


def test_a_lead_untouched_for_89_days_is_not_evaluated_by_an_idle_cycle_and_the_cycle_after_its_90th_day_moves_it_without_a_crm_read(
    tmp_path: Path, evaluated: list[str], store_url: str
) -> None:
    start = datetime.now(UTC)
    now = {"t": start}
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        (lead,) = sf.add_leads(
            [sf_lead("A", "a@acme.com", title="Analyst", activity_days=89)],
            modstamp=real_now - timedelta(hours=2),
        )
        others = sf.add_leads(
            [
                sf_lead(f"F{i}", f"f{i}@acme.com", title="Analyst", activity_days=1)
                for i in range(5)
            ],
            modstamp=real_now - timedelta(hours=1),
        )
        # A later, fresh lead holds the cursor, so the overlap window re-reads only it.
        (fresh,) = sf.add_leads(
            [sf_lead("B", "b@acme.com", title="Analyst", activity_days=1)],
            modstamp=real_now - timedelta(minutes=30),
        )
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert first.outcome == "ok" and first.written == 0
        assert set(evaluated) == {lead, fresh, *others}
        first_pull = _pulled_at(app, lead)

        # LastActivityDate is a date: 90 days have passed once the day after it is 90 days old.
        day = (start - timedelta(days=89)).date()
        comes_due = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) + timedelta(
            days=90
        )
        for t in (start + timedelta(hours=1), comes_due - timedelta(minutes=1)):
            evaluated.clear()
            now["t"] = t
            idle = pipeline.run_cycle()
            assert idle.outcome == "ok" and idle.planned == 0
            assert lead not in evaluated, "not due yet: its verdict cannot have changed"
            assert set(evaluated) <= {fresh}, "only what the overlap window re-read"
            assert idle.evaluated == len(evaluated)

        sf.journal.clear()
        evaluated.clear()
        now["t"] = comes_due + timedelta(minutes=1)
        moved = pipeline.run_cycle()
        assert moved.outcome == "ok" and moved.written == 2  # its status and newsletter
        assert lead in evaluated and not set(evaluated) - {lead, fresh}
        assert sf.lead(lead)["Status"] == "Nurture"
        assert _pulled_at(app, lead) == first_pull, (
            "decided on the mirror, without reading that lead from the CRM again"
        )
        assert _query_rows(app) <= 1  # only B, inside the overlap window


def _plan_changes(
    app: App, book: Any = None, *, pull: bool = False
) -> set[tuple[str, str, str, Any]]:
    plan = build_plan(app, book=book, pull=pull)
    return {
        (lead["lead_id"], kind, field, value)
        for lead in plan["crms"]["salesforce"]["leads"]
        for kind, field, value in lead["changes"]
    }


def _run_changes(app: App, run_id: str) -> set[tuple[str, str, str, Any]]:
    states = [s.value for s in OutboxState]
    return {
        (r.lead_id, r.kind, r.field, r.value)
        for r in app.store.changes_of_run("salesforce", run_id, states)
    }


def test_changing_the_rule_file_makes_the_next_cycle_evaluate_every_lead_and_plan_before_and_after_equals_what_the_cycles_do(
    tmp_path: Path, evaluated: list[str]
) -> None:
    now = {"t": datetime.now(UTC)}
    config = write_config(tmp_path, crms=("salesforce",))
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        ids = sf.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst", activity_days=days)
                for i, days in enumerate((1, 20, 40, 60, 100, 120))
            ],
            modstamp=real_now - timedelta(hours=2),
        )
        pipeline = app.pipelines["salesforce"]
        planned = _plan_changes(app, pull=True)
        assert planned == {
            (ids[4], "field", "status", "Nurture"),
            (ids[5], "field", "status", "Nurture"),
            (ids[4], "membership", "newsletter", True),
            (ids[5], "membership", "newsletter", True),
        }
        first = pipeline.run_cycle()
        assert first.outcome == "ok" and _run_changes(app, first.run_id) == planned
        now["t"] += timedelta(minutes=5)
        assert _plan_changes(app) == set()
        evaluated.clear()
        idle = pipeline.run_cycle()
        assert idle.planned == 0 and set(evaluated) <= set(ids[4:]), "only the leads syncd wrote"

        (tmp_path / "rules.yaml").write_text(
            E2E_RULES.replace("older_than: 90d", "older_than: 30d")
        )
        book = app.rules.current()
        planned = _plan_changes(app, book)
        assert {c[0] for c in planned} == {ids[2], ids[3]}
        now["t"] += timedelta(minutes=5)
        evaluated.clear()
        changed = pipeline.run_cycle()
        assert changed.outcome == "ok"
        assert sorted(evaluated) == sorted(ids), "new rules: every live lead evaluated once"
        assert changed.evaluated == len(ids)
        assert _run_changes(app, changed.run_id) == planned

        now["t"] += timedelta(minutes=5)
        assert _plan_changes(app) == set()
        evaluated.clear()
        after = pipeline.run_cycle()
        assert after.planned == 0 and set(evaluated) <= set(ids[2:4]), "only the leads written"


FUZZ_RULES = """\
version: 1
name: fuzz
mode: first_match
statuses:
  New: {}
  Open: {}
  MQL: {}
  SAL: {}
  Nurture: {}
  Archived: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: sal-breached
    when:
      all:
        - {field: status, eq: SAL}
        - {field: status_changed_at, older_than: {business_hours: 6}}
    then: [{set_status: MQL}]
  - id: open-quiet
    when:
      all:
        - {field: status, eq: Open}
        - {field: last_activity_at, older_than: 4d}
    then: [{set_status: SAL}]
  - id: new-to-open
    when:
      all:
        - {field: status, eq: New}
        - {field: created_at, older_than: 3d}
        - {field: last_activity_at, within: 6d}
    then: [{set_status: Open}]
  - id: mql-stale
    when:
      all:
        - {field: status, eq: MQL}
        - {field: last_activity_at, older_than: 8d}
    then: [{set_status: Nurture}, {add_to_newsletter: newsletter}]
  - id: nurture-archive
    when:
      all:
        - {field: status, eq: Nurture}
        - {field: status_changed_at, older_than: 2d}
        - {field: last_activity_at, older_than: 12d}
    then: [{archive: {}}]
"""

FUZZ_CALENDAR = """
calendar:
  timezone: America/New_York
  workdays: [mon, tue, wed, thu, fri]
  hours: ["09:00", "17:00"]
"""

SF_STATUSES = {
    "New": "Open - Not Contacted",
    "Open": "Working - Contacted",
    "MQL": "MQL",
    "SAL": "SAL",
    "Nurture": "Nurture",
    "Archived": "Archived",
    "Converted": "Closed - Converted",
}


def _verdicts(app: App, now: datetime, *, every: bool) -> dict[str, tuple[Any, ...]]:
    """Per lead with something to do: the changes (what a cycle would plan)."""
    pipeline = app.pipelines["salesforce"]
    out: dict[str, tuple[Any, ...]] = {}
    for row, verdict in iter_verdicts(
        app.store,
        "salesforce",
        app.rules.current(),
        pipeline.settings,
        now,
        loop_guard=pipeline.loop_guard,
        every=every,
    ):
        if verdict.changes:
            out[row.lead_id] = tuple(
                sorted((c.kind, c.field, str(c.value)) for c in verdict.changes)
            )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_over_clock_steps_a_selective_cycle_plans_what_evaluating_every_lead_would(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    now = {"t": datetime.now(UTC)}
    statuses = "{" + ", ".join(f"{k}: {v}" for k, v in SF_STATUSES.items()) + "}"
    config = write_config(tmp_path, rules=FUZZ_RULES, crms=("salesforce",), extra=FUZZ_CALENDAR)
    config.write_text(
        config.read_text()
        .replace("  interval: 60s\n", "  interval: 60s\n  hold_rep_edits_for: 6d\n", 1)
        .replace(
            "status_values: {New: Open - Not Contacted, Open: Working - Contacted,\n"
            "                  Converted: Closed - Converted}",
            f"status_values: {statuses}",
        )
    )
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        leads = [
            sf_lead(
                f"L{i}",
                f"l{i}@acme.com",
                title="Analyst",
                status=SF_STATUSES[rng.choice(["New", "Open", "MQL", "SAL", "Nurture"])],
                activity_days=rng.choice([None, *range(14)]),
            )
            for i in range(40)
        ]
        ids = sf.add_leads(leads, modstamp=real_now - timedelta(hours=1))
        pipeline = app.pipelines["salesforce"]
        total = 0
        for step in range(14):
            if step and rng.random() < 0.4:
                # A person sets a status by hand (stamped in real time, which the cycles'
                # clock leaves behind): held for six days from then.
                target = rng.choice(ids)
                if sf.lead(target)["Status"] != SF_STATUSES["Converted"]:
                    sf.update_lead(target, {"Status": SF_STATUSES[rng.choice(["Open", "MQL"])]})
            full = _verdicts(app, now["t"], every=True)
            selective = _verdicts(app, now["t"], every=False)
            assert selective == full, f"step {step} at {now['t']}: a due lead was skipped"
            report = pipeline.run_cycle()
            assert report.outcome == "ok", report.message
            total += report.evaluated
            now["t"] += timedelta(hours=rng.choice([1, 5, 11, 19, 26, 50]))
        assert total < 0.75 * 14 * len(ids), "the cycles did select"


def test_a_lead_the_guards_block_stays_counted_by_idle_cycles_that_do_not_evaluate_it(
    tmp_path: Path, evaluated: list[str]
) -> None:
    now = {"t": datetime.now(UTC)}
    rules = E2E_RULES.replace("protected: [Converted]", "protected: [Converted, Open]")
    config = write_config(tmp_path, rules=rules, crms=("salesforce",))
    with running_app(config, clock=lambda: now["t"]) as app:
        sf = app.embedded.salesforce
        real_now = datetime.now(UTC).replace(microsecond=0)
        (locked,) = sf.add_leads(
            [
                sf_lead(
                    "L",
                    "l@acme.com",
                    title="Analyst",
                    status="Working - Contacted",
                    activity_days=200,
                )
            ],
            modstamp=real_now - timedelta(hours=2),
        )
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert first.outcome == "ok" and first.blocked == 1 and first.written == 0
        for _ in range(2):
            now["t"] += timedelta(minutes=5)
            evaluated.clear()
            idle = pipeline.run_cycle()
            assert locked not in evaluated
            assert idle.blocked == 1, "counted from the store, not from the leads evaluated"
