"""The emulator's Composite query chain: a subrequest whose whole URL is a reference to an
earlier answer's ``nextRecordsUrl`` reads the query's next page, in the same counted call.

Through the real simple-salesforce client (``sf.restful("composite", ...)``) over TLS
(references: ``@{referenceId.field}``,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.testing.salesforce import SalesforceEmulator

from .support import lead, simple_client

V = "/services/data/v59.0"
BATCH = {"Sforce-Query-Options": "batchSize=200"}


@pytest.fixture
def sf(emu: SalesforceEmulator) -> Salesforce:
    return simple_client(emu)


def _chain(pages: int, soql: str = "SELECT Id FROM Lead ORDER BY Id") -> dict[str, Any]:
    first = {
        "method": "GET",
        "url": f"{V}/queryAll?{urlencode({'q': soql})}",
        "referenceId": "p0",
        "httpHeaders": BATCH,
    }
    chained = [
        {
            "method": "GET",
            "url": f"@{{p{k - 1}.nextRecordsUrl}}",
            "referenceId": f"p{k}",
            "httpHeaders": BATCH,
        }
        for k in range(1, pages)
    ]
    return {"allOrNone": False, "compositeRequest": [first, *chained]}


def _composite(sf: Salesforce, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = sf.restful("composite", method="POST", json=body)
    assert isinstance(answer, dict)
    return list(answer["compositeResponse"])


def test_subrequests_whose_url_is_the_previous_pages_next_records_url_read_five_pages_in_one_counted_call(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    ids = emu.add_leads([lead(i) for i in range(1000)])
    used = emu.api_usage
    answers = _composite(sf, _chain(5))
    assert emu.api_usage == used + 1
    assert [a["httpStatusCode"] for a in answers] == [200] * 5
    read = [r["Id"] for a in answers for r in a["body"]["records"]]
    assert read == sorted(ids), "every lead once, in the query's order"
    assert [a["body"]["done"] for a in answers] == [False] * 4 + [True]
    [entry] = emu.journal.entries(path_contains="/composite")
    assert [s.records for s in entry.subrequests] == [200] * 5


def test_a_reference_to_a_done_pages_missing_next_records_url_fails_only_that_subrequest(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    emu.add_leads([lead(i) for i in range(300)])
    answers = _composite(sf, _chain(4))
    assert [a["httpStatusCode"] for a in answers] == [200, 200, 400, 400]
    assert answers[1]["body"]["done"] is True
    for failed in answers[2:]:
        [error] = failed["body"]
        assert error["errorCode"] and "nextRecordsUrl" in error["message"]


def test_a_next_page_reference_counts_toward_the_five_query_operations_of_a_composite_request(
    emu: SalesforceEmulator, sf: Salesforce
) -> None:
    emu.add_leads([lead(i) for i in range(100)])
    with pytest.raises(SalesforceMalformedRequest) as err:
        _composite(sf, _chain(6))
    assert err.value.content[0]["errorCode"] == "LIMIT_EXCEEDED"  # type: ignore[index]
