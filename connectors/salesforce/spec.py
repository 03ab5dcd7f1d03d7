"""The Salesforce connector type, as the daemon's registry sees it (``type: salesforce``)."""

from __future__ import annotations

from connectors.registry import ConnectorSpec
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SPEC"]

SPEC: ConnectorSpec[SalesforceConfig] = ConnectorSpec(
    kind="salesforce",
    title="Salesforce",
    config_model=SalesforceConfig,
    build=SalesforceConnector,
    emulator="connectors.testing.salesforce.embedded:start",
)
