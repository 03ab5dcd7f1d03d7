"""Durations in rule files: ``30m``, ``48h``, ``90d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DURATION_HINT", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

#: Appended to every "not a duration" message.
DURATION_HINT = "use a number followed by m, h, d or w (e.g. 30m, 48h, 90d, 2w)"


def parse_duration(text: object) -> timedelta | None:
    """Parse ``"<number><unit>"`` with unit m(inutes), h(ours), d(ays) or w(eeks).

    Returns:
        The duration, or None when ``text`` is not a duration (the caller reports it).
    """
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    if m is None:
        return None
    amount, unit = int(m.group(1)), m.group(2)
    if amount > 100_000:  # keeps now - duration inside datetime's range
        return None
    return timedelta(**{_UNITS[unit]: amount})
