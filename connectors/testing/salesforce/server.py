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
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import jwt
import trustme

from .clock import EmulatorClock
from .config import EmulatorConfig
from .faults import Faults
from .ids import IdFactory
from .journal import HEADERS_OF_INTEREST, Journal, JournalEntry
from .store import ApiError, Org

__all__ = ["SalesforceEmulator"]

log = logging.getLogger(__name__)

_DATA = re.compile(r"^/services/data/v(?P<ver>\d+\.\d+)/(?P<rest>.*)$")
_SINGLE_LEAD = re.compile(r"^sobjects/Lead/(?P<id>[0-9A-Za-z]{15,18})$")
_MORE = re.compile(r"^(?:query|queryAll)/(?P<loc>[0-9A-Za-z]+)-(?P<offset>\d+)$")


@dataclass(slots=True)
class _Session:
    user_id: str
    issued: float  # emulator clock, epoch seconds
    calls: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, emulator: SalesforceEmulator,
                 context: ssl.SSLContext) -> None:
        super().__init__(addr, handler)
        self.emulator = emulator
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the worker thread, so one slow client cannot stall accept().
        request.settimeout(self.emulator.config.request_timeout_seconds)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator %s", format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        path = split.path
        entry = JournalEntry(method, path, 0, len(body), headers={
            k: v for k in HEADERS_OF_INTEREST if (v := self.headers.get(k)) is not None})
        faults = emu.faults.take(method, path)
        kinds = {f.kind: f for f in faults}
        if "slow" in kinds:
            time.sleep(kinds["slow"].delay)
        drop = kinds.get("drop")
        if drop is not None and not drop.after_processing:
            self._drop(entry)
            return
        if "fail" in kinds:
            f = kinds["fail"]
            self._send(entry, f.status, f.body, f.content_type)
            return
        try:
            status, payload = emu._handle(method, path, split.query, body, self.headers, entry)
        except ApiError as err:
            status, payload = err.status, err.body()
        except Exception:  # a bug in the emulator: answer like Salesforce's 500, keep serving
            log.exception("emulator failed on %s %s", method, path)
            status, payload = 500, [{"message": "An unexpected error occurred.",
                                     "errorCode": "UNKNOWN_EXCEPTION"}]
        if drop is not None:
            self._drop(entry)
            return
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._send(entry, status, raw, "application/json;charset=UTF-8")

    def _drop(self, entry: JournalEntry) -> None:
        entry.status = 0
        self.server.emulator.journal.append(entry)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, entry: JournalEntry, status: int, raw: bytes, ctype: str) -> None:
        emu = self.server.emulator
        entry.status = status
        emu.journal.append(entry)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        if entry.path.startswith("/services/data/"):
            # Every REST response carries the org's usage (facts A11).
            self.send_header("Sforce-Limit-Info", f"api-usage={emu.api_usage}/"
                                                  f"{emu.config.daily_api_limit}")
        self.end_headers()
        self.wfile.write(raw)


class SalesforceEmulator:
    """A stateful Salesforce org on ``https://127.0.0.1:PORT`` for tests, demos and benchmarks.

    Example::

        with SalesforceEmulator() as emu:
            ids = emu.add_leads([{"LastName": "Lovelace", "Company": "Analytical"}])
            ...  # point the connector at emu.base_url / emu.token_url / emu.ca_pem_path
    """

    def __init__(self, config: EmulatorConfig | None = None, *, port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.clock = EmulatorClock()
        self.faults = Faults()
        self.journal = Journal(self.config.journal_limit)
        self._ids = IdFactory()
        self.org_id = self._ids.new("00D")
        self.integration_user_id = self._ids.new("005")
        self.rep_user_id = self._ids.new("005")
        self.integration_username = "integration@syncd.example"
        self.client_id = "3MVG9" + secrets.token_urlsafe(24)
        self.client_secret = secrets.token_hex(32)
        self.org = Org(self.config, self.clock, self._ids, self.integration_user_id,
                       self.rep_user_id)
        self.api_usage = self.config.api_usage_start
        self._usage_lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._signing_key = secrets.token_bytes(32)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_pem_path = ""
        self.base_url = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SalesforceEmulator:
        """Mint a CA and a 127.0.0.1 certificate, bind, and serve in a daemon thread."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tmpdir = tempfile.TemporaryDirectory(prefix="sf-emulator-")
        self.ca_pem_path = os.path.join(self._tmpdir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem_path)
        self._server = _Server(("127.0.0.1", self._port), _Handler, self, context)
        self.base_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="salesforce-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    # -- state, for tests and demos -------------------------------------------------------------

    def add_leads(self, records: Iterable[Mapping[str, Any]], *, by: str | None = None,
                  modstamp: datetime | None = None) -> list[str]:
        """Insert leads given in Salesforce API field names; returns their ids in order."""
        return self.org.add_leads(records, by=by, modstamp=modstamp)

    def commit_late(self, records: Iterable[Mapping[str, Any]], *, seconds_ago: float
                    ) -> list[str]:
        """Insert leads stamped ``seconds_ago`` in the past, as a long transaction would commit
        rows earlier than records already visible (facts A3.2)."""
        at = datetime.fromtimestamp(self.clock.now_second() - seconds_ago, tz=UTC)
        return self.org.add_leads(records, modstamp=at)

    def update_lead(self, lead_id: str, fields: Mapping[str, Any], *, by: str | None = None,
                    modstamp: datetime | None = None) -> None:
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

    def add_campaign(self, name: str, *, active: bool = True) -> str:
        return self.org.add_campaign(name, active=active)

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

    # -- request handling -------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: str, body: bytes, headers: Any,
                entry: JournalEntry) -> tuple[int, Any]:
        if path == "/services/oauth2/token" and method == "POST":
            return self._token(body, headers)
        m = _DATA.match(path)
        if m is None or m.group("ver") not in self.config.api_versions:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        self._authenticate(headers)
        with self._usage_lock:
            if self.api_usage >= self.config.daily_api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_usage += 1
        return self._route(method, m.group("rest"), query, body, headers, entry)

    def _authenticate(self, headers: Any) -> None:
        auth = headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        expire_all = self.faults.count_call_for_expiry()
        with self._usage_lock:
            if expire_all:
                self._sessions.clear()
            session = self._sessions.get(token)
            ttl, max_calls = self.config.session_ttl_seconds, self.config.session_max_calls
            if session is not None and (
                    (ttl is not None and self.clock.now_epoch() - session.issued > ttl)
                    or (max_calls is not None and session.calls >= max_calls)):
                del self._sessions[token]
                session = None
            if session is None:
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            session.calls += 1

    def _route(self, method: str, rest: str, query: str, body: bytes, headers: Any,
               entry: JournalEntry) -> tuple[int, Any]:
        rest = rest.rstrip("/") if rest not in ("query/", "queryAll/") else rest
        params = parse_qs(query)
        if method == "GET" and rest in ("query", "query/", "queryAll", "queryAll/"):
            soql = (params.get("q") or [""])[0]
            entry.soql = soql
            page = self.org.query(soql, include_deleted=rest.startswith("queryAll"),
                                  batch_size=_batch_size(headers))
            entry.records = len(page["records"])
            return 200, page
        more = _MORE.match(rest)
        if method == "GET" and more:
            page = self.org.query_more(more.group("loc"), int(more.group("offset")),
                                       _batch_size(headers))
            entry.records = len(page["records"])
            return 200, page
        if method == "GET" and rest == "sobjects/Lead/describe":
            return 200, self.org.describe_lead()
        if rest == "composite/sobjects" and method in ("PATCH", "POST"):
            return 200, self._collections(method, body, entry)
        single = _SINGLE_LEAD.match(rest)
        if method == "PATCH" and single:
            return self._update_one(single.group("id"), body, entry)
        if method == "GET" and rest == "limits":
            return 200, {"DailyApiRequests": {"Max": self.config.daily_api_limit,
                                              "Remaining": self.config.daily_api_limit
                                              - self.api_usage}}
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _collections(self, method: str, body: bytes, entry: JournalEntry) -> list[Any]:
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") \
                from None
        records = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            raise ApiError(400, "INVALID_FIELD", "records: required field missing")
        entry.records = len(records)
        limit = self.config.max_collection_records
        if len(records) > limit:
            # Collections take at most 200 records (facts A5).
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                                                     f"than {limit} records into this call")
        all_or_none = bool(doc.get("allOrNone", False))
        if method == "PATCH":
            entry.record_ids = tuple(str(r.get("id")) for r in records if isinstance(r, dict))
            return self.org.update_via_api(records, all_or_none=all_or_none,
                                           user_id=self.integration_user_id, locks=self.faults)
        return self.org.insert_via_api(records, all_or_none=all_or_none)

    def _update_one(self, lead_id: str, body: bytes, entry: JournalEntry) -> tuple[int, Any]:
        """``PATCH sobjects/Lead/{id}``: one record per call, as a hand-written script updates.

        Success is ``204 No Content``; a failure is Salesforce's ``[{message, errorCode,
        fields}]`` array with 400 (404 ``NOT_FOUND`` for an unknown id). Only the benchmark's
        naive baseline uses it; syncd writes through sObject Collections.
        """
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") \
                from None
        if not isinstance(doc, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        entry.records = 1
        entry.record_ids = (lead_id,)
        if lead_id not in self.org.leads:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        record = {**{k: v for k, v in doc.items() if k not in ("attributes", "id", "Id")},
                  "attributes": {"type": "Lead"}, "id": lead_id}
        [result] = self.org.update_via_api([record], all_or_none=True,
                                           user_id=self.integration_user_id, locks=self.faults)
        if result["success"]:
            return 204, b""
        return 400, [{"message": e["message"], "errorCode": e["statusCode"],
                      "fields": e.get("fields", [])} for e in result["errors"]]

    # -- OAuth ----------------------------------------------------------------------------------

    def _token(self, body: bytes, headers: Any) -> tuple[int, Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            cid, secret = form.get("client_id"), form.get("client_secret")
            auth = headers.get("Authorization") or ""
            if auth.startswith("Basic "):
                with contextlib.suppress(ValueError):
                    cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    cid, secret = unquote_plus(cid), unquote_plus(secret)
            if not (cid == self.client_id and secret is not None
                    and hmac.compare_digest(secret, self.client_secret)):
                return 400, {"error": "invalid_client",
                             "error_description": "invalid client credentials"}
            return 200, self._issue(self.integration_user_id)
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            user = self._verify_assertion(form.get("assertion") or "")
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "invalid assertion"}
            return 200, self._issue(user)
        return 400, {"error": "unsupported_grant_type",
                     "error_description": "grant type not supported"}

    def _verify_assertion(self, assertion: str) -> str | None:
        key = self.config.jwt_public_key_pem
        if key is None:
            return None
        audiences = ["https://login.salesforce.com", "https://test.salesforce.com",
                     self.base_url]
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=audiences,
                                issuer=self.client_id, options={"require": ["exp", "sub"]})
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
        signature = base64.b64encode(hmac.new(self._signing_key, (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        return {"access_token": token, "instance_url": self.base_url, "id": identity,
                "token_type": "Bearer", "issued_at": issued_at, "signature": signature,
                "scope": "api"}


def _batch_size(headers: Any) -> int | None:
    value = headers.get("Sforce-Query-Options") or ""
    m = re.search(r"batchSize=(\d+)", value)
    return int(m.group(1)) if m else None
