"""Deterministic demo contacts for the standalone emulator (``--seed``)."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["demo_contacts"]

_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Dennis",
          "Radia"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen",
         "Ritchie", "Perlman"]
_TITLES = ["CEO", "VP Marketing", "Head of Sales", "Marketing Manager", "Software Engineer",
           "IT Director", "CFO", "Sales Representative", "Intern", "Operations Manager"]
_INDUSTRIES = ["Software", "Manufacturing", "Retail", "Finance", "Healthcare", "Education"]
_COUNTRIES = ["US", "DE", "FR", "GB", "NL", "SE"]
_DOMAINS = ["acme.io", "globex.com", "initech.net", "gmail.com", "umbrella.org", "hooli.com"]
_STATUSES = ["NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT", "CONNECTED", "UNQUALIFIED"]
_SOURCES = ["ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS",
            "DIRECT_TRAFFIC"]


def demo_contacts(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` plausible contacts; the same ``seed`` always gives the same contacts."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        domain = rng.choice(_DOMAINS)
        record: dict[str, Any] = {
            "email": f"{first.lower()}.{last.lower()}{i}@{domain}", "firstname": first,
            "lastname": last, "jobtitle": rng.choice(_TITLES),
            "company": domain.split(".")[0].title(), "industry": rng.choice(_INDUSTRIES),
            "country": rng.choice(_COUNTRIES), "numemployees": rng.choice([5, 40, 250, 1200, 8000]),
            "annualrevenue": rng.choice([250_000, 2_000_000, 40_000_000, 900_000_000]),
            "hs_analytics_source": rng.choice(_SOURCES), "hs_lead_status": rng.choice(_STATUSES),
        }
        for part in ("budget", "authority", "need", "timeline"):
            if rng.random() < 0.5:
                record[f"bant_{part}"] = "yes"
        out.append(record)
    return out
