"""A stateful HubSpot CRM v3 emulator on 127.0.0.1 for tests, the embedded demo and soak runs.

Real clients (hubspot-api-client) talk to it over sockets; see :class:`HubSpotEmulator`. It is
built on :mod:`connectors.testing.kit` (fault plan, request journal, clock, admin API); run it as
a process with ``python -m connectors.testing.hubspot`` (see :mod:`connectors.testing`).
"""

from __future__ import annotations

from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.seed import DEFAULT_STATUS_VALUES, hubspot_properties
from connectors.testing.hubspot.server import HubSpotEmulator
from connectors.testing.kit import EmulatorClock, Fault, FaultPlan, Journal, JournalEntry

__all__ = [
    "DEFAULT_LEAD_STATUSES",
    "DEFAULT_STATUS_VALUES",
    "EmulatorClock",
    "EmulatorConfig",
    "Fault",
    "FaultPlan",
    "HubSpotEmulator",
    "Journal",
    "JournalEntry",
    "hubspot_properties",
]
