"""A HubSpot merge makes a new contact of two and keeps the original ids as aliases of it
(docs/crm-api.md C12): syncd marks the originals deleted when it pulls the merged contact, so
nothing it decided from an original's data is ever written through the alias."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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
