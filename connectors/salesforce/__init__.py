"""Salesforce connector (simple-salesforce over HTTPS) and its loopback emulator."""

from __future__ import annotations

from .config import (
    ClientCredentialsAuth,
    JwtBearerAuth,
    RetrySettings,
    SalesforceConfig,
    SessionAuth,
)
from .connector import SalesforceConnector

__all__ = [
    "ClientCredentialsAuth",
    "JwtBearerAuth",
    "RetrySettings",
    "SalesforceConfig",
    "SalesforceConnector",
    "SessionAuth",
]
