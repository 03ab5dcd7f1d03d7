"""What a cycle reads of the mirror per changed lead: the pull reads a changed lead's status
bookkeeping once, the write path its status, fields and newsletters once per call (a status
write and a newsletter add the same call carries read the row once), never its enrichment, its
reasons or its quarantine (their JSON is most of what decoding a row costs); a newsletter add
alone reads only the lead's newsletters. The mirror still ends up exactly as the CRM's
confirmed values say."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncd.state import StateStore
from tests.daemon.harness import newsletter_id, running_app, sf_lead, write_config

READS = ("leads_by_id", "lead_states", "lead_bodies", "lead_newsletters")


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Rows each of the store's lead reads by id returned (a spy on syncd's own store)."""
    counts: Counter[str] = Counter()

    def spy(name: str, original: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
        def counted(self: StateStore, *args: Any, **kwargs: Any) -> dict[str, Any]:
            found = original(self, *args, **kwargs)
            counts[name] += len(found)
            return found

        return counted

    for name in READS:
        monkeypatch.setattr(StateStore, name, spy(name, getattr(StateStore, name)))
    return counts


def test_a_cycle_reads_each_changed_lead_without_its_enrichment_and_the_mirror_matches_the_crm(
    tmp_path: Path, rows_read: Counter[str]
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    with running_app(config) as app:
        emu = app.embedded.salesforce
        ids = emu.add_leads(
            [sf_lead(f"L{i}", f"l{i}@acme.com", title="CTO", activity_days=200) for i in range(12)]
        )
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert first.written == 24  # a status write and a newsletter add a lead
        # First sight: the pull finds no mirror row; one call carries the status writes and
        # the newsletter adds, whose answers read each lead once.
        assert rows_read == Counter(lead_bodies=12)

        # A person takes the leads back to New a second later (Salesforce stamps whole
        # seconds); the lead is held, so the cycle writes nothing, and the pull reads each
        # lead's bookkeeping once.
        time.sleep(1.1)
        for lead_id in ids:
            emu.update_lead(lead_id, {"Status": "Open - Not Contacted"}, by=emu.rep_user_id)
        rows_read.clear()
        second = pipeline.run_cycle()
        assert second.pulled == 12 and second.written == 0
        assert rows_read == Counter(lead_states=12)

        members = emu.campaign_members(newsletter_id(app, "salesforce"))
        for lead_id in ids:
            row = app.store.lead("salesforce", lead_id)
            assert row is not None
            # The mirror holds the CRM's values: the person's, after syncd's confirmed write.
            assert row.status == row.fields["status"] == "Open - Not Contacted"
            assert row.rep_edit_status == "Open - Not Contacted"
            assert row.written_status == "Nurture" and row.written_at is not None
            assert row.newsletters == ["newsletter"]
            assert row.enrichment  # written by the pull, untouched by the write path
            assert lead_id in members
