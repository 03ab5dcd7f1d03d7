"""Helpers shared by the Salesforce tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.salesforce import SalesforceConfig
from connectors.testing.salesforce import SalesforceEmulator

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def config_for(emu: SalesforceEmulator, **overrides: Any) -> SalesforceConfig:
    """A connector config for ``emu``: zero lag/overlap and instant retries unless overridden."""
    values: dict[str, Any] = {
        "instance_url": emu.base_url,
        "token_url": emu.token_url,
        "auth": {
            "type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        "ca_bundle": emu.ca_pem_path,
        "timeout_seconds": 5,
        "overlap_seconds": 0,
        "lag_seconds": 0,
        "retry": {"attempts": 3, "initial_backoff_seconds": 0, "jitter_seconds": 0},
    }
    values.update(overrides)
    return SalesforceConfig.model_validate(values)


def lead(i: int, **fields: Any) -> dict[str, Any]:
    """A minimal valid Lead in API field names."""
    return {"LastName": f"Lead{i}", "Company": f"Co{i}", "Email": f"l{i}@example.com", **fields}
