"""The HubSpot emulator as the embedded demo runs it: started, seeded, and pointed at.

Named by ``connectors.hubspot.spec.SPEC.emulator``; the daemon imports it only in embedded
mode. One call of :func:`start` serves one connector instance (two portals: two emulators).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.hubspot.config import DEFAULT_FIELDS
from connectors.registry import DemoSeed
from connectors.testing.demo_history import status_path
from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.seed import hubspot_properties
from connectors.testing.hubspot.server import HubSpotEmulator

__all__ = ["EmbeddedHubSpot", "crm_record", "start"]

#: The status the demo's simulated rep sets by hand.
REP_STATUS = "IN_PROGRESS"
#: Who made a seeded status step, as HubSpot's history says it (``sourceType``).
_SOURCE = {"import": "IMPORT", "automation": "WORKFLOW", "person": "CRM_UI"}


def crm_record(
    lead: Mapping[str, Any], fields: Mapping[str, str], status_values: Mapping[str, str]
) -> dict[str, Any]:
    """A canonical demo lead as contact properties, encoded as the connector parses them."""
    return dict(hubspot_properties(lead, fields, status_values))


class EmbeddedHubSpot:
    """One seeded emulator; ``server`` is the :class:`HubSpotEmulator` itself."""

    def __init__(self, server: HubSpotEmulator, lead_ids: list[str], lists: dict[str, str]) -> None:
        self.server = server
        self.url = server.base_url
        self.lead_ids = lead_ids
        self._lists = lists

    def connector_overrides(self) -> dict[str, Any]:
        return {
            "base_url": self.server.base_url,
            "auth": {"type": "private_app", "access_token": self.server.access_token},
            "newsletters": dict(self._lists),
        }

    def set_status_by_hand(self, lead_id: str) -> str | None:
        if self.server.contact(lead_id).get("hs_lead_status") == REP_STATUS:
            return None  # setting the same value is no edit
        self.server.update_contact(lead_id, {"hs_lead_status": REP_STATUS})
        return REP_STATUS

    def stop(self) -> None:
        self.server.stop()


def start(seed: DemoSeed) -> EmbeddedHubSpot:
    """Start an emulator on loopback (HTTP) holding the demo leads as contacts."""
    fields = {**DEFAULT_FIELDS, **seed.fields}
    # The demo portal already tracks the statuses its seeded contacts carry (MQL, SAL, ...);
    # the ones only rules write (NURTURE, ARCHIVED) are added by syncd's preflight when
    # allow_add_status_options is on, merged with the existing options.
    seeded = {
        seed.status_values.get(lead["status"], lead["status"])
        for lead in seed.leads
        if lead.get("status")
    }
    config = EmulatorConfig(extra_status_options=sorted(seeded - set(DEFAULT_LEAD_STATUSES)))
    emu = HubSpotEmulator(config).start()
    try:
        ids = emu.add_contacts(
            {
                **crm_record(lead, fields, seed.status_values),
                "lastmodifieddate": seed.modified_at(lead),
            }
            for lead in seed.leads
        )
        prop = fields.get("status")
        if prop is not None:
            for contact_id, lead in zip(ids, seed.leads, strict=True):
                # How it got there (connectors.testing.demo_history): a person's CRM_UI edits,
                # workflows, the import; the emulator answers the newest 20 as HubSpot would.
                emu.set_history(
                    contact_id,
                    prop,
                    [
                        (seed.status_values.get(s.status, s.status), s.at, _SOURCE[s.by])
                        for s in status_path(lead)
                    ],
                )
        lists = {n: emu.add_list(n.title(), "MANUAL") for n in seed.newsletters}
    except BaseException:
        emu.stop()
        raise
    return EmbeddedHubSpot(emu, ids, lists)
