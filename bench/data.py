"""Leads for the API-call benchmarks: realistic values, an exact share needing a change.

Values come from :func:`connectors.testing.leads.generate_scale_leads`. The leads to change
(``share`` of them, spread evenly) are made ``New`` with no activity for 200 days, which at least
the
``stale-90d`` rule of ``bench/rules20.yaml`` acts on; every other lead is made ``SQL``, a status
no rule in that file touches. So exactly ``round(n * share)`` leads need a change, whatever the
generator's mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

__all__ = ["cycle_leads", "marked"]


def marked(i: int, share: float) -> bool:
    """Whether lead number ``i`` is one of the leads that need a change (evenly spread)."""
    return int((i + 1) * share) != int(i * share)


def cycle_leads(
    n: int, *, now: datetime, share: float = 0.3, seed: int = 3
) -> Iterator[dict[str, Any]]:
    """``n`` canonical leads, ``round(n * share)`` of which the 20-rule set changes."""
    from connectors.testing.leads import generate_scale_leads

    for i, lead in enumerate(generate_scale_leads(n, seed=seed, now=now)):
        lead.pop("_status_changed_at", None)
        if marked(i, share):
            lead.update(
                status="New",
                last_activity_at=now - timedelta(days=200),
                created_at=now - timedelta(days=300),
            )
        else:
            lead["status"] = "SQL"
        yield lead
