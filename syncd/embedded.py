"""The embedded default: every configured CRM as a loopback emulator, seeded with demo leads.

``make run`` needs no credentials and no network: this module starts one emulator per connector
instance whose type has one (the spec names it in :mod:`connectors.registry`; two Salesforce
orgs get two emulators), seeds the same realistic demo leads into each, creates the newsletter
campaigns/lists, and hands each connector the URLs, credentials and CA that production config
would otherwise supply. With ``rep_activity`` on, a simulated rep changes a few statuses by hand
before each cycle, so the demo shows syncd leaving hand-set statuses alone.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.registry import ConnectorTypeError, DemoSeed, EmbeddedEmulator
from syncd.app import StartupError, connector_spec
from syncd.settings import Settings

__all__ = ["NEWSLETTERS", "EmbeddedCRMs"]

log = logging.getLogger("syncd.embedded")

NEWSLETTERS = ("newsletter", "webinar")


def _last_modified(lead: Mapping[str, Any]) -> datetime:
    stamp = lead.get("_status_changed_at") or lead.get("created_at") or datetime.now(UTC)
    return stamp.replace(microsecond=0)


class EmbeddedCRMs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The running emulators by connector instance name.
        self.emulators: dict[str, EmbeddedEmulator] = {}
        self._random = random.Random(settings.embedded.seed + 1)

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
        for name, cs in self.settings.connectors().items():
            spec = connector_spec(self.settings, name, cs)
            try:
                start = spec.load_emulator()
            except ConnectorTypeError as exc:
                hint = (
                    "the emulators come with the 'emulators' extra: pip install 'syncd[emulators]'"
                )
                raise StartupError([f"embedded: {exc} ({hint})"]) from None
            if start is None:
                log.warning(
                    "%s: connector type %s has no emulator; it talks to the configured %s",
                    name,
                    cs.type,
                    spec.title,
                )
                continue
            emu = self.emulators[name] = start(
                DemoSeed(
                    leads=leads,
                    fields=dict(cs.connector.get("fields", {})),
                    status_values=cs.status_values,
                    newsletters=NEWSLETTERS,
                    modified_at=_last_modified,
                )
            )
            log.info(
                "embedded %s emulator for %s on %s with %d leads",
                spec.title,
                name,
                emu.url,
                len(emu.lead_ids),
            )

    def server(self, name: str) -> Any:
        """The emulator server of instance ``name`` (tests add leads and read its journal)."""
        return self.emulators[name].server

    # The single-instance configs' emulators, by their instance names (tests and the demo).
    @property
    def salesforce(self) -> Any:
        return self.server("salesforce") if "salesforce" in self.emulators else None

    @property
    def hubspot(self) -> Any:
        return self.server("hubspot") if "hubspot" in self.emulators else None

    def connector_overrides(self, name: str) -> dict[str, Any]:
        emu = self.emulators.get(name)
        return emu.connector_overrides() if emu is not None else {}

    def after_cycle(self, name: str) -> None:
        """A simulated rep sets a couple of statuses by hand (only with rep_activity).

        After a cycle: syncd can only tell a person's edit from the status it first mirrored,
        so the demo's reps start once the mirror exists; and an edit made right before a cycle
        would be newer than the connector's read lag (Salesforce ``lag_seconds``) and show up
        only a cycle later, while the log already announced it.
        """
        emu = self.emulators.get(name)
        if not self.settings.embedded.rep_activity or emu is None or not emu.lead_ids:
            return
        # Two real edits: a lead already showing the rep's status (or converted) is skipped,
        # so every edit the log announces is one syncd then holds.
        edits = 0
        for lead_id in self._random.sample(emu.lead_ids, k=min(10, len(emu.lead_ids))):
            try:
                status = emu.set_status_by_hand(lead_id)
            except Exception:  # noqa: BLE001 - a demo nicety must never break a cycle
                continue
            if status is not None:
                log.info("demo rep set %s lead %s to %r by hand", name, lead_id, status)
                edits += 1
                if edits == 2:
                    return

    def stop(self) -> None:
        for emu in self.emulators.values():
            emu.stop()
        self.emulators.clear()
