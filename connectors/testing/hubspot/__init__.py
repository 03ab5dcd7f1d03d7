"""A stateful HubSpot CRM v3 emulator on 127.0.0.1 for tests and the embedded demo.

Real clients (hubspot-api-client) talk to it over sockets; see :class:`HubSpotEmulator`.
"""

from __future__ import annotations

from connectors.testing.hubspot.clock import EmulatorClock
from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.journal import Fault, JournalEntry
from connectors.testing.hubspot.server import HubSpotEmulator

__all__ = ["DEFAULT_LEAD_STATUSES", "EmulatorClock", "EmulatorConfig", "Fault", "HubSpotEmulator",
           "JournalEntry"]
