"""The HubSpot emulator: a real HTTP server on 127.0.0.1 speaking the CRM v3 endpoints syncd uses.

Endpoints and quirks follow /work/shared/reference/crm-api-facts.md sections C1-C8 (cited inline).
The Python handle (:class:`HubSpotEmulator`) seeds data, simulates rep edits, controls the clock,
injects faults and exposes the request journal.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.testing.hubspot.clock import EmulatorClock
from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.journal import Fault, FaultPlan, Journal, JournalEntry
from connectors.testing.hubspot.limits import RateLimiter
from connectors.testing.hubspot.properties import PropertyCatalogue
from connectors.testing.hubspot.store import Contact, ContactStore, Snapshot, iso_ms

__all__ = ["ApiError", "HubSpotEmulator"]

# Returned by search when the request names no properties (facts C2).
DEFAULT_SEARCH_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id",
                             "lastmodifieddate", "lastname")
_ALWAYS = ("hs_object_id", "createdate", "lastmodifieddate")
_OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
              "NOT_HAS_PROPERTY"}


class ApiError(Exception):
    """Raised inside a route to answer with HubSpot's error envelope (facts C8)."""

    def __init__(self, status: int, category: str, message: str, *,
                 context: dict[str, list[str]] | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.context, self.extra, self.headers = context, extra or {}, headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "message": self.message,
                                "correlationId": str(uuid.uuid4()), "category": self.category}
        if self.context:
            body["context"] = self.context
        body.update(self.extra)
        return body


class HubSpotEmulator:
    """One emulated HubSpot account served on ``base_url``; also a context manager.

    Example::

        with HubSpotEmulator() as emu:
            ids = emu.add_contacts([{"email": "a@example.com", "hs_lead_status": "NEW"}])
            HubSpot(access_token=emu.access_token, host=emu.base_url)
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: EmulatorClock | None = None,
                 port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock or EmulatorClock()
        self.journal = Journal()
        self.faults = FaultPlan()
        self.access_token = "pat-na1-" + secrets.token_hex(16)
        self.oauth_client_id = str(uuid.uuid4())
        self.oauth_client_secret = secrets.token_hex(16)
        self.refresh_token = "na1-" + secrets.token_hex(16)
        self.lock = threading.RLock()
        self.store = ContactStore(self.clock.now_ms,
                                  lambda: int(self.config.index_lag_seconds * 1000))
        self.properties = PropertyCatalogue(
            [*DEFAULT_LEAD_STATUSES, *self.config.extra_status_options],
            status_options_read_only=self.config.status_options_read_only)
        self.limits = RateLimiter(self.config, self.clock.now_ms)
        self._oauth_tokens: dict[str, int] = {}  # access token -> expiry ms
        self._lists: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self._next_list = 1
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubSpotEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="hubspot-emulator",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server = None

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("HubSpotEmulator is not started; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ data handle
    def add_contacts(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Create contacts from HubSpot property dicts; returns their ids in input order.

        ``lastmodifieddate``/``createdate`` (ms, ISO or datetime) may be given to place a contact
        in time; otherwise both are the emulator clock's now.
        """
        return self.store.add(records)

    def update_contact(self, contact_id: str, props: dict[str, Any], *,
                       source: str = "CRM_UI") -> None:
        """Simulate an edit outside the integration (a rep in the UI by default)."""
        self.store.update(int(contact_id), props, source=source)

    def archive_contact(self, contact_id: str) -> None:
        self.store.archive(int(contact_id))

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact's current properties plus ``id``, ``archived`` and ``lastmodifieddate``."""
        c = self.store.contacts[int(contact_id)]
        return {**c.props, "id": str(c.id), "archived": c.archived,
                "createdate": iso_ms(c.created_ms), "lastmodifieddate": iso_ms(c.updated_ms)}

    def status_history(self, contact_id: str) -> list[tuple[str, str]]:
        """``hs_lead_status`` history as (value, sourceType), oldest first."""
        c = self.store.contacts[int(contact_id)]
        return [(h.value, h.source_type) for h in c.history.get("hs_lead_status", [])]

    def add_list(self, name: str, processing_type: str = "MANUAL") -> str:
        with self.lock:
            list_id = str(self._next_list)
            self._next_list += 1
            stamp = iso_ms(self.clock.now_ms())
            self._lists[list_id] = {
                "listId": list_id, "name": name, "objectTypeId": "0-1", "listVersion": 1,
                "processingType": processing_type, "processingStatus": "COMPLETE",
                "createdAt": stamp, "updatedAt": stamp, "size": 0,
            }
            self._members[list_id] = set()
            return list_id

    def list_members(self, list_id: str) -> set[str]:
        with self.lock:
            return set(self._members[list_id])

    def status_options(self) -> list[str]:
        return self.properties.allowed_options("hs_lead_status") or []

    def expire_access_tokens(self) -> None:
        """Expire every OAuth access token now (as if they outlived ``expires_in``)."""
        with self.lock:
            now = self.clock.now_ms()
            for token in self._oauth_tokens:
                self._oauth_tokens[token] = now - 1

    def exhaust_daily_limit(self) -> None:
        self.limits.exhaust_daily()

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str], int, str | None]:
        """Serve one request: (status, JSON payload or None, headers, records, 429 policy)."""
        if path == "/oauth/v1/token" and method == "POST":
            return self._token(body)
        daily_headers = self._authenticate(headers.get("authorization", ""))
        is_search = path.endswith("/search")
        decision = self.limits.admit(search=is_search, daily_headers=daily_headers)
        if decision.policy is not None:
            return self._rate_limited(decision.policy, decision.retry_after_s, decision.headers)
        for pattern, verb, route in _ROUTES:
            m = pattern.fullmatch(path)
            if m and verb == method:
                data = json.loads(body) if body else None
                try:
                    status, payload, records = route(self, query, data, *m.groups())
                except ApiError as e:
                    return e.status, e.body(), {**decision.headers, **e.headers}, 0, None
                return status, payload, decision.headers, records, None
        return 404, ApiError(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}").body(), \
            decision.headers, 0, None

    def _authenticate(self, header: str) -> bool:
        """Check the Bearer token (facts C1); True when daily-limit headers apply."""
        token = header[7:] if header.startswith("Bearer ") else ""
        if token and token == self.access_token:
            return True
        with self.lock:
            expiry = self._oauth_tokens.get(token)
        if expiry is None:
            raise ApiError(401, "INVALID_AUTHENTICATION",
                           "Authentication credentials not found. This API supports OAuth 2.0 "
                           "authentication and you can find more details at "
                           "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
        now = self.clock.now_ms()
        if expiry <= now:
            minutes = max((now - expiry) // 60_000, 0)
            raise ApiError(401, "EXPIRED_AUTHENTICATION",
                           f"The OAuth token used to make this call expired {minutes} minute(s) "
                           "ago.", context={"expire time": [iso_ms(expiry)]})
        return False  # "not sent for OAuth-authorised calls" (facts C7)

    def _rate_limited(self, policy: str, retry_after: int | None, headers: dict[str, str],
                      ) -> tuple[int, Any, dict[str, str], int, str | None]:
        # 429 body (facts C7); the search policy name "SECONDLY" is [unverified].
        messages = {"DAILY": "You have reached your daily limit.",
                    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
                    "SECONDLY": "You have reached your secondly limit."}
        body = {"status": "error", "message": messages[policy], "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()), "policyName": policy,
                "requestId": str(uuid.uuid4())}
        out = dict(headers)
        if retry_after is not None and self.config.send_retry_after:
            out["Retry-After"] = str(retry_after)
        return 429, body, out, 0, policy

    def _token(self, body: bytes) -> tuple[int, Any, dict[str, str], int, str | None]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return 400, {"status": "error", "message": "unsupported grant_type",
                         "correlationId": str(uuid.uuid4())}, {}, 0, None
        if (form.get("client_id") != self.oauth_client_id
                or form.get("client_secret") != self.oauth_client_secret):
            return 400, {"status": "BAD_CLIENT_ID", "message": "missing or invalid client_id",
                         "correlationId": str(uuid.uuid4())}, {}, 0, None
        if form.get("refresh_token") != self.refresh_token:
            return 400, {"status": "BAD_REFRESH_TOKEN",
                         "message": "missing or unknown refresh token",
                         "correlationId": str(uuid.uuid4())}, {}, 0, None
        token = "oauth-" + secrets.token_hex(16)
        ttl = self.config.access_token_ttl_seconds
        with self.lock:
            self._oauth_tokens[token] = self.clock.now_ms() + ttl * 1000
        return 200, {"access_token": token, "refresh_token": self.refresh_token,
                     "expires_in": ttl, "token_type": "bearer"}, {}, 0, None

    # ------------------------------------------------------------------ routes
    def _search(self, query: dict, data: Any) -> tuple[int, Any, int]:
        data = data or {}
        limit = int(data.get("limit") or 10)
        if limit > self.config.search_max_limit:
            raise ApiError(400, "VALIDATION_ERROR",
                           f"limit must be at most {self.config.search_max_limit}, got {limit}")
        after = int(data.get("after") or 0)
        if after + limit > self.config.search_max_results:
            # "attempting to page beyond 10,000 will result in a 400 error" (facts C2); the
            # wording of the message is [unverified].
            raise ApiError(400, "VALIDATION_ERROR",
                           f"Cannot page beyond {self.config.search_max_results} results "
                           f"(after={after}, limit={limit}). Narrow the search filters.")
        groups = []
        for group in data.get("filterGroups") or []:
            filters = group.get("filters") or []
            for f in filters:
                if f.get("operator") not in _OPERATORS:
                    raise ApiError(400, "VALIDATION_ERROR",
                                   f"Unsupported operator {f.get('operator')!r}")
                if not self.properties.exists(f.get("propertyName", "")):
                    raise ApiError(400, "VALIDATION_ERROR",
                                   f"Property {f.get('propertyName')!r} does not exist")
            groups.append(filters)
        sorts = data.get("sorts") or []
        if len(sorts) > 1:
            raise ApiError(400, "VALIDATION_ERROR", "Only one sort is supported")
        sort = None
        if sorts:
            s = sorts[0]
            if isinstance(s, str):  # the model types sorts as list[str] (facts D3)
                sort = (s.lstrip("-"), not s.startswith("-"))
            else:
                sort = (s["propertyName"], s.get("direction", "ASCENDING") != "DESCENDING")
        props = data.get("properties") or list(DEFAULT_SEARCH_PROPERTIES)
        total, page = self.store.search(groups, sort, after, limit)
        body: dict[str, Any] = {"total": total,
                                "results": [self._snapshot_json(s, props) for s in page]}
        if after + len(page) < total:
            nxt = str(after + len(page))
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return 200, body, len(page)

    @staticmethod
    def _snapshot_json(snap: Snapshot, props: Iterable[str]) -> dict[str, Any]:
        # Unset properties are left out rather than sent as null: the spec types property values
        # as strings, and the connector treats absent and null alike.
        values = {}
        for name in (*_ALWAYS, *props):
            value = snap.value(name)
            if value is not None:
                values[name] = value
        stamp_c, stamp_u = iso_ms(snap.created_ms), iso_ms(snap.updated_ms)
        return {"id": str(snap.id), "properties": values, "createdAt": stamp_c,
                "updatedAt": stamp_u, "archived": False}

    def _contact_json(self, c: Contact, props: Iterable[str],
                      with_history: Iterable[str] = ()) -> dict[str, Any]:
        values = {}
        for name in (*_ALWAYS, *props):
            value = c.value(name)
            if value is not None:
                values[name] = value
        out: dict[str, Any] = {"id": str(c.id), "properties": values,
                               "createdAt": iso_ms(c.created_ms),
                               "updatedAt": iso_ms(c.updated_ms), "archived": c.archived}
        if c.archived and c.archived_ms is not None:
            out["archivedAt"] = iso_ms(c.archived_ms)
        history = {}
        for name in with_history:
            entries = c.history.get(name, [])
            history[name] = [{"value": h.value, "timestamp": iso_ms(h.timestamp_ms),
                              "sourceType": h.source_type} for h in reversed(entries)]
        if history:
            out["propertiesWithHistory"] = history
        return out

    def _list_contacts(self, query: dict, data: Any) -> tuple[int, Any, int]:
        limit = int(query.get("limit", ["10"])[0])
        if limit > self.config.list_page_max:
            raise ApiError(400, "VALIDATION_ERROR",
                           f"limit must be at most {self.config.list_page_max}, got {limit}")
        archived = query.get("archived", ["false"])[0].lower() == "true"
        after = int(query.get("after", ["0"])[0] or 0)
        props = [p for v in query.get("properties", []) for p in v.split(",") if p]
        page, nxt = self.store.page_by_id(archived=archived, after=after, limit=limit)
        body: dict[str, Any] = {"results": [self._contact_json(c, props) for c in page]}
        if nxt is not None:
            body["paging"] = {"next": {"after": str(nxt), "link": f"?after={nxt}"}}
        return 200, body, len(page)

    def _batch_inputs(self, data: Any, cap: int) -> list[dict[str, Any]]:
        inputs = (data or {}).get("inputs") or []
        if len(inputs) > cap:
            # Object batch endpoints take at most 100 inputs (facts C4).
            raise ApiError(400, "VALIDATION_ERROR",
                           f"Batch input exceeds the maximum of {cap} inputs (got {len(inputs)})")
        ids = [str(i.get("id")) for i in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ApiError(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}")
        return inputs

    def _batch_read(self, query: dict, data: Any) -> tuple[int, Any, int]:
        history = (data or {}).get("propertiesWithHistory") or []
        # propertiesWithHistory lowers the batch cap to 50 (facts C4).
        inputs = self._batch_inputs(data, 50 if history else self.config.batch_max_inputs)
        props = (data or {}).get("properties") or []
        started = iso_ms(self.clock.now_ms())
        results, missing = [], []
        with self.store.lock:
            for item in inputs:
                c = self.store.live(_int_id(item.get("id")))
                if c is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(self._contact_json(c, props, history))
        return self._batch_response(results, missing, [], started, len(inputs))

    def _batch_update(self, query: dict, data: Any) -> tuple[int, Any, int]:
        inputs = self._batch_inputs(data, self.config.batch_max_inputs)
        started = iso_ms(self.clock.now_ms())
        invalid: list[tuple[str, list[dict[str, Any]]]] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        missing: list[str] = []
        with self.store.lock:
            for item in inputs:
                cid = str(item.get("id"))
                if self.store.live(_int_id(cid)) is None:
                    missing.append(cid)
                    continue
                problems = self._validate(item.get("properties") or {})
                if problems:
                    invalid.append((cid, problems))
                else:
                    valid.append((int(cid), item.get("properties") or {}))
            if invalid and self.config.batch_update_error_mode == "whole_batch":
                raise self._whole_batch_error(invalid)
            results = []
            for cid_int, props in valid:
                c = self.store.update(cid_int, props, source="INTEGRATION")
                results.append(self._contact_json(c, props))
        return self._batch_response(results, missing, invalid, started, len(inputs))

    def _update_one(self, query: dict, data: Any, contact_id: str) -> tuple[int, Any, int]:
        """``PATCH /crm/v3/objects/contacts/{id}``: one contact per call (the naive baseline).

        200 with the contact; 404 when it does not exist or is archived; a 400
        ``VALIDATION_ERROR`` with the per-property problems in ``message`` otherwise (facts C5).
        """
        props = (data or {}).get("properties") or {}
        with self.store.lock:
            if self.store.live(_int_id(contact_id)) is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"resource not found: {contact_id}")
            problems = self._validate(props)
            if problems:
                raise ApiError(400, "VALIDATION_ERROR", "Property values were not valid: "
                               + json.dumps(problems, separators=(",", ":")))
            c = self.store.update(int(contact_id), props, source="INTEGRATION")
            return 200, self._contact_json(c, props), 1

    def _validate(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-property problems in HubSpot's "Property values were not valid" shape (facts C5)."""
        problems = []
        for name, value in props.items():
            if not self.properties.exists(name):
                problems.append({"isValid": False, "message": f"Property \"{name}\" does not exist",
                                 "error": "PROPERTY_DOESNT_EXIST", "name": name})
            elif self.properties.read_only(name):
                problems.append({"isValid": False,
                                 "message": f"\"{name}\" is a read only property; its value "
                                            "cannot be set.",
                                 "error": "READ_ONLY_VALUE", "name": name})
            else:
                allowed = self.properties.allowed_options(name)
                if allowed is not None and value not in ("", None) and str(value) not in allowed:
                    problems.append({"isValid": False,
                                     "message": f"{value} was not one of the allowed options: "
                                                f"[{', '.join(allowed)}]",
                                     "error": "INVALID_OPTION", "name": name})
        return problems

    def _whole_batch_error(self, invalid: list[tuple[str, list[dict[str, Any]]]]) -> ApiError:
        # The real body (facts C5) carries the per-property array as JSON inside `message`.
        # [unverified] whether a batch 400 names the failing record: with
        # validation_400_names_records each entry gets an "id" and context.ids lists them.
        names = self.config.validation_400_names_records
        entries = [{**p, **({"id": cid} if names else {})} for cid, probs in invalid for p in probs]
        return ApiError(400, "VALIDATION_ERROR",
                        "Property values were not valid: " + json.dumps(entries,
                                                                        separators=(",", ":")),
                        context={"ids": [cid for cid, _ in invalid]} if names else None)

    def _batch_response(self, results: list[dict[str, Any]], missing: list[str],
                        invalid: list[tuple[str, list[dict[str, Any]]]], started: str,
                        records: int) -> tuple[int, Any, int]:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": iso_ms(self.clock.now_ms())}
        # Observed 207 errors carry status/category/message (facts C4) but no `errors`/`links`,
        # though the spec lists them as required; context.ids names the records.
        errors = []
        for cid, problems in invalid:
            errors.append({"status": "error", "category": "VALIDATION_ERROR",
                           "message": "Property values were not valid: "
                                      + json.dumps(problems, separators=(",", ":")),
                           "context": {"ids": [cid]}})
        if missing:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": "Could not get some CONTACT objects, they may be deleted or "
                                      "not exist. Check that ids are valid.",
                           "context": {"ids": missing}})
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return 207, body, records
        return 200, body, records

    def _all_properties(self, query: dict, data: Any) -> tuple[int, Any, int]:
        return 200, {"results": self.properties.all()}, 0

    def _get_property(self, query: dict, data: Any, name: str) -> tuple[int, Any, int]:
        prop = self.properties.get(name)
        if prop is None:
            raise ApiError(404, "OBJECT_NOT_FOUND",
                           f"Unable to find property {name} for object type contacts")
        return 200, prop, 0

    def _patch_property(self, query: dict, data: Any, name: str) -> tuple[int, Any, int]:
        if not self.properties.exists(name):
            raise ApiError(404, "OBJECT_NOT_FOUND",
                           f"Unable to find property {name} for object type contacts")
        options = (data or {}).get("options")
        if options is not None:
            if self.properties.options_read_only(name):
                raise ApiError(400, "VALIDATION_ERROR", f"The options of {name} are read-only")
            self.properties.set_options(name, options,
                                        merge=self.config.options_patch_semantics == "merge",
                                        stamp=iso_ms(self.clock.now_ms()))
        return 200, self.properties.get(name), 0

    def _get_list(self, query: dict, data: Any, list_id: str) -> tuple[int, Any, int]:
        with self.lock:
            lst = self._lists.get(list_id)
            if lst is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            return 200, {"list": {**lst, "size": len(self._members[list_id])}}, 0

    def _add_members(self, query: dict, data: Any, list_id: str) -> tuple[int, Any, int]:
        ids = [str(i) for i in (data or [])]
        with self.lock:
            lst = self._lists.get(list_id)
            if lst is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            if lst["processingType"] not in ("MANUAL", "SNAPSHOT"):
                # "only works for lists that have a processingType of MANUAL or SNAPSHOT" (C6)
                raise ApiError(400, "VALIDATION_ERROR",
                               f"List {list_id} has processingType {lst['processingType']}; "
                               "memberships can only be changed for MANUAL or SNAPSHOT lists.")
            added, missing = [], []
            members = self._members[list_id]
            for rid in ids:
                if self.store.live(_int_id(rid)) is None:
                    missing.append(rid)
                elif rid not in members:  # already a member: ignored (idempotent)
                    members.add(rid)
                    added.append(rid)
            if added:
                lst["updatedAt"] = iso_ms(self.clock.now_ms())
        # Note the spelling "recordsIdsAdded" (facts C6).
        return 200, {"recordsIdsAdded": added, "recordIdsRemoved": [],
                     "recordIdsMissing": missing}, len(ids)


def _int_id(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


_Route = Callable[..., tuple[int, Any, int]]
_ROUTES: list[tuple[re.Pattern[str], str, _Route]] = [
    (re.compile(r"/crm/v3/objects/contacts/search"), "POST", HubSpotEmulator._search),
    (re.compile(r"/crm/v3/objects/contacts"), "GET", HubSpotEmulator._list_contacts),
    (re.compile(r"/crm/v3/objects/contacts/batch/read"), "POST", HubSpotEmulator._batch_read),
    (re.compile(r"/crm/v3/objects/contacts/batch/update"), "POST", HubSpotEmulator._batch_update),
    (re.compile(r"/crm/v3/objects/contacts/(\d+)"), "PATCH", HubSpotEmulator._update_one),
    (re.compile(r"/crm/v3/properties/contacts"), "GET", HubSpotEmulator._all_properties),
    (re.compile(r"/crm/v3/properties/contacts/([^/]+)"), "GET", HubSpotEmulator._get_property),
    (re.compile(r"/crm/v3/properties/contacts/([^/]+)"), "PATCH",
     HubSpotEmulator._patch_property),
    (re.compile(r"/crm/v3/lists/([^/]+)"), "GET", HubSpotEmulator._get_list),
    (re.compile(r"/crm/v3/lists/([^/]+)/memberships/add"), "PUT", HubSpotEmulator._add_members),
]


class _Handler(BaseHTTPRequestHandler):
    emulator: HubSpotEmulator
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as against HubSpot
    server_version = "HubSpotEmulator"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add
    # ~40 ms to every response.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.emulator.lock:
            self.emulator._sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.emulator.lock:
                self.emulator._sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the journal is the log

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        emu = self.emulator
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        port = self.client_address[1]

        def journal(status: int, records: int = 0, policy: str | None = None) -> None:
            emu.journal.append(JournalEntry(self.command, split.path, split.query, status, body,
                                            records, port, policy))

        fault: Fault | None = emu.faults.take(self.command, split.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                journal(0)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.respond:
                payload = fault.body
                if payload is None:
                    payload = ApiError(fault.status, "INTERNAL_ERROR" if fault.status >= 500
                                       else "ERROR", HTTPStatus(fault.status).phrase).body()
                journal(fault.status)
                self._send(fault.status, payload, fault.headers)
                return
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, out_headers, records, policy = emu.handle(
                self.command, split.path, parse_qs(split.query), body, headers)
        except ApiError as e:
            status, payload, out_headers, records, policy = e.status, e.body(), e.headers, 0, None
        except Exception as e:  # a bug in the emulator: answer 500 so the client sees it
            status, payload, out_headers, records, policy = 500, ApiError(
                500, "INTERNAL_ERROR", f"emulator error: {type(e).__name__}: {e}").body(), {}, 0, None
        journal(status, records, policy)
        self._send(status, payload, out_headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        try:
            self._write_response(status, payload, data, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout): nothing to answer

    def _write_response(self, status: int, payload: Any, data: bytes,
                        headers: dict[str, str]) -> None:
        self.send_response(status)
        ctype = "application/json;charset=utf-8" if not isinstance(payload, (bytes, str)) \
            else "text/html;charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
