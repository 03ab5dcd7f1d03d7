"""The one duration grammar of syncd: rule files (``older_than``/``within``) and the config file.

A duration is a number followed by a unit: ``30s``, ``15m``, ``48h``, ``90d``, ``2w`` (the number
may have a fraction: ``1.5h``; spaces around the unit are allowed). The config file also takes a
plain number of seconds (:func:`parse_duration_setting`). Every duration is bounded by
:data:`MAX_DURATION`: rules compute ``now - duration`` and the daemon ``now + interval``, and both
must stay inside the calendar ``datetime`` can represent, so an absurd value is a located error
at load time, never an ``OverflowError`` later.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = [
    "DURATION_HINT",
    "MAX_DURATION",
    "DurationError",
    "parse_duration",
    "parse_duration_setting",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: The longest duration accepted anywhere (about 1000 years).
MAX_DURATION = timedelta(days=365_000)

#: Appended to every "not a duration" message.
DURATION_HINT = (
    "use a number followed by m, h, d or w, or s for seconds (e.g. 15m, 48h, 90d, 2w, 30s)"
)


class DurationError(ValueError):
    """A value that is not a duration, or is out of range; ``str()`` is the admin's message."""


def parse_duration(text: str) -> timedelta:
    """Parse ``"<number><unit>"``, unit s(econds), m(inutes), h(ours), d(ays) or w(eeks).

    Raises:
        DurationError: ``text`` is not a duration, or is longer than :data:`MAX_DURATION`.
    """
    match = _DURATION.match(text)
    if match is None:
        raise DurationError(f"'{text}' is not a duration; {DURATION_HINT}")
    amount, unit = match.group(1), _UNIT_SECONDS[match.group(2)]
    if "." in amount:
        return _bounded(float(amount) * unit, text)
    return _bounded(int(amount) * unit, text)


def parse_duration_setting(value: object) -> timedelta:
    """A config duration: the text grammar of :func:`parse_duration`, a number of seconds, or a
    ``timedelta`` (a default).

    Raises:
        DurationError: not a duration, negative, not finite or longer than :data:`MAX_DURATION`.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise DurationError(
                f"'{value}' is not a duration; {DURATION_HINT}, or a plain number of seconds"
            )
        if value < 0:
            raise DurationError(f"a duration cannot be negative (got {value} seconds)")
        return _bounded(value, str(value))
    if not isinstance(value, str):
        raise DurationError(
            f"'{value}' is not a duration; {DURATION_HINT}, or a plain number of seconds"
        )
    return parse_duration(value)


def _bounded(seconds: float, text: str) -> timedelta:
    # Compared as a number first: timedelta() itself raises OverflowError past ~2.7 million
    # years, and ``now - duration`` fails long before that.
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(
            f"'{text.strip()}' is too long: a duration may be at most "
            f"{MAX_DURATION.days}d (about 1000 years)"
        )
    return timedelta(seconds=seconds)
