"""A loopback HTTPS emulator of the Salesforce REST API surface syncd uses.

OAuth token grants (client credentials, JWT bearer), ``query``/``queryAll`` with paging, Lead
describe, sObject Collections update/insert, ``Sforce-Limit-Info`` and Salesforce's error
shapes, built on :mod:`connectors.testing.kit` (fault plan, request journal, clock, admin API).
Run it as a process with ``python -m connectors.testing.salesforce`` (see
:mod:`connectors.testing`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.testing.kit import EmulatorClock, FaultPlan, Journal, JournalEntry
from connectors.testing.leads import generate_scale_leads

from .config import (
    DEFAULT_LEAD_STATUSES,
    DuplicateRuleDef,
    EmulatorConfig,
    LeadStatusDef,
    RecordTypeDef,
)
from .seed import DEFAULT_STATUS_VALUES, salesforce_record
from .server import SalesforceEmulator

__all__ = [
    "DEFAULT_LEAD_STATUSES",
    "DEFAULT_STATUS_VALUES",
    "DuplicateRuleDef",
    "EmulatorClock",
    "EmulatorConfig",
    "FaultPlan",
    "Journal",
    "JournalEntry",
    "LeadStatusDef",
    "RecordTypeDef",
    "SalesforceEmulator",
    "generate_jwt_keypair",
    "salesforce_record",
    "synthetic_leads",
]


def generate_jwt_keypair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair (private PEM, public PEM) for the JWT bearer flow."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def synthetic_leads(
    count: int, *, seed: int = 0, now: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` Lead records (API field names) from the one lead generator's fast mode
    (:func:`connectors.testing.leads.generate_scale_leads`), deterministic per ``seed`` and
    ``now``; for bulk loads where each lead's own timestamps do not matter."""
    for lead in generate_scale_leads(count, seed=seed, now=now or datetime.now(UTC)):
        yield salesforce_record(lead)
