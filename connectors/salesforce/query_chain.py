"""Query pages chained in one Composite request: up to 5 pages (10,000 leads) a counted call.

A Composite request (one counted call) carries at most 5 query operations, and a subrequest may
use an earlier answer through a reference, in its URL too
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm,
the ``@{referenceId.field}`` syntax). So the first subrequest reads a query page (the query
itself, or a ``nextRecordsUrl`` an earlier call returned) and each later one reads
``@{p<k-1>.nextRecordsUrl}``: the query's next page, without knowing the read's size first.

When the query is done early, the later subrequests name a field the done page does not have
and fail with their own error (``allOrNone`` false: the call still counts once); their answers
are ignored, whatever they are. A subrequest that fails before the query is done (a 503, an
expired locator) ends the chain at the page before it: the caller reads on from that page's
``nextRecordsUrl``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .composite import MAX_COLLECTIONS

__all__ = ["ChainAnswer", "chain_body", "chain_pages"]


@dataclass(frozen=True, slots=True)
class ChainAnswer:
    """What a chained call read: its pages in order (the last is done, or its
    ``nextRecordsUrl`` is where reading goes on), and the answers of extra subrequests by
    referenceId. ``pages`` is empty when the first page's subrequest failed."""

    pages: list[dict[str, Any]]
    extra: dict[str, tuple[int, Any]]


def _page_ref(k: int) -> str:
    return f"p{k}"


def chain_body(
    first_url: str,
    headers: Mapping[str, str],
    *,
    pages: int,
    extra: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The Composite request reading ``pages`` query pages from ``first_url`` (a query or
    ``nextRecordsUrl``), then the ``extra`` query subrequests; all count toward the 5."""
    if pages < 1 or pages + len(extra) > MAX_COLLECTIONS:
        raise ValueError(
            f"a Composite request carries 1 to {MAX_COLLECTIONS} query operations, got "
            f"{pages} pages and {len(extra)} other queries"
        )
    subrequests: list[dict[str, Any]] = [
        {
            "method": "GET",
            "url": first_url if k == 0 else f"@{{{_page_ref(k - 1)}.nextRecordsUrl}}",
            "referenceId": _page_ref(k),
            "httpHeaders": dict(headers),
        }
        for k in range(pages)
    ]
    subrequests.extend(dict(e) for e in extra)
    return {"allOrNone": False, "collateSubrequests": False, "compositeRequest": subrequests}


def chain_pages(answer: Any, pages: int) -> ChainAnswer:
    """The pages a chained call read, up to the done one or the first failure before it."""
    items = answer.get("compositeResponse") if isinstance(answer, Mapping) else None
    by_ref: dict[str, tuple[int, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("httpStatusCode"), int):
            by_ref[str(item.get("referenceId"))] = (int(item["httpStatusCode"]), item.get("body"))
    read: list[dict[str, Any]] = []
    for k in range(pages):
        status, body = by_ref.pop(_page_ref(k), (0, None))
        if status != 200 or not isinstance(body, Mapping):
            break
        read.append(dict(body))
        if body.get("done", True) or not body.get("nextRecordsUrl"):
            break  # the later subrequests' answers are the missing reference's errors
    for k in range(pages):
        by_ref.pop(_page_ref(k), None)
    return ChainAnswer(read, by_ref)
