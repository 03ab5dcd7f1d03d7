"""Leads as varied as a real org's: unique email domains, companies and titles.

:func:`connectors.testing.leads.generate_scale_leads` rotates through small pools (53 titles,
about 1,000 company domains), so an enricher's per-value caches always hit. A real org's mirror
does not repeat like that: most corporate domains appear once or a few times (one or two contacts
per account), titles are free text with a long tail, and values are missing or oddly written.

:func:`realistic_leads` keeps the scale generator's lifecycle mix (statuses, dates, BANT, owners
and lead sources, so the 20 rules decide in the same proportions) and replaces who the lead is:

* **Email**: about 30 % free-mail addresses (gmail dominating, then Yahoo/Outlook/Hotmail and
  their country variants, regional providers); the rest corporate, about 80 % of them on a
  domain never seen before and 20 % a colleague at a company already seen; about 2 % missing,
  1 % malformed, a few internationalised domains. Inbound B2B lead lists commonly carry a
  quarter to a third of free-mail addresses; 30 % is an assumption, not a measured share.
* **Company**: a unique name derived from the domain's brand; free-mail leads often leave it
  empty or write something personal ("Self-employed", "-").
* **Title**: built from seniority and function words in varied order and languages (English,
  German, French, Spanish), with specialisations, regions, levels and separators, in mixed case;
  about 8 % missing and some without any rank or function word. Nearly every title is unique.
* **Names**: a mix of ASCII and non-ASCII given and family names.
* **Firmographics**: industry, country and employee counts spelt many ways (``USA``,
  ``United States``, ``COMPUTER_SOFTWARE``), about a fifth missing; employees a long-tailed
  integer (the CRMs' field type).

Seeded and deterministic: the same ``seed`` and ``now`` give the same leads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

__all__ = ["realistic_leads"]

_FREE_MAIL_SHARE = 0.30
_REPEAT_COMPANY_SHARE = 0.20  # corporate leads at a company already seen (a colleague)
_MISSING_EMAIL, _MALFORMED_EMAIL = 0.02, 0.01
_MISSING_TITLE = 0.08

# (provider, weight): gmail dominates consumer mail everywhere.
_FREE_PROVIDERS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 55),
    ("yahoo.com", 8),
    ("hotmail.com", 6),
    ("outlook.com", 6),
    ("icloud.com", 4),
    ("aol.com", 2),
    ("yahoo.co.uk", 2),
    ("hotmail.fr", 2),
    ("gmx.de", 2),
    ("gmx.at", 1),
    ("web.de", 2),
    ("live.com", 1),
    ("outlook.de", 1),
    ("yahoo.com.br", 1),
    ("proton.me", 1),
    ("protonmail.com", 1),
    ("orange.fr", 1),
    ("libero.it", 1),
    ("mail.ru", 1),
    ("qq.com", 1),
    ("t-online.de", 1),
)
_FREE_NAMES = tuple(p for p, _ in _FREE_PROVIDERS)
_FREE_WEIGHTS = tuple(w for _, w in _FREE_PROVIDERS)

_SYLLABLES = (
    "ab", "ac", "al", "an", "ar", "as", "at", "ba", "be", "bi", "bo", "ca", "ce", "ci", "co",
    "da", "de", "di", "do", "du", "el", "en", "er", "es", "fa", "fi", "fo", "ga", "ge", "go",
    "ha", "he", "hi", "ka", "ki", "ko", "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo",
    "na", "ne", "ni", "no", "nu", "or", "pa", "pe", "pi", "po", "qu", "ra", "re", "ri", "ro",
    "sa", "se", "si", "so", "ta", "te", "ti", "to", "tu", "va", "ve", "vi", "vo", "xa", "ya",
    "za", "ze", "zo", "tr", "st", "br", "kr", "pl", "gr", "fl", "sh", "th", "ch",
)  # fmt: skip
_BRAND_TAILS = (
    "", "", "", "ly", "io", "ify", "labs", "hq", "tech", "soft", "data", "works", "group",
    "systems", "cloud", "health", "bank", "media", "logistics", "energy", "foods", "consulting",
)  # fmt: skip
_TLDS: tuple[tuple[str, int], ...] = (
    ("com", 50),
    ("io", 6),
    ("co", 3),
    ("net", 3),
    ("ai", 2),
    ("de", 6),
    ("co.uk", 5),
    ("fr", 3),
    ("nl", 2),
    ("es", 2),
    ("it", 2),
    ("com.au", 2),
    ("ca", 2),
    ("ch", 1),
    ("at", 1),
    ("se", 1),
    ("com.br", 2),
    ("in", 2),
    ("co.jp", 1),
    ("org", 2),
)
_TLD_NAMES = tuple(t for t, _ in _TLDS)
_TLD_WEIGHTS = tuple(w for _, w in _TLDS)
_IDN_BRANDS = ("münchen-bau", "zürich-daten", "café-système", "españa-ventas", "øresund-tek")
_LEGAL = ("Inc.", "LLC", "Ltd", "GmbH", "SAS", "B.V.", "AG", "S.L.", "Pty Ltd", "Corp.", "")

_GIVEN = (
    "Emma", "Liam", "Olivia", "Noah", "Sofía", "Mateo", "Zoë", "Jürgen", "Åsa", "Søren",
    "François", "Chloé", "José", "Łukasz", "Małgorzata", "Siobhán", "Nikolaï", "Ana", "Wei",
    "Yūki", "Priya", "Arjun", "Fatima", "Oluwaseun", "Dmitri", "Ingrid", "Björn", "Élodie",
    "Raúl", "Ngozi", "Hana", "Kenji", "Aoife", "Thandiwe", "Mehmet", "Ayşe", "Giulia",
    "Marco", "Sarah", "James", "Maria", "David", "Laura", "Michael", "Anna", "Daniel",
)  # fmt: skip
_FAMILY = (
    "Smith", "Müller", "García", "Núñez", "O'Brien", "Lefèvre", "Kowalski", "Nowak",
    "Jørgensen", "Østergaard", "Schäfer", "Dubois", "Rossi", "Tanaka", "Kim", "Nguyen",
    "Patel", "Okafor", "Ivanova", "Van der Berg", "da Silva", "MacLeod", "Żuławski",
    "Çelik", "Björklund", "Hernández", "Brown", "Johnson", "Williams", "Chen", "Wang",
    "Singh", "Khan", "Moreau", "Fischer", "Weber", "Costa", "Andersson", "Lindqvist",
)  # fmt: skip

# Titles: a rank, a function, optional specialisation/region/level, put together in several
# orders; words in German, French and Spanish beside English, as international orgs see them.
_RANKS = (
    ("", 18),
    ("Senior", 8),
    ("Sr.", 4),
    ("Junior", 3),
    ("Lead", 3),
    ("Principal", 2),
    ("Staff", 1),
    ("Associate", 2),
    ("Assistant", 1),
)
_RANK_NAMES = tuple(r for r, _ in _RANKS)
_RANK_WEIGHTS = tuple(w for _, w in _RANKS)
_FUNCTIONS = (
    "Marketing", "Sales", "Demand Generation", "Growth", "Revenue Operations", "RevOps",
    "Sales Operations", "Marketing Operations", "Business Development", "IT", "Information Security",
    "Engineering", "Software Engineering", "Data", "Analytics",
    "Finance", "Accounting", "HR", "People", "Talent Acquisition", "Customer Success",
    "Customer Support", "Product", "Product Marketing", "Operations", "Supply Chain",
    "Procurement", "Legal", "Compliance", "Brand", "Content", "Communications", "Partnerships",
    "Channel Sales", "Field Marketing", "Digital Marketing", "E-commerce", "Research",
    "Design", "UX", "Security", "Infrastructure", "DevOps", "Strategy", "Facilities",
)  # fmt: skip
_ROLE_NOUNS = (
    "Manager", "Director", "Specialist", "Analyst", "Engineer", "Coordinator", "Consultant",
    "Lead", "Associate", "Representative", "Strategist", "Administrator", "Architect",
    "Executive", "Officer", "Partner", "Advisor", "Generalist", "Developer", "Designer",
)  # fmt: skip
_EXEC_PATTERNS = (
    "VP {f}", "VP of {f}", "Vice President, {f}", "SVP {f}", "EVP, {f}", "Head of {f}",
    "{f} Director", "Director of {f}", "Director, {f}", "Chief {f} Officer", "{f} VP",
    "Global Head of {f}", "AVP {f}", "Associate Director, {f}", "Managing Director",
    "Founder", "Co-Founder & CEO", "CEO", "CFO", "CTO", "COO", "CMO", "CRO", "CIO",
    "President", "Owner", "General Manager", "Chief of Staff", "General Counsel",
)  # fmt: skip
_FOREIGN = (
    "Leiter {g}", "Leiterin {g}", "Head of {g}", "Geschäftsführer", "Geschäftsführerin",
    "Teamleiter {g}", "Referent {g}", "Sachbearbeiterin {g}", "Mitarbeiter {g}",
    "Responsable {fr}", "Directeur {fr}", "Directrice {fr}", "Chef de projet {fr}",
    "Ingénieur {fr}", "Directeur Général", "PDG", "Gerente de {es}", "Jefe de {es}",
    "Directora de {es}", "Analista de {es}", "Ingeniero de {es}", "Gerente General",
)  # fmt: skip
_GERMAN = ("Vertrieb", "Marketing", "IT", "Finanzen", "Einkauf", "Personal", "Controlling")
_FRENCH = ("commercial", "marketing", "informatique", "des opérations", "financier", "RH")
_SPANISH = ("Ventas", "Marketing", "Sistemas", "Finanzas", "Operaciones", "RRHH", "TI")
_SPECIALS = (
    "EMEA", "APAC", "DACH", "North America", "LATAM", "Nordics", "Enterprise", "Mid-Market",
    "SMB", "Public Sector", "Healthcare", "Financial Services", "Global", "Americas", "UK&I",
)  # fmt: skip
_LEVELS = ("I", "II", "III", "IV", "2", "3")
_ODD = (
    "Student", "PhD Candidate", "Graduate Student", "Intern", "Marketing Intern", "Freelancer",
    "Consultant", "Retired", "Self-employed", "Entrepreneur", "Teacher", "Professor",
    "Growth Hacker", "Evangelist", "Ninja", "Rockstar Developer", "Investor", "Board Member",
    "Office Manager", "Executive Assistant to the CEO", "Receptionist", "Bookkeeper",
    "Paralegal", "Nurse", "Physician", "Pharmacist", "Student Ambassador", "Volunteer", "-",
    "n/a", "Mr.", "Other", "Employee", "Team Member", "Owner/Operator",
)  # fmt: skip

_INDUSTRIES = (
    "Software", "Computer Software", "COMPUTER_SOFTWARE", "Information Technology & Services",
    "Information Technology and Services", "Technology", "SaaS", "Internet",
    "Financial Services", "Banking", "Marketing & Advertising", "Telecommunications",
    "Consulting", "Management Consulting", "Retail", "Manufacturing", "Healthcare",
    "Hospital & Health Care", "Education", "Higher Education", "Construction", "Hospitality",
    "Government", "Non-profit", "Insurance", "Media", "Logistics", "Energy", "Real Estate",
    "Automotive", "Pharmaceuticals", "Food & Beverages", "Legal Services",
)  # fmt: skip
_COUNTRIES = (
    "United States", "USA", "US", "U.S.", "United States of America", "us", "Canada",
    "United Kingdom", "UK", "GB", "England", "Germany", "Deutschland", "DE", "France",
    "Netherlands", "The Netherlands", "Ireland", "Sweden", "Denmark", "Norway", "Finland",
    "Australia", "New Zealand", "Switzerland", "Schweiz", "Austria", "Österreich", "Spain",
    "España", "Italy", "Brazil", "Brasil", "India", "Japan", "Singapore", "Mexico", "México",
    "Poland", "South Africa", "Israel", "UAE", "Atlantis", "Europe",
)  # fmt: skip


def _brand(rng: random.Random, serial: int) -> str:
    """A pronounceable brand, unique through its serial (base-36 tail when syllables repeat)."""
    core = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    tail = rng.choice(_BRAND_TAILS)
    # The serial in base 36 keeps every brand unique without looking like a counter.
    suffix = ""
    n = serial
    while n:
        n, d = divmod(n, 36)
        suffix += "0123456789abcdefghijklmnopqrstuvwxyz"[d]
    return f"{core}{tail}{suffix}"


def _title(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < _MISSING_TITLE:
        return None
    if roll < 0.14:
        title = rng.choice(_ODD)
    elif roll < 0.22:
        title = rng.choice(_FOREIGN).format(
            g=rng.choice(_GERMAN), fr=rng.choice(_FRENCH), es=rng.choice(_SPANISH)
        )
    elif roll < 0.45:
        title = rng.choice(_EXEC_PATTERNS).format(f=rng.choice(_FUNCTIONS))
    else:
        rank = rng.choices(_RANK_NAMES, _RANK_WEIGHTS)[0]
        function, noun = rng.choice(_FUNCTIONS), rng.choice(_ROLE_NOUNS)
        shape = rng.random()
        if shape < 0.6:
            title = f"{rank} {function} {noun}"
        elif shape < 0.8:
            title = f"{rank} {noun}, {function}"
        else:
            title = f"{rank} {noun} - {function}"
    return _decorated(rng, title)


def _decorated(rng: random.Random, title: str) -> str:
    """A region, level or employer added, and the casing and spacing people type."""
    extra = rng.random()
    if extra < 0.25:
        sep = rng.choice((", ", " - ", " | ", " (", " – "))
        title += sep + rng.choice(_SPECIALS) + (")" if sep == " (" else "")
    elif extra < 0.35:
        title += " " + rng.choice(_LEVELS)
    elif extra < 0.40:
        title += f" @ {_brand(rng, rng.randrange(1, 10**6)).capitalize()}"
    case = rng.random()
    title = " ".join(title.split())
    if case < 0.06:
        return title.upper()
    if case < 0.12:
        return title.lower()
    if case < 0.15:
        return f"  {title} "
    return title


def _employees(rng: random.Random) -> int | None:
    # An integer field in both CRMs (text such as "51-200" would be quarantined at the pull).
    if rng.random() < 0.2:
        return None
    return int(rng.lognormvariate(4.5, 1.8)) + 1


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum()) or "x"


def realistic_leads(n: int, *, seed: int, now: datetime) -> Iterator[dict[str, Any]]:
    """``n`` leads with the scale generator's lifecycle mix and a real org's variety of values.

    Args:
        n: How many leads.
        seed: Random seed; the same seed and ``now`` give the same leads.
        now: The present (timezone-aware).

    Returns:
        Leads with the keys of :data:`connectors.testing.leads.DEMO_FIELDS`.
    """
    from connectors.testing.leads import generate_scale_leads

    rng = random.Random(seed)
    # (domain, company name, industry, country, employees) of the companies seen so far
    companies: list[tuple[str, str | None, str | None, str | None, int | None]] = []
    for i, lead in enumerate(generate_scale_leads(n, seed=seed, now=now)):
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        local = rng.choice(
            (
                f"{_slug(given)}.{_slug(family)}",
                f"{_slug(given)[0]}{_slug(family)}",
                f"{_slug(given)}",
                f"{_slug(given)}{_slug(family)}{rng.randint(1, 99)}",
            )
        )
        company: str | None
        firmographics = (
            rng.choice(_INDUSTRIES) if rng.random() > 0.22 else None,
            rng.choice(_COUNTRIES) if rng.random() > 0.18 else None,
            _employees(rng),
        )
        roll = rng.random()
        if roll < _FREE_MAIL_SHARE:
            domain = rng.choices(_FREE_NAMES, _FREE_WEIGHTS)[0]
            company = rng.choice((None, None, "Self-employed", "-", f"{family} Consulting"))
        elif companies and rng.random() < _REPEAT_COMPANY_SHARE:
            domain, company, *_ = seen = rng.choice(companies)
            firmographics = (seen[2], seen[3], seen[4])
        else:
            idn = rng.random() < 0.01  # an internationalised domain name now and then
            brand = f"{rng.choice(_IDN_BRANDS)}{i}" if idn else _brand(rng, i + 1)
            domain = f"{brand}.{rng.choices(_TLD_NAMES, _TLD_WEIGHTS)[0]}"
            company = f"{brand.capitalize()} {rng.choice(_LEGAL)}".strip()
            companies.append((domain, company, *firmographics))
        email: str | None = f"{local}{i}@{domain}"
        email_roll = rng.random()
        if email_roll < _MISSING_EMAIL:
            email = None
        elif email_roll < _MISSING_EMAIL + _MALFORMED_EMAIL:
            email = rng.choice((f"{local}{i}", f"{local}{i}@", f"@{domain}", f"{local}@@{domain}"))
        lead.update(
            first_name=given if rng.random() > 0.03 else None,
            last_name=family,
            email=email,
            title=_title(rng),
            company=company,
            industry=firmographics[0],
            country=firmographics[1],
            employees=firmographics[2],
        )
        yield lead
