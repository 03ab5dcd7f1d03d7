"""The benchmarks' minimum for a Salesforce read: query pages chained 5 a Composite call, or a
Bulk API 2.0 job, whichever costs fewer calls (``bench/minimum.py``)."""

from __future__ import annotations

import pytest

from bench.minimum import salesforce_read


@pytest.mark.parametrize(
    ("leads", "calls"),
    [(0, 1), (1_999, 1), (10_000, 1), (10_001, 2), (30_000, 3), (30_001, 3), (1_000_000, 22)],
)
def test_the_least_calls_to_read_counts_10000_leads_a_chained_call_or_a_cheaper_job(
    leads: int, calls: int
) -> None:
    # 30,001: 4 chained calls against a job's 3 (create, poll, one page of 50,000).
    assert salesforce_read(leads)[0] == calls
