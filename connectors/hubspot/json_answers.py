"""Contact search and history answers read as JSON, not as hubspot-api-client models.

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
``dateutil`` parses a call, which made a first sync's history reads CPU-bound.
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

__all__ = ["HistoryValue", "SearchAnswer", "read_answer", "read_history"]


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
