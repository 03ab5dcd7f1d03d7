"""Stored enrichment derived again when what derives it changes.

The mirror keeps each lead's enrichment values as the enricher derived them when the lead was
pulled (not their reasons: ``explain`` derives those from the stored fields when asked). The
values depend on the enrichment settings (the ICP, extra free-mail domains) and on syncd's own
derivation (:data:`REVISION`). When an admin changes the ICP, every
live lead is evaluated again (the planning fingerprint, ``syncd.due``), but a lead the CRM does
not change would keep the ``icp_score`` and ``icp_fit`` of the old ICP, and the rules would judge
it on them: the change would reach only leads someone happens to edit.

So the mirror records, per connector, the fingerprint of what its enrichment was derived under.
When it differs from the running enricher's, :func:`refresh` derives every mirrored lead's
enrichment again from its stored fields (the values the CRM sent, as pulled), in chunks by
lead id. Each chunk's rows and the position reached commit together, so a cycle stopped halfway
resumes where it stopped; the fingerprint is recorded after the last chunk. Rows whose values
come out the same are not written. A changed row is due again, as after any write of
its content (``StateStore.update_leads``).

The pipeline asks before its first pull in a process (a new mirror records the fingerprint
before anything is pulled, so a first sync is not followed by a pass over what it just stored)
and whenever the planning fingerprint changed (another replica may have led with other
settings). ``syncd plan`` and ``explain`` derive the enrichment of each lead they judge in
memory while the mirror's is stale, so they show what the next cycle does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from syncd.enrichment import Enricher, EnrichmentSettings
from syncd.state import StateStore

__all__ = ["REVISION", "fingerprint", "fingerprint_key", "is_current", "refresh"]

log = logging.getLogger(__name__)

#: The derivation's own version: raise it when a change to ``syncd/enrichment*.py`` (the rules
#: for titles, the free-mail list, the ICP's scoring) can derive another value from the same
#: fields, so that mirrors derive what they stored again (a reason's wording needs no raise:
#: reasons are not stored).
#: ``tests/test_enrichment_refresh.py`` fails when the derivation's output changes without it.
REVISION = 1

#: Leads per chunk: one read and one executemany each, committed with the position reached.
CHUNK = 1000


def fingerprint(settings: EnrichmentSettings) -> str:
    """A hash of what a lead's enrichment is derived under besides its fields."""
    parts = {"settings": settings.model_dump(mode="json"), "revision": REVISION}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_key(crm: str) -> str:
    """The meta key of the fingerprint ``crm``'s mirrored enrichment was derived under."""
    return f"enrichment_fingerprint:{crm}"


def _progress_key(crm: str) -> str:
    return f"enrichment_refresh:{crm}"


def is_current(store: StateStore, crm: str, enricher: Enricher) -> bool:
    """Whether ``crm``'s mirrored enrichment was derived under ``enricher``'s settings."""
    return bool(store.get_meta(fingerprint_key(crm)) == fingerprint(enricher.settings))


def refresh(
    store: StateStore,
    crm: str,
    enricher: Enricher,
    *,
    fence: Callable[[Connection], None] = lambda conn: None,
    stopping: Callable[[], bool] = lambda: False,
    chunk: int = CHUNK,
) -> int | None:
    """Derive ``crm``'s stored enrichment again where it was derived under other settings.

    Resumes after the last chunk a stopped refresh committed under the same fingerprint.
    ``fence`` runs in each writing transaction (the pipeline's lease check); ``stopping`` is
    asked between chunks (a daemon's shutdown). Returns the leads whose values changed (0 and
    one read when the mirror is current), or None when it stopped before the end: the mirror
    is then still stale, and no cycle may plan on it.
    """
    wanted = fingerprint(enricher.settings)
    if store.get_meta(fingerprint_key(crm)) == wanted:
        return 0
    if not store.count_live(crm, at_most=1):
        # A new mirror (a first sync is about to pull under these settings): nothing to
        # derive, and no page read (a first cycle's reads stay those of the pull and plan).
        with store.begin() as conn:
            fence(conn)
            store.put_meta(conn, fingerprint_key(crm), wanted)
        return 0
    progress = store.get_meta(_progress_key(crm))
    after = ""
    if isinstance(progress, dict) and progress.get("fingerprint") == wanted:
        after = str(progress.get("after", ""))
    changed = 0
    while True:
        if stopping():
            return None
        with store.reading() as conn:
            page = store.lead_enrichment_page(conn, crm, after, chunk)
        if not page:
            break
        rows: list[dict[str, Any]] = []
        for lead_id, fields, values in page:
            derived = enricher.values(fields)
            if derived != values:
                # Reasons are not stored (``explain`` derives them): a row from before that
                # loses its stale ones.
                rows.append({"lead_id": lead_id, "enrichment": derived, "reasons": {}})
        after = page[-1][0]
        with store.begin() as conn:
            fence(conn)
            store.update_leads(conn, crm, rows)
            store.put_meta(conn, _progress_key(crm), {"fingerprint": wanted, "after": after})
        changed += len(rows)
    with store.begin() as conn:
        fence(conn)
        store.put_meta(conn, fingerprint_key(crm), wanted)
        store.delete_meta(conn, _progress_key(crm))
    if changed:
        log.info(
            "%s: enrichment settings or syncd's enrichment changed: derived the enrichment of "
            "%d mirrored %s again from their stored fields",
            crm,
            changed,
            "lead" if changed == 1 else "leads",
        )
    return changed
