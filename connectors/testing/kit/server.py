"""The HTTP(S) server every emulator runs on, with fault handling and the admin API.

An emulator subclasses :class:`EmulatorServer` and provides its routes (one table of
:class:`Route`: method, path pattern, handler), the fault kinds each route can produce, how its
CRM answers a rate limit, an outage and an expired token, and its admin state. The base class
owns the threaded server (TLS when given a certificate), the journal, the clock and the fault
plan, and serves the admin API under :data:`ADMIN_PREFIX` (see :mod:`connectors.testing`).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .clock import EmulatorClock
from .faults import HTML_503, Fault, FaultPlan
from .journal import Journal, JournalEntry

__all__ = ["ADMIN_PREFIX", "AdminError", "EmulatorServer", "Request", "Response", "Route"]

log = logging.getLogger(__name__)

#: Requests under this prefix are the emulator's own admin API: never faulted, never journaled,
#: never counted as API usage.
ADMIN_PREFIX = "/__emulator__/"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    entry: JournalEntry
    fault: Fault | None = None  # a fault the route applies itself (lock, partial)
    #: The body already parsed, when the emulator built the request from JSON it holds (a
    #: Composite subrequest): ``json`` gives it instead of parsing ``body`` again.
    parsed: Any = None

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query)

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        if self.parsed is not None:
            return self.parsed
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class Response:
    status: int
    body: Any = None  # bytes/str sent as is, anything else as JSON; None: empty
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


Handler = Callable[..., Response]


@dataclass(frozen=True, slots=True)
class Route:
    """``handler(emulator, request, *groups)`` serves ``method`` on paths fully matching
    ``pattern``."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler

    @classmethod
    def of(cls, method: str, pattern: str, handler: Handler) -> Route:
        return cls(method, re.compile(pattern), handler)


class AdminError(Exception):
    """A bad admin request: answered 400 (or ``status``) with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self, addr: tuple[str, int], emulator: EmulatorServer, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(addr, _Handler)
        self.emulator = emulator
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.emulator.idle_timeout_seconds)
        if self.context is None:
            _Handler(request, client_address, self)
            return
        # TLS handshake in the worker thread, so one slow client cannot stall accept().
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class EmulatorServer:
    """Base of the emulators: lifecycle, dispatch, faults, journal and the admin API."""

    #: The CRM's name in admin answers.
    crm = "emulator"
    #: Content type of JSON answers.
    json_content_type = "application/json;charset=UTF-8"
    #: Request headers kept in the journal (lower case; never Authorization).
    journal_headers: tuple[str, ...] = ()
    #: The route table (set by subclasses).
    routes: tuple[Route, ...] = ()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: EmulatorClock | None = None,
        faults: FaultPlan | None = None,
        journal_limit: int = 100_000,
        idle_timeout_seconds: float = 30.0,
    ) -> None:
        self.host = host
        self.clock = clock or EmulatorClock()
        self.faults = faults or FaultPlan()
        self.journal = Journal(journal_limit)
        self.idle_timeout_seconds = idle_timeout_seconds
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def _serve(self, context: ssl.SSLContext | None) -> None:
        """Bind and serve in a daemon thread (subclasses call this from ``start``)."""
        self._stopping.clear()
        self._server = _Server((self.host, self._port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"{self.crm}-emulator",
            daemon=True,
        )
        self._thread.start()

    def _shutdown(self) -> None:
        """Stop serving and cut open connections (held answers end at once)."""
        self._stopping.set()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._sockets_lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._server = None

    def stop(self) -> None:
        """Stop serving (subclasses also release what ``start`` made)."""
        self._shutdown()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.crm} emulator is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients use (``https://`` when serving TLS)."""
        scheme = "https" if self._server is not None and self._server.context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # -- what subclasses provide ----------------------------------------------------------------

    def fault_kinds(self, request: Request) -> frozenset[str]:
        """The fault kinds the real API can produce for this request."""
        return frozenset()

    def decide_fault(self, request: Request) -> Fault | None:
        """The fault for this request (the fault plan's decision for its route's kinds)."""
        return self.faults.decide(request.method, request.path, self.fault_kinds(request))

    def fault_answer(self, fault: Fault, request: Request) -> Response:
        """The answer an answer-kind fault (``respond``, ``429``, ``503``, ``401``) gives."""
        if fault.kind != "respond":
            return self.fault_response(fault.kind, request)
        if fault.body is None:  # the CRM's own error body, with the headers asked for
            response = self.status_response(fault.status, request)
            response.headers = {**response.headers, **fault.headers}
            return response
        body = fault.body
        raw = body.encode() if isinstance(body, str) else body
        ctype = fault.content_type
        if ctype is None and isinstance(raw, bytes):
            ctype = self.json_content_type if raw[:1] in (b"[", b"{") else "text/html"
        return Response(fault.status, raw, dict(fault.headers), ctype)

    def fault_response(self, kind: str, request: Request) -> Response:
        """How the CRM answers a ``429``, ``503`` or ``401`` fault."""
        return Response(503, HTML_503, content_type="text/html")

    def status_response(self, status: int, request: Request) -> Response:
        """The CRM's error answer with ``status`` (a scripted ``respond`` without a body)."""
        if status == 503:
            return Response(503, HTML_503, content_type="text/html")
        return Response(status, {"error": f"HTTP {status}"})

    def error_response(self, exc: Exception, request: Request) -> Response | None:
        """A CRM error raised by a route as the CRM's answer; None for an emulator bug."""
        return None

    def before_route(self, request: Request) -> Response | None:
        """Authentication and usage accounting before routing; a Response refuses the call."""
        return None

    def response_headers(self, request: Request, status: int) -> dict[str, str]:
        """Headers on every API answer (e.g. Salesforce's Sforce-Limit-Info)."""
        return {}

    def admin_state(self) -> dict[str, Any]:
        raise AdminError("this emulator has no state view", 404)

    def admin_edit(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        raise AdminError("this emulator has no edit", 404)

    def admin_merge(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        raise AdminError("this emulator has no merge", 404)

    def admin_info(self) -> dict[str, Any]:
        return {"crm": self.crm, "url": self.url}

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume this emulator in another process."""
        raise NotImplementedError

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Resume from a :meth:`snapshot` (before ``start``)."""
        raise NotImplementedError

    # -- dispatch --------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        """Find the route for the request and run it (auth and usage first)."""
        refused = self.before_route(request)
        if refused is not None:
            return refused
        return self.find_route(request)

    def find_route(self, request: Request) -> Response:
        """Run the route table's handler for the request (404 when none matches)."""
        for r in self.routes:
            if r.method != request.method:
                continue
            m = r.pattern.fullmatch(request.path)
            if m is not None:
                return r.handler(self, request, *m.groups())
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def execute(self, request: Request) -> Response:
        """Route the request, turning CRM errors and emulator bugs into answers."""
        try:
            response = self.route(request)
        except Exception as exc:  # every failure becomes an HTTP answer, the server lives on
            answer = self.error_response(exc, request)
            if answer is None:
                log.exception("%s emulator failed on %s %s", self.crm, request.method, request.path)
                answer = Response(500, {"error": f"emulator error: {type(exc).__name__}"})
            response = answer
        request.entry.applied = 200 <= response.status < 300
        if not request.entry.applied:
            request.entry.written = ()
        return response

    def wait(self, seconds: float) -> None:
        """Sleep that ends early when the emulator stops."""
        self._stopping.wait(seconds)

    # -- admin API -------------------------------------------------------------------------------

    def admin(self, method: str, path: str, query: str, body: bytes) -> Response:
        name = path[len(ADMIN_PREFIX) :].strip("/")
        try:
            doc = json.loads(body) if body else {}
            if not isinstance(doc, dict):
                raise AdminError("the request body must be a JSON object")
            return Response(200, self._admin(method, name, parse_qs(query), doc))
        except AdminError as e:
            return Response(e.status, {"error": str(e)})
        except ValueError as e:
            return Response(400, {"error": str(e)})

    def _admin(
        self, method: str, name: str, params: dict[str, list[str]], doc: dict[str, Any]
    ) -> dict[str, Any]:
        if (method, name) == ("GET", "journal"):
            since = _int_param(params, "since", 0)
            entries = self.journal.entries(since=since)
            return {"entries": [e.to_json() for e in entries], "last": self.journal.last_seq}
        if (method, name) == ("GET", "state"):
            return self.admin_state()
        if (method, name) == ("GET", "info"):
            return self.admin_info()
        people = {"edit": self.admin_edit, "merge": self.admin_merge}  # a person's acts
        if method == "POST" and name in people:
            return people[name](doc)
        if (method, name) == ("GET", "faults"):
            return self.faults.describe()
        if (method, name) == ("POST", "faults"):
            return self._admin_faults(doc)
        if method == "GET" and name == "clock":
            return self._clock_json()
        if (method, name) == ("POST", "clock"):
            if "freeze" in doc:
                if doc["freeze"]:
                    self.clock.freeze()
                else:
                    self.clock.unfreeze()
            advance = doc.get("advance_seconds", 0)
            if not isinstance(advance, int | float) or advance < 0:
                raise AdminError("advance_seconds must be a number of seconds, 0 or more")
            self.clock.advance(float(advance))
            return self._clock_json()
        raise AdminError(f"no admin endpoint {method} {ADMIN_PREFIX}{name}", 404)

    def _admin_faults(self, doc: dict[str, Any]) -> dict[str, Any]:
        kinds = doc.get("kinds")
        if isinstance(kinds, str):
            kinds = kinds.split(",")
        if doc.get("clear"):
            self.faults.clear()
        self.faults.configure(
            rate=doc.get("rate"),
            kinds=kinds,
            seed=doc.get("seed"),
            routes=doc.get("routes"),
            slow_seconds=doc.get("slow_seconds"),
            timeout_seconds=doc.get("timeout_seconds"),
        )
        for item in doc.get("script") or []:
            if not isinstance(item, dict) or "kind" not in item:
                raise AdminError(
                    "each script item needs a kind, e.g. "
                    '{"kind": "drop-after", "count": 1, "path": "batch/update"}'
                )
            self.faults.script(
                str(item["kind"]),
                int(item.get("count", 1)),
                path=item.get("path"),
                method=item.get("method"),
                delay=item.get("delay"),
            )
        return self.faults.describe()

    def _clock_json(self) -> dict[str, Any]:
        return {"now": self.clock.now().isoformat(), "frozen": self.clock.frozen}


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    raw = (params.get(name) or [str(default)])[0]
    try:
        return int(raw)
    except ValueError:
        raise AdminError(f"{name} must be an integer, got {raw!r}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as against the CRM
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add
    # ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._sockets_lock:
            self.server.emulator._sockets.add(self.connection)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            with self.server.emulator._sockets_lock:
                self.server.emulator._sockets.discard(self.connection)

    def log_message(self, fmt: str, *args: Any) -> None:
        pass  # the journal is the log

    def date_time_string(self, timestamp: float | None = None) -> str:
        # Every answer's Date header (RFC 9110 §6.6.1) tells the CRM's time: the emulator's
        # clock, which a test may set apart from the client's.
        when = self.server.emulator.clock.now_epoch() if timestamp is None else timestamp
        return email.utils.formatdate(when, usegmt=True)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        if split.path.startswith(ADMIN_PREFIX):
            self._send(emu.admin(self.command, split.path, split.query, body), emu, None)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = JournalEntry(
            self.command,
            split.path,
            split.query,
            at=emu.clock.now_epoch(),
            request_id=str(uuid.uuid4()),
            body=body,
            connection=int(self.client_address[1]),
            headers={k: v for k in emu.journal_headers if (v := headers.get(k)) is not None},
        )
        request = Request(self.command, split.path, split.query, body, headers, entry)
        fault = emu.decide_fault(request)
        kind = fault.kind if fault is not None else None
        entry.fault = kind
        if fault is not None and kind == "slow":
            emu.wait(emu.faults.delay_of(fault))
        if kind == "drop-before":
            self._drop(emu, entry)
            return
        if fault is not None and kind in ("respond", "429", "503", "401"):
            response = self._fault_answer(emu, fault, request)
            entry.status = response.status
            emu.journal.append(entry)
            self._send(response, emu, request)
            return
        if kind in ("lock", "partial"):
            request.fault = fault
        response = emu.execute(request)
        if kind == "drop-after":
            self._drop(emu, entry)
            return
        entry.status = response.status
        emu.journal.append(entry)
        if fault is not None and kind == "timeout":
            emu.wait(emu.faults.delay_of(fault))
        self._send(response, emu, request)

    @staticmethod
    def _fault_answer(emu: EmulatorServer, fault: Fault, request: Request) -> Response:
        return emu.fault_answer(fault, request)

    def _drop(self, emu: EmulatorServer, entry: JournalEntry) -> None:
        entry.status = 0
        emu.journal.append(entry)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response, emu: EmulatorServer, request: Request | None) -> None:
        body = response.body
        if body is None:
            data, ctype = b"", response.content_type
        elif isinstance(body, bytes | str):
            data = body.encode() if isinstance(body, str) else body
            ctype = response.content_type or "text/html;charset=utf-8"
        else:
            data = json.dumps(body).encode()
            ctype = response.content_type or emu.json_content_type
        headers = dict(response.headers)
        if request is not None:
            headers = {**emu.response_headers(request, response.status), **headers}
        try:
            self.send_response(response.status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (its timeout): nothing to answer
