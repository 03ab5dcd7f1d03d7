"""The embedded demo starts a new world each time, and so does its state.

The embedded emulators live in the daemon's process: every start seeds them afresh. A mirror,
cursors and outbox kept from the last start would describe leads that the new "CRM" holds in
other states (a second ``make run`` would pull nothing and change nothing). So, with
``embedded.fresh_state`` (the default), syncd clears its state of the demo's connectors before
the first cycle: every ``make run`` shows the same first cycle.

The store is marked as the demo's (meta ``embedded_demo``) the first time. A store that holds
state for these connectors without that mark was made by a daemon talking to real CRMs: it is
never cleared; start-up stops and says so. Nor is a store whose connectors another live
process holds the lease of (``syncd.lease``): its emulators are not this process's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlmodel import SQLModel

from syncd.state import LeadRow, RunRow, StateStore

__all__ = ["MARK", "NotTheDemosStore", "start_fresh"]

log = logging.getLogger("syncd.embedded")

MARK = "embedded_demo"
# Every table keyed by connector; the ledger too: the new world's leads reuse the old ids, and
# the old world's history would be counted as theirs.
_TABLES = ("audit", "outbox", "run", "cursor", "lead", "status_history")


class NotTheDemosStore(Exception):
    """The store holds state the embedded demo did not make; the message says what to do."""


def start_fresh(store: StateStore, connectors: Sequence[str]) -> int:
    """Clear the demo connectors' state; returns the mirrored leads dropped.

    Raises:
        NotTheDemosStore: the store has state for these connectors and is not the demo's.
    """
    from syncd.lease import current_holder, this_process

    names = list(connectors)
    me = this_process().process_id  # `sync --once` takes its leases before building the app
    for name in names:
        holder = current_holder(store, name)
        if holder is not None and holder.process_id != me:
            # Its emulators are not ours: clearing would pull the state from under it.
            raise NotTheDemosStore(
                f"another syncd ({holder.describe()}) runs the demo's {name} on this state "
                "store; stop it first, or point state.url at another database"
            )
    with store.begin() as conn:
        lead, run = LeadRow.__table__, RunRow.__table__
        leads = conn.execute(
            select(func.count()).select_from(lead).where(lead.c.crm.in_(names))
        ).scalar_one()
        runs = conn.execute(
            select(func.count()).select_from(run).where(run.c.crm.in_(names))
        ).scalar_one()
    if (leads or runs) and store.get_meta(MARK) is None:
        raise NotTheDemosStore(
            f"state.url ({store.engine.url.render_as_string(hide_password=True)}) holds the "
            f"state of {', '.join(names)} from a daemon that talked to real CRMs; the embedded "
            "demo would not match it and does not clear it. Point state.url at another "
            "database (or delete this one if an older demo made it), or set "
            "embedded.fresh_state: false to keep it"
        )
    with store.begin() as conn:
        for name in _TABLES:
            table = SQLModel.metadata.tables[name]
            conn.execute(delete(table).where(table.c.crm.in_(names)))
    store.set_meta(MARK, {"started_at": datetime.now(UTC).isoformat()})
    if leads:
        log.info(
            "embedded demo: new emulators, so a fresh state: cleared the mirror of %d "
            "leads, cursors, outbox, audit, runs and status history of the last demo",
            leads,
        )
    return int(leads)
