"""The daemon's first sync of a large Salesforce org goes through a Bulk API 2.0 query job."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.harness import running_app, sf_lead, write_config

_BULK = """    lag_seconds: 0   # tests seed leads a moment before the cycle
    bulk_read_threshold: 1000
    page_size: 200   # the rest after the first 5 pages costs 5 chained calls: a job is cheaper
    bulk_poll_seconds: 1   # the emulator's job runs 1 s: one look
    bulk_poll_max_seconds: 1
    overlap_seconds: 0   # the seeded leads are seconds old: no overlap re-read of all of them
"""


def test_a_large_first_sync_mirrors_every_lead_through_one_query_job_then_reads_through_rest(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    text = config.read_text()
    config.write_text(
        text.replace("    lag_seconds: 0   # tests seed leads a moment before the cycle\n", _BULK)
    )
    with running_app(config) as app:
        sf = app.embedded.salesforce
        ids = sf.add_leads(sf_lead(f"L{i}", f"l{i}@acme.com", title="Analyst") for i in range(6000))
        for lid in ids[:30]:
            sf.delete_lead(lid)
        sf.journal.clear()
        pipeline = app.pipelines["salesforce"]
        report = pipeline.run_cycle()
        assert report.outcome == "ok"
        assert report.pulled == 6000 and report.deleted == 30
        assert app.store.count_live("salesforce") == 5970
        assert len(sf.journal.entries("POST", "/jobs/query")) == 1
        results = sf.journal.entries("GET", "/results")
        # The first call's 5 chained pages of 200 are kept; the job reads only the rest.
        assert sum(e.records or 0 for e in results) == 6000 - 1000

        new = sf.add_leads([sf_lead("Late", "late@acme.com", title="Analyst")])[0]
        sf.journal.clear()
        report = pipeline.run_cycle()
        assert report.outcome == "ok" and report.pulled >= 1
        assert app.store.count_live("salesforce") == 5971
        with app.store.begin() as conn:
            assert new in app.store.leads_by_id(conn, "salesforce", [new])
        assert sf.journal.entries("POST", "/jobs/query") == []
