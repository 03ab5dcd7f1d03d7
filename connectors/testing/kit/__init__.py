"""What every emulator is built from: the server, the clock, the journal and the fault plan."""

from __future__ import annotations

from .clock import EmulatorClock
from .faults import FAULT_KINDS, HTML_503, Fault, FaultPlan
from .journal import Journal, JournalEntry
from .server import ADMIN_PREFIX, AdminError, EmulatorServer, Request, Response, Route

__all__ = [
    "ADMIN_PREFIX",
    "FAULT_KINDS",
    "HTML_503",
    "AdminError",
    "EmulatorClock",
    "EmulatorServer",
    "Fault",
    "FaultPlan",
    "Journal",
    "JournalEntry",
    "Request",
    "Response",
    "Route",
]
