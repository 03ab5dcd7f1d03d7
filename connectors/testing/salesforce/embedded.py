"""The Salesforce emulator as the embedded demo runs it: started, seeded, and pointed at.

Named by ``connectors.salesforce.spec.SPEC.emulator``; the daemon imports it only in embedded
mode. One call of :func:`start` serves one connector instance (two orgs: two emulators).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.registry import DemoSeed
from connectors.salesforce.config import DEFAULT_FIELDS
from connectors.testing.salesforce.seed import salesforce_record
from connectors.testing.salesforce.server import SalesforceEmulator

__all__ = ["EmbeddedSalesforce", "crm_record", "start"]

#: The status the demo's simulated rep sets by hand.
REP_STATUS = "Working - Contacted"


def crm_record(
    lead: Mapping[str, Any], fields: Mapping[str, str], status_values: Mapping[str, str]
) -> dict[str, Any]:
    """A canonical demo lead as a Lead record (API field names, Salesforce value types)."""
    return salesforce_record(lead, fields, status_values)


class EmbeddedSalesforce:
    """One seeded emulator; ``server`` is the :class:`SalesforceEmulator` itself."""

    def __init__(
        self, server: SalesforceEmulator, lead_ids: list[str], campaigns: dict[str, str]
    ) -> None:
        self.server = server
        self.url = server.base_url
        self.lead_ids = lead_ids
        self._campaigns = campaigns

    def connector_overrides(self) -> dict[str, Any]:
        emu = self.server
        return {
            "instance_url": emu.base_url,
            "token_url": emu.token_url,
            "auth": {
                "type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
            },
            "ca_bundle": emu.ca_pem_path,
            "newsletters": dict(self._campaigns),
        }

    def set_status_by_hand(self, lead_id: str) -> str | None:
        lead = self.server.lead(lead_id)
        if lead.get("IsConverted") or lead.get("Status") == REP_STATUS:
            return None  # a converted lead cannot be edited; setting the same value is no edit
        self.server.update_lead(lead_id, {"Status": REP_STATUS})
        return REP_STATUS

    def stop(self) -> None:
        self.server.stop()


def start(seed: DemoSeed) -> EmbeddedSalesforce:
    """Start an emulator on loopback (HTTPS, a CA minted now) holding the demo leads."""
    emu = SalesforceEmulator().start()
    try:
        fields = {**DEFAULT_FIELDS, **seed.fields}
        # Each demo lead was last modified when its status was set, so the time-based rules
        # (SAL follow-up, cold nurture) have leads to act on in the first cycle.
        ids = [
            emu.add_leads(
                [crm_record(lead, fields, seed.status_values)], modstamp=seed.modified_at(lead)
            )[0]
            for lead in seed.leads
        ]
        campaigns = {n: emu.add_campaign(n.title()) for n in seed.newsletters}
    except BaseException:
        emu.stop()
        raise
    return EmbeddedSalesforce(emu, ids, campaigns)
