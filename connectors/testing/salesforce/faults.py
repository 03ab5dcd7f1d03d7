"""Fault injection: failing, slow or dropped responses, row locks, validation errors, expiry."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Fault", "Faults"]

HTML_503 = (b"<html><head><title>Service Unavailable</title></head><body><h1>503 Service "
            b"Unavailable</h1><p>The server is temporarily unable to service your request due "
            b"to maintenance downtime or capacity problems.</p></body></html>")


@dataclass(slots=True)
class Fault:
    """One armed fault; ``remaining`` requests matching ``path_contains``/``method`` hit it."""

    kind: str  # fail, slow, drop
    remaining: int
    status: int = 503
    body: bytes = HTML_503
    content_type: str = "text/html"
    delay: float = 0.0
    path_contains: str | None = None
    method: str | None = None
    after_processing: bool = False  # drop: apply the request, then lose the response

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining > 0 and (self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path))


class Faults:
    """What the emulator should get wrong next. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._locks: dict[str, int] = {}
        self._validation: dict[str, str] = {}
        self.expire_sessions_after_calls: int | None = None

    def fail_next(self, n: int = 1, *, status: int = 503, body: bytes | str = HTML_503,
                  content_type: str | None = None, path_contains: str | None = None,
                  method: str | None = None) -> None:
        """Answer the next ``n`` matching requests with ``status`` and ``body``.

        A ``str`` body or a bytes body starting with ``[``/``{`` is sent as JSON unless
        ``content_type`` says otherwise; the default is Salesforce's HTML 503 page.
        """
        raw = body.encode() if isinstance(body, str) else body
        ctype = content_type or ("application/json;charset=UTF-8" if raw[:1] in (b"[", b"{")
                                 else "text/html")
        self._add(Fault("fail", n, status=status, body=raw, content_type=ctype,
                        path_contains=path_contains, method=method))

    def slow_next(self, n: int = 1, *, delay: float, path_contains: str | None = None,
                  method: str | None = None) -> None:
        """Delay the next ``n`` matching responses by ``delay`` seconds."""
        self._add(Fault("slow", n, delay=delay, path_contains=path_contains, method=method))

    def drop_next(self, n: int = 1, *, path_contains: str | None = None,
                  method: str | None = None, after_processing: bool = False) -> None:
        """Close the connection without answering the next ``n`` matching requests.

        With ``after_processing`` the request takes effect first (a lost response).
        """
        self._add(Fault("drop", n, path_contains=path_contains, method=method,
                        after_processing=after_processing))

    def lock_rows(self, ids: Iterable[str], attempts: int = 1) -> None:
        """Fail the next ``attempts`` updates of each id with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            for i in ids:
                self._locks[i] = attempts

    def validation_error(self, ids: Iterable[str], message: str) -> None:
        """Fail updates of ``ids`` with FIELD_CUSTOM_VALIDATION_EXCEPTION until cleared."""
        with self._lock:
            for i in ids:
                self._validation[i] = message

    def expire_sessions_after(self, calls: int) -> None:
        """Invalidate every issued token after ``calls`` more API calls."""
        with self._lock:
            self.expire_sessions_after_calls = calls

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._locks.clear()
            self._validation.clear()
            self.expire_sessions_after_calls = None

    # -- used by the server -----------------------------------------------------------------

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, method: str, path: str) -> list[Fault]:
        """Consume and return the faults (at most one per kind) that apply to this request."""
        taken: dict[str, Fault] = {}
        with self._lock:
            for f in self._faults:
                if f.kind not in taken and f.matches(method, path):
                    f.remaining -= 1
                    taken[f.kind] = f
            self._faults = [f for f in self._faults if f.remaining > 0]
        return list(taken.values())

    def take_lock(self, record_id: str) -> bool:
        with self._lock:
            left = self._locks.get(record_id, 0)
            if left <= 0:
                return False
            if left == 1:
                del self._locks[record_id]
            else:
                self._locks[record_id] = left - 1
            return True

    def validation_message(self, record_id: str) -> str | None:
        with self._lock:
            return self._validation.get(record_id)

    def count_call_for_expiry(self) -> bool:
        """Count one API call; True when sessions must expire now."""
        with self._lock:
            if self.expire_sessions_after_calls is None:
                return False
            self.expire_sessions_after_calls -= 1
            if self.expire_sessions_after_calls < 0:
                self.expire_sessions_after_calls = None
                return True
            return False
