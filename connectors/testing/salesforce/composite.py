"""The Composite resource: ``POST /services/data/vXX.X/composite``.

Up to 25 subrequests, of which at most 5 may be sObject Collections or query operations, run in
order in one request that counts as ONE call against the daily API limit; each subrequest is
answered with its own HTTP status in ``compositeResponse``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/requests_composite.htm).

Subrequests are served by the same handlers as the standalone resources (sObject Collections,
query, describe, single-record PATCH, ...), so duplicate rules, record types, row locks and
validation behave alike. Faults: the request itself is faulted like any request (drops, slow
answers, timeouts, 503, 429, 401); a transport fault scripted for a subrequest's path (a drop
scripted for ``composite/sobjects``) is hoisted onto the request carrying it; answer faults
(``503``, ``429``, ``lock``, ``respond``) are drawn per subrequest and answered in that
subrequest's slot. With ``allOrNone`` true the first failing subrequest rolls back everything
the request did, and every other subrequest answers 400 ``PROCESSING_HALTED``.

A subrequest's ``url`` may be a reference to an earlier answer (``@{p0.nextRecordsUrl}``: the
query's next page); such a subrequest counts toward the 5 query operations, and a reference
naming a field the earlier answer lacks (a done page has no ``nextRecordsUrl``) is that
subrequest's own 400 ``[{errorCode, message}]`` (Salesforce does not document the errorCode).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from connectors.testing.kit import Fault, JournalEntry, Request, Response

from .store import ApiError

if TYPE_CHECKING:
    from .server import SalesforceEmulator

__all__ = [
    "MAX_COLLECTIONS_OR_QUERIES",
    "MAX_SUBREQUESTS",
    "TRANSPORT_FAULTS",
    "hoisted_fault",
    "is_composite",
    "serve_composite",
]

#: Subrequests per Composite request.
MAX_SUBREQUESTS = 25
#: Of those, sObject Collections or query operations.
MAX_COLLECTIONS_OR_QUERIES = 5
#: Faults that hit the HTTP exchange, not one subrequest's answer.
TRANSPORT_FAULTS = frozenset({"drop-before", "drop-after", "slow", "timeout"})

_COMPOSITE = re.compile(r"/services/data/v\d+\.\d+/composite/?")
_COLLECTION_OR_QUERY = re.compile(
    r"/services/data/v\d+\.\d+/(composite/sobjects|query|queryAll)(/|$)"
)
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_HALTED = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }
]


@dataclass(frozen=True, slots=True)
class _Sub:
    method: str
    url: str
    reference_id: str
    body: Any
    headers: dict[str, str]


def is_composite(request: Request) -> bool:
    return request.method == "POST" and _COMPOSITE.fullmatch(request.path) is not None


def hoisted_fault(emu: SalesforceEmulator, request: Request) -> Fault | None:
    """A transport fault scripted for one of the request's subrequests, if any."""
    if not emu.faults.any_scripted(TRANSPORT_FAULTS):
        return None  # nothing to look for: the body is not parsed for it
    try:
        subs = _parse(request.body)
    except ApiError:
        return None
    for sub in subs:
        split = urlsplit(sub.url)
        fault = emu.faults.take_scripted(sub.method, split.path, TRANSPORT_FAULTS)
        if fault is not None:
            return fault
    return None


def serve_composite(emu: SalesforceEmulator, req: Request) -> Response:
    """Run the subrequests in order; answer ``{"compositeResponse": [...]}``."""
    doc = _document(req.body)
    subs = _subrequests(doc)
    # No reference anywhere in the body (nor an escape that could spell one): the subrequests
    # run as sent, without a walk through every record of every body.
    references = b"@{" in req.body or b"\\u" in req.body
    if len(subs) > MAX_SUBREQUESTS:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"Composite requests may have at most {MAX_SUBREQUESTS} subrequests; this one "
            f"has {len(subs)}",
        )
    heavy = sum(1 for s in subs if _is_heavy(s.url))
    if heavy > MAX_COLLECTIONS_OR_QUERIES:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"Composite requests may have at most {MAX_COLLECTIONS_OR_QUERIES} sObject "
            f"Collections or query subrequests; this one has {heavy}",
        )
    all_or_none = bool(doc.get("allOrNone", False))
    with emu.org.lock:  # one transaction: nothing else interleaves with the subrequests
        before = emu.org.export() if all_or_none else None
        answers: list[dict[str, Any]] = []
        bodies: dict[str, Any] = {}
        entries: list[JournalEntry] = []
        for sub in subs:
            entry, answer = _serve_one(emu, req, sub, bodies if references else None)
            entries.append(entry)
            answers.append(answer)
            bodies[sub.reference_id] = answer["body"]
            if before is not None and answer["httpStatusCode"] >= 400:
                emu.org.restore(before)
                failed_at = len(answers) - 1
                answers = [
                    a if k == failed_at else _halted(a["referenceId"])
                    for k, a in enumerate(answers)
                ]
                answers += [_halted(s.reference_id) for s in subs[len(answers) :]]
                for e in entries:
                    e.applied, e.written = False, ()
                break
    req.entry.subrequests = entries
    req.entry.records = sum(e.records or 0 for e in entries)
    req.entry.record_ids = tuple(i for e in entries for i in e.record_ids)
    req.entry.written = tuple(i for e in entries for i in e.written)
    return Response(200, {"compositeResponse": answers})


def _is_heavy(url: str) -> bool:
    """Whether a subrequest counts toward the 5 collections or queries. A URL that starts
    with a reference is not known before the run; it is counted (the reference's use here is a
    query's ``nextRecordsUrl``, the next page of a query, which is a query operation)."""
    return url.startswith("@{") or _COLLECTION_OR_QUERY.match(urlsplit(url).path) is not None


def _halted(reference_id: str) -> dict[str, Any]:
    return {
        "body": _HALTED,
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference_id,
    }


def _serve_one(
    emu: SalesforceEmulator, parent: Request, sub: _Sub, bodies: Mapping[str, Any] | None
) -> tuple[JournalEntry, dict[str, Any]]:
    """One subrequest; ``bodies``: the earlier answers its references may name (None: the
    Composite body holds no reference)."""
    try:
        url = sub.url if bodies is None else _resolve_text(sub.url, bodies)
        body = sub.body if bodies is None else _resolve(sub.body, bodies)
    except ApiError as exc:
        return _unresolved(parent, sub, exc)
    split = urlsplit(url)
    raw = b"" if body is None else json.dumps(body).encode()
    # Salesforce's request headers on the Composite request apply to its subrequests too; a
    # subrequest's own httpHeaders win.
    headers = {k: v for k, v in parent.headers.items() if k.startswith("sforce-")}
    headers.update(sub.headers)
    entry = JournalEntry(
        sub.method,
        split.path,
        split.query,
        at=parent.entry.at,
        request_id=str(uuid.uuid4()),
        body=raw,
        connection=parent.entry.connection,
        headers={k: v for k in emu.journal_headers if (v := headers.get(k)) is not None},
    )
    # Unresolved, the body is the request's own parsed JSON: the handler reads it as it is
    # instead of parsing its text again (the journal keeps the text, as sent).
    parsed = body if bodies is None else None
    request = Request(sub.method, split.path, split.query, raw, headers, entry, parsed=parsed)
    fault = emu.faults.decide(sub.method, split.path, emu.subrequest_fault_kinds(request))
    entry.fault = fault.kind if fault is not None else None
    if fault is not None and fault.kind in ("respond", "503", "429", "401"):
        response = _as_json(emu.fault_answer(fault, request))
    else:
        if fault is not None and fault.kind == "lock":
            request.fault = fault
        response = _run(emu, request)
    entry.status = response.status
    entry.applied = 200 <= response.status < 300
    if not entry.applied:
        entry.written = ()
    answer = {
        "body": response.body,
        "httpHeaders": dict(response.headers),
        "httpStatusCode": response.status,
        "referenceId": sub.reference_id,
    }
    return entry, answer


def _unresolved(parent: Request, sub: _Sub, exc: ApiError) -> tuple[JournalEntry, dict[str, Any]]:
    """A reference naming a field the earlier answer lacks (say ``nextRecordsUrl`` after a
    query's last page): this subrequest's own 400, the others go on (``allOrNone`` false)."""
    entry = JournalEntry(
        sub.method,
        urlsplit(sub.url).path,
        "",
        at=parent.entry.at,
        request_id=str(uuid.uuid4()),
        body=b"",
        connection=parent.entry.connection,
    )
    entry.status, entry.applied = exc.status, False
    answer = {
        "body": exc.body(),
        "httpHeaders": {},
        "httpStatusCode": exc.status,
        "referenceId": sub.reference_id,
    }
    return entry, answer


def _run(emu: SalesforceEmulator, request: Request) -> Response:
    """The standalone resource's handler, minus authentication and usage (done once for the
    composite request); a CRM error becomes the subrequest's answer."""
    try:
        return _as_json(emu.find_route(request))
    except Exception as exc:  # each failure is this subrequest's answer; the others go on
        answer = emu.error_response(exc, request)
        if answer is None:
            raise
        return _as_json(answer)


def _as_json(response: Response) -> Response:
    """A subrequest's body is JSON inside the composite answer: an HTML error page becomes
    Salesforce's ``[{errorCode, message}]`` for its status."""
    body = response.body
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body) if body else None
        except ValueError:
            code = "SERVER_UNAVAILABLE" if response.status == 503 else "UNKNOWN_EXCEPTION"
            body = [{"errorCode": code, "message": f"HTTP {response.status}"}]
    return Response(response.status, body, dict(response.headers))


def _document(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
    return doc


def _parse(raw: bytes) -> list[_Sub]:
    return _subrequests(_document(raw))


def _subrequests(doc: Mapping[str, Any]) -> list[_Sub]:
    items = doc.get("compositeRequest")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "INVALID_INPUT", "compositeRequest: required field missing")
    subs: list[_Sub] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, "INVALID_INPUT", f"compositeRequest[{n}] must be an object")
        method, url, ref = item.get("method"), item.get("url"), item.get("referenceId")
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            raise ApiError(400, "INVALID_INPUT", f"compositeRequest[{n}].method: {method!r}")
        if not isinstance(url, str) or not url.startswith(("/services/data/", "@{")):
            raise ApiError(400, "INVALID_INPUT", f"compositeRequest[{n}].url: {url!r}")
        if _COMPOSITE.fullmatch(urlsplit(url).path):
            raise ApiError(
                400, "INVALID_INPUT", f"compositeRequest[{n}]: a Composite request cannot nest"
            )
        if not isinstance(ref, str) or not ref or ref in seen:
            raise ApiError(
                400,
                "INVALID_INPUT",
                f"compositeRequest[{n}].referenceId: required and unique, got {ref!r}",
            )
        seen.add(ref)
        headers = item.get("httpHeaders") or {}
        if not isinstance(headers, dict):
            raise ApiError(400, "INVALID_INPUT", f"compositeRequest[{n}].httpHeaders")
        subs.append(
            _Sub(
                method,
                url,
                ref,
                item.get("body"),
                {str(k).lower(): str(v) for k, v in headers.items()},
            )
        )
    return subs


def _lookup(bodies: Mapping[str, Any], ref: str, path: str) -> Any:
    if ref not in bodies:
        raise ApiError(400, "INVALID_INPUT", f"reference @{{{ref}}} names no earlier subrequest")
    value = bodies[ref]
    for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = part
        try:
            value = value[int(index)] if index else value[name]
        except (KeyError, IndexError, TypeError):
            raise ApiError(
                400, "INVALID_INPUT", f"reference @{{{ref}{path}}} is not in that response"
            ) from None
    return value


def _resolve_text(text: str, bodies: Mapping[str, Any]) -> str:
    return _REFERENCE.sub(lambda m: str(_lookup(bodies, m.group(1), m.group(2))), text)


def _resolve(value: Any, bodies: Mapping[str, Any]) -> Any:
    """``@{refId.field}`` references to earlier answers, in strings anywhere in a body."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole is not None:
            return _lookup(bodies, whole.group(1), whole.group(2))
        return _resolve_text(value, bodies) if "@{" in value else value
    if isinstance(value, Mapping):
        return {k: _resolve(v, bodies) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [_resolve(v, bodies) for v in value]
    return value
