"""How each demo lead came to its status: the past the emulators seed as the CRM's own history.

A demo lead from :func:`connectors.testing.leads.generate_leads` has a status and the time it
was set (``_status_changed_at``). Its history here is a plausible path there, in canonical
statuses, each step with who made it:

* ``import``: the lead's first status, when it was created (no transition in a CRM's history);
* ``automation``: marketing automation qualifying a lead (MQL), lead routing accepting it for a
  rep (SAL), a workflow parking it (Nurture);
* ``person``: a rep working a lead (Open, "Working - Contacted"), turning an SAL into an SQL,
  or rejecting an MQL (Unqualified, Nurture).

So the demo's first cycle has hand-worked leads a person set days ago (held, not overwritten),
the funnel has MQL -> SAL -> SQL paths, rejections and SAL leads past their SLA, and
``syncd report`` on a fresh demo shows a real funnel. The path is a function of the lead alone
(its email seeds the choices), so every emulator and every start tells the same story.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = ["Step", "status_path"]

By = Literal["import", "automation", "person"]


@dataclass(frozen=True, slots=True)
class Step:
    status: str  # canonical
    at: datetime
    by: By


# Canonical status -> the steps before it (status, who), oldest first; the lead's own status
# is the last step, made by the last element of the tuple's pair.
_PATHS: dict[str, list[tuple[tuple[tuple[str, By], ...], By]]] = {
    "New": [((), "import")],
    "MQL": [((("New", "import"),), "automation")],
    "SAL": [((("New", "import"), ("MQL", "automation")), "automation")],
    "SQL": [((("New", "import"), ("MQL", "automation"), ("SAL", "automation")), "person")],
    "Open": [((("New", "import"),), "person")],
    "Nurture": [
        ((("New", "import"), ("MQL", "automation")), "person"),  # a rep rejected the MQL
        ((("New", "import"), ("Open", "person")), "automation"),  # worked, then parked
    ],
    "Unqualified": [((("New", "import"), ("MQL", "automation")), "person")],
}

_MIN_GAP = timedelta(minutes=5)


def status_path(lead: Mapping[str, Any]) -> list[Step]:
    """The lead's status steps, oldest first; the last is its current status at
    ``_status_changed_at``. A status set when the lead was created is one ``import`` step."""
    status = str(lead.get("status") or "New")
    created: datetime = lead["created_at"]
    changed: datetime = lead.get("_status_changed_at") or created
    choices = _PATHS.get(status)
    if choices is None or changed - created < _MIN_GAP * 4:
        return [Step(status, created, "import")]
    rng = random.Random(zlib.crc32(str(lead.get("email") or lead.get("last_name")).encode()))
    before, last_by = rng.choice(choices)
    # The earlier steps spread between creation and the last change, in order.
    span = (changed - created).total_seconds()
    cuts = sorted(rng.uniform(0.05, 0.95) for _ in range(len(before) - 1))
    times = [created] + [created + timedelta(seconds=span * c) for c in cuts]
    steps = [Step(s, at, by) for (s, by), at in zip(before, times, strict=True)]
    steps.append(Step(status, changed, last_by))
    return steps
