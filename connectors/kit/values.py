"""Quarantine: CRM values syncd cannot parse or store are nulled and reported, never raised.

One bad value (a HubSpot ``numemployees`` of ``1e400``, a NaN revenue, a malformed date) must not
stop a whole CRM: the lead is still mirrored, the field is None, and the lead carries a
:class:`~connectors.base.FieldProblem` saying which field, what the value looked like and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from connectors.base import FieldProblem

__all__ = ["EXCERPT_CHARS", "MAX_INT", "MAX_TEXT_CHARS", "Quarantine", "text_problem"]

T = TypeVar("T")

#: Longest text kept. Salesforce's largest text field (Long/Rich Text Area) holds 131,072
#: characters (https://help.salesforce.com/s/articleView?id=sf.custom_field_types.htm); anything
#: longer is not a lead attribute a rule can use.
MAX_TEXT_CHARS = 131_072
#: Integers must fit a signed 64-bit column (PostgreSQL bigint, SQLite INTEGER).
MAX_INT = 2**63 - 1
#: How much of a bad raw value a report shows.
EXCERPT_CHARS = 40

#: What a parser may raise on bad input (OverflowError: ``int(float("1e400"))``; OSError: an
#: epoch beyond the platform's range).
_PARSE_ERRORS = (ValueError, OverflowError, TypeError, ArithmeticError, OSError)


def excerpt(raw: Any) -> str:
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def text_problem(value: str) -> str | None:
    """Why the text ``value`` cannot be stored in the mirror, or None when it can."""
    if len(value) > MAX_TEXT_CHARS:
        return f"text longer than {MAX_TEXT_CHARS:,} characters"
    if "\x00" in value:
        # PostgreSQL text and JSON cannot hold U+0000: one such value failed the page.
        return "text with a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Half of a UTF-16 surrogate pair (an emoji cut by a truncation in the CRM, which
            # counts UTF-16 units): JSON answers carry it as "\ud83d", Python decodes it, and
            # PostgreSQL's JSON refuses it, failing the page.
            return "text with half of a UTF-16 surrogate pair"
    return None


def unstorable(value: Any) -> str | None:
    """Why ``value`` cannot be stored in the mirror, or None when it can."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, int) and abs(value) > MAX_INT:
        return "number too large to store"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, (list, tuple)):
        return next((r for r in map(unstorable, value) if r), None)
    if isinstance(value, dict):
        return next((r for r in map(unstorable, value.values()) if r), None)
    return None


class Quarantine:
    """Collects the problems of one record while its values are parsed."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def reject(self, field: str, raw: Any, reason: str) -> None:
        self.problems.append(FieldProblem(field=field, excerpt=excerpt(raw), reason=reason))

    def parse(
        self, field: str, raw: Any, parser: Callable[[Any], T], *, what: str = "value"
    ) -> T | None:
        """``parser(raw)``, or None with a problem recorded when it fails or is unstorable."""
        if raw is None:
            return None
        try:
            value = parser(raw)
        except (OverflowError, OSError):
            self.reject(field, raw, f"{what} out of range")
            return None
        except _PARSE_ERRORS:
            self.reject(field, raw, f"not a valid {what}")
            return None
        return self.keep(field, raw, value)

    def keep(self, field: str, raw: Any, value: T) -> T | None:
        """``value`` if it can be stored, else None with a problem recorded."""
        reason = unstorable(value)
        if reason is None and isinstance(value, (datetime, date)) and not 1 < value.year < 9999:
            reason = "date out of range"
        if reason is not None:
            self.reject(field, raw, reason)
            return None
        return value
