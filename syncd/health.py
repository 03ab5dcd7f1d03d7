"""``/healthz`` (alive), ``/readyz`` (cycles succeeding, rules valid) and ``/metrics``.

The port is bound at start-up before any CRM is contacted (a port in use stops start-up at no
API cost) and served from then on; readiness says "starting" until the daemon's first cycles.

Liveness says the process serves HTTP and, once the daemon runs, that its scheduler thread and
its main loop are alive (``liveness``, set by ``syncd.scheduler.Daemon``): restarting a daemon
because a CRM is down would not help, but restarting one whose scheduler died does, and frees
its lease for a standby. Readiness says whether each connector finished a cycle recently, so an
operator (or a Kubernetes probe) sees a stuck or failing daemon.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: Any,
        readiness: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        outer = self
        #: Replaceable: start-up binds the port and answers "starting" until the daemon runs.
        self.readiness = readiness
        #: Replaceable: alive unless the daemon's scheduler or main loop died.
        self.liveness: Callable[[], bool] = lambda: True

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    if outer.liveness():
                        outer._send(self, 200, "application/json", b'{"status":"alive"}')
                    else:
                        body = b'{"status":"wedged","reason":"the scheduler or main loop died"}'
                        outer._send(self, 503, "application/json", body)
                elif self.path == "/readyz":
                    ready, detail = outer.readiness()
                    body = json.dumps({"ready": ready, **detail}, default=str).encode()
                    outer._send(self, 200 if ready else 503, "application/json", body)
                elif self.path == "/metrics":
                    outer._send(self, 200, CONTENT_TYPE_LATEST, generate_latest(registry))
                else:
                    outer._send(self, 404, "text/plain", b"not found\n")

            def log_message(self, *args: Any) -> None:
                pass  # probes every few seconds would drown the daemon's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
