"""Several sObject Collections in one Composite request: one counted API call.

``POST /services/data/vXX.X/composite`` carries up to 25 subrequests, at most 5 of them sObject
Collections or queries, and "the entire series of requests counts as a single call toward your
API limits"
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/requests_composite.htm).
syncd sends field updates (Collections PATCH) and CampaignMember inserts (Collections POST)
together, up to 5 x 200 records per call, with ``allOrNone`` false at the top level and in
every collection: a failing subrequest or record never rolls back the others.

A call carrying status writes may end with a query subrequest reading those leads'
``LeadHistory``: subrequests run in order, so it sees syncd's own just-applied writes and the
race check (``syncd.races``) costs no call of its own. The query counts toward the 5, so such a
call carries at most 4 collections. A SOQL statement in a Composite body is not held to the
16,384-byte URI limit of a standalone query
(https://help.salesforce.com/s/articleView?id=000386264).

This module builds the request body and reads the answer; the connector maps each
subrequest's SaveResults as it maps a standalone Collections answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from connectors.errors import RetriableError

__all__ = [
    "HISTORY_REFERENCE",
    "MAX_COLLECTIONS",
    "Subrequest",
    "composite_body",
    "subrequest_answers",
]

#: sObject Collections (or query) subrequests one Composite request may carry.
MAX_COLLECTIONS = 5
#: The referenceId of the trailing query subrequest, when a call carries one.
HISTORY_REFERENCE = "history"


@dataclass(frozen=True, slots=True)
class Subrequest:
    """One sObject Collections call inside a Composite request."""

    method: str  # PATCH (update) or POST (insert)
    body: Mapping[str, Any]  # the Collections body: {"allOrNone": false, "records": [...]}
    headers: Mapping[str, str]  # Sforce-Auto-Assign, Sforce-Duplicate-Rule-Header


@dataclass(frozen=True, slots=True)
class SubrequestAnswer:
    status: int
    body: Any


def composite_body(
    api_version: str, subrequests: Sequence[Subrequest], *, then_query: str | None = None
) -> dict[str, Any]:
    """The Composite request carrying ``subrequests`` in order, referenced ``c0``, ``c1``, ...,
    and, with ``then_query``, that SOQL query last (referenced ``HISTORY_REFERENCE``)."""
    heavy = len(subrequests) + (then_query is not None)
    if heavy > MAX_COLLECTIONS:
        raise ValueError(
            f"a Composite request carries at most {MAX_COLLECTIONS} collections and queries, "
            f"got {heavy}"
        )
    requests: list[dict[str, Any]] = [
        {
            "method": s.method,
            "url": f"/services/data/v{api_version}/composite/sobjects",
            "referenceId": f"c{n}",
            "body": dict(s.body),
            "httpHeaders": dict(s.headers),
        }
        for n, s in enumerate(subrequests)
    ]
    if then_query is not None:
        requests.append(
            {
                "method": "GET",
                "url": f"/services/data/v{api_version}/query?{urlencode({'q': then_query})}",
                "referenceId": HISTORY_REFERENCE,
            }
        )
    return {"allOrNone": False, "collateSubrequests": False, "compositeRequest": requests}


def subrequest_answers(
    answer: Any, count: int, *, then_query: bool = False
) -> list[SubrequestAnswer]:
    """Each subrequest's (HTTP status, body), in request order (the query's last).

    Raises:
        RetriableError: the answer is not a ``compositeResponse`` for every subrequest, so what
            was applied is unknown.
    """
    items = answer.get("compositeResponse") if isinstance(answer, Mapping) else None
    by_ref: dict[str, SubrequestAnswer] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("httpStatusCode"), int):
            by_ref[str(item.get("referenceId"))] = SubrequestAnswer(
                int(item["httpStatusCode"]), item.get("body")
            )
    refs = [f"c{n}" for n in range(count)] + ([HISTORY_REFERENCE] if then_query else [])
    if any(r not in by_ref for r in refs):
        raise RetriableError(
            f"Salesforce answered a Composite request of {len(refs)} subrequests with "
            f"{len(by_ref)} subrequest results; what was applied is unknown, retry it",
            crm="salesforce",
        )
    return [by_ref[r] for r in refs]


def subrequest_error(body: Any) -> tuple[str | None, str]:
    """(errorCode, message) of a failed subrequest's ``[{errorCode, message}]`` body."""
    first = body[0] if isinstance(body, list) and body else None
    if not isinstance(first, Mapping):
        return None, ""
    return (str(first.get("errorCode") or "") or None, str(first.get("message") or "")[:300])
