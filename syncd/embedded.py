"""The embedded default: both CRMs as loopback emulators, seeded with demo leads.

``make run`` needs no credentials and no network: this module starts the Salesforce emulator
(HTTPS with a CA minted at start) and the HubSpot emulator (HTTP), seeds the same realistic demo
leads into each, creates the newsletter campaign/list, and hands the connectors the URLs,
credentials and CA that production config would otherwise supply. With ``rep_activity`` on, a
simulated rep changes a few statuses by hand before each cycle, so the demo shows syncd leaving
hand-set statuses alone.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.settings import Settings

__all__ = ["EmbeddedCRMs"]

log = logging.getLogger("syncd.embedded")

NEWSLETTERS = ("newsletter", "webinar")
_REP_STATUSES = {"salesforce": "Working - Contacted", "hubspot": "IN_PROGRESS"}


def default_field_map(name: str) -> dict[str, str]:
    """The connector's default canonical -> CRM field mapping."""
    if name == "salesforce":
        from connectors.salesforce.config import SalesforceConfig as model
    else:
        from connectors.hubspot.config import HubSpotConfig as model
    return dict(model.model_fields["fields"].get_default(call_default_factory=True))


def to_crm_record(name: str, lead: Mapping[str, Any], fields: Mapping[str, str],
                  status_values: Mapping[str, str]) -> dict[str, Any]:
    """A canonical demo lead in the CRM's own field names and value formats.

    The emulators' seeding functions do the encoding, so the demo, the tests and the benchmarks
    seed exactly alike (HubSpot values through the connector's own ``format_value``).
    """
    if name == "salesforce":
        from connectors.testing.salesforce.seed import salesforce_record

        return salesforce_record(lead, fields, status_values)
    from connectors.testing.hubspot.seed import hubspot_properties

    return dict(hubspot_properties(lead, fields, status_values))


def _last_modified(lead: Mapping[str, Any]) -> datetime:
    stamp = lead.get("_status_changed_at") or lead.get("created_at") or datetime.now(UTC)
    return stamp.replace(microsecond=0)


class EmbeddedCRMs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.salesforce: Any = None
        self.hubspot: Any = None
        self._overrides: dict[str, dict[str, Any]] = {}
        self._ids: dict[str, list[str]] = {}
        self._random = random.Random(settings.embedded.seed + 1)
        self._cycles_seen: set[str] = set()

    @classmethod
    def start(cls, settings: Settings) -> EmbeddedCRMs:
        crms = cls(settings)
        try:
            crms._start()
        except BaseException:
            crms.stop()
            raise
        return crms

    def _start(self) -> None:
        from connectors.testing.leads import generate_leads

        cfg = self.settings.embedded
        leads = generate_leads(cfg.leads, seed=cfg.seed, now=datetime.now(UTC))
        connectors = self.settings.connectors()
        if "salesforce" in connectors:
            from connectors.testing.salesforce import SalesforceEmulator

            emu = self.salesforce = SalesforceEmulator().start()
            fields = {**default_field_map("salesforce"),
                      **connectors["salesforce"].connector.get("fields", {})}
            values = connectors["salesforce"].status_values
            # Each demo lead was last modified when its status was set, so the time-based rules
            # (SAL follow-up, cold nurture) have leads to act on in the first cycle.
            self._ids["salesforce"] = [
                emu.add_leads([to_crm_record("salesforce", lead, fields, values)],
                              modstamp=_last_modified(lead))[0] for lead in leads]
            campaigns = {n: emu.add_campaign(n.title()) for n in NEWSLETTERS}
            self._overrides["salesforce"] = {
                "instance_url": emu.base_url, "token_url": emu.token_url,
                "auth": {"type": "client_credentials", "client_id": emu.client_id,
                         "client_secret": emu.client_secret},
                "ca_bundle": emu.ca_pem_path, "newsletters": campaigns}
            log.info("embedded Salesforce emulator on %s with %d leads", emu.base_url, len(leads))
        if "hubspot" in connectors:
            from connectors.testing.hubspot import EmulatorConfig, HubSpotEmulator
            from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES

            fields = {**default_field_map("hubspot"),
                      **connectors["hubspot"].connector.get("fields", {})}
            values = connectors["hubspot"].status_values
            # The demo portal already tracks the statuses its seeded contacts carry (MQL, SAL,
            # ...); the ones only rules write (NURTURE, ARCHIVED) are added by syncd's preflight
            # when allow_add_status_options is on, merged with the existing options.
            seeded = {values.get(lead["status"], lead["status"]) for lead in leads
                      if lead.get("status")}
            config = EmulatorConfig(extra_status_options=sorted(seeded - set(
                DEFAULT_LEAD_STATUSES)))
            hs = self.hubspot = HubSpotEmulator(config).start()
            self._ids["hubspot"] = hs.add_contacts(
                {**to_crm_record("hubspot", lead, fields, values),
                 "lastmodifieddate": _last_modified(lead)} for lead in leads)
            lists = {n: hs.add_list(n.title(), "MANUAL") for n in NEWSLETTERS}
            self._overrides["hubspot"] = {
                "base_url": hs.base_url,
                "auth": {"type": "private_app", "access_token": hs.access_token},
                "newsletters": lists}
            log.info("embedded HubSpot emulator on %s with %d contacts", hs.base_url, len(leads))

    def connector_overrides(self, name: str) -> dict[str, Any]:
        return dict(self._overrides.get(name, {}))

    def before_cycle(self, name: str) -> None:
        """A simulated rep sets a couple of statuses by hand (only with rep_activity).

        Not before the first cycle: syncd can only tell a person's edit from the status it
        first mirrored, so the demo's reps start once the mirror exists.
        """
        if not self.settings.embedded.rep_activity or not self._ids.get(name):
            return
        if name not in self._cycles_seen:
            self._cycles_seen.add(name)
            return
        for lead_id in self._random.sample(self._ids[name], k=min(2, len(self._ids[name]))):
            status = _REP_STATUSES[name]
            try:
                if name == "salesforce":
                    if self.salesforce.lead(lead_id).get("IsConverted"):
                        continue
                    self.salesforce.update_lead(lead_id, {"Status": status})
                else:
                    self.hubspot.update_contact(lead_id, {"hs_lead_status": status})
            except Exception:  # noqa: BLE001 - a demo nicety must never break a cycle
                continue
            log.info("demo rep set %s lead %s to %r by hand", name, lead_id, status)

    def stop(self) -> None:
        for emu in (self.salesforce, self.hubspot):
            if emu is not None:
                emu.stop()
        self.salesforce = self.hubspot = None

