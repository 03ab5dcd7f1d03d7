"""Alerts people act on: plain webhooks (a JSON POST with a timeout) per channel.

Events, each sent only to the channels that list it (``alerts.channels[].events``):

* ``sla_breach``: a digest per owner of the SAL leads newly past the follow-up SLA; each breach
  is sent once per channel (remembered in the ``meta`` table), not once per cycle;
* ``acceptance_below_target``: the sales acceptance rate of a CRM is under
  ``report.acceptance_target``;
* ``breaker_tripped``: a run stopped by the change breaker (once per run);
* ``writes_failing``: a cycle's writes were refused by the CRM;
* ``no_leader``: nobody has held a connector's lease for ``alerts.no_leader_after``
  (``syncd.leader_watch``, run by every replica, standbys included); a short message says when a
  leader holds it again.

Conditions (acceptance, writes failing, no leader) are sent when they start and again after
``alerts.repeat_after`` while they last; a cycle without them clears them. Each channel sends at
most ``max_per_hour`` messages an hour; what waits is sent by a later cycle (SLA breaches are
only remembered once sent). A failure to notify is logged (naming the channel, never its URL,
which holds a token) and counted in ``syncd_alerts_failed_total``; it never fails a cycle.
Payloads carry CRM names, lead ids, owners and numbers: never settings or secrets.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from syncd.report import OpenBreach, Report
from syncd.settings import AlertChannelSettings, AlertEvent, AlertSettings

__all__ = ["Alerter", "MetaStore"]

log = logging.getLogger("syncd.alerts")


class MetaStore(Protocol):
    """The ``meta`` table's two calls (``syncd.state.StateStore``)."""

    def get_meta(self, key: str) -> Any: ...
    def set_meta(self, key: str, value: Any) -> None: ...


class CycleLike(Protocol):
    crm: str
    run_id: str
    outcome: str
    failed: int
    written: int
    planned: int


#: After a failed POST a channel is not tried again for this long: a dead webhook costs one
#: timeout per cycle, not one per owner's digest.
_BACKOFF_SECONDS = 60.0


@dataclass
class _Channel:
    settings: AlertChannelSettings
    sent: deque[float]
    down_until: float = 0.0


class Alerter:
    def __init__(
        self,
        settings: AlertSettings,
        meta: MetaStore,
        *,
        on_failure: Callable[[str], None] = lambda channel: None,
        on_sent: Callable[[str, str], None] = lambda channel, event: None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.meta = meta
        self.on_failure = on_failure
        self.on_sent = on_sent
        self.clock = clock
        self.now = now
        self.channels = [_Channel(c, deque()) for c in settings.channels]

    def after_cycle(self, cycle: CycleLike, funnel: Report | None) -> None:
        """Everything a finished cycle (and the CRM's funnel KPIs, when computed) calls for."""
        crm = cycle.crm
        if funnel is not None:
            self._sla(crm, funnel.open_breaches)
            below = funnel.acceptance_below_target
            self._condition(
                "acceptance_below_target",
                crm,
                below,
                {
                    "crm": crm,
                    "acceptance_rate": funnel.acceptance_rate,
                    "target": funnel.acceptance_target,
                    "definition": funnel.acceptance,
                    "text": f"{crm}: sales acceptance rate "
                    f"{(funnel.acceptance_rate or 0) * 100:.1f} % is under the target "
                    f"{funnel.acceptance_target * 100:.0f} %",
                },
            )
        if cycle.outcome == "breaker":
            self._once(
                "breaker_tripped",
                f"{crm}:{cycle.run_id}",
                {
                    "crm": crm,
                    "run_id": cycle.run_id,
                    "planned": cycle.planned,
                    "text": f"{crm}: run {cycle.run_id} stopped by the change breaker "
                    f"({cycle.planned} changes); `syncd plan` shows them, "
                    "`syncd sync --once --approve-large-run` applies them",
                },
            )
        self._condition(
            "writes_failing",
            crm,
            cycle.failed > 0,
            {
                "crm": crm,
                "run_id": cycle.run_id,
                "failed": cycle.failed,
                "written": cycle.written,
                "text": f"{crm}: {cycle.failed} writes refused by the CRM in run "
                f"{cycle.run_id}; `syncd status` shows each lead's error",
            },
        )

    # -- events ----------------------------------------------------------------------------

    def _sla(self, crm: str, breaches: list[OpenBreach]) -> None:
        for channel in self._listening("sla_breach"):
            fresh: dict[str, list[OpenBreach]] = {}
            for b in breaches:
                if self.meta.get_meta(self._sla_key(channel, crm, b)) is None:
                    fresh.setdefault(b.owner or "(no owner)", []).append(b)
            for owner in sorted(fresh):
                items = fresh[owner]
                payload = {
                    "crm": crm,
                    "owner": owner,
                    "breaches": [
                        {
                            "lead_id": b.lead_id,
                            "sal_since": b.since.isoformat(),
                            "age_business_hours": b.age_business_hours,
                        }
                        for b in items
                    ],
                    "text": f"{crm}: {len(items)} SAL lead(s) of {owner} not followed up within "
                    f"the SLA: " + ", ".join(b.lead_id for b in items[:20]),
                }
                if self._send(channel, "sla_breach", payload):
                    stamp = self.now().isoformat()
                    for b in items:
                        self.meta.set_meta(self._sla_key(channel, crm, b), stamp)

    @staticmethod
    def _sla_key(channel: _Channel, crm: str, b: OpenBreach) -> str:
        return f"alert:{channel.settings.name}:sla:{crm}:{b.lead_id}:{b.since.isoformat()}"

    def _once(self, event: AlertEvent, fingerprint: str, payload: dict[str, Any]) -> None:
        for channel in self._listening(event):
            key = f"alert:{channel.settings.name}:{event}:{fingerprint}"
            if self.meta.get_meta(key) is None and self._send(channel, event, payload):
                self.meta.set_meta(key, self.now().isoformat())

    def condition(
        self,
        event: AlertEvent,
        crm: str,
        active: bool,
        payload: dict[str, Any],
        resolved: dict[str, Any] | None = None,
    ) -> None:
        """Send ``payload`` when ``event`` starts for ``crm`` and again every ``repeat_after``
        while it lasts; when it stops after having been sent, ``resolved`` (if given) once.

        The state is in the ``meta`` table, so replicas sharing a store share it too."""
        self._condition(event, crm, active, payload, resolved)

    def _condition(
        self,
        event: AlertEvent,
        crm: str,
        active: bool,
        payload: dict[str, Any],
        resolved: dict[str, Any] | None = None,
    ) -> None:
        for channel in self._listening(event):
            key = f"alert:{channel.settings.name}:{event}:{crm}"
            last = self.meta.get_meta(key)
            if not active:
                if last is not None:
                    self.meta.set_meta(key, None)  # cleared: the next start is sent at once
                    if resolved is not None:  # best effort: a lost "resolved" is harmless
                        self._send(channel, event, {**resolved, "resolved": True})
                continue
            now = self.now()
            if last is not None:
                sent = datetime.fromisoformat(str(last))
                if now - sent < self.settings.repeat_after:
                    continue
            if self._send(channel, event, payload):
                self.meta.set_meta(key, now.isoformat())

    # -- delivery --------------------------------------------------------------------------

    def _listening(self, event: AlertEvent) -> list[_Channel]:
        return [c for c in self.channels if event in c.settings.events]

    def _send(self, channel: _Channel, event: str, payload: dict[str, Any]) -> bool:
        name = channel.settings.name
        clock = self.clock()
        while channel.sent and clock - channel.sent[0] >= 3600:
            channel.sent.popleft()
        if clock < channel.down_until:
            return False  # failed a moment ago: what waits is sent by a later cycle
        if len(channel.sent) >= channel.settings.max_per_hour:
            log.info("alert channel %s: %s waits (max_per_hour reached)", name, event)
            return False
        body = json.dumps({"event": event, **payload}).encode()
        try:
            # Inside the try: Request() itself refuses a URL without a scheme, with a message
            # quoting the URL, token and all.
            request = urllib.request.Request(
                channel.settings.url.get_secret_value(),
                data=body,
                headers={"Content-Type": "application/json", "User-Agent": "syncd-alerts"},
                method="POST",
            )
            with urllib.request.urlopen(
                request, timeout=channel.settings.timeout.total_seconds()
            ) as response:
                response.read(1024)
        except urllib.error.HTTPError as exc:
            return self._failed(channel, event, f"HTTP {exc.code}")
        except ValueError:  # its message would quote the URL
            return self._failed(channel, event, "the url is not an http(s) URL")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return self._failed(channel, event, f"{type(exc).__name__}: {reason}")
        channel.sent.append(clock)
        self.on_sent(name, event)
        return True

    def _failed(self, channel: _Channel, event: str, what: str) -> bool:
        # The URL is never logged: webhook URLs carry their token in the path.
        name = channel.settings.name
        log.warning(
            "alert channel %s: could not send %s (%s); retried after the next cycle",
            name,
            event,
            what,
        )
        channel.down_until = self.clock() + _BACKOFF_SECONDS
        self.on_failure(name)
        return False
