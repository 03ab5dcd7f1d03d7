"""The fault plan every emulator consults: seeded random faults by rate, and scripted ones.

Kinds (:data:`FAULT_KINDS`); each emulator answers them the way its real API does:

``429``
    the CRM's rate-limit refusal (HubSpot 429 with ``policyName``; Salesforce has no 429 and
    refuses with 403 ``REQUEST_LIMIT_EXCEEDED``).
``503``
    an HTML "Service Unavailable" page.
``401``
    the session/token expires now (Salesforce ``INVALID_SESSION_ID``; HubSpot
    ``EXPIRED_AUTHENTICATION``, OAuth tokens only), so the client must re-authenticate.
``lock``
    ``UNABLE_TO_LOCK_ROW`` for some records of a Salesforce sObject Collections update.
``partial``
    a HubSpot batch update answered 207: some inputs fail (not applied), the rest apply.
``drop-before``
    the connection closes before the request is applied (nothing happened).
``drop-after``
    the request is applied and journaled as applied, then the connection closes (response lost).
``slow``
    the response comes ``slow_seconds`` late (within a client's timeout).
``timeout``
    the request is applied, then the answer is held ``timeout_seconds`` (beyond a client's
    timeout): the client gives up on a write that happened.

A fault never corrupts state: a request is either not applied at all or applied whole, exactly
as it would have been without the fault (``lock`` and ``partial`` refuse records, which is a
valid answer the real API gives).

Scripted faults (:meth:`FaultPlan.script` and the ``*_next`` helpers) hit the next matching
requests first; random faults hit each other request with the route's rate (the first
``routes`` pattern found in the path, else ``rate``), drawing a kind the route can produce from
``kinds`` with a generator seeded by ``seed``.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["FAULT_KINDS", "HTML_503", "Fault", "FaultPlan"]

T = TypeVar("T")

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "503",
    "401",
    "lock",
    "partial",
    "drop-before",
    "drop-after",
    "slow",
    "timeout",
)
#: Kinds a scripted fault may have besides :data:`FAULT_KINDS`: ``respond`` answers with a
#: given status, body and headers.
_SCRIPT_ONLY = ("respond",)

HTML_503 = (
    b"<html><head><title>Service Unavailable</title></head><body><h1>503 Service "
    b"Unavailable</h1><p>The server is temporarily unable to service your request due "
    b"to maintenance downtime or capacity problems.</p></body></html>"
)


@dataclass(slots=True)
class Fault:
    """One fault: its kind, and for scripted faults how many matching requests it hits."""

    kind: str
    count: int = 1
    path: str | None = None  # regular expression searched in the request path
    method: str | None = None
    status: int = 503  # ``respond`` only
    body: bytes | str | dict[str, Any] | list[Any] | None = None  # ``respond`` only
    headers: dict[str, str] = field(default_factory=dict)  # ``respond`` only
    content_type: str | None = None  # ``respond`` only
    delay: float | None = None  # ``slow``/``timeout``; None: the plan's default

    def matches(self, method: str, path: str) -> bool:
        return (
            self.count > 0
            and (self.method is None or self.method == method)
            and (self.path is None or re.search(self.path, path) is not None)
        )


class FaultPlan:
    """What the emulator gets wrong, and when. Thread-safe."""

    def __init__(
        self,
        *,
        rate: float = 0.0,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        slow_seconds: float = 1.0,
        timeout_seconds: float = 35.0,
    ) -> None:
        self._lock = threading.Lock()
        self._scripted: list[Fault] = []
        self._record_locks: dict[str, int] = {}
        self._lock_flows: dict[str, str] = {}
        self._validation: dict[str, str] = {}
        self._rng = random.Random(seed)
        self.seed = seed
        self.rate = 0.0
        self.kinds: tuple[str, ...] = ()
        self.routes: dict[str, float] = {}
        self.slow_seconds = slow_seconds
        self.timeout_seconds = timeout_seconds
        self.configure(rate=rate, kinds=kinds)

    # -- random faults ----------------------------------------------------------------------

    def configure(
        self,
        *,
        rate: float | None = None,
        kinds: Iterable[str] | None = None,
        seed: int | None = None,
        routes: Mapping[str, float] | None = None,
        slow_seconds: float | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """Change the random faults; arguments left None keep their value.

        Raises ValueError naming the bad value (rate outside 0..1, an unknown kind, a route
        pattern that is not a regular expression).
        """
        checked_kinds = None if kinds is None else _check_kinds(kinds)
        _check_rates(rate, routes)
        for name, delay in (("slow_seconds", slow_seconds), ("timeout_seconds", timeout_seconds)):
            if delay is not None and delay < 0:
                raise ValueError(f"{name} must be 0 or more, got {delay}")
        with self._lock:
            if rate is not None:
                self.rate = float(rate)
            if checked_kinds is not None:
                self.kinds = checked_kinds
            if routes is not None:
                self.routes = {p: float(r) for p, r in routes.items()}
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)
            if slow_seconds is not None:
                self.slow_seconds = slow_seconds
            if timeout_seconds is not None:
                self.timeout_seconds = timeout_seconds

    def describe(self) -> dict[str, Any]:
        """The plan as JSON (what ``GET /__emulator__/faults`` answers)."""
        with self._lock:
            return {
                "rate": self.rate,
                "kinds": list(self.kinds),
                "seed": self.seed,
                "routes": dict(self.routes),
                "slow_seconds": self.slow_seconds,
                "timeout_seconds": self.timeout_seconds,
                "scripted": [
                    {"kind": f.kind, "count": f.count, "path": f.path, "method": f.method}
                    for f in self._scripted
                ],
                "locked_records": dict(self._record_locks),
            }

    # -- scripted faults --------------------------------------------------------------------

    def script(
        self,
        kind: str,
        count: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Hit the next ``count`` requests matching ``path`` (regex) and ``method`` with
        ``kind`` (one of :data:`FAULT_KINDS`)."""
        [kind] = _check_kinds([kind])
        return self.add(Fault(kind, count, path=path, method=method, delay=delay))

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in FAULT_KINDS + _SCRIPT_ONLY:
            raise ValueError(
                f"unknown fault kind {fault.kind!r}; "
                f"expected one of {', '.join(FAULT_KINDS + _SCRIPT_ONLY)}"
            )
        with self._lock:
            self._scripted.append(fault)
        return fault

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Answer the next ``n`` matching requests with ``status``, ``body`` and ``headers``.

        Without a body the emulator answers in its CRM's error shape for that status (an HTML
        page for 503).
        """
        return self.add(
            Fault(
                "respond",
                n,
                path=path,
                method=method,
                status=status,
                body=body,
                headers=dict(headers or {}),
                content_type=content_type,
            )
        )

    def drop_next(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        after_applied: bool = False,
    ) -> Fault:
        """Close the connection without an answer, before (default) or after applying."""
        return self.script(
            "drop-after" if after_applied else "drop-before", n, path=path, method=method
        )

    def slow_next(
        self, n: int = 1, *, delay: float, path: str | None = None, method: str | None = None
    ) -> Fault:
        """Answer the next ``n`` matching requests ``delay`` seconds late."""
        return self.script("slow", n, path=path, method=method, delay=delay)

    def lock_rows(
        self, ids: Iterable[str], attempts: int = 1, *, in_flow: str | None = None
    ) -> None:
        """Refuse the next ``attempts`` updates of each record with UNABLE_TO_LOCK_ROW; with
        ``in_flow``, as that record-triggered flow hitting the lock on a record it updates
        reports it (Salesforce: ``CANNOT_EXECUTE_FLOW_TRIGGER`` wrapping the lock error)."""
        with self._lock:
            for i in ids:
                self._record_locks[i] = attempts
                if in_flow is None:
                    self._lock_flows.pop(i, None)
                else:
                    self._lock_flows[i] = in_flow

    def validation_error(self, ids: Iterable[str], message: str) -> None:
        """Refuse updates of ``ids`` with the org's validation rule ``message`` until cleared."""
        with self._lock:
            for i in ids:
                self._validation[i] = message

    def clear(self) -> None:
        """Forget scripted and per-record faults and turn random faults off."""
        with self._lock:
            self._scripted.clear()
            self._record_locks.clear()
            self._lock_flows.clear()
            self._validation.clear()
            self.rate = 0.0
            self.routes = {}

    # -- used by the emulators ----------------------------------------------------------------

    def decide(self, method: str, path: str, applicable: Collection[str]) -> Fault | None:
        """The fault for this request: the first matching scripted one whose kind this route
        can produce, else a random one drawn with the route's rate, else None."""
        with self._lock:
            for f in self._scripted:
                if (f.kind in applicable or f.kind in _SCRIPT_ONLY) and f.matches(method, path):
                    f.count -= 1
                    self._scripted = [s for s in self._scripted if s.count > 0]
                    return f
            rate = self.rate
            for pattern, route_rate in self.routes.items():
                if re.search(pattern, path):
                    rate = route_rate
                    break
            kinds = [k for k in self.kinds if k in applicable]
            if rate <= 0 or not kinds or self._rng.random() >= rate:
                return None
            return Fault(self._rng.choice(kinds), 0)

    def any_scripted(self, kinds: Collection[str]) -> bool:
        """Whether a scripted fault of one of ``kinds`` is waiting (a cheap look first)."""
        with self._lock:
            return any(f.kind in kinds for f in self._scripted)

    def take_scripted(self, method: str, path: str, kinds: Collection[str]) -> Fault | None:
        """The first scripted fault of one of ``kinds`` matching the request, used up by one;
        no random draw. (Salesforce Composite hoists a transport fault scripted for a
        subrequest's path onto the request carrying it.)"""
        with self._lock:
            for f in self._scripted:
                if f.kind in kinds and f.matches(method, path):
                    f.count -= 1
                    self._scripted = [s for s in self._scripted if s.count > 0]
                    return f
        return None

    def delay_of(self, fault: Fault) -> float:
        if fault.delay is not None:
            return fault.delay
        return self.timeout_seconds if fault.kind == "timeout" else self.slow_seconds

    def sample(self, items: Sequence[T], share: float = 0.3) -> list[T]:
        """A seeded random subset of ``items``: about ``share`` of them, at least one."""
        if not items:
            return []
        with self._lock:
            picked = [i for i in items if self._rng.random() < share]
            return picked or [self._rng.choice(list(items))]

    def take_lock(self, record_id: str) -> bool:
        """True (and one attempt used) when an update of ``record_id`` must hit a row lock."""
        with self._lock:
            left = self._record_locks.get(record_id, 0)
            if left <= 0:
                return False
            if left == 1:
                del self._record_locks[record_id]
            else:
                self._record_locks[record_id] = left - 1
            return True

    def lock_flow(self, record_id: str) -> str | None:
        """The flow that reports ``record_id``'s scripted row lock, if one does."""
        with self._lock:
            return self._lock_flows.get(record_id)

    def validation_message(self, record_id: str) -> str | None:
        with self._lock:
            return self._validation.get(record_id)


def _check_rates(rate: float | None, routes: Mapping[str, float] | None) -> None:
    """Raises ValueError for a rate outside 0..1 or a route pattern that does not compile."""
    for value in ([rate] if rate is not None else []) + list((routes or {}).values()):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"fault rate {value} is outside 0..1")
    for pattern in routes or {}:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"route pattern {pattern!r} is not a regular expression: {e}"
            ) from None


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    out = tuple(str(k).strip() for k in kinds if str(k).strip())
    unknown = [k for k in out if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; expected any of {', '.join(FAULT_KINDS)}"
        )
    return out
