"""Salesforce Composite writes go ahead: the next call leaves once the last has answered, and
the last call's answers are recorded while the next is on its way (``syncd.call_ahead``).
Nothing of the outbox's rules changes: each call's rows are in doubt from before it leaves
until its answers are recorded, whatever fails meanwhile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from connectors.salesforce.connector import SalesforceConnector
from syncd.app import App
from syncd.pipeline import Pipeline
from tests.daemon.harness import (
    newsletter_id,
    outbox_states,
    running_app,
    sf_lead,
    sf_statuses_patched,
    write_config,
)

LEADS = 20  # with batch_size 2: 10 status collections, two full calls, then the adds


def _in_batches_of_2(tmp_path: Path, *, retries: bool = True) -> Path:
    config = write_config(tmp_path, crms=("salesforce",))
    extra = "\n    batch_size: 2" + ("" if retries else "\n    retry: {attempts: 1}")
    config.write_text(config.read_text().replace("lag_seconds: 0", "lag_seconds: 0" + extra))
    return config


def _composite_calls(app: App) -> int:
    writes = app.embedded.salesforce.journal.writes()
    return sum(1 for e in writes if e.path.endswith("/composite"))


def _calls_seen_at_recording(monkeypatch: pytest.MonkeyPatch, app: App) -> list[int]:
    """For each call whose answers the pipeline records: how many Composite calls had reached
    the org by then, waiting up to 2 s for one more than the calls recorded so far (after a
    wait in vain, no more waiting: a drain without calls ahead would wait at every call)."""
    seen: list[int] = []
    patience = [2.0]
    record = Pipeline._record_results

    def recording(self: Pipeline, answered: Any, report: Any) -> None:
        deadline = time.monotonic() + patience[0]
        while _composite_calls(app) <= len(seen) + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        if _composite_calls(app) <= len(seen) + 1:
            patience[0] = 0.0
        seen.append(_composite_calls(app))
        record(self, answered, report)

    monkeypatch.setattr(Pipeline, "_record_results", recording)
    return seen


def test_the_next_composite_call_reaches_the_org_before_the_last_calls_answers_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_app(_in_batches_of_2(tmp_path)) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(LEADS)
        )
        calls_seen_at_recording = _calls_seen_at_recording(monkeypatch, app)
        report = app.pipelines["salesforce"].run_cycle()
        assert report.outcome == "ok", report.message
        assert report.written == 2 * LEADS
        # Two full calls of 5 status collections, then the last: the adds and the race check.
        assert _composite_calls(app) == 3
        # Call 1's answers were recorded with call 2 at the org; call 2's with call 3 not yet
        # sent (the cycle's last call leaves once every answer before it is recorded, for the
        # race check it carries); call 3's with nothing after it.
        assert calls_seen_at_recording == [2, 2, 3]
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)
        assert sf.campaign_members(newsletter_id(app, "salesforce")) == set(ids)
        assert outbox_states(app) == {("field", "done"): LEADS, ("membership", "done"): LEADS}


def test_a_call_ahead_whose_answer_is_lost_leaves_only_its_own_rows_in_doubt_and_each_status_reaches_the_org_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_app(_in_batches_of_2(tmp_path, retries=False)) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(LEADS)
        )
        time.sleep(1.1)  # whole-second stamps: the writes must be newer than the seed
        write = SalesforceConnector.write_collections
        sent = [0]

        def second_answer_lost(self: SalesforceConnector, collections: Any) -> Any:
            sent[0] += 1
            if sent[0] == 2:  # the org applies the call ahead, and its answer is lost
                sf.faults.drop_next(1, path="/composite$", method="POST", after_applied=True)
            return write(self, collections)

        monkeypatch.setattr(SalesforceConnector, "write_collections", second_answer_lost)
        pipeline = app.pipelines["salesforce"]
        first = pipeline.run_cycle()
        assert first.outcome == "failed", first.message
        # Call 1's answers were recorded; call 2's rows are in doubt; the adds never left.
        assert outbox_states(app) == {
            ("field", "done"): 10,
            ("field", "sending"): 10,
            ("membership", "pending"): LEADS,
        }
        assert first.written == 10
        monkeypatch.setattr(SalesforceConnector, "write_collections", write)

        second = pipeline.run_cycle()
        assert second.outcome == "ok", second.message
        assert outbox_states(app) == {("field", "done"): LEADS, ("membership", "done"): LEADS}
        patched = sf_statuses_patched(app)
        assert sorted(patched) == sorted(ids), "each status reached the org once"
        assert all(sf.lead(i)["Status"] == "Nurture" for i in ids)
        assert sf.campaign_members(newsletter_id(app, "salesforce")) == set(ids)
