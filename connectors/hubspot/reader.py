"""Incremental contact reads through search, past its 10,000-result cap and through ties.

HubSpot search returns at most 10,000 results per query (paging further is a 400, crm-api C2).
The documented workaround moves the window: filter ``lastmodifieddate >= t`` sorted ascending and
restart at the last value seen. When more than 10,000 contacts share one millisecond (mass
updates do this) the window cannot move, so those are paged by ``hs_object_id`` within
``lastmodifieddate == t`` before continuing with ``> t`` (crm-api C2; airbytehq/airbyte#43317).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["RawContact", "SearchPage", "iter_search_windows"]


@dataclass(frozen=True, slots=True)
class RawContact:
    id: str
    modified_ms: int
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchPage:
    results: list[RawContact]
    next_after: str | None
    total: int | None = None  # the answer's ``total``: contacts the query matches now


#: One search filter or sort: {"propertyName": ..., "operator"/"direction": ..., ...}
Filter = dict[str, str]
#: (filter groups: OR'ed groups of AND'ed filters, sort, after) -> one page
SearchFn = Callable[[list[list[Filter]], Filter, str | None], SearchPage]

_BY_MODIFIED = {"propertyName": "lastmodifieddate", "direction": "ASCENDING"}
_BY_ID = {"propertyName": "hs_object_id", "direction": "ASCENDING"}


def _f(name: str, op: str, value: int) -> Filter:
    return {"propertyName": name, "operator": op, "value": str(value)}


def _range_groups(
    lower: int, hi_ms: int, inclusive: bool, resume_id: int | None
) -> list[list[Filter]]:
    """Filter groups for ``lastmodifieddate`` in ``[lower, hi_ms]`` (``(lower, hi_ms]`` when not
    inclusive); with ``resume_id``, the contacts at ``lower`` up to that id are left out."""
    if resume_id is not None:
        return [
            [_f("lastmodifieddate", "EQ", lower), _f("hs_object_id", "GT", resume_id)],
            [_f("lastmodifieddate", "GT", lower), _f("lastmodifieddate", "LTE", hi_ms)],
        ]
    return [
        [
            _f("lastmodifieddate", "GTE" if inclusive else "GT", lower),
            _f("lastmodifieddate", "LTE", hi_ms),
        ]
    ]


def iter_search_windows(
    search: SearchFn,
    *,
    lo_ms: int,
    hi_ms: int,
    page_size: int,
    max_results: int = 10_000,
    resume_id: int | None = None,
) -> Iterator[list[RawContact]]:
    """Yield batches of contacts modified in ``[lo_ms, hi_ms]``, ascending, each once.

    Contacts re-read when a window restarts at its last timestamp are dropped here (the ids seen
    at the newest timestamp are remembered), so memory stays proportional to one tie group.

    With ``resume_id`` the read resumes after a cursor (``lo_ms``, ``resume_id``): contacts at
    exactly ``lo_ms`` with an id up to ``resume_id`` were read before. The first window then asks
    for ``(EQ lo_ms AND hs_object_id GT resume_id) OR (GT lo_ms AND LTE hi_ms)`` in one search
    (filter groups are OR'd, crm-api C2), so resuming costs no extra call and does not re-read
    the contacts a batch write stamped with the cursor's millisecond.
    """
    lower, inclusive = lo_ms, True  # range mode: lastmodifieddate GTE/GT lower, LTE hi
    tie_at: int | None = None  # tie mode: lastmodifieddate EQ tie_at, hs_object_id GT tie_after
    tie_after = -1
    after: str | None = None
    last_t: int | None = None
    seen_at_last_t: set[str] = set()
    counted: int | None = None  # the ``total`` of the query's first page
    last_id = -1  # of the newest contact read

    while True:
        if tie_at is None:
            resuming = resume_id is not None and inclusive and lower == lo_ms
            groups = _range_groups(lower, hi_ms, inclusive, resume_id if resuming else None)
            page = search(groups, _BY_MODIFIED, after)
        else:
            groups = [[_f("lastmodifieddate", "EQ", tie_at), _f("hs_object_id", "GT", tie_after)]]
            page = search(groups, _BY_ID, after)
        if after is None:
            counted = page.total
        elif _shrank(page.total, counted):
            # Contacts left the query while it paged (edited meanwhile: their new
            # lastmodifieddate is past the window's end) and every later one moved up a
            # place, so this offset skipped one. Read on from the newest contact read instead,
            # as at the 10,000 cap (a tie group by id, else from its timestamp).
            after, tie_after = None, last_id
            lower, inclusive = (lower, inclusive) if last_t is None else (last_t, True)
            continue

        fresh, last_t, seen_at_last_t = _fresh(page.results, last_t, seen_at_last_t)
        if fresh:
            yield fresh
            last_id = int(fresh[-1].id)

        if not page.results or page.next_after is None:
            if tie_at is None:
                return
            # The tie group is done: continue strictly after it.
            lower, inclusive, tie_at, after = tie_at, False, None, None
            continue
        if int(page.next_after) + page_size <= max_results:
            after = page.next_after
            continue

        # The next page would cross the 10,000 cap: restart the window.
        after = None
        if tie_at is not None:
            tie_after = int(page.results[-1].id)
            continue
        t = page.results[-1].modified_ms
        if inclusive and t == lower:
            # A whole window shares one timestamp: page that timestamp by id.
            tie_at = t
            tie_after = resume_id if resume_id is not None and t == lo_ms else -1
        else:
            lower, inclusive = t, True


def _shrank(total: int | None, counted: int | None) -> bool:
    """Whether a later page of a query counts fewer contacts than its first did."""
    return total is not None and counted is not None and total < counted


def _fresh(
    results: list[RawContact], last_t: int | None, seen_at_last_t: set[str]
) -> tuple[list[RawContact], int | None, set[str]]:
    """The contacts of a page not read before (a window restart re-reads the newest
    timestamp's), and the newest timestamp and the ids read at it after them."""
    fresh: list[RawContact] = []
    for contact in results:
        t = contact.modified_ms
        if last_t is not None and (t < last_t or (t == last_t and contact.id in seen_at_last_t)):
            continue  # re-read after a window restart
        if t != last_t:
            last_t, seen_at_last_t = t, set()
        seen_at_last_t.add(contact.id)
        fresh.append(contact)
    return fresh, last_t, seen_at_last_t
