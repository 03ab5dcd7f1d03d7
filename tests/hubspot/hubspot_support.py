"""Helpers shared by the HubSpot tests (imported by name: tests/hubspot is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def contacts(n: int, **props: Any) -> list[dict[str, Any]]:
    """``n`` contacts with distinct emails plus the given properties."""
    return [
        {
            "email": f"c{i}@example.com",
            "firstname": f"C{i}",
            "lastname": "Test",
            "hs_lead_status": "NEW",
            **props,
        }
        for i in range(n)
    ]
