"""A HubSpot pull that meets many new contacts mirrors them first and reads their status history
after it, before the plan (``syncd.history_pending``): history reads no longer take the 100 per
10 s budget from under the search pages, and no rule sees a new contact before its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.pipeline import CycleReport
from tests.daemon.harness import hs_contact, running_app, write_config
from tests.daemon.test_ledger import STALE_RULES

_SEARCH = "/crm/v3/objects/contacts/search"
_BATCH_READ = "/crm/v3/objects/contacts/batch/read"
_BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"


def _contacts_with_a_persons_edit(app: Any, n: int) -> tuple[list[str], str, datetime]:
    """``n`` stale contacts (the rules nurture them); a rep set one to OPEN two days ago."""
    emu = app.embedded.hubspot
    ids = emu.add_contacts(
        hs_contact(f"C{i}", f"c{i}@acme.com", title="CTO", activity_days=200) for i in range(n)
    )
    worked, now = ids[7], datetime.now(UTC)
    two_days_ago = now - timedelta(days=2)
    emu.update_contact(worked, {"hs_lead_status": "OPEN"})
    emu.set_history(
        worked,
        "hs_lead_status",
        [("NEW", now - timedelta(days=30), "IMPORT"), ("OPEN", two_days_ago, "CRM_UI")],
    )
    return ids, worked, two_days_ago


def _ledger(app: Any, lead_id: str) -> list[tuple[Any, ...]]:
    return [
        (h.from_value, h.to_value, h.actor, h.source)
        for h in app.store.history_of_lead("hubspot", lead_id)
    ]


def test_a_hubspot_first_sync_reads_history_after_the_search_pages_and_holds_a_persons_edit(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("hubspot",))
    # Pages of 40: the pull's searches and the history reads could interleave.
    config.write_text(
        config.read_text().replace(
            "    allow_add_status_options: true\n",
            "    allow_add_status_options: true\n    page_size: 40\n",
        )
    )
    with running_app(config) as app:
        emu = app.embedded.hubspot
        ids, worked, two_days_ago = _contacts_with_a_persons_edit(app, 120)
        report = app.pipelines["hubspot"].run_cycle()
        paths = [e.path for e in emu.journal.entries()]
        worked_now = emu.contact(worked)["hs_lead_status"]
        ledger = app.store.history_of_lead("hubspot", worked)
        mirror = app.store.lead("hubspot", worked)
        pending = app.store.history_pending("hubspot", 1000)

    last_search = max(i for i, p in enumerate(paths) if p == _SEARCH)
    first_update = paths.index(_BATCH_UPDATE)
    assert _BATCH_READ not in paths[:last_search]  # the pull paced by search alone
    # 120 contacts, 50 a read with history, between the pull and the first write.
    assert paths[last_search:first_update].count(_BATCH_READ) == 3
    assert report.outcome == "ok" and report.held == 1 and report.written == len(ids) - 1
    assert worked_now == "OPEN"  # the person's value stands
    assert [(h.from_value, h.to_value, h.actor, h.source) for h in ledger] == [
        (None, "NEW", "automation", "backfill"),
        ("NEW", "OPEN", "person", "backfill"),
    ]
    assert mirror is not None and mirror.rep_edit_status == "OPEN"
    assert mirror.rep_edit_at is not None
    assert abs(mirror.rep_edit_at.replace(tzinfo=UTC) - two_days_ago) < timedelta(seconds=1)
    assert mirror.status_changed_at is not None
    assert abs(mirror.status_changed_at.replace(tzinfo=UTC) - two_days_ago) < timedelta(seconds=1)
    assert pending == []


def test_history_left_pending_by_a_pull_is_read_by_the_next_cycle_before_it_plans(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("hubspot",))
    with running_app(config) as app:
        emu = app.embedded.hubspot
        ids, worked, _ = _contacts_with_a_persons_edit(app, 120)
        pipeline = app.pipelines["hubspot"]
        # As a cycle stopped (or crashed) after its pull: the contacts are mirrored, their
        # history not read yet.
        pipeline.pull(CycleReport("hubspot", "interrupted"), until=datetime.now(UTC))
        pending_then = app.store.history_pending("hubspot", 1000)
        mirrored_then = app.store.lead("hubspot", worked)
        report = pipeline.run_cycle()
        worked_now = emu.contact(worked)["hs_lead_status"]
        ledger = _ledger(app, worked)
        pending_now = app.store.history_pending("hubspot", 1000)

    assert sorted(pending_then) == sorted(ids)
    assert mirrored_then is not None and mirrored_then.rep_edit_status is None
    assert report.outcome == "ok" and report.held == 1 and report.written == len(ids) - 1
    assert worked_now == "OPEN"
    assert ledger == [
        (None, "NEW", "automation", "backfill"),
        ("NEW", "OPEN", "person", "backfill"),
    ]
    assert pending_now == []


def test_a_hubspot_pull_of_a_few_new_contacts_still_reads_their_history_with_the_page(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("hubspot",))
    with running_app(config) as app:
        _, worked, _ = _contacts_with_a_persons_edit(app, 20)
        pipeline = app.pipelines["hubspot"]
        pipeline.pull(CycleReport("hubspot", "small"), until=datetime.now(UTC))
        pending = app.store.history_pending("hubspot", 1000)
        mirror = app.store.lead("hubspot", worked)

    # One read with history covers the page: no reason to defer it.
    assert pending == []
    assert mirror is not None and mirror.rep_edit_status == "OPEN"
