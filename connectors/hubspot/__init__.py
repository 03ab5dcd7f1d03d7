"""HubSpot connector (hubspot-api-client over HTTP) and its emulator (:mod:`.emulator`)."""

from __future__ import annotations

from connectors.hubspot.config import DEFAULT_FIELDS, HubSpotConfig, OAuthAuth, PrivateAppAuth
from connectors.hubspot.connector import HubSpotConnector

__all__ = ["DEFAULT_FIELDS", "HubSpotConfig", "HubSpotConnector", "OAuthAuth", "PrivateAppAuth"]
