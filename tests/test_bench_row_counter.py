"""The cycle benchmark's count of mirror rows read (``bench.cycle_cost.RowCounter``) includes
the plan step's reads, the largest a cycle makes, and only those of the store it counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RULES20, SF_STATUS_VALUES
from bench.cycle_cost import RowCounter
from rules import load_rulebook
from syncd.planner import iter_verdicts
from syncd.settings import ConnectorSettings
from syncd.state import StateStore

NOW = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)


def _store(path: Path, leads: int) -> StateStore:
    store = StateStore(f"sqlite:///{path}")
    rows: list[dict[str, Any]] = [
        {
            "crm": "salesforce",
            "lead_id": f"00Q{i:012d}",
            "modified_at": NOW - timedelta(days=1),
            "fields": {"email": f"a{i}@acme.com", "title": "Analyst", "status": "Open"},
            "enrichment": {"email_domain": "acme.com", "free_mail": False},
            "reasons": {},
            "status": "Open",
            "status_changed_at": NOW - timedelta(days=1),
            "deleted": False,
            "converted": False,
            "newsletters": [],
            "first_seen_at": NOW - timedelta(days=2),
            "pulled_at": NOW - timedelta(days=1),
        }
        for i in range(leads)
    ]
    with store.begin() as conn:
        store.upsert_leads(conn, rows)
    return store


def test_the_bench_counts_the_leads_the_plan_step_reads_of_its_own_store_only(
    tmp_path: Path,
) -> None:
    book = load_rulebook([RULES20], newsletters={"newsletter"})
    settings = ConnectorSettings(type="salesforce", status_values=SF_STATUS_VALUES)
    counted, other = _store(tmp_path / "counted.db", 3), _store(tmp_path / "other.db", 2)
    try:
        counter = RowCounter(counted)
        judged = list(iter_verdicts(counted, "salesforce", book, settings, NOW, every=True))
        assert len(judged) == 3 and counter.rows == 3
        assert len(list(iter_verdicts(other, "salesforce", book, settings, NOW, every=True))) == 2
        assert counter.rows == 3, "another store's plan read is not this counter's"
    finally:
        counted.close()
        other.close()
