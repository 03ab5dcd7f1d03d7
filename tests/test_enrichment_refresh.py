"""The mirror's enrichment derived again from stored fields (syncd.enrichment_refresh)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from bench.realistic import realistic_leads
from syncd import enrichment_refresh
from syncd.enrichment import Enricher, EnrichmentSettings
from syncd.pipeline import _jsonable
from syncd.state import StateStore
from tests.test_state_store import _lead

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CRM = "salesforce"
EMAILS = ["ann@gmail.com", "bo@acme.com", "cy@partnermail.io", "di@yahoo.co.uk", "ed@initech.de"]


def _row(i: int) -> dict[str, Any]:
    """Lead L<i> with fields to enrich and an enrichment derived under nothing known: stale;
    L6 deleted (explain still shows its enrichment)."""
    fields = {"email": EMAILS[i % len(EMAILS)], "title": "VP Marketing", "employees": 120}
    return _lead(f"L{i}", fields=fields, deleted=i == 6)


class _Counting:
    """An enricher that counts the leads it derives (the real one underneath)."""

    def __init__(self, settings: EnrichmentSettings) -> None:
        self.real = Enricher(settings)
        self.settings = settings
        self.calls = 0

    def values(self, lead: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return self.real.values(lead)


def _enricher(**settings: Any) -> tuple[_Counting, Enricher]:
    counting = _Counting(EnrichmentSettings(**settings))
    return counting, cast(Enricher, counting)


@pytest.fixture
def seven(state_store: StateStore) -> StateStore:
    with state_store.begin() as conn:
        state_store.upsert_leads(conn, [_row(i) for i in range(7)])
    return state_store


def _stored(store: StateStore) -> dict[str, dict[str, Any]]:
    with store.reading() as conn:
        return {i: e for i, _f, e in store.lead_enrichment_page(conn, CRM, "", 100)}


def _asked(*answers: bool) -> Iterator[bool]:
    yield from answers
    while True:
        yield False


def test_a_refresh_stopped_halfway_resumes_after_its_last_chunk_and_leaves_no_lead_stale(
    seven: StateStore,
) -> None:
    counting, enricher = _enricher()
    stop = _asked(False, True)  # asked before each chunk: stops before the second
    assert (
        enrichment_refresh.refresh(seven, CRM, enricher, stopping=lambda: next(stop), chunk=3)
        is None
    )
    done = {i for i, e in _stored(seven).items() if e}
    assert done == {"L0", "L1", "L2"}, "the first chunk committed, the rest untouched"
    assert not enrichment_refresh.is_current(seven, CRM, enricher)

    counting.calls = 0
    assert enrichment_refresh.refresh(seven, CRM, enricher, chunk=3) == 4
    assert counting.calls == 4, "resumed after the last committed lead, not from the first"
    real = Enricher(EnrichmentSettings())
    with seven.reading() as conn:
        for lead_id, fields, values in seven.lead_enrichment_page(conn, CRM, "", 100):
            assert values == real.values(fields), lead_id
    assert enrichment_refresh.is_current(seven, CRM, enricher)

    counting.calls = 0
    assert enrichment_refresh.refresh(seven, CRM, enricher, chunk=3) == 0
    assert counting.calls == 0, "current: one read, nothing derived"


def test_settings_changed_again_during_a_stopped_refresh_start_it_again_from_the_first_lead(
    seven: StateStore,
) -> None:
    _counting, first = _enricher()
    stop = _asked(False, True)
    assert (
        enrichment_refresh.refresh(seven, CRM, first, stopping=lambda: next(stop), chunk=3) is None
    )
    counting, other = _enricher(extra_free_mail_domains=["partnermail.io"])
    # L3-L6 never derived, L2 a free-mail lead under the new list: L0, L1 come out the same.
    assert enrichment_refresh.refresh(seven, CRM, other, chunk=3) == 5
    assert counting.calls == 7, "every lead derived under the new settings, from the first"
    assert _stored(seven)["L2"]["free_mail"] is True  # cy@partnermail.io, under the new list


def test_leads_whose_enrichment_comes_out_the_same_are_not_written(seven: StateStore) -> None:
    _counting, enricher = _enricher()
    assert enrichment_refresh.refresh(seven, CRM, enricher) == 7
    with seven.begin() as conn:  # what a new release of syncd would find: another revision
        seven.put_meta(conn, enrichment_refresh.fingerprint_key(CRM), "older")
        # Evaluated since: a write of a row's content would make it due again (NULL).
        seven.set_due(conn, CRM, [(f"L{i}", T0, False) for i in range(7)])
    assert enrichment_refresh.refresh(seven, CRM, enricher) == 0
    assert enrichment_refresh.is_current(seven, CRM, enricher)
    with seven.reading() as conn:
        dues = {
            r.lead_id: r.due_at
            for r in seven.leads_by_id(conn, CRM, [f"L{i}" for i in range(7)]).values()
        }
    assert set(dues.values()) == {T0}, "no lead row written"


def test_enrichment_derived_from_the_stored_fields_equals_what_the_pull_derived() -> None:
    # The refresh derives from the mirror's `fields` (datetimes as ISO text, NaN as null); the
    # pull derived from the connector's typed values. Both must give the same values, or a
    # refresh would rewrite leads that did not change; and the same reasons, which `explain`
    # derives from the stored fields.
    enricher = Enricher(EnrichmentSettings())
    leads = list(realistic_leads(3000, seed=5, now=T0))
    leads[0]["employees"] = float("nan")
    leads[1]["budget"] = T0
    for typed in leads:
        stored = json.loads(json.dumps({k: _jsonable(v) for k, v in typed.items()}))
        pulled, again = enricher.enrich(typed), enricher.enrich(stored)
        assert (again.values, again.reasons) == (pulled.values, pulled.reasons), typed


#: The digest of the enrichment values of 2,000 realistic leads under the default settings, per
#: :data:`syncd.enrichment_refresh.REVISION`.
DIGESTS = {1: "de7231cc14e808da"}


def test_the_derivation_does_not_change_unless_its_revision_is_raised() -> None:
    enricher = Enricher(EnrichmentSettings())
    digest = hashlib.sha256()
    for lead in realistic_leads(2000, seed=3, now=T0):
        digest.update(json.dumps(enricher.values(lead), sort_keys=True).encode())
    revision = enrichment_refresh.REVISION
    assert DIGESTS.get(revision) == digest.hexdigest()[:16], (
        f"the enrichment of the same leads changed (digest {digest.hexdigest()[:16]}): raise "
        "syncd.enrichment_refresh.REVISION so that mirrors derive theirs again, and record "
        "the new digest here under it"
    )
