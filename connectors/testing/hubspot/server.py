"""The HubSpot emulator: a real HTTP server on 127.0.0.1 speaking the CRM v3 endpoints syncd uses.

Endpoints and quirks follow HubSpot's public CRM v3 documentation
(https://developers.hubspot.com/docs/api/crm/contacts); the "crm-api C…" notes inline refer to
the project's CRM API notes, docs/crm-api.md.
The Python handle (:class:`HubSpotEmulator`) seeds data, simulates rep edits, controls the clock,
injects faults and exposes the request journal (all from :mod:`connectors.testing.kit`).
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.limits import RateLimiter
from connectors.testing.hubspot.properties import MERGED_IDS, PropertyCatalogue
from connectors.testing.hubspot.seed import hubspot_properties
from connectors.testing.hubspot.store import (
    Contact,
    ContactStore,
    HistoryEntry,
    MergeError,
    Snapshot,
    iso_ms,
)
from connectors.testing.kit import (
    HTML_503,
    AdminError,
    EmulatorClock,
    EmulatorServer,
    FaultPlan,
    Request,
    Response,
    Route,
)

__all__ = ["ApiError", "HubSpotEmulator"]

# Returned by search when the request names no properties (crm-api C2).
DEFAULT_SEARCH_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
_ALWAYS = ("hs_object_id", "createdate", "lastmodifieddate")
_OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
}


class ApiError(Exception):
    """Raised inside a route to answer with HubSpot's error envelope (crm-api C8)."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.context, self.extra, self.headers = context, extra or {}, headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.context:
            body["context"] = self.context
        body.update(self.extra)
        return body


class HubSpotEmulator(EmulatorServer):
    """One emulated HubSpot account served on ``base_url``; also a context manager.

    Example::

        with HubSpotEmulator() as emu:
            ids = emu.add_contacts([{"email": "a@example.com", "hs_lead_status": "NEW"}])
            HubSpot(access_token=emu.access_token, host=emu.base_url)
    """

    crm = "hubspot"
    json_content_type = "application/json;charset=utf-8"

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: EmulatorClock | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(host=host, port=port, clock=clock, faults=faults)
        self.config = config or EmulatorConfig()
        self.access_token = "pat-na1-" + secrets.token_hex(16)
        self.oauth_client_id = str(uuid.uuid4())
        self.oauth_client_secret = secrets.token_hex(16)
        self.refresh_token = "na1-" + secrets.token_hex(16)
        self.lock = threading.RLock()
        self.store = ContactStore(
            self.clock.now_ms, lambda: int(self.config.index_lag_seconds * 1000)
        )
        self.properties = PropertyCatalogue(
            [*DEFAULT_LEAD_STATUSES, *self.config.extra_status_options],
            status_options_read_only=self.config.status_options_read_only,
        )
        self.limits = RateLimiter(self.config, self.clock.now_ms)
        self._oauth_tokens: dict[str, int] = {}  # access token -> expiry ms
        self._lists: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self._member_adds: dict[tuple[str, str], int] = {}  # (list, contact) -> add requests
        self._next_list = 1

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubSpotEmulator:
        self._serve(None)
        return self

    def stop(self) -> None:
        self._shutdown()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.url

    # ------------------------------------------------------------------ data handle
    def add_contacts(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Create contacts from HubSpot property dicts; returns their ids in input order.

        ``lastmodifieddate``/``createdate`` (ms, ISO or datetime) may be given to place a contact
        in time; otherwise both are the emulator clock's now.
        """
        return self.store.add(records)

    def set_history(
        self, contact_id: str, name: str, entries: Iterable[tuple[str, datetime, str]]
    ) -> None:
        """Seed a property's past values: (value, when, sourceType) oldest first, the last one
        the current value (``ContactStore.set_history``)."""
        self.store.set_history(
            int(contact_id),
            name,
            [HistoryEntry(v, round(at.timestamp() * 1000), src) for v, at, src in entries],
        )

    def update_contact(
        self, contact_id: str, props: dict[str, Any], *, source: str = "CRM_UI"
    ) -> None:
        """Simulate an edit outside the integration (a rep in the UI by default)."""
        self.store.update(int(contact_id), props, source=source)

    def archive_property(self, name: str) -> None:
        """An admin archives the contact property ``name``: reads leave it out (a property a
        request names that does not exist is not an error), writes naming it fail."""
        self.properties.archive(name)

    def restore_property(self, name: str) -> None:
        self.properties.restore(name)

    def archive_contact(self, contact_id: str) -> None:
        self.store.archive(int(contact_id))

    def merge_contacts(self, primary_id: str, other_id: str, *, source: str = "CRM_UI") -> str:
        """A person (``source`` ``CRM_UI``) merges two contacts in the UI; returns the id of
        the new merged record. Its values are the primary's, filled in from the other; both
        old ids route to it and leave search; it is in every list either was in.
        ``MergeError`` when an id is not a live contact or both are the same."""
        with self.lock, self.store.lock:
            merged = self.store.merge(int(primary_id), int(other_id), source=source)
            self._move_memberships((str(primary_id), str(other_id)), str(merged.id))
            return str(merged.id)

    def _move_memberships(self, old_ids: Iterable[str], new_id: str) -> None:
        """The merged record takes the lists of the records merged into it (lock held)."""
        now = iso_ms(self.clock.now_ms())
        for list_id, members in self._members.items():
            moved = [cid for cid in old_ids if cid in members]
            if moved:
                members.difference_update(moved)
                members.add(new_id)
                self._lists[list_id]["updatedAt"] = now

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact's current properties plus ``id``, ``archived`` and ``lastmodifieddate``."""
        c = self.store.contacts[int(contact_id)]
        return {
            **c.props,
            "id": str(c.id),
            "archived": c.archived,
            "createdate": iso_ms(c.created_ms),
            "lastmodifieddate": iso_ms(c.updated_ms),
        }

    def status_history(self, contact_id: str) -> list[tuple[str, str]]:
        """``hs_lead_status`` history as (value, sourceType), oldest first."""
        c = self.store.contacts[int(contact_id)]
        return [(h.value, h.source_type) for h in c.history_of("hs_lead_status")]

    def add_list(self, name: str, processing_type: str = "MANUAL") -> str:
        with self.lock:
            list_id = str(self._next_list)
            self._next_list += 1
            stamp = iso_ms(self.clock.now_ms())
            self._lists[list_id] = {
                "listId": list_id,
                "name": name,
                "objectTypeId": "0-1",
                "listVersion": 1,
                "processingType": processing_type,
                "processingStatus": "COMPLETE",
                "createdAt": stamp,
                "updatedAt": stamp,
                "size": 0,
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

    def seed_leads(
        self,
        leads: Iterable[Mapping[str, Any]],
        *,
        fields: Mapping[str, str] | None = None,
        status_values: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Create contacts from canonical leads (:mod:`connectors.testing.leads`), each last
        modified when its status was set; returns their ids in order."""
        records = []
        for lead in leads:
            props: dict[str, Any] = hubspot_properties(lead, fields, status_values)
            stamp = lead.get("_status_changed_at") or lead.get("created_at")
            if stamp is not None:
                props["lastmodifieddate"] = stamp
            records.append(props)
        return self.add_contacts(records)

    # ------------------------------------------------------------------ admin API
    def admin_info(self) -> dict[str, Any]:
        with self.lock:
            lists = {lst["name"]: lid for lid, lst in self._lists.items()}
        return {
            "crm": self.crm,
            "url": self.base_url,
            "base_url": self.base_url,
            "access_token": self.access_token,
            "oauth_client_id": self.oauth_client_id,
            "oauth_client_secret": self.oauth_client_secret,
            "refresh_token": self.refresh_token,
            "lists": lists,
            # Contacts, archived ones included; one merged into another is that other now.
            "leads": len(self.store.contacts) - len(self.store.merged_into),
        }

    def admin_state(self) -> dict[str, Any]:
        leads = []
        for c in self.store.iter_all():
            history = c.history_of("hs_lead_status")
            leads.append(
                {
                    "id": str(c.id),
                    "status": c.props.get("hs_lead_status"),
                    "last_modified_by": history[-1].source_type if history else None,
                    "modified_by_integration": bool(history)
                    and history[-1].source_type == "INTEGRATION",
                    "modified_at": iso_ms(c.updated_ms),
                    "deleted": c.archived,
                    "merged_into": self._merged_into(c.id),
                    "fields": dict(c.props),
                }
            )
        with self.lock:
            lists = {lid: lst["name"] for lid, lst in self._lists.items()}
            adds = dict(self._member_adds)
            members = {lid: sorted(m, key=int) for lid, m in self._members.items()}
        return {
            "crm": self.crm,
            "now": self.clock.now().isoformat(),
            "leads": leads,
            "memberships": [
                {
                    "list_id": lid,
                    "list": lists.get(lid),
                    "contact_id": cid,
                    "add_requests": adds.get((lid, cid), 0),
                }
                for lid, ids in members.items()
                for cid in ids
            ],
            # A list holds a contact once however often it is added; contacts added more
            # than once show here, so a harness sees duplicate newsletter sign-ups.
            "duplicate_memberships": sorted(
                f"{lid}/{cid}" for (lid, cid), n in adds.items() if n > 1
            ),
        }

    def _merged_into(self, contact_id: int) -> str | None:
        """The id of the live record a merged-away contact now is, else None."""
        if contact_id not in self.store.merged_into:
            return None
        target = self.store.routed(contact_id)
        return str(target.id) if target is not None else None

    def admin_merge(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A person merges two contacts in the UI: ``{"primary": "1001", "merge": "1002"}``
        answers ``{"id": "<the merged record>"}``."""
        primary, other = _int_id(doc.get("primary")), _int_id(doc.get("merge"))
        if primary < 0 or other < 0:
            raise AdminError('give the contact ids to merge as "primary" and "merge"')
        return {"id": self.merge_contacts(str(primary), str(other))}

    def admin_edit(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A person edits a contact in the UI: ``{"id": "1001", "status": "...",
        "fields": {...}}`` (history source ``CRM_UI``)."""
        contact_id = str(doc.get("id"))
        if self.store.live(_int_id(contact_id)) is None:
            raise AdminError(
                f"no contact {contact_id!r}; give the id of a contact in GET state", 404
            )
        props = dict(doc.get("fields") or {})
        if doc.get("status") is not None:
            props["hs_lead_status"] = doc["status"]
        self.update_contact(contact_id, props)
        c = self.contact(contact_id)
        return {
            "id": contact_id,
            "status": c.get("hs_lead_status"),
            "last_modified_by": "CRM_UI",
            "modified_at": c["lastmodifieddate"],
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume this account in another process (:meth:`restore`)."""
        status = self.properties.get("hs_lead_status") or {}
        with self.lock:
            return {
                "credentials": {
                    "access_token": self.access_token,
                    "oauth_client_id": self.oauth_client_id,
                    "oauth_client_secret": self.oauth_client_secret,
                    "refresh_token": self.refresh_token,
                },
                "store": self.store.export(),
                "status_options": status.get("options", []),
                "lists": list(self._lists.values()),
                "members": {lid: sorted(m) for lid, m in self._members.items()},
                "member_adds": [[lid, cid, n] for (lid, cid), n in self._member_adds.items()],
                "next_list": self._next_list,
            }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Resume the account a :meth:`snapshot` describes (before :meth:`start`)."""
        creds = doc["credentials"]
        self.access_token = creds["access_token"]
        self.oauth_client_id = creds["oauth_client_id"]
        self.oauth_client_secret = creds["oauth_client_secret"]
        self.refresh_token = creds["refresh_token"]
        self.store.restore(doc["store"])
        if doc.get("status_options"):
            self.properties.set_options(
                "hs_lead_status",
                list(doc["status_options"]),
                merge=False,
                stamp=iso_ms(self.clock.now_ms()),
            )
        with self.lock:
            self._lists = {str(lst["listId"]): dict(lst) for lst in doc["lists"]}
            self._members = {str(lid): {str(c) for c in ids} for lid, ids in doc["members"].items()}
            self._member_adds = {(str(lid), str(cid)): int(n) for lid, cid, n in doc["member_adds"]}
            self._next_list = int(doc["next_list"])

    # ------------------------------------------------------------------ dispatch
    def fault_kinds(self, request: Request) -> frozenset[str]:
        transport = {"503", "drop-before", "drop-after", "slow", "timeout"}
        if request.path == "/oauth/v1/token":
            return frozenset(transport)
        kinds = transport | {"429"}
        auth = request.headers.get("authorization", "")
        with self.lock:
            if auth.startswith("Bearer ") and auth[7:] in self._oauth_tokens:
                kinds.add("401")  # only OAuth access tokens expire; private app tokens do not
        if request.method == "POST" and request.path.endswith("/batch/update"):
            kinds.add("partial")
        return frozenset(kinds)

    def fault_response(self, kind: str, request: Request) -> Response:
        if kind == "429":
            policy = "SECONDLY" if request.path.endswith("/search") else "TEN_SECONDLY_ROLLING"
            headers = self.limits.headers(
                search=policy == "SECONDLY", daily_headers=not self._is_oauth(request)
            )
            if "X-HubSpot-RateLimit-Remaining" in headers:
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
            status, body, out, _, _ = self._rate_limited(policy, 1, headers)
            body["requestId"] = request.entry.request_id
            request.entry.policy = policy
            return Response(status, body, out)
        if kind == "401":
            self.expire_access_tokens()
            try:
                self._authenticate(request.headers.get("authorization", ""))
            except ApiError as e:
                return Response(e.status, e.body(), e.headers)
            return self.status_response(401, request)
        return Response(503, HTML_503, content_type="text/html")

    def status_response(self, status: int, request: Request) -> Response:
        if status == 503:
            return Response(503, HTML_503, content_type="text/html")
        return Response(
            status,
            ApiError(
                status, "INTERNAL_ERROR" if status >= 500 else "ERROR", HTTPStatus(status).phrase
            ).body(),
        )

    def error_response(self, exc: Exception, request: Request) -> Response | None:
        if isinstance(exc, ApiError):
            return Response(exc.status, exc.body(), dict(exc.headers))
        if isinstance(exc, ValueError):  # a body that is not JSON, a limit that is no number
            return Response(400, ApiError(400, "VALIDATION_ERROR", f"Invalid input: {exc}").body())
        # A bug in the emulator: answer 500 so the client sees it.
        return Response(
            500,
            ApiError(500, "INTERNAL_ERROR", f"emulator error: {type(exc).__name__}: {exc}").body(),
        )

    def _is_oauth(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return not (auth.startswith("Bearer ") and auth[7:] == self.access_token)

    def route(self, request: Request) -> Response:
        if request.path == "/oauth/v1/token" and request.method == "POST":
            status, payload, headers, _, _ = self._token(request.body)
            return Response(status, payload, headers)
        daily_headers = self._authenticate(request.headers.get("authorization", ""))
        decision = self.limits.admit(
            search=request.path.endswith("/search"), daily_headers=daily_headers
        )
        if decision.policy is not None:
            status, body, headers, _, policy = self._rate_limited(
                decision.policy, decision.retry_after_s, decision.headers
            )
            request.entry.policy = policy
            return Response(status, body, headers)
        try:
            response = self.find_route(request)
        except ApiError as e:
            e.headers = {**decision.headers, **e.headers}
            raise
        response.headers = {**decision.headers, **response.headers}
        return response

    def not_found(self, request: Request) -> Response:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}")

    def _authenticate(self, header: str) -> bool:
        """Check the Bearer token (crm-api C1); True when daily-limit headers apply."""
        token = header[7:] if header.startswith("Bearer ") else ""
        if token and token == self.access_token:
            return True
        with self.lock:
            expiry = self._oauth_tokens.get(token)
        if expiry is None:
            raise ApiError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        now = self.clock.now_ms()
        if expiry <= now:
            minutes = max((now - expiry) // 60_000, 0)
            raise ApiError(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {minutes} minute(s) ago.",
                context={"expire time": [iso_ms(expiry)]},
            )
        return False  # "not sent for OAuth-authorised calls" (crm-api C7)

    def _rate_limited(
        self,
        policy: str,
        retry_after: int | None,
        headers: dict[str, str],
    ) -> tuple[int, Any, dict[str, str], int, str | None]:
        # 429 body (crm-api C7); the search policy name "SECONDLY" is [unverified].
        messages = {
            "DAILY": "You have reached your daily limit.",
            "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
            "SECONDLY": "You have reached your secondly limit.",
        }
        body = {
            "status": "error",
            "message": messages[policy],
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        out = dict(headers)
        if retry_after is not None and self.config.send_retry_after:
            out["Retry-After"] = str(retry_after)
        return 429, body, out, 0, policy

    def _token(self, body: bytes) -> tuple[int, Any, dict[str, str], int, str | None]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return (
                400,
                {
                    "status": "error",
                    "message": "unsupported grant_type",
                    "correlationId": str(uuid.uuid4()),
                },
                {},
                0,
                None,
            )
        if (
            form.get("client_id") != self.oauth_client_id
            or form.get("client_secret") != self.oauth_client_secret
        ):
            return (
                400,
                {
                    "status": "BAD_CLIENT_ID",
                    "message": "missing or invalid client_id",
                    "correlationId": str(uuid.uuid4()),
                },
                {},
                0,
                None,
            )
        if form.get("refresh_token") != self.refresh_token:
            return (
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": str(uuid.uuid4()),
                },
                {},
                0,
                None,
            )
        token = "oauth-" + secrets.token_hex(16)
        ttl = self.config.access_token_ttl_seconds
        with self.lock:
            self._oauth_tokens[token] = self.clock.now_ms() + ttl * 1000
        return (
            200,
            {
                "access_token": token,
                "refresh_token": self.refresh_token,
                "expires_in": ttl,
                "token_type": "bearer",
            },
            {},
            0,
            None,
        )

    # ------------------------------------------------------------------ routes
    def _search(self, req: Request) -> Response:
        data = req.json() or {}
        limit = int(data.get("limit") or 10)
        if limit > self.config.search_max_limit:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"limit must be at most {self.config.search_max_limit}, got {limit}",
            )
        after = int(data.get("after") or 0)
        if after + limit > self.config.search_max_results:
            # "attempting to page beyond 10,000 will result in a 400 error" (crm-api C2); the
            # wording of the message is [unverified].
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Cannot page beyond {self.config.search_max_results} results "
                f"(after={after}, limit={limit}). Narrow the search filters.",
            )
        groups = []
        for group in data.get("filterGroups") or []:
            filters = group.get("filters") or []
            for f in filters:
                if f.get("operator") not in _OPERATORS:
                    raise ApiError(
                        400, "VALIDATION_ERROR", f"Unsupported operator {f.get('operator')!r}"
                    )
                if not self.properties.exists(f.get("propertyName", "")):
                    raise ApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"Property {f.get('propertyName')!r} does not exist",
                    )
            groups.append(filters)
        sorts = data.get("sorts") or []
        if len(sorts) > 1:
            raise ApiError(400, "VALIDATION_ERROR", "Only one sort is supported")
        sort = None
        if sorts:
            s = sorts[0]
            if isinstance(s, str):  # the model types sorts as list[str] (crm-api D3)
                sort = (s.lstrip("-"), not s.startswith("-"))
            else:
                sort = (s["propertyName"], s.get("direction", "ASCENDING") != "DESCENDING")
        props = self._readable(data.get("properties") or list(DEFAULT_SEARCH_PROPERTIES))
        total, page = self.store.search(groups, sort, after, limit)
        body: dict[str, Any] = {
            "total": total,
            "results": [self._snapshot_json(s, props) for s in page],
        }
        if after + len(page) < total:
            nxt = str(after + len(page))
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        req.entry.records = len(page)
        return Response(200, body)

    def _readable(self, names: Iterable[str]) -> list[str]:
        """The requested properties that exist: one that does not (archived) is left out of
        the answer, not refused."""
        return [n for n in names if self.properties.exists(n)]

    @staticmethod
    def _snapshot_json(snap: Snapshot, props: Iterable[str]) -> dict[str, Any]:
        # A requested property the account has is answered, null when the contact has no
        # value; one it lacks (archived) is left out (crm-api C11).
        values: dict[str, Any] = {name: snap.value(name) for name in props}
        for name in _ALWAYS:
            value = snap.value(name)
            if value is not None:
                values[name] = value
        stamp_c, stamp_u = iso_ms(snap.created_ms), iso_ms(snap.updated_ms)
        return {
            "id": str(snap.id),
            "properties": values,
            "createdAt": stamp_c,
            "updatedAt": stamp_u,
            "archived": False,
        }

    def _contact_json(
        self, c: Contact, props: Iterable[str], with_history: Iterable[str] = ()
    ) -> dict[str, Any]:
        values: dict[str, Any] = {name: c.value(name) for name in props}  # as _snapshot_json
        for name in _ALWAYS:
            value = c.value(name)
            if value is not None:
                values[name] = value
        out: dict[str, Any] = {
            "id": str(c.id),
            "properties": values,
            "createdAt": iso_ms(c.created_ms),
            "updatedAt": iso_ms(c.updated_ms),
            "archived": c.archived,
        }
        if c.archived and c.archived_ms is not None:
            out["archivedAt"] = iso_ms(c.archived_ms)
        history = {}
        for name in with_history:
            entries = c.history_of(name)
            history[name] = [
                _history_json(h, self.config.rep_user_id)
                for h in reversed(entries[-self.config.history_max_values :])
            ]
        if history:
            out["propertiesWithHistory"] = history
        return out

    def _list_contacts(self, req: Request) -> Response:
        query = req.params
        limit = int(query.get("limit", ["10"])[0])
        if limit > self.config.list_page_max:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"limit must be at most {self.config.list_page_max}, got {limit}",
            )
        archived = query.get("archived", ["false"])[0].lower() == "true"
        after = int(query.get("after", ["0"])[0] or 0)
        props = self._readable(p for v in query.get("properties", []) for p in v.split(",") if p)
        page, nxt = self.store.page_by_id(archived=archived, after=after, limit=limit)
        body: dict[str, Any] = {"results": [self._contact_json(c, props) for c in page]}
        if nxt is not None:
            body["paging"] = {"next": {"after": str(nxt), "link": f"?after={nxt}"}}
        req.entry.records = len(page)
        return Response(200, body)

    def _batch_inputs(self, data: Any, cap: int) -> list[dict[str, Any]]:
        inputs = (data or {}).get("inputs") or []
        if len(inputs) > cap:
            # Object batch endpoints take at most 100 inputs (crm-api C4).
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Batch input exceeds the maximum of {cap} inputs (got {len(inputs)})",
            )
        ids = [str(i.get("id")) for i in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ApiError(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}")
        return inputs

    def _batch_read(self, req: Request) -> Response:
        data = req.json()
        history = (data or {}).get("propertiesWithHistory") or []
        # propertiesWithHistory lowers the batch cap to 50 (crm-api C4).
        cap = self.config.history_batch_max_inputs if history else self.config.batch_max_inputs
        inputs = self._batch_inputs(data, cap)
        props = self._readable((data or {}).get("properties") or [])
        started = iso_ms(self.clock.now_ms())
        results, missing = [], []
        with self.store.lock:
            for item in inputs:
                # An id merged into another record reads that record (its new id).
                c = self.store.routed(_int_id(item.get("id")))
                if c is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(self._contact_json(c, props, history))
        req.entry.records = len(inputs)
        status, body = self._batch_response(results, missing, [], started)
        return Response(status, body)

    def _batch_update(self, req: Request) -> Response:
        data = req.json()
        inputs = self._batch_inputs(data, self.config.batch_max_inputs)
        req.entry.records = len(inputs)
        req.entry.record_ids = tuple(str(i.get("id")) for i in inputs)
        started = iso_ms(self.clock.now_ms())
        invalid: list[tuple[str, list[dict[str, Any]]]] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        missing: list[str] = []
        # A ``partial`` fault: some inputs fail for a passing reason and are not applied.
        transient = (
            set(self.faults.sample(list(req.entry.record_ids)))
            if (req.fault is not None and req.fault.kind == "partial")
            else set()
        )
        with self.store.lock:
            for item in inputs:
                cid = str(item.get("id"))
                # A write to an id merged into another record lands on that record.
                target = self.store.routed(_int_id(cid))
                if target is None:
                    missing.append(cid)
                    continue
                problems = self._validate(item.get("properties") or {})
                if problems:
                    invalid.append((cid, problems))
                elif cid not in transient:
                    valid.append((target.id, item.get("properties") or {}))
            if invalid and self.config.batch_update_error_mode == "whole_batch":
                raise self._whole_batch_error(invalid)
            results = []
            for cid_int, props in valid:
                c = self.store.update(
                    cid_int, self._forward_only(cid_int, props), source="INTEGRATION"
                )
                results.append(self._contact_json(c, props))
        req.entry.written = tuple(dict.fromkeys(str(cid) for cid, _ in valid))
        status, body = self._batch_response(
            results,
            missing,
            invalid,
            started,
            sorted(transient - set(missing) - {cid for cid, _ in invalid}, key=int),
        )
        return Response(status, body)

    def _update_one(self, req: Request, contact_id: str) -> Response:
        """``PATCH /crm/v3/objects/contacts/{id}``: one contact per call (the naive baseline).

        200 with the contact; 404 when it does not exist or is archived; a 400
        ``VALIDATION_ERROR`` with the per-property problems in ``message`` otherwise (crm-api C5).
        """
        props = (req.json() or {}).get("properties") or {}
        req.entry.records, req.entry.record_ids = 1, (contact_id,)
        with self.store.lock:
            target = self.store.routed(_int_id(contact_id))  # a merged-away id: its record
            if target is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"resource not found: {contact_id}")
            problems = self._validate(props)
            if problems:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    "Property values were not valid: "
                    + json.dumps(problems, separators=(",", ":")),
                )
            c = self.store.update(
                target.id, self._forward_only(target.id, props), source="INTEGRATION"
            )
            req.entry.written = (str(target.id),)
            return Response(200, self._contact_json(c, props))

    def _get_one(self, req: Request, contact_id: str) -> Response:
        """``GET /crm/v3/objects/contacts/{id}``: the contact, or the merged record an id that
        was merged away points to (its new id); 404 when it does not exist or is archived
        (``archived=true`` reads an archived one)."""
        query = req.params
        props = self._readable(p for v in query.get("properties", []) for p in v.split(",") if p)
        history = self._readable(
            p for v in query.get("propertiesWithHistory", []) for p in v.split(",") if p
        )
        archived = query.get("archived", ["false"])[0].lower() == "true"
        req.entry.records, req.entry.record_ids = 1, (contact_id,)
        with self.store.lock:
            if archived:
                found = self.store.contacts.get(_int_id(contact_id))
                c = found if found is not None and found.archived else None
            else:
                c = self.store.routed(_int_id(contact_id))
            if c is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"resource not found: {contact_id}")
            return Response(200, self._contact_json(c, props, history))

    def _merge(self, req: Request) -> Response:
        """``POST /crm/v3/objects/contacts/merge``: a new record with a new id, both old ids
        routed to it (crm-api C12); 200 with the new record."""
        data = req.json()
        if not isinstance(data, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input: the body must be an object")
        ids = []
        for key in ("primaryObjectId", "objectIdToMerge"):
            value = data.get(key)
            if _int_id(value) < 0 or isinstance(value, bool):
                raise ApiError(
                    400, "VALIDATION_ERROR", f"Invalid input: {key} must be a contact id"
                )
            ids.append(str(value))
        req.entry.records, req.entry.record_ids = 2, tuple(ids)
        try:
            new_id = self.merge_contacts(ids[0], ids[1], source="INTEGRATION")
        except MergeError as e:
            raise ApiError(400, "VALIDATION_ERROR", str(e)) from None
        req.entry.written = (new_id,)
        with self.store.lock:
            merged = self.store.contacts[int(new_id)]
            return Response(
                200, self._contact_json(merged, (*DEFAULT_SEARCH_PROPERTIES, MERGED_IDS))
            )

    def _forward_only(self, contact_id: int, props: dict[str, Any]) -> dict[str, Any]:
        """Drop a backward ``lifecyclestage`` from an API write, as HubSpot does: the stage
        only moves forward unless it was cleared first (docs/crm-api.md#c9). The rest of the
        write applies and the request succeeds."""
        value = props.get("lifecyclestage")
        order = self.config.lifecycle_order
        if not self.config.lifecycle_forward_only or value in (None, "") or value not in order:
            return props
        current = self.store.contacts[contact_id].props.get("lifecyclestage")
        if current in order and order.index(str(value)) < order.index(current):
            return {k: v for k, v in props.items() if k != "lifecyclestage"}
        return props

    def _validate(self, props: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-property problems in HubSpot's "Property values were not valid" shape
        (crm-api C5)."""
        problems = []
        for name, value in props.items():
            if not self.properties.exists(name):
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
            elif self.properties.read_only(name):
                problems.append(
                    {
                        "isValid": False,
                        "message": f'"{name}" is a read only property; its value cannot be set.',
                        "error": "READ_ONLY_VALUE",
                        "name": name,
                    }
                )
            else:
                allowed = self.properties.allowed_options(name)
                if allowed is not None and value not in ("", None) and str(value) not in allowed:
                    problems.append(
                        {
                            "isValid": False,
                            "message": f"{value} was not one of the allowed options: "
                            f"[{', '.join(allowed)}]",
                            "error": "INVALID_OPTION",
                            "name": name,
                        }
                    )
        return problems

    def _whole_batch_error(self, invalid: list[tuple[str, list[dict[str, Any]]]]) -> ApiError:
        # The real body (crm-api C5) carries the per-property array as JSON inside `message`.
        # [unverified] whether a batch 400 names the failing record: with
        # validation_400_names_records each entry gets an "id" and context.ids lists them.
        names = self.config.validation_400_names_records
        entries = [{**p, **({"id": cid} if names else {})} for cid, probs in invalid for p in probs]
        return ApiError(
            400,
            "VALIDATION_ERROR",
            "Property values were not valid: " + json.dumps(entries, separators=(",", ":")),
            context={"ids": [cid for cid, _ in invalid]} if names else None,
        )

    def _batch_response(
        self,
        results: list[dict[str, Any]],
        missing: list[str],
        invalid: list[tuple[str, list[dict[str, Any]]]],
        started: str,
        transient: list[str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self.clock.now_ms()),
        }
        # Observed 207 errors carry status/category/message (crm-api C4) but no `errors`/`links`,
        # though the spec lists them as required; context.ids names the records.
        errors = []
        for cid, problems in invalid:
            errors.append(
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "Property values were not valid: "
                    + json.dumps(problems, separators=(",", ":")),
                    "context": {"ids": [cid]},
                }
            )
        if transient:
            # The StandardError shape of the batch 207 (spec BatchResponse...WithErrors); HubSpot
            # documents no category for a passing per-record failure, so it is a generic one.
            errors.append(
                {
                    "status": "error",
                    "category": "INTERNAL_ERROR",
                    "message": "The update of some records failed; retry them.",
                    "context": {"ids": transient},
                }
            )
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or "
                    "not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return 207, body
        return 200, body

    def _all_properties(self, req: Request) -> Response:
        return Response(200, {"results": self.properties.all()})

    def _get_property(self, req: Request, name: str) -> Response:
        prop = self.properties.get(name)
        if prop is None:
            raise ApiError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for object type contacts"
            )
        return Response(200, prop)

    def _patch_property(self, req: Request, name: str) -> Response:
        if not self.properties.exists(name):
            raise ApiError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for object type contacts"
            )
        options = (req.json() or {}).get("options")
        if options is not None:
            if self.properties.options_read_only(name):
                raise ApiError(400, "VALIDATION_ERROR", f"The options of {name} are read-only")
            self.properties.set_options(
                name,
                options,
                merge=self.config.options_patch_semantics == "merge",
                stamp=iso_ms(self.clock.now_ms()),
            )
        return Response(200, self.properties.get(name))

    def _get_list(self, req: Request, list_id: str) -> Response:
        with self.lock:
            lst = self._lists.get(list_id)
            if lst is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            return Response(200, {"list": {**lst, "size": len(self._members[list_id])}})

    def _static_list(self, list_id: str) -> dict[str, Any]:
        """The list whose memberships a request changes (call with the lock held): it must exist
        and be MANUAL or SNAPSHOT -- membership changes "only work for lists that have a
        processingType of MANUAL or SNAPSHOT" (crm-api C6)."""
        lst = self._lists.get(list_id)
        if lst is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
        if lst["processingType"] not in ("MANUAL", "SNAPSHOT"):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"List {list_id} has processingType {lst['processingType']}; "
                "memberships can only be changed for MANUAL or SNAPSHOT lists.",
            )
        return lst

    def _add_members(self, req: Request, list_id: str) -> Response:
        ids = [str(i) for i in (req.json() or [])]
        req.entry.records, req.entry.record_ids = len(ids), tuple(ids)
        with self.lock:
            lst = self._static_list(list_id)
            added, missing = [], []
            members = self._members[list_id]
            for sent in ids:
                target = self.store.routed(_int_id(sent))  # a merged-away id: its record
                if target is None:
                    missing.append(sent)
                    continue
                rid = str(target.id)
                self._member_adds[(list_id, rid)] = self._member_adds.get((list_id, rid), 0) + 1
                if rid not in members:  # already a member: ignored (idempotent)
                    members.add(rid)
                    added.append(rid)
            if added:
                lst["updatedAt"] = iso_ms(self.clock.now_ms())
        req.entry.written = tuple(added)
        # Note the spelling "recordsIdsAdded" (crm-api C6).
        return Response(
            200, {"recordsIdsAdded": added, "recordIdsRemoved": [], "recordIdsMissing": missing}
        )

    def _remove_members(self, req: Request, list_id: str) -> Response:
        """``PUT /crm/v3/lists/{listId}/memberships/remove``: ids not in the list are ignored."""
        ids = [str(i) for i in (req.json() or [])]
        req.entry.records, req.entry.record_ids = len(ids), tuple(ids)
        with self.lock:
            lst = self._static_list(list_id)
            members = self._members[list_id]
            removed, missing = [], []
            for sent in ids:
                target = self.store.routed(_int_id(sent))  # a merged-away id: its record
                rid = str(target.id) if target is not None else sent
                if rid in members:
                    members.discard(rid)
                    removed.append(rid)
                elif target is None:
                    missing.append(sent)
            if removed:
                lst["updatedAt"] = iso_ms(self.clock.now_ms())
        req.entry.written = tuple(removed)
        return Response(
            200, {"recordsIdsAdded": [], "recordIdsRemoved": removed, "recordIdsMissing": missing}
        )


def _int_id(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


HubSpotEmulator.routes = (
    Route.of("POST", r"/crm/v3/objects/contacts/search", HubSpotEmulator._search),
    Route.of("GET", r"/crm/v3/objects/contacts", HubSpotEmulator._list_contacts),
    Route.of("POST", r"/crm/v3/objects/contacts/batch/read", HubSpotEmulator._batch_read),
    Route.of("POST", r"/crm/v3/objects/contacts/batch/update", HubSpotEmulator._batch_update),
    Route.of("POST", r"/crm/v3/objects/contacts/merge", HubSpotEmulator._merge),
    Route.of("GET", r"/crm/v3/objects/contacts/(\d+)", HubSpotEmulator._get_one),
    Route.of("PATCH", r"/crm/v3/objects/contacts/(\d+)", HubSpotEmulator._update_one),
    Route.of("GET", r"/crm/v3/properties/contacts", HubSpotEmulator._all_properties),
    Route.of("GET", r"/crm/v3/properties/contacts/([^/]+)", HubSpotEmulator._get_property),
    Route.of("PATCH", r"/crm/v3/properties/contacts/([^/]+)", HubSpotEmulator._patch_property),
    Route.of("GET", r"/crm/v3/lists/([^/]+)", HubSpotEmulator._get_list),
    Route.of("PUT", r"/crm/v3/lists/([^/]+)/memberships/add", HubSpotEmulator._add_members),
    Route.of("PUT", r"/crm/v3/lists/([^/]+)/memberships/remove", HubSpotEmulator._remove_members),
)


def _history_json(h: HistoryEntry, rep_user_id: str) -> dict[str, Any]:
    """One past value as HubSpot answers it: a rep's UI edit names the user."""
    out: dict[str, Any] = {
        "value": h.value,
        "timestamp": iso_ms(h.timestamp_ms),
        "sourceType": h.source_type,
    }
    if h.source_type == "CRM_UI":
        out["updatedByUserId"] = int(rep_user_id)
    return out
