"""The HTTPS server and the Python handle tests and the demo use: :class:`SalesforceEmulator`."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
import trustme

from connectors.testing.kit import (
    HTML_503,
    AdminError,
    EmulatorClock,
    EmulatorServer,
    Fault,
    FaultPlan,
    Request,
    Response,
    Route,
)

from . import composite
from .bulk_query import BulkQueryJobs
from .config import EmulatorConfig
from .ids import IdFactory
from .schema import LEAD
from .seed import salesforce_record
from .store import ApiError, Org

__all__ = ["SalesforceEmulator"]

log = logging.getLogger(__name__)

_DATA = re.compile(r"^/services/data/v(?P<ver>\d+\.\d+)/(?P<rest>.*)$")
_V = r"/services/data/v\d+\.\d+/"
_TOKEN_PATH = "/services/oauth2/token"
_VERSIONS_PATH = "/services/data"
_COLLECTIONS = re.compile(_V + r"composite/sobjects/?")
#: Bulk API 2.0 query jobs; the version is a group: results need the job's own version.
_JOBS = r"/services/data/v(\d+\.\d+)/jobs/query"
_SINGLE_LEAD = re.compile(_V + r"sobjects/Lead/[0-9A-Za-z]{15,18}/?")

#: Request headers worth remembering (the rest, Authorization above all, are not kept).
HEADERS_OF_INTEREST = ("sforce-auto-assign", "sforce-duplicate-rule-header", "sforce-query-options")


class _RecordFaults:
    """What the store asks per record: a row lock (this request's or a scripted one) and an
    org validation rule's message."""

    def __init__(self, plan: FaultPlan, locked: set[str]) -> None:
        self._plan, self._locked = plan, locked

    def take_lock(self, record_id: str) -> bool:
        return record_id in self._locked or self._plan.take_lock(record_id)

    def lock_flow(self, record_id: str) -> str | None:
        return self._plan.lock_flow(record_id)

    def validation_message(self, record_id: str) -> str | None:
        return self._plan.validation_message(record_id)


@dataclass(slots=True)
class _Session:
    user_id: str
    issued: float  # emulator clock, epoch seconds
    calls: int = 0


class SalesforceEmulator(EmulatorServer):
    """A stateful Salesforce org on ``https://127.0.0.1:PORT`` for tests, demos and benchmarks.

    Example::

        with SalesforceEmulator() as emu:
            ids = emu.add_leads([{"LastName": "Lovelace", "Company": "Analytical"}])
            ...  # point the connector at emu.base_url / emu.token_url / emu.ca_pem_path
    """

    crm = "salesforce"
    json_content_type = "application/json;charset=UTF-8"
    journal_headers = HEADERS_OF_INTEREST

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        clock: EmulatorClock | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        super().__init__(
            host=host,
            port=port,
            clock=clock,
            faults=faults,
            journal_limit=self.config.journal_limit,
            idle_timeout_seconds=self.config.request_timeout_seconds,
        )
        self._ids = IdFactory()
        self.org_id = self._ids.new("00D")
        self.integration_user_id = self._ids.new("005")
        self.rep_user_id = self._ids.new("005")
        self.integration_username = "integration@syncd.example"
        self.client_id = "3MVG9" + secrets.token_urlsafe(24)
        self.client_secret = secrets.token_hex(32)
        self.org = Org(
            self.config, self.clock, self._ids, self.integration_user_id, self.rep_user_id
        )
        #: Bulk API 2.0 query jobs (``jobs/query``, :mod:`.bulk_query`).
        self.bulk_jobs = BulkQueryJobs(
            self.org,
            self.integration_user_id,
            run_seconds=self.config.bulk_query_run_seconds,
        )
        self.api_usage = self.config.api_usage_start
        self._usage_lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._signing_key = secrets.token_bytes(32)
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_pem_path = ""
        self.base_url = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SalesforceEmulator:
        """Mint a CA and a certificate for the host, bind, and serve in a daemon thread."""
        ca = trustme.CA()
        cert = ca.issue_cert(self.host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tmpdir = tempfile.TemporaryDirectory(prefix="sf-emulator-")
        self.ca_pem_path = os.path.join(self._tmpdir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem_path)
        self._serve(context)
        self.base_url = self.url
        return self

    def stop(self) -> None:
        self._shutdown()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{_TOKEN_PATH}"

    # -- state, for tests and demos -------------------------------------------------------------

    def add_leads(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        by: str | None = None,
        modstamp: datetime | None = None,
    ) -> list[str]:
        """Insert leads given in Salesforce API field names; returns their ids in order."""
        return self.org.add_leads(records, by=by, modstamp=modstamp)

    def commit_late(self, records: Iterable[Mapping[str, Any]], *, seconds_ago: float) -> list[str]:
        """Insert leads stamped ``seconds_ago`` in the past, as a long transaction would commit
        rows earlier than records already visible (crm-api A3.2)."""
        at = datetime.fromtimestamp(self.clock.now_second() - seconds_ago, tz=UTC)
        return self.org.add_leads(records, modstamp=at)

    def update_lead(
        self,
        lead_id: str,
        fields: Mapping[str, Any],
        *,
        by: str | None = None,
        modstamp: datetime | None = None,
    ) -> None:
        """Simulate a rep's edit: bumps SystemModstamp, LastModifiedById = ``by`` (a rep)."""
        self.org.update_lead(lead_id, fields, by=by or self.rep_user_id, modstamp=modstamp)

    def delete_lead(self, lead_id: str) -> None:
        self.org.delete_lead(lead_id)

    def merge_leads(self, master_id: str, victim_id: str) -> None:
        self.org.merge_leads(master_id, victim_id)

    def convert_lead(self, lead_id: str) -> None:
        self.org.convert_lead(lead_id)

    def lead(self, lead_id: str) -> dict[str, Any]:
        return self.org.lead(lead_id)

    @property
    def lead_count(self) -> int:
        return len(self.org.leads)

    def record_type_id(self, developer_name: str) -> str:
        """The id of the Lead record type ``developer_name`` (``EmulatorConfig.record_types``)."""
        return self.org.record_type_id(developer_name)

    def add_campaign(self, name: str, *, active: bool = True) -> str:
        return self.org.add_campaign(name, active=active)

    def delete_lead_field(self, name: str) -> None:
        """An admin deletes the custom Lead field ``name`` (or hides it from the integration
        user): describe leaves it out, a query or update naming it fails with INVALID_FIELD."""
        have = self.config.lead_custom_fields
        known = have if have is not None else {f.name for f in LEAD.fields}
        self.config.lead_custom_fields = frozenset(known - {name})

    def restore_lead_field(self, name: str) -> None:
        """Undo :meth:`delete_lead_field` (restored from the deleted fields, or made visible)."""
        have = self.config.lead_custom_fields
        if have is not None:
            self.config.lead_custom_fields = frozenset(have | {name})

    def delete_campaign(self, campaign_id: str) -> None:
        self.org.delete_campaign(campaign_id)

    def undelete_campaign(self, campaign_id: str) -> None:
        self.org.undelete_campaign(campaign_id)

    def campaign_members(self, campaign_id: str) -> set[str]:
        return self.org.campaign_members(campaign_id)

    def purge_recycle_bin(self) -> int:
        return self.org.purge_recycle_bin()

    def expire_sessions(self) -> None:
        """Invalidate every issued access token now."""
        with self._usage_lock:
            self._sessions.clear()

    def expire_query_locators(self) -> None:
        self.org.expire_query_locators()

    def set_api_usage(self, used: int) -> None:
        with self._usage_lock:
            self.api_usage = used

    def seed_leads(
        self,
        leads: Iterable[Mapping[str, Any]],
        *,
        fields: Mapping[str, str] | None = None,
        status_values: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Insert canonical leads (:mod:`connectors.testing.leads`), each last modified when
        its status was set; returns their ids in order."""
        ids: list[str] = []
        for lead in leads:
            stamp = lead.get("_status_changed_at") or lead.get("created_at")
            ids += self.org.add_leads(
                [salesforce_record(lead, fields, status_values)],
                modstamp=stamp.replace(microsecond=0) if stamp else None,
            )
        return ids

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume this org in another process (:meth:`restore`)."""
        return {
            "credentials": {"client_id": self.client_id, "client_secret": self.client_secret},
            "org": self.org.export(),
            "api_usage": self.api_usage,
        }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Resume the org a :meth:`snapshot` describes (before :meth:`start`). The org, user
        and campaign ids are stable across runs, so restored rows keep their meaning."""
        self.client_id = doc["credentials"]["client_id"]
        self.client_secret = doc["credentials"]["client_secret"]
        self.org.restore(doc["org"])
        self.api_usage = int(doc.get("api_usage", self.api_usage))

    # -- admin API --------------------------------------------------------------------------

    def admin_info(self) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "url": self.base_url,
            "base_url": self.base_url,
            "token_url": self.token_url,
            "ca_pem_path": self.ca_pem_path,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "integration_user_id": self.integration_user_id,
            "rep_user_id": self.rep_user_id,
            "leads": self.lead_count,
            "campaigns": {row[1]: cid for cid, row in self.org.campaigns.items()},
        }

    def admin_state(self) -> dict[str, Any]:
        with self.org.lock:
            ids = list(self.org.leads)
            leads = [self.org.lead(i) for i in ids]
            campaigns = {cid: row[1] for cid, row in self.org.campaigns.items()}
            members = list(self.org.members.values())
        out_leads = []
        for lead in leads:
            out_leads.append(
                {
                    "id": lead["Id"],
                    "status": lead["Status"],
                    "last_modified_by": lead["LastModifiedById"],
                    "modified_by_integration": lead["LastModifiedById"] == self.integration_user_id,
                    "modified_at": _json_value(lead["SystemModstamp"]),
                    "deleted": bool(lead["IsDeleted"]),
                    "converted": bool(lead["IsConverted"]),
                    "fields": {k: _json_value(v) for k, v in lead.items() if v is not None},
                }
            )
        pairs = [(row[1], row[2]) for row in members]
        return {
            "crm": self.crm,
            "now": self.clock.now().isoformat(),
            "leads": out_leads,
            "memberships": [
                {
                    "campaign_id": cid,
                    "campaign": campaigns.get(cid),
                    "lead_id": lid,
                    "member_id": row[0],
                }
                for row, (cid, lid) in zip(members, pairs, strict=True)
            ],
            "duplicate_memberships": sorted(
                {f"{c}/{lead}" for c, lead in pairs if pairs.count((c, lead)) > 1}
            ),
        }

    def admin_edit(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A person edits a lead: ``{"id": "00Q...", "status": "...", "fields": {...}}``."""
        lead_id = doc.get("id")
        if not isinstance(lead_id, str) or lead_id not in self.org.leads:
            raise AdminError(f"no lead {lead_id!r}; give the id of a lead in GET state", 404)
        fields = dict(doc.get("fields") or {})
        if doc.get("status") is not None:
            fields["Status"] = doc["status"]
        try:
            self.update_lead(lead_id, fields)
        except (KeyError, ValueError) as e:
            raise AdminError(f"cannot edit lead {lead_id}: {e}") from None
        lead = self.lead(lead_id)
        return {
            "id": lead_id,
            "status": lead["Status"],
            "last_modified_by": lead["LastModifiedById"],
            "modified_at": _json_value(lead["SystemModstamp"]),
        }

    # -- faults ---------------------------------------------------------------------------------

    def fault_kinds(self, request: Request) -> frozenset[str]:
        transport = {"503", "drop-before", "drop-after", "slow", "timeout"}
        if request.path == _TOKEN_PATH:
            return frozenset(transport)
        if not request.path.startswith("/services/data/"):
            return frozenset()
        kinds = transport | {"429", "401"}
        if request.method == "PATCH" and (
            _COLLECTIONS.fullmatch(request.path) or _SINGLE_LEAD.fullmatch(request.path)
        ):
            kinds.add("lock")
        return frozenset(kinds)

    def decide_fault(self, request: Request) -> Fault | None:
        # A transport fault scripted for a subrequest's path (a drop scripted for
        # composite/sobjects) hits the Composite request that carries the subrequest.
        if composite.is_composite(request):
            hoisted = composite.hoisted_fault(self, request)
            if hoisted is not None:
                return hoisted
        return super().decide_fault(request)

    def subrequest_fault_kinds(self, request: Request) -> frozenset[str]:
        """Faults a Composite subrequest answers in its own slot (the exchange's faults hit
        the carrying request)."""
        kinds = {"503", "429"}
        if request.method == "PATCH" and (
            _COLLECTIONS.fullmatch(request.path) or _SINGLE_LEAD.fullmatch(request.path)
        ):
            kinds.add("lock")
        return frozenset(kinds)

    def fault_response(self, kind: str, request: Request) -> Response:
        if kind == "429":
            # Salesforce has no 429: a rate limit is 403 REQUEST_LIMIT_EXCEEDED. The one that
            # comes and goes is the org's concurrent long-running request limit; the daily limit
            # is not random, it follows the usage counter (EmulatorConfig.api_usage_start).
            # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
            return Response(
                403,
                [
                    {
                        "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            )
        if kind == "401":
            self.expire_sessions()  # the session really ends: the client must log in again
            return Response(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
        return Response(503, HTML_503, content_type="text/html")

    def status_response(self, status: int, request: Request) -> Response:
        if status == 503:
            return Response(503, HTML_503, content_type="text/html")
        if status == 401:
            return Response(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
        return Response(
            status, [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]
        )

    # -- request handling -------------------------------------------------------------------

    def error_response(self, exc: Exception, request: Request) -> Response | None:
        if isinstance(exc, ApiError):
            return Response(exc.status, exc.body())
        log.error("emulator failed on %s %s", request.method, request.path, exc_info=exc)
        # A bug in the emulator: answer like Salesforce's 500, keep serving.
        return Response(
            500, [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]
        )

    def response_headers(self, request: Request, status: int) -> dict[str, str]:
        if request.path.startswith("/services/data/"):
            # Every REST response carries the org's usage (crm-api A11).
            return {
                "Sforce-Limit-Info": f"api-usage={self.api_usage}/{self.config.daily_api_limit}"
            }
        return {}

    def before_route(self, request: Request) -> Response | None:
        if request.path == _TOKEN_PATH:
            return None
        if request.path.rstrip("/") == _VERSIONS_PATH:
            return None  # the versions list needs no session
        m = _DATA.match(request.path)
        if m is not None and float(m.group("ver")) < self.config.retired_below:
            # A retired version answers 410 GONE (docs/crm-api.md#a12).
            raise ApiError(
                410,
                "GONE",
                f"API version {m.group('ver')} has been retired and is "
                "no longer available; use a supported version",
            )
        if m is None or m.group("ver") not in self.config.api_versions:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        self._authenticate(request.headers)
        with self._usage_lock:
            if self.api_usage >= self.config.daily_api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_usage += 1
        return None

    def not_found(self, request: Request) -> Response:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._usage_lock:
            session = self._sessions.get(token)
            ttl, max_calls = self.config.session_ttl_seconds, self.config.session_max_calls
            if session is not None and (
                (ttl is not None and self.clock.now_epoch() - session.issued > ttl)
                or (max_calls is not None and session.calls >= max_calls)
            ):
                del self._sessions[token]
                session = None
            if session is None:
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            session.calls += 1

    def _query(self, req: Request, kind: str) -> Response:
        soql = (req.params.get("q") or [""])[0]
        req.entry.soql = soql
        page = self.org.query(
            soql, include_deleted=kind == "queryAll", batch_size=_batch_size(req.headers)
        )
        req.entry.records = len(page["records"])
        return Response(200, page)

    # -- Bulk API 2.0 query jobs (bulk_query.py) ------------------------------------------------

    def _bulk_create(self, req: Request, version: str) -> Response:
        try:
            doc = req.json()
        except ValueError:
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Unexpected character in request body"
            ) from None
        info = self.bulk_jobs.create(doc, version)
        req.entry.soql = str(doc.get("query"))
        return Response(200, info)

    def _bulk_list(self, req: Request, version: str) -> Response:
        return Response(200, self.bulk_jobs.list())

    def _bulk_info(self, req: Request, version: str, job_id: str) -> Response:
        return Response(200, self.bulk_jobs.info(job_id, version))

    def _bulk_abort(self, req: Request, version: str, job_id: str) -> Response:
        try:
            doc = req.json()
        except ValueError:
            doc = None
        return Response(200, self.bulk_jobs.abort(job_id, doc, version))

    def _bulk_delete(self, req: Request, version: str, job_id: str) -> Response:
        self.bulk_jobs.delete(job_id, version)
        return Response(204)

    def _bulk_results(self, req: Request, version: str, job_id: str) -> Response:
        locator = (req.params.get("locator") or [""])[0]
        raw = (req.params.get("maxRecords") or [""])[0]
        if raw and not raw.isdigit():
            raise ApiError(400, "INVALIDPARAMETER", f"maxRecords must be a number, got {raw}")
        page = self.bulk_jobs.results(job_id, version, locator or None, int(raw) if raw else None)
        req.entry.records = page.records
        return Response(
            200,
            page.body,
            headers={
                "Sforce-Locator": page.locator,
                "Sforce-NumberOfRecords": str(page.records),
            },
            content_type="text/csv",
        )

    def _query_more(self, req: Request, locator: str, offset: str) -> Response:
        page = self.org.query_more(locator, int(offset), _batch_size(req.headers))
        req.entry.records = len(page["records"])
        return Response(200, page)

    def _describe(self, req: Request) -> Response:
        return Response(200, self.org.describe_lead())

    def _versions(self, req: Request) -> Response:
        """``GET /services/data/``: the versions this org serves, oldest first."""
        versions = sorted(self.config.api_versions, key=float)
        return Response(
            200, [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in versions]
        )

    def _status_picklist(self, req: Request, record_type_id: str) -> Response:
        return Response(200, self.org.status_picklist(record_type_id))

    def _limits(self, req: Request) -> Response:
        return Response(
            200,
            {
                "DailyApiRequests": {
                    "Max": self.config.daily_api_limit,
                    "Remaining": self.config.daily_api_limit - self.api_usage,
                }
            },
        )

    def _composite(self, req: Request) -> Response:
        """``POST composite``: up to 25 subrequests, one counted call (:mod:`.composite`)."""
        return composite.serve_composite(self, req)

    def _token_route(self, req: Request) -> Response:
        status, payload = self._token(req.body, req.headers)
        return Response(status, payload)

    def _record_faults(self, req: Request, ids: list[str]) -> _RecordFaults:
        """The per-record faults of this update; a ``lock`` fault locks some of its records
        (as another transaction would) for this request only."""
        locked = (
            set(self.faults.sample(ids))
            if (req.fault is not None and req.fault.kind == "lock")
            else set()
        )
        return _RecordFaults(self.faults, locked)

    def _collections(self, req: Request) -> Response:
        try:
            doc = req.json() if req.body else {}
        except ValueError:
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Unexpected character in request body"
            ) from None
        records = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            raise ApiError(400, "INVALID_FIELD", "records: required field missing")
        req.entry.records = len(records)
        limit = self.config.max_collection_records
        if len(records) > limit:
            # Collections take at most 200 records (crm-api A5).
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {limit} records into this call",
            )
        all_or_none = bool(doc.get("allOrNone", False))
        if req.method == "PATCH":
            ids = [str(r.get("id")) for r in records if isinstance(r, dict)]
            req.entry.record_ids = tuple(ids)
            allow = (
                "allowsave=true"
                in (req.headers.get("sforce-duplicate-rule-header") or "").replace(" ", "").lower()
            )
            results = self.org.update_via_api(
                records,
                all_or_none=all_or_none,
                user_id=self.integration_user_id,
                locks=self._record_faults(req, ids),
                allow_duplicates=allow,
            )
        else:
            results = self.org.insert_via_api(records, all_or_none=all_or_none)
        req.entry.written = tuple(str(r["id"]) for r in results if r.get("success"))
        return Response(200, results)

    def _delete_collection(self, req: Request) -> Response:
        """``DELETE composite/sobjects?ids=...&allOrNone=false``: CampaignMember rows only.

        One DeleteResult per id in order; an unknown id fails with ``ENTITY_IS_DELETED``
        (already deleted) or ``INVALID_CROSS_REFERENCE_KEY``, as the org answers.
        """
        ids = [i for part in req.params.get("ids", []) for i in part.split(",") if i]
        if not ids:
            raise ApiError(400, "MALFORMED_QUERY", "ids: required parameter missing")
        req.entry.records, req.entry.record_ids = len(ids), tuple(ids)
        if len(ids) > self.config.max_collection_records:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more "
                f"than {self.config.max_collection_records} records into this call",
            )
        all_or_none = (req.params.get("allOrNone") or ["false"])[0].lower() == "true"
        results = self.org.delete_members_via_api(ids, all_or_none=all_or_none)
        req.entry.written = tuple(str(r["id"]) for r in results if r.get("success"))
        return Response(200, results)

    def _update_one(self, req: Request, lead_id: str) -> Response:
        """``PATCH sobjects/Lead/{id}``: one record per call, as a hand-written script updates.

        Success is ``204 No Content``; a failure is Salesforce's ``[{message, errorCode,
        fields}]`` array with 400 (404 ``NOT_FOUND`` for an unknown id). Only the benchmark's
        naive baseline uses it; syncd writes through sObject Collections.
        """
        try:
            doc = json.loads(req.body or b"{}")
        except ValueError:
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Unexpected character in request body"
            ) from None
        if not isinstance(doc, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        req.entry.records = 1
        req.entry.record_ids = (lead_id,)
        if lead_id not in self.org.leads:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        record = {
            **{k: v for k, v in doc.items() if k not in ("attributes", "id", "Id")},
            "attributes": {"type": "Lead"},
            "id": lead_id,
        }
        [result] = self.org.update_via_api(
            [record],
            all_or_none=True,
            user_id=self.integration_user_id,
            locks=self._record_faults(req, [lead_id]),
        )
        if result["success"]:
            req.entry.written = (lead_id,)
            return Response(204)
        return Response(
            400,
            [
                {
                    "message": e["message"],
                    "errorCode": e["statusCode"],
                    "fields": e.get("fields", []),
                }
                for e in result["errors"]
            ],
        )

    # -- OAuth ----------------------------------------------------------------------------------

    def _token(self, body: bytes, headers: Any) -> tuple[int, Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            cid, secret = form.get("client_id"), form.get("client_secret")
            auth = headers.get("authorization") or ""
            if auth.startswith("Basic "):
                with contextlib.suppress(ValueError):
                    cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    cid, secret = unquote_plus(cid), unquote_plus(secret)
            if not (
                cid == self.client_id
                and secret is not None
                and hmac.compare_digest(secret, self.client_secret)
            ):
                return 400, {
                    "error": "invalid_client",
                    "error_description": "invalid client credentials",
                }
            return 200, self._issue(self.integration_user_id)
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            user = self._verify_assertion(form.get("assertion") or "")
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
            return 200, self._issue(user)
        return 400, {
            "error": "unsupported_grant_type",
            "error_description": "grant type not supported",
        }

    def _verify_assertion(self, assertion: str) -> str | None:
        key = self.config.jwt_public_key_pem
        if key is None:
            return None
        audiences = ["https://login.salesforce.com", "https://test.salesforce.com", self.base_url]
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=self.client_id,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        users = {self.integration_username: self.integration_user_id, **self.config.usernames}
        return users.get(claims["sub"])

    def _issue(self, user_id: str) -> dict[str, Any]:
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
        now = self.clock.now_epoch()
        with self._usage_lock:
            self._sessions[token] = _Session(user_id, now)
        issued_at = str(int(now * 1000))
        identity = f"{self.base_url}/id/{self.org_id}/{user_id}"
        signature = base64.b64encode(
            hmac.new(self._signing_key, (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return {
            "access_token": token,
            "instance_url": self.base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }


def _batch_size(headers: Mapping[str, str]) -> int | None:
    value = headers.get("sforce-query-options") or ""
    m = re.search(r"batchSize=(\d+)", value)
    return int(m.group(1)) if m else None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


SalesforceEmulator.routes = (
    Route.of("POST", re.escape(_TOKEN_PATH), SalesforceEmulator._token_route),
    Route.of("GET", _V + r"(query|queryAll)/?", SalesforceEmulator._query),
    Route.of(
        "GET", _V + r"(?:query|queryAll)/([0-9A-Za-z]+)-(\d+)/?", SalesforceEmulator._query_more
    ),
    Route.of("GET", _V + r"sobjects/Lead/describe/?", SalesforceEmulator._describe),
    Route.of("POST", _JOBS + r"/?", SalesforceEmulator._bulk_create),
    Route.of("GET", _JOBS + r"/?", SalesforceEmulator._bulk_list),
    Route.of("GET", _JOBS + r"/([0-9A-Za-z]{15,18})/?", SalesforceEmulator._bulk_info),
    Route.of("PATCH", _JOBS + r"/([0-9A-Za-z]{15,18})/?", SalesforceEmulator._bulk_abort),
    Route.of("DELETE", _JOBS + r"/([0-9A-Za-z]{15,18})/?", SalesforceEmulator._bulk_delete),
    Route.of("GET", _JOBS + r"/([0-9A-Za-z]{15,18})/results/?", SalesforceEmulator._bulk_results),
    Route.of("POST", _V + r"composite/?", SalesforceEmulator._composite),
    Route.of("PATCH", _COLLECTIONS.pattern, SalesforceEmulator._collections),
    Route.of("POST", _COLLECTIONS.pattern, SalesforceEmulator._collections),
    Route.of("DELETE", _COLLECTIONS.pattern, SalesforceEmulator._delete_collection),
    Route.of("PATCH", _V + r"sobjects/Lead/([0-9A-Za-z]{15,18})/?", SalesforceEmulator._update_one),
    Route.of("GET", _V + r"limits/?", SalesforceEmulator._limits),
    Route.of("GET", re.escape(_VERSIONS_PATH) + r"/?", SalesforceEmulator._versions),
    Route.of(
        "GET",
        _V + r"ui-api/object-info/Lead/picklist-values/([0-9A-Za-z]{15,18})/Status/?",
        SalesforceEmulator._status_picklist,
    ),
)
