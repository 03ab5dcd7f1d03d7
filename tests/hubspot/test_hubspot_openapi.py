"""The emulator's JSON bodies validate against HubSpot's published OpenAPI response schemas.

The specs are copied into tests/hubspot/openapi/ from HubSpot's published spec collection
(https://github.com/HubSpot/HubSpot-public-api-spec-collection), so this runs from a clean clone.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot_support import contacts
from openapi_schema_validator import OAS30Validator

from connectors.testing.hubspot import EmulatorConfig

SPECS = Path(__file__).parent / "openapi"

# The spec's `required` lists that are stricter than HubSpot's real responses; only these are
# relaxed (everything else, types and enums included, is checked as published):
RELAXED_REQUIRED: dict[tuple[str, str], set[str]] = {
    # StandardError (207 `errors[]`): observed 207 bodies carry status/category/message and no
    # `errors` or `links` (crm-api C4, hubspot-api-ruby#403); HubSpot's error-handling guide says
    # error fields "should all be treated as optional" (crm-api C8).
    ("contacts_v3.json", "StandardError"): {"errors", "links"},
}


def _schema(spec_file: str, name: str) -> dict[str, Any]:
    spec = json.loads((SPECS / spec_file).read_text())
    components = copy.deepcopy(spec["components"])
    for (file, schema), fields in RELAXED_REQUIRED.items():
        if file == spec_file:
            target = components["schemas"][schema]
            target["required"] = [r for r in target.get("required", []) if r not in fields]
    # $refs ("#/components/schemas/...") resolve against this root document.
    return {"$ref": f"#/components/schemas/{name}", "components": components}


def _validate(body: Any, spec_file: str, name: str) -> None:
    validator = OAS30Validator(_schema(spec_file, name))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def http(emu):
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {emu.access_token}"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, emu.base_url + path, timeout=5, **kwargs)

    yield call
    session.close()


@pytest.mark.parametrize("emu_config", [EmulatorConfig(batch_update_error_mode="multi_status")])
def test_emulator_responses_validate_against_hubspot_openapi_specs(emu, http):
    ids = emu.add_contacts(contacts(5, numemployees=40))
    emu.update_contact(ids[0], {"hs_lead_status": "OPEN"})
    emu.archive_contact(ids[4])
    list_id = emu.add_list("News")

    search = http(
        "POST",
        "/crm/v3/objects/contacts/search",
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email", "hs_lead_status", "numemployees"],
            "limit": 2,
        },
    )
    assert search.status_code == 200 and search.json()["paging"]["next"]["after"] == "2"
    _validate(search.json(), "contacts_v3.json", "CollectionResponseWithTotalSimplePublicObject")

    ok = http(
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        json={"inputs": [{"id": ids[1], "properties": {"hs_lead_status": "CONNECTED"}}]},
    )
    assert ok.status_code == 200
    _validate(ok.json(), "contacts_v3.json", "BatchResponseSimplePublicObject")

    multi = http(
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        json={
            "inputs": [
                {"id": ids[1], "properties": {"hs_lead_status": "OPEN"}},
                {"id": ids[2], "properties": {"hs_lead_status": "BOGUS"}},
                {"id": "999999", "properties": {"hs_lead_status": "OPEN"}},
            ]
        },
    )
    assert multi.status_code == 207 and multi.json()["numErrors"] == 2
    _validate(multi.json(), "contacts_v3.json", "BatchResponseSimplePublicObjectWithErrors")

    read = http(
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        json={
            "inputs": [{"id": ids[0]}],
            "properties": ["email"],
            "propertiesWithHistory": ["hs_lead_status"],
        },
    )
    assert [
        h["sourceType"]
        for h in read.json()["results"][0]["propertiesWithHistory"]["hs_lead_status"]
    ] == ["CRM_UI", "IMPORT"]
    _validate(read.json(), "contacts_v3.json", "BatchResponseSimplePublicObject")

    archived = http(
        "GET",
        "/crm/v3/objects/contacts",
        params={"archived": "true", "limit": 100, "properties": "email"},
    )
    assert [r["id"] for r in archived.json()["results"]] == [ids[4]]
    _validate(
        archived.json(),
        "contacts_v3.json",
        "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging",
    )

    too_far = http("POST", "/crm/v3/objects/contacts/search", json={"limit": 200, "after": "9900"})
    assert too_far.status_code == 400
    _validate(too_far.json(), "contacts_v3.json", "Error")

    prop = http("GET", "/crm/v3/properties/contacts/hs_lead_status")
    assert prop.status_code == 200
    _validate(prop.json(), "properties_v3.json", "Property")
    _validate(
        http("GET", "/crm/v3/properties/contacts").json(),
        "properties_v3.json",
        "CollectionResponsePropertyNoPaging",
    )

    add = http("PUT", f"/crm/v3/lists/{list_id}/memberships/add", json=[ids[0], "424242"])
    assert add.json()["recordsIdsAdded"] == [ids[0]]
    _validate(add.json(), "lists_v3.json", "MembershipsUpdateResponse")
    _validate(http("GET", f"/crm/v3/lists/{list_id}").json(), "lists_v3.json", "ListFetchResponse")


def test_whole_batch_400_and_429_bodies_follow_the_documented_shapes(emu, http):
    emu.config.batch_update_error_mode = "whole_batch"
    [cid] = emu.add_contacts(contacts(1))
    bad = http(
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        json={"inputs": [{"id": cid, "properties": {"hs_lead_status": "BOGUS"}}]},
    )
    assert bad.status_code == 400
    body = bad.json()
    _validate(body, "contacts_v3.json", "Error")
    assert body["category"] == "VALIDATION_ERROR"
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    [entry] = json.loads(body["message"][len(prefix) :])
    assert entry["error"] == "INVALID_OPTION" and entry["name"] == "hs_lead_status"
    assert entry["id"] == cid and body["context"]["ids"] == [cid]

    emu.exhaust_daily_limit()
    limited = http("GET", "/crm/v3/properties/contacts/hs_lead_status")
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["errorType"] == "RATE_LIMIT"
    assert limited.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_merge_and_single_read_bodies_follow_the_published_schemas_when_contacts_merge(emu, http):
    a, b, c = emu.add_contacts(contacts(3))
    merged = http(
        "POST", "/crm/v3/objects/contacts/merge", json={"primaryObjectId": a, "objectIdToMerge": b}
    )
    assert merged.status_code == 200
    _validate(merged.json(), "contacts_v3.json", "SimplePublicObject")
    one = http(
        "GET",
        f"/crm/v3/objects/contacts/{b}",
        params={"properties": "email", "propertiesWithHistory": "hs_lead_status"},
    )
    assert one.json()["id"] == merged.json()["id"]
    _validate(one.json(), "contacts_v3.json", "SimplePublicObjectWithAssociations")
    refused = http(
        "POST", "/crm/v3/objects/contacts/merge", json={"primaryObjectId": a, "objectIdToMerge": c}
    )
    assert refused.status_code == 400
    _validate(refused.json(), "contacts_v3.json", "Error")
