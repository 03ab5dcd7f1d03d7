"""Demo leads for the daemon: a re-export of the one lead generator,
:mod:`connectors.testing.leads` (the emulators, the embedded demo and the benchmarks share it)."""

from __future__ import annotations

from connectors.testing.leads import (
    DEMO_FIELDS,
    LEAD_SOURCES,
    STATUSES,
    generate_leads,
    generate_scale_leads,
)

__all__ = ["DEMO_FIELDS", "LEAD_SOURCES", "STATUSES", "generate_leads", "generate_scale_leads"]
