"""A lead the user names by a Salesforce Id's 15-character form is that connector's lead; the
conversion never reaches another CRM's leads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.lead_refs import find_leads, lead_id_in
from syncd.settings import ConnectorSettings
from syncd.state import StateStore
from tests.test_state_store import _lead

SF_ID = "00Q5g00000000PoEAI"  # 15 characters + the suffix their upper-case letters give

CONNECTORS = {
    "salesforce": ConnectorSettings(type="salesforce"),
    "salesforce/emea": ConnectorSettings(type="salesforce"),
    "hubspot": ConnectorSettings(type="hubspot"),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


def _found(store: StateStore, ref: str) -> set[tuple[str, str]]:
    return {(r.crm, r.lead_id) for r in find_leads(store, CONNECTORS, ref)}


def test_a_15_character_id_finds_each_salesforce_connector_s_lead_and_no_other_when_given(
    store: StateStore,
) -> None:
    with store.begin() as conn:
        store.upsert_leads(
            conn, [_lead(SF_ID, crm=crm) for crm in ("salesforce", "salesforce/emea", "hubspot")]
        )
    assert _found(store, SF_ID[:15]) == {("salesforce", SF_ID), ("salesforce/emea", SF_ID)}
    assert _found(store, f" {SF_ID[:15]} ") == {("salesforce", SF_ID), ("salesforce/emea", SF_ID)}
    assert _found(store, SF_ID[:14]) == set()
    # The 18 typed in another case: Salesforce compares those case-insensitively.
    assert _found(store, SF_ID.lower()) == {("salesforce", SF_ID), ("salesforce/emea", SF_ID)}


def test_the_exact_id_wins_when_a_hubspot_lead_s_id_is_15_characters_long(
    store: StateStore,
) -> None:
    hubspot_id = "123456789012345"
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [_lead(hubspot_id, crm="hubspot"), _lead(hubspot_id + "AAA", crm="salesforce")],
        )
    assert _found(store, hubspot_id) == {("hubspot", hubspot_id)}


def test_only_a_salesforce_connector_s_lead_id_is_lengthened_when_a_filter_names_one() -> None:
    assert lead_id_in(CONNECTORS["salesforce/emea"], SF_ID[:15]) == SF_ID
    assert lead_id_in(CONNECTORS["salesforce"], SF_ID) == SF_ID
    assert lead_id_in(CONNECTORS["salesforce"], SF_ID.upper()) == SF_ID
    assert lead_id_in(CONNECTORS["hubspot"], "123456789012345") == "123456789012345"
