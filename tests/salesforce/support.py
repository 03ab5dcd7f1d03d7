"""Helpers shared by the Salesforce tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests
from simple_salesforce import Salesforce

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


def token_answer(emu: SalesforceEmulator) -> requests.Response:
    """The emulator's answer to a client-credentials token request, over its TLS."""
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the emulator's CA
        return session.post(
            emu.token_url,
            verify=emu.ca_pem_path,
            timeout=5,
            data={
                "grant_type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
            },
        )


def simple_client(emu: SalesforceEmulator) -> Salesforce:
    """simple-salesforce with a client-credentials token of the emulator, over its TLS."""
    answer = token_answer(emu)
    answer.raise_for_status()
    session = requests.Session()
    session.verify = emu.ca_pem_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the emulator's CA
    return Salesforce(
        instance_url=emu.base_url,
        session_id=str(answer.json()["access_token"]),
        session=session,
        version="59.0",
    )
