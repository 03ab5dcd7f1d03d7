"""Contact search, history and batch update answers read as JSON, not as hubspot-api-client
models.

The client's model deserialization parses every contact's ``createdAt`` and ``updatedAt`` with
``dateutil`` whether anyone reads them or not: two thirds of the CPU a search page of 200
contacts costs the connector, enough to let the daemon's own per-page work push a backfill off
HubSpot's 5 searches a second. The request still goes through the client (auth, host, pool,
errors as ``ApiException``), asked for the undecoded answer (``_preload_content=False``); the
fields the connector uses are read from the JSON of the documented responses
(``CollectionResponseWithTotalSimplePublicObjectForwardPaging``:
https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/search/post-crm-v3-objects-contacts-search;
batch read with ``propertiesWithHistory``, ``ValueWithTimestamp`` per past value:
https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects).
A batch read with history answers 50 contacts of up to 20 timestamped values each: a thousand
``dateutil`` parses a call, which made a first sync's history reads CPU-bound. A batch update
answers each of its up to 100 contacts as a model with two such dates and a client
``Configuration`` built per model (``BatchResponseSimplePublicObject``:
https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-update):
about a sixth of a whole cycle's time in a profile of a cycle writing 1 % of 20,000 contacts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.errors import RetriableError
from connectors.hubspot.reader import RawContact
from connectors.hubspot.values import parse_time, to_ms

__all__ = [
    "BatchError",
    "BatchUpdateAnswer",
    "HistoryValue",
    "SearchAnswer",
    "read_answer",
    "read_batch_update",
    "read_history",
]


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    contacts: list[RawContact]
    next_after: str | None
    total: int | None


@dataclass(frozen=True, slots=True)
class HistoryValue:
    """One past value of a property (``ValueWithTimestamp``), the fields the connector uses."""

    value: str | None
    timestamp: datetime
    source_type: str | None
    updated_by_user_id: int | str | None


@dataclass(frozen=True, slots=True)
class BatchError:
    """One error of a partial batch answer (``StandardError``): the fields the connector uses."""

    category: str | None
    message: str | None
    ids: list[str]  # the contacts it names (``context.ids``), none for a batch-wide error


@dataclass(frozen=True, slots=True)
class BatchUpdateAnswer:
    """A batch update's answer: each contact it names updated, with the properties it answered
    (id, properties), and a partial answer's (207) errors."""

    results: list[tuple[str, Mapping[str, Any]]]
    errors: list[BatchError]


def read_batch_update(response: Any) -> tuple[BatchUpdateAnswer, int, Mapping[str, str]]:
    """``(answer, status, headers)`` of an undecoded batch update response.

    A 2xx body without the documented ``results`` list (cut short, a proxy's page) says nothing
    of what landed: it is retried as a lost answer is (setting the same values again is
    harmless), never taken as every record written."""
    doc = _json(response, "contact batch update")
    try:
        results = doc["results"]
        if not isinstance(results, list):
            raise TypeError("results is not a list")
        answer = BatchUpdateAnswer(
            [(str(obj["id"]), obj.get("properties") or {}) for obj in results],
            [_batch_error(err) for err in doc.get("errors") or []],
        )
    except (ValueError, TypeError, AttributeError, KeyError):
        raise _not_an_answer("contact batch update") from None
    return answer, int(response.status), response.headers


def _batch_error(err: Mapping[str, Any]) -> BatchError:
    context = err.get("context") or {}
    return BatchError(
        err.get("category"),
        err.get("message"),
        [str(i) for i in context.get("ids") or []],
    )


def read_answer(response: Any) -> tuple[SearchAnswer, int, Mapping[str, str]]:
    """``(answer, status, headers)`` of an undecoded search response (urllib3
    ``HTTPResponse``), as ``*_with_http_info`` answers; the connection goes back to the pool."""
    doc = _json(response, "contact search")
    try:
        answer = _answer(doc)
    except (ValueError, TypeError, AttributeError, KeyError):
        raise _not_an_answer("contact search") from None
    return answer, int(response.status), response.headers


def read_history(
    response: Any, props: Sequence[str]
) -> tuple[dict[str, dict[str, list[HistoryValue]]], int, Mapping[str, str]]:
    """``({contact id: {property: its past values as answered, newest first}}, status,
    headers)`` of an undecoded batch read with ``propertiesWithHistory`` naming ``props``."""
    doc = _json(response, "status history read")
    try:
        out = {}
        for obj in doc.get("results") or []:
            history = obj.get("propertiesWithHistory") or {}
            out[str(obj["id"])] = {
                prop: [
                    HistoryValue(
                        v.get("value"),
                        parse_time(str(v["timestamp"])),
                        v.get("sourceType"),
                        v.get("updatedByUserId"),
                    )
                    for v in history.get(prop) or []
                ]
                for prop in props
            }
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
        raise _not_an_answer("status history read") from None
    return out, int(response.status), response.headers


def _json(response: Any, what: str) -> Any:
    try:
        body = response.data
    finally:
        response.release_conn()
    try:
        return json.loads(body)
    except ValueError:
        raise _not_an_answer(what) from None


def _not_an_answer(what: str) -> RetriableError:
    return RetriableError(
        f"HubSpot {what} answered with a body that is not what the API documents; will retry",
        crm="hubspot",
    )


def _answer(doc: Mapping[str, Any]) -> SearchAnswer:
    contacts = []
    for obj in doc.get("results") or []:
        props = obj.get("properties") or {}
        modified = _modified_at(props.get("lastmodifieddate"), obj.get("updatedAt"))
        contacts.append(RawContact(str(obj["id"]), to_ms(modified), props))
    paging = doc.get("paging") or {}
    nxt = (paging.get("next") or {}).get("after")
    if nxt is not None and not str(nxt).isdigit():
        # A search's ``after`` is the offset of its next page (the reader pages by it up to
        # the 10,000-result cap); anything else is not the documented answer.
        raise ValueError(f"paging.next.after {nxt!r} is not an offset")
    total = doc.get("total")
    return SearchAnswer(
        contacts,
        None if nxt is None else str(nxt),
        total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def _modified_at(stamp: str | None, updated_at: str | None) -> datetime:
    """A contact's ``lastmodifieddate``, else its ``updatedAt``; never raises on bad data (as
    ``connector._modified_at`` for decoded models)."""
    for text in (stamp, updated_at):
        if text:
            try:
                return parse_time(str(text))
            except (ValueError, OverflowError, OSError):
                pass
    return datetime(1970, 1, 1, tzinfo=UTC)
