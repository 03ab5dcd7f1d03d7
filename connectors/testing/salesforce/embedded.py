"""The Salesforce emulator as the embedded demo runs it: started, seeded, and pointed at.

Named by ``connectors.salesforce.spec.SPEC.emulator``; the daemon imports it only in embedded
mode. One call of :func:`start` serves one connector instance (two orgs: two emulators).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.registry import DemoSeed
from connectors.salesforce.config import DEFAULT_FIELDS
from connectors.testing.demo_history import status_path
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
        ids = [_add(emu, lead, fields, seed) for lead in seed.leads]
        campaigns = {n: emu.add_campaign(n.title()) for n in seed.newsletters}
    except BaseException:
        emu.stop()
        raise
    return EmbeddedSalesforce(emu, ids, campaigns)


def _add(
    emu: SalesforceEmulator, lead: Mapping[str, Any], fields: Mapping[str, str], seed: DemoSeed
) -> str:
    """One demo lead with its past (connectors.testing.demo_history) in LeadHistory.

    Salesforce records a Status change with the user who made it, whether a rep or a flow (a
    flow runs as a user), so only a person's changes are replayed as edits after creation: the
    lead is created in the status automation gave it (routing sets it on insert, which adds
    no Status row), then each later step is an edit by the demo's rep at its time. syncd takes
    every user but its own for a person on Salesforce; replaying automation as edits would
    have it hold leads no person touched."""
    path = status_path(lead)
    first_person = next((i for i, s in enumerate(path) if s.by == "person"), None)
    record = crm_record(lead, fields, seed.status_values)
    api = fields.get("status")
    if first_person is None or first_person == 0 or api is None:
        return emu.add_leads([record], modstamp=seed.modified_at(lead))[0]
    start = path[first_person - 1]
    record[api] = seed.status_values.get(start.status, start.status)
    lead_id = emu.add_leads([record], modstamp=start.at.replace(microsecond=0))[0]
    for step in path[first_person:]:
        value = seed.status_values.get(step.status, step.status)
        emu.update_lead(lead_id, {api: value}, modstamp=step.at.replace(microsecond=0))
    return lead_id
