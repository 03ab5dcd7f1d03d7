"""A first sync reads the org's Status history once (a streamed LeadHistory query, 2,000 rows a
call) instead of one query per 200 new leads, with the same ledger rows and first-sight holds."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import HistoryEntry
from connectors.salesforce import connector as sf_connector
from syncd.history_staging import StagedHistory
from tests.daemon.harness import running_app, sf_lead, write_config
from tests.daemon.test_ledger import STALE_RULES

N = 3000  # leads: 15 history queries per lead, 2 lead pages
BASE = datetime.now(UTC).replace(microsecond=0)
WORKING, OPEN, NURTURE = "Working - Contacted", "Open - Not Contacted", "Nurture"


def _seed(emu: Any) -> list[str]:
    """N leads, a fifth of them stale; Status histories by a rep at set instants: worked 20
    days ago, some taken back 10 days ago, some set twice in one second, some set two days
    before the first sync (held)."""
    ids = emu.add_leads(
        (
            sf_lead(f"L{i}", f"l{i}@acme.com", title="CTO", activity_days=200 if i % 5 else 2)
            for i in range(N)
        ),
        modstamp=BASE - timedelta(days=30),
    )
    for i, lead_id in enumerate(ids):
        if i % 2 == 0:
            emu.update_lead(lead_id, {"Status": WORKING}, modstamp=BASE - timedelta(days=20))
        if i % 4 == 0:
            emu.update_lead(lead_id, {"Status": OPEN}, modstamp=BASE - timedelta(days=10))
        if i % 50 == 0:  # two changes in the same second: the CRM's order decides
            tie = BASE - timedelta(days=5)
            emu.update_lead(lead_id, {"Status": NURTURE}, modstamp=tie)
            emu.update_lead(lead_id, {"Status": OPEN}, modstamp=tie)
        if i % 10 == 0:
            emu.update_lead(lead_id, {"Status": WORKING}, modstamp=BASE - timedelta(days=2))
    return list(ids)


def _first_sync(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    per_lead: bool,
    tracked: bool = True,
    visible: bool = True,
    bulk_above: int | None = None,
    composite: bool = True,
) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    if bulk_above is not None:  # reads of more rows go through Bulk API 2.0 query jobs
        config.write_text(
            config.read_text().replace(
                "    lag_seconds: 0",
                f"    bulk_read_threshold: {bulk_above}\n    bulk_poll_seconds: 0\n"
                "    bulk_results_page_size: 1000\n    lag_seconds: 0",
            )
        )
    if not composite:  # a query page a call, a collection a call
        config.write_text(
            config.read_text().replace(
                "    lag_seconds: 0", "    composite: false\n    lag_seconds: 0"
            )
        )
    with running_app(config) as app:
        emu = app.embedded.salesforce
        emu.org.config.history_tracked_fields = frozenset(("Status",) if tracked else ())
        emu.org.config.lead_history_visible = visible
        ids = _seed(emu)
        rows = len(emu.org.history)
        pipeline = app.pipelines["salesforce"]
        if per_lead:  # the path before the org-wide read: one LeadHistory query per 200 leads
            monkeypatch.setattr(pipeline.connector, "status_history_batch", 10**9)
        start = len(emu.journal.entries())
        report = pipeline.run_cycle()
        journal = emu.journal.entries()[start:]
        email = {i: emu.lead(i)["Email"] for i in ids}
        crm_status = {email[i]: emu.lead(i)["Status"] for i in ids}
        with app.store.begin() as conn:
            ledger = app.store.history_of_leads(conn, "salesforce", ids)
        mirror = {email[i]: app.store.lead("salesforce", i) for i in ids}
    return {
        "report": report,
        "history_rows": rows,
        "journal": journal,
        "crm_status": crm_status,
        # Backfilled rows whole; rows syncd writes now carry this run's time, not compared.
        "ledger": {
            email[i]: [
                (
                    h.from_value,
                    h.to_value,
                    h.actor,
                    h.actor_id,
                    h.source,
                    h.at if h.source == "backfill" else None,
                )
                for h in rows_of
            ]
            for i, rows_of in ledger.items()
        },
        # What first sight knew; a time this cycle set (syncd's own write) reads "now".
        "holds": {
            e: (m.rep_edit_status, m.rep_edit_at, _before_the_cycle(m.status_changed_at))
            for e, m in mirror.items()
            if m is not None
        },
    }


def _before_the_cycle(at: datetime | None) -> datetime | str | None:
    if at is None:
        return None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at if at < BASE else "now"


def _history_calls(journal: list[Any], history_rows: int) -> tuple[int, int, int]:
    """(calls, rows) of the org-wide LeadHistory stream -- its query and the query pages that
    follow it until all ``history_rows`` came (the stream is read to its end before the first
    page of leads is stored) -- and how many per-lead LeadHistory queries the cycle sent."""
    per_lead = sum(
        1 for e in journal if e.soql and "FROM LeadHistory" in e.soql and " IN (" in e.soql
    )
    starts = [
        n
        for n, e in enumerate(journal)
        if e.soql and "FROM LeadHistory" in e.soql and " IN (" not in e.soql
    ]
    if not starts:
        return 0, 0, per_lead
    (n,) = starts
    calls, rows = 1, journal[n].records or 0
    for e in journal[n + 1 :]:
        # The next pages: 5 chained in a Composite request of queries (one call), or a page
        # a call.
        chained = e.path.endswith("/composite") and not e.is_write
        if rows >= history_rows or e.soql is not None or not (chained or "/query/" in e.path):
            break
        calls, rows = calls + 1, rows + (e.records or 0)
    return calls, rows, per_lead


def test_a_first_sync_reads_the_orgs_status_history_in_one_stream_of_2000_row_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _first_sync(tmp_path, monkeypatch, per_lead=False)
    calls, rows, per_lead_queries = _history_calls(run["journal"], run["history_rows"])

    assert run["history_rows"] > 2000  # more than one page
    assert rows == run["history_rows"]
    # The first page, then the rest chained 5 pages a call.
    assert calls == 1 + math.ceil((math.ceil(run["history_rows"] / 2000) - 1) / 5)
    # No per-lead history query is left: the cycle's race check is one query of people's
    # edits riding in the free slot of its last Composite write call (5 collections a call).
    written_batches = math.ceil(run["report"].written / 200)
    assert per_lead_queries == 0
    riding = [
        s for e in run["journal"] for s in e.subrequests if "FROM LeadHistory" in (s.soql or "")
    ]
    assert len(riding) == (1 if written_batches % 5 else 0)
    assert run["report"].outcome == "ok"


def test_the_org_wide_history_gives_the_same_ledger_and_holds_as_reading_it_per_lead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = _first_sync(tmp_path / "staged", monkeypatch, per_lead=False)
    per_lead = _first_sync(tmp_path / "per_lead", monkeypatch, per_lead=True)
    staged_calls, _, _ = _history_calls(staged["journal"], staged["history_rows"])
    _, _, per_lead_queries = _history_calls(per_lead["journal"], per_lead["history_rows"])

    assert staged["report"].held == per_lead["report"].held > 0
    assert staged["report"].written == per_lead["report"].written > 0
    assert staged["ledger"] == per_lead["ledger"]
    assert staged["holds"] == per_lead["holds"]
    assert staged["crm_status"] == per_lead["crm_status"]
    # Per lead: one query per 200 new leads (the race checks ride in the write calls).
    assert per_lead_queries == math.ceil(N / 200)
    saved = math.ceil(N / 200) - staged_calls
    assert per_lead["report"].api_calls - staged["report"].api_calls == saved > 0


def test_a_large_org_history_is_read_through_one_bulk_query_job_with_the_same_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        # A large org in small pages, a page a call (no Composite: 5 chained pages a call would
        # read 1,250 rows a call, cheaper than any job): REST pages of 250 history rows cost
        # more calls than a job (create, looks, results pages of 1,000), so the job is the
        # cheaper way and is taken.
        m.setattr(sf_connector, "_HISTORY_PAGE", 250)
        bulk = _first_sync(tmp_path / "bulk", m, per_lead=False, bulk_above=2000, composite=False)
    per_lead = _first_sync(
        tmp_path / "per_lead", monkeypatch, per_lead=True, bulk_above=2000, composite=False
    )
    journal = bulk["journal"]
    creates = [e for e in journal if e.method == "POST" and e.path.endswith("/jobs/query")]
    # Job ids in the order the jobs were first looked at, which is the order they were created
    # (one job at a time). The leads' 3,000 rows read cheaper as REST pages (the probe page
    # and one more) than as a job (create, look, results): only the history takes a job.
    job_ids = list(
        dict.fromkeys(
            e.path.split("/jobs/query/")[1].split("/")[0]
            for e in journal
            if "/jobs/query/" in e.path
        )
    )
    jobs = dict(zip(job_ids, creates, strict=True))
    (history_id,) = [j for j, c in jobs.items() if c.soql and "FROM LeadHistory" in c.soql]
    history_job = [e for e in journal if f"/jobs/query/{history_id}" in e.path]
    history_rows = sum(e.records or 0 for e in history_job if e.path.endswith("/results"))
    history_pages = sum(1 for e in history_job if e.path.endswith("/results"))
    history_calls = 1 + 1 + len(history_job)  # the probe page, the creation, the job's calls

    assert [bool(e.soql and "FROM LeadHistory" in e.soql) for e in creates] == [True]
    assert history_rows == bulk["history_rows"]
    assert history_pages == math.ceil(bulk["history_rows"] / 1000)
    assert per_lead["report"].api_calls - bulk["report"].api_calls == (
        math.ceil(N / 200) - history_calls
    )
    assert bulk["report"].held == per_lead["report"].held > 0
    assert bulk["ledger"] == per_lead["ledger"]
    assert bulk["holds"] == per_lead["holds"]


def test_an_org_without_status_history_tracking_still_first_syncs_with_one_history_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _first_sync(tmp_path, monkeypatch, per_lead=False, tracked=False)
    calls, rows, _ = _history_calls(run["journal"], run["history_rows"])

    assert run["report"].outcome == "ok"
    assert (calls, rows) == (1, 0)
    assert run["report"].held == 0  # nothing says a person set a status
    assert run["report"].written == N * 4 // 5  # every stale lead moved to Nurture
    assert all(rows_of and rows_of[0][4] == "written" for rows_of in run["ledger"].values())


def test_a_user_who_may_not_read_lead_history_first_syncs_as_reading_it_per_lead_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    staged = _first_sync(tmp_path / "staged", monkeypatch, per_lead=False, visible=False)
    refused = [r for r in caplog.records if "new leads are mirrored without it" in r.message]
    per_lead = _first_sync(tmp_path / "per_lead", monkeypatch, per_lead=True, visible=False)

    assert staged["report"].outcome == per_lead["report"].outcome == "ok"
    assert staged["report"].held == per_lead["report"].held == 0
    assert staged["ledger"] == per_lead["ledger"]
    assert staged["holds"] == per_lead["holds"]
    # Asked once for the org's history; told once, in the log, what the ledger goes without.
    assert len(refused) == 1 and "LeadHistory" in refused[0].message
    assert per_lead["report"].api_calls - staged["report"].api_calls == 2 - 1  # 2 lead pages


def _pages(entries: int, page: int = 2000) -> Iterator[list[HistoryEntry]]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for start in range(0, entries, page):
        yield [
            HistoryEntry(
                lead_id=f"00Q{n // 3:015d}",
                field="status",
                from_value=OPEN,
                to_value=WORKING,
                at=at + timedelta(seconds=n),
                actor="person",
                actor_id="005000000000001AAA",
            )
            for n in range(start, min(start + page, entries))
        ]


def _staging_peak(entries: int) -> int:
    tracemalloc.start()
    try:
        staged = StagedHistory()
        try:
            for page in _pages(entries):
                staged.add(page)
            found = 0
            for start in range(0, entries // 3, 2000):  # as the pull asks: a page of leads
                page = staged.of([f"00Q{n:015d}" for n in range(start, start + 2000)])
                found += sum(map(len, page.values()))
            assert found == entries
        finally:
            staged.close()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_staging_the_orgs_history_holds_one_page_in_memory_whatever_its_size() -> None:
    small, large = _staging_peak(12_000), _staging_peak(72_000)

    assert large < small * 1.5
