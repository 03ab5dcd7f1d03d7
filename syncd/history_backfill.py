"""``syncd history backfill``: fill the status history ledger from the CRMs' own field history.

For every mirrored lead, the CRM's history entries from before syncd's own record of the lead
begins are added (``source=backfill``); entries already backfilled are not added twice. What the
ledger then knows depends on what the CRM keeps (README: "The status history ledger").
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Connector
from syncd import ledger
from syncd.state import StateStore

__all__ = ["BackfillResult", "backfill"]

#: Leads per round: the connector splits each into its CRM's query size (200 or 50).
_ROUND = 1000


@dataclass(slots=True)
class BackfillResult:
    leads: int = 0  # mirrored leads whose history was read
    added: int = 0  # ledger rows added
    api_calls: int = 0


def backfill(store: StateStore, connector: Connector, crm: str) -> BackfillResult:
    """Read the CRM's status history of every live mirrored lead into the ledger."""
    result = BackfillResult()
    calls = connector.stats.calls
    for chunk in store.iter_live_leads(crm, chunk=_ROUND):
        ids = [row.lead_id for row in chunk]
        entries = connector.status_history(ids)
        with store.begin() as conn:
            known = store.history_of_leads(conn, crm, ids)
            rows = ledger.backfill_rows(crm, entries, known)
            store.add_history(conn, rows)
        result.leads += len(ids)
        result.added += len(rows)
    result.api_calls = connector.stats.calls - calls
    return result
