"""The HubSpot connector type, as the daemon's registry sees it (``type: hubspot``)."""

from __future__ import annotations

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.registry import ConnectorSpec

__all__ = ["SPEC"]

SPEC: ConnectorSpec[HubSpotConfig] = ConnectorSpec(
    kind="hubspot",
    title="HubSpot",
    config_model=HubSpotConfig,
    build=HubSpotConnector,
    emulator="connectors.testing.hubspot.embedded:start",
)
