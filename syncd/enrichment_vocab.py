"""The words enrichment values are made of, and how a country name is read.

Shared by :mod:`syncd.enrichment` (which derives the values) and
:mod:`syncd.enrichment_settings` (which validates the ICP settings against them).
"""

from __future__ import annotations

import re

from syncd.enrichment_data import COUNTRY_ALIASES

__all__ = [
    "DECISION_MAKER_SENIORITIES",
    "NON_WORD",
    "ROLES",
    "SENIORITIES",
    "country_code",
    "normalise_label",
]

#: Functions a title maps to; ``other`` when no function word is recognised.
ROLES: tuple[str, ...] = (
    "marketing",
    "sales",
    "engineering",
    "it",
    "finance",
    "operations",
    "hr",
    "executive",
    "product",
    "customer_success",
    "legal",
    "other",
)
#: Ranks a title maps to; ``unknown`` when no rank word is recognised.
SENIORITIES: tuple[str, ...] = ("c_level", "vp", "director", "manager", "individual", "unknown")
#: Ranks that usually hold budget authority.
DECISION_MAKER_SENIORITIES: frozenset[str] = frozenset({"c_level", "vp", "director"})

#: Runs of characters that separate words in titles and labels.
NON_WORD = re.compile(r"[\W_]+")


def normalise_label(value: str) -> str:
    """``value`` in lower case, "&" read as "and", words separated by single spaces."""
    return NON_WORD.sub(" ", value.lower().replace("&", " and ")).strip()


def country_code(value: str) -> str | None:
    """The ISO code of a country name, code or alias (``"Deutschland"`` -> ``"DE"``), or ``None``."""
    return COUNTRY_ALIASES.get(normalise_label(value))
