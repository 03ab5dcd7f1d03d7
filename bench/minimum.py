"""The true minimum: the least counted API calls any client could spend for a cycle's work.

"Any client" means one free to use every documented API of the CRM, batched to the documented
maximum, with no call wasted. syncd's counted calls are compared with this (`bench/cycle_cost.py`),
never with the minimum of the APIs syncd happens to use.

Salesforce (docs/crm-api.md A2, A5, A6, A7, A11, A18):

* **Reads** of ``n`` leads cost the cheaper of
  - REST query pages chained in Composite requests: ``max(1, ceil(n / 10,000))``. ``query`` /
    ``queryAll`` return at most 2,000 records a page (``Sforce-Query-Options: batchSize``
    200..2,000):
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
    and a Composite request (one counted call) carries up to 5 query operations, a later
    subrequest reading an earlier one's ``nextRecordsUrl`` through a reference in its URL
    (``"url": "@{p0.nextRecordsUrl}"``): 5 pages, 10,000 leads, a call, without knowing the
    size first (the subrequests after the last page fail on their own and still count once):
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm
  - a Bulk API 2.0 query job: create (``POST /jobs/query``) + at least one status poll
    (``GET /jobs/query/{id}``; results exist only once the job is ``JobComplete``) +
    ``ceil(n / page)`` result pages (``GET /jobs/query/{id}/results?locator=&maxRecords=``).
    Salesforce names no largest ``maxRecords`` ("the request is still subject to the size
    limits"); ``page`` is the client's setting: syncd's ``bulk_results_page_size`` where the
    connector has one, otherwise 50,000 (simple-salesforce's ``DEFAULT_QUERY_PAGE_SIZE``):
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
  The minimum knows ``n`` before its first call (a client that always creates a job spends
  exactly this when the job is the cheaper way). A client that does not know it spends a call
  to learn it: syncd's first Composite call (whose 10,000 leads it keeps) is in syncd's count,
  not here, so a pull that takes a job (more than 40,000 leads with 2,000-lead pages) costs
  syncd one read call more than this. When syncd's race check rides in a pull's first call,
  the query of people's edits takes one of its 5 query slots (4 pages there): a pull that then
  needs one more call is charged to the read, not left out.
* **Writes**: a Composite request (``POST /composite``) is one counted call and carries up to 25
  subrequests, at most 5 of them sObject Collections (or queries); a Collections subrequest
  carries up to 200 records of one operation. Field updates (``PATCH composite/sobjects``) and
  CampaignMember inserts (``POST composite/sobjects``) are separate collections, so ``u`` updates
  and ``m`` inserts need ``ceil(u / 200) + ceil(m / 200)`` collections and
  ``ceil(collections / 5)`` calls: up to 1,000 records a call.
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
  What this leaves out, and so flatters no one: the 20 further subrequests a Composite request
  may carry could each be a single-record update, 1,020 records a call at best (2 % more).
* **Status history** (the ledger, README "The status history ledger") is syncd's own feature,
  not part of the work every client does; its calls are reported beside the ratio, not in it.

HubSpot (docs/crm-api.md C2, C3, C4, C6; the whole model: docs/crm-api.md A17):

* Reads of changed contacts: search pages of 200 (``POST /crm/v3/objects/contacts/search``,
  at most 10,000 results a query: past that the window moves, which costs no extra page), plus
  one page of the archived listing (``GET /crm/v3/objects/contacts?archived=true``, at most 100
  a page, no time filter: the only way to see deletions) when the cycle looks for them.
  https://developers.hubspot.com/docs/api/crm/search
* Writes: batch update, 100 inputs a call; list membership adds, 100 record ids a call per list
  (the v3 lists API takes any number; syncd's connector sends 100, the batch bound HubSpot's
  other endpoints share, so 100 is what is counted here: the least a client bounded like the
  batch endpoints spends).
  https://developers.hubspot.com/docs/api/crm/contacts ; https://developers.hubspot.com/docs/api/crm/lists
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "BULK_PAGE",
    "COLLECTION_RECORDS",
    "COMPOSITE_COLLECTIONS",
    "COMPOSITE_QUERIES",
    "HS_BATCH",
    "HS_SEARCH_PAGE",
    "REST_PAGE",
    "Minimum",
    "hubspot_minimum",
    "salesforce_minimum",
    "salesforce_read",
]

REST_PAGE = 2000
#: Query operations (pages) one Composite request carries.
COMPOSITE_QUERIES = 5
BULK_PAGE = 50_000
COLLECTION_RECORDS = 200
COMPOSITE_COLLECTIONS = 5
HS_SEARCH_PAGE = 200
HS_BATCH = 100


@dataclass(frozen=True, slots=True)
class Minimum:
    """The least calls for a cycle's work, by kind, with how each was reached."""

    calls: Mapping[str, int]
    how: Mapping[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def describe(self) -> str:
        return "; ".join(f"{k} {v} ({self.how.get(k, '')})" for k, v in self.calls.items())


def salesforce_read(n: int, *, bulk_page: int = BULK_PAGE) -> tuple[int, str]:
    """Least calls to read ``n`` leads, and which API reaches it."""
    pages = max(1, math.ceil(n / REST_PAGE))
    rest = math.ceil(pages / COMPOSITE_QUERIES)
    bulk = 2 + max(1, math.ceil(n / bulk_page))
    if bulk < rest:
        return bulk, f"Bulk API 2.0: create + poll + {bulk - 2} pages of {bulk_page:,}"
    return rest, (
        f"REST query: {pages} pages of {REST_PAGE:,}, {COMPOSITE_QUERIES} chained a Composite call"
    )


def salesforce_minimum(
    *, read: int, updates: int, members: int, bulk_page: int = BULK_PAGE
) -> Minimum:
    """Least Salesforce calls for a cycle that reads ``read`` leads, updates ``updates`` and
    inserts ``members`` CampaignMembers."""
    read_calls, read_how = salesforce_read(read, bulk_page=bulk_page)
    collections = math.ceil(updates / COLLECTION_RECORDS) + math.ceil(members / COLLECTION_RECORDS)
    writes = math.ceil(collections / COMPOSITE_COLLECTIONS)
    return Minimum(
        {"read": read_calls, "write": writes},
        {
            "read": read_how,
            "write": f"Composite: {collections} collections of <= {COLLECTION_RECORDS} "
            f"({updates:,} updates + {members:,} CampaignMember inserts), "
            f"{COMPOSITE_COLLECTIONS} a call",
        },
    )


def hubspot_minimum(
    *, read: int, updates: int, members: Mapping[str, int], archived_scan: bool
) -> Minimum:
    """Least HubSpot calls for a cycle that reads ``read`` changed contacts, updates
    ``updates`` and adds ``members[list]`` contacts to each list."""
    pages = max(1, math.ceil(read / HS_SEARCH_PAGE))
    calls = {
        "read": pages + (1 if archived_scan else 0),
        "write": math.ceil(updates / HS_BATCH),
        "membership": sum(math.ceil(m / HS_BATCH) for m in members.values()),
    }
    return Minimum(
        calls,
        {
            "read": f"{pages} search pages of {HS_SEARCH_PAGE}"
            + (" + 1 archived-listing page" if archived_scan else ""),
            "write": f"batch update, {HS_BATCH} a call",
            "membership": f"list adds, {HS_BATCH} a call per list",
        },
    )
