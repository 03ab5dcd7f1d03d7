"""LeadHistory rows of a field a rule sets, read beside the Status rows in the same queries
(first sight of a person's edit, README "Rep edits win"): the emulator records rows for the
fields an org tracks only, the connector asks for them with ``Field IN (...)`` and names the
entries by canonical field, per lead and through the org's whole history alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.salesforce import SalesforceConnector
from connectors.salesforce import connector as sf_connector
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

from .support import config_for, lead

TRACKED = frozenset({"Status", "Tier__c"})


@pytest.fixture
def emu_config() -> EmulatorConfig:
    return EmulatorConfig(history_tracked_fields=TRACKED)


def _tier_connector(
    make_connector: Callable[..., SalesforceConnector], **overrides: object
) -> SalesforceConnector:
    connector = make_connector(fields={"tier": "Tier__c"}, **overrides)
    connector.check(statuses=set(), fields=set(), newsletters=set())  # the integration user
    return connector


def _history_queries(emu: SalesforceEmulator) -> list[str]:
    return [e.soql for e in emu.journal.entries() if e.soql and "FROM LeadHistory" in e.soql]


def test_the_emulator_records_history_rows_of_tracked_fields_only_by_their_api_names() -> None:
    with SalesforceEmulator(EmulatorConfig(history_tracked_fields=TRACKED)) as emu:
        [rid] = emu.add_leads([lead(1)])
        emu.update_lead(rid, {"Tier__c": "Gold", "Title": "CTO", "Lead_Score__c": 7})
        emu.update_lead(rid, {"Status": "Nurture", "Tier__c": None})
        rows = [(r[2], r[3], r[4], r[5]) for r in emu.org.history]

    rep = emu.rep_user_id
    assert rows == [
        ("Tier__c", None, "Gold", rep),
        ("Status", "Open - Not Contacted", "Nurture", rep),
        ("Tier__c", "Gold", None, rep),
    ]


def test_the_default_emulator_org_tracks_the_status_alone() -> None:
    with SalesforceEmulator(EmulatorConfig()) as emu:
        [rid] = emu.add_leads([lead(1)])
        emu.update_lead(rid, {"Tier__c": "Gold", "Status": "Nurture"})
        fields = [r[2] for r in emu.org.history]

    assert fields == ["Status"]


def test_status_history_reads_a_fields_rows_in_the_same_query_when_asked_for_it(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    ids = emu.add_leads([lead(i) for i in range(3)])
    emu.update_lead(ids[0], {"Tier__c": "Gold"})
    emu.update_lead(ids[1], {"Status": "Nurture"})
    emu.update_lead(ids[2], {"Title": "CTO"})  # not asked for
    connector = _tier_connector(make_connector)
    emu.journal.clear()

    entries = connector.status_history(ids, also=("tier",))
    queries = _history_queries(emu)
    status_only = connector.status_history(ids)

    assert [(e.lead_id, e.field, e.from_value, e.to_value, e.actor) for e in entries] == [
        (ids[0], "tier", None, "Gold", "person"),
        (ids[1], "status", "Open - Not Contacted", "Nurture", "person"),
    ]
    [query] = queries
    assert "WHERE Field IN ('Status', 'Tier__c') AND LeadId IN (" in query
    # Asked for nothing else, the query and its answer are the Status rows' as before.
    assert [(e.lead_id, e.field) for e in status_only] == [(ids[1], "status")]
    assert "WHERE Field = 'Status' AND LeadId IN (" in _history_queries(emu)[-1]


def test_status_history_asks_for_the_status_rows_alone_when_the_org_lacks_the_field() -> None:
    with SalesforceEmulator(EmulatorConfig(lead_custom_fields=frozenset())) as emu:
        [rid] = emu.add_leads([lead(1, Status="Nurture")])
        connector = SalesforceConnector(config_for(emu, fields={"tier": "Tier__c"}))
        try:
            connector.check(statuses=set(), fields=set(), newsletters=set())
            entries = connector.status_history([rid], also=("tier",))
        finally:
            connector.close()
        [query] = _history_queries(emu)

    assert entries == []
    assert "WHERE Field = 'Status' AND LeadId IN (" in query


def test_the_orgs_history_through_a_bulk_query_job_carries_a_fields_rows_named_as_per_lead(
    emu: SalesforceEmulator,
    make_connector: Callable[..., SalesforceConnector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pages of 1 row, a page a call: 5 more calls for 6 rows, where a job (create, about two
    # looks, one results page) costs 4.
    monkeypatch.setattr(sf_connector, "_HISTORY_PAGE", 1)
    ids = emu.add_leads([lead(i) for i in range(6)])
    for n, rid in enumerate(ids):
        emu.update_lead(rid, {"Tier__c": "Gold"} if n % 2 else {"Status": "Nurture"})
    connector = _tier_connector(
        make_connector, bulk_read_threshold=0, bulk_poll_seconds=0, composite=False
    )
    per_lead = connector.status_history(ids, also=("tier",))
    emu.journal.clear()

    stream = connector.org_status_history(leads=10_000, also=("tier",))
    assert stream is not None
    staged = [e for page in stream for e in page]
    jobs = [e for e in emu.journal.entries("POST") if e.path.endswith("/jobs/query")]

    assert [e.soql for e in jobs] == [
        "SELECT LeadId, Field, OldValue, NewValue, CreatedById, CreatedDate FROM LeadHistory "
        "WHERE Field IN ('Status', 'Tier__c')"
    ]
    assert sorted(staged, key=lambda e: (e.lead_id, e.at)) == per_lead
    assert {e.field for e in staged} == {"status", "tier"}


def test_a_history_row_of_a_field_not_asked_for_is_never_named_status() -> None:
    asked = {"Status": "status", "Tier__c": "tier"}

    named = [
        sf_connector._history_field(asked, {"Field": f}) for f in ("status", "TIER__C", "Rating")
    ]

    assert named == ["status", "tier", "Rating"]


def test_history_values_of_a_number_field_are_numbers_on_the_wire_and_typed_for_a_write_back(
    emu: SalesforceEmulator, make_connector: Callable[..., SalesforceConnector]
) -> None:
    """OldValue and NewValue are anyType: a REST query answers a Number field's as numbers
    (LeadHistory object reference). syncd keeps history as text and types it back by the
    field's describe type, as a pull reads the field."""
    emu.org.config.history_tracked_fields = frozenset({"Status", "Lead_Score__c"})
    [rid] = emu.add_leads([lead(1)])
    emu.update_lead(rid, {"Lead_Score__c": 7})
    emu.update_lead(rid, {"Lead_Score__c": 75.5})
    connector = make_connector(fields={"score": "Lead_Score__c"})
    connector.check(statuses=set(), fields=set(), newsletters=set())  # describe: the types
    sf = connector._sf or connector._login()
    wire = sf.query(f"SELECT OldValue, NewValue FROM LeadHistory WHERE LeadId = '{rid}'")
    entries = connector.status_history([rid], also=("score",))

    assert [(r["OldValue"], r["NewValue"]) for r in wire["records"]] == [(None, 7.0), (7.0, 75.5)]
    assert [(e.from_value, e.to_value) for e in entries] == [(None, "7.0"), ("7.0", "75.5")]
    assert [connector.history_value("score", e.to_value) for e in entries] == [7.0, 75.5]
    assert connector.history_value("score", None) is None
