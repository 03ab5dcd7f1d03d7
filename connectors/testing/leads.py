"""The one lead generator: synthetic canonical leads for the emulators, demo, tests, benchmarks.

Every emulator seeds its records from these canonical leads, each in its own wire format
(:func:`connectors.testing.salesforce.seed.salesforce_record`,
:func:`connectors.testing.hubspot.seed.hubspot_properties`).

:func:`generate_leads` produces realistic, varied leads in canonical field names
(:mod:`rules.fields`) with enough of every situation for the default lifecycle rules to act on:
stale open leads (no activity for more than 90 days, or never touched), clear misfits (students,
one-person companies, free-mail addresses without a title), SALs not followed up within 48 hours,
nurture leads untouched for more than 180 days, good fits with complete BANT ready to become
MQLs, and healthy leads that should be left alone (new this fortnight, SQLs, fresh SALs). With
``rules/default.yaml`` about half of 300 demo leads change on the first cycle when
``_status_changed_at`` is seeded (at most 0.57 over seeds 0..19), about 40 % when it is not.

Each lead also carries ``_status_changed_at``, when its current status was set. It is not a CRM
field (the leading underscore says so and field maps skip it); a demo that seeds syncd's mirror
can use it as ``status_changed_at``, so time-in-status rules (the SAL follow-up SLA) have leads
to act on from the first cycle instead of after 48 hours.

:func:`generate_scale_leads` trades realism for speed (simple rotations through small pools) to
feed benchmarks with a million leads.

Both are deterministic for a given ``seed`` and ``now``.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DEMO_FIELDS",
    "LEAD_SOURCES",
    "STATUSES",
    "generate_leads",
    "generate_scale_leads",
]

#: Lead sources the generators use.
LEAD_SOURCES: tuple[str, ...] = (
    "Web",
    "Webinar",
    "Trade Show",
    "Referral",
    "Content Download",
    "Paid Search",
    "Partner",
    "Social",
)
#: Statuses the generators use (canonical names; connectors map them to CRM values).
STATUSES: tuple[str, ...] = ("New", "Open", "MQL", "SAL", "SQL", "Nurture", "Unqualified")
#: Keys of every generated lead, in this order.
DEMO_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "title",
    "company",
    "industry",
    "country",
    "employees",
    "annual_revenue",
    "lead_source",
    "status",
    "created_at",
    "last_activity_at",
    "owner",
    "budget",
    "authority",
    "need",
    "timeline",
    "_status_changed_at",
)

# ------------------------------------------------------------------------------ vocabulary

_FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mateo",
    "Sophia",
    "Lucas",
    "Mia",
    "Ethan",
    "Amelia",
    "James",
    "Isabella",
    "Benjamin",
    "Charlotte",
    "Elijah",
    "Harper",
    "Oliver",
    "Aisha",
    "Mohammed",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Sven",
    "Ingrid",
    "Jörg",
    "Anaïs",
    "José",
    "Lucía",
    "Chloé",
    "François",
    "Zoë",
    "Björn",
    "Fatima",
    "Omar",
    "Kwame",
    "Amara",
    "Dmitri",
    "Olga",
    "Siobhan",
    "Declan",
    "Raj",
    "Ananya",
    "Carlos",
    "Valentina",
    "Tomasz",
    "Agnieszka",
    "Lars",
    "Freya",
    "Ngozi",
    "Chidi",
    "Sofia",
    "Daniel",
    "Grace",
    "Ryan",
)
_LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Nguyen",
    "Patel",
    "Kim",
    "Chen",
    "Wang",
    "Tanaka",
    "Sato",
    "Müller",
    "Schmidt",
    "Schneider",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Bianchi",
    "Fernández",
    "López",
    "Silva",
    "Santos",
    "Kowalski",
    "Nowak",
    "Andersson",
    "Johansson",
    "Nielsen",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Okafor",
    "Mensah",
    "Ivanova",
    "Petrov",
    "Cohen",
    "Haddad",
    "Singh",
    "Sharma",
    "Van der Berg",
    "De Vries",
    "MacLeod",
    "Khan",
    "Ali",
    "Hughes",
)
_OWNERS = (
    "Avery Chen",
    "Jordan Patel",
    "Sam Okafor",
    "Riley Novak",
    "Morgan Alvarez",
    "Casey Lindqvist",
)

_NAME_PREFIXES = (
    "North",
    "Blue",
    "Bright",
    "Iron",
    "Silver",
    "Cedar",
    "Summit",
    "Harbor",
    "Pioneer",
    "Quantum",
    "Nimbus",
    "Vertex",
    "Atlas",
    "Crescent",
    "Granite",
    "Maple",
    "Orbit",
    "Beacon",
    "Evergreen",
    "Redwood",
    "Falcon",
    "Copper",
    "Lumen",
    "Prairie",
    "Tidal",
    "Aurora",
    "Keystone",
    "Meridian",
    "Clear",
    "Swift",
)
_NAME_CORES = (
    "wind",
    "stone",
    "field",
    "bridge",
    "point",
    "wave",
    "path",
    "light",
    "forge",
    "gate",
    "ridge",
    "leaf",
    "spark",
    "line",
    "works",
    "peak",
    "shore",
    "crest",
    "grid",
    "loop",
)

# Industry values are Salesforce's default Lead.Industry picklist entries, so seeded leads are
# valid in an org that never customised it; HubSpot's industry property is free text.
_FIT_INDUSTRIES = ("Technology", "Technology", "Technology", "Telecommunications", "Consulting")
_OTHER_INDUSTRIES = (
    "Retail",
    "Manufacturing",
    "Healthcare",
    "Education",
    "Construction",
    "Hospitality",
    "Government",
    "Not For Profit",
    "Agriculture",
    "Food & Beverage",
    "Banking",
    "Insurance",
    "Media",
    "Transportation",
    "Energy",
)
_SMALL_BUSINESS_INDUSTRIES = (
    "Construction",
    "Hospitality",
    "Food & Beverage",
    "Recreation",
    "Apparel",
    "Agriculture",
)
_SECTOR_WORDS = {
    "Technology": ("Software", "Analytics", "Systems", "Labs", "Cloud", "Data"),
    "Telecommunications": ("Networks", "Telecom", "Communications"),
    "Consulting": ("Consulting", "Partners", "Advisory"),
    "Banking": ("Bank", "Capital"),
    "Insurance": ("Insurance", "Assurance"),
    "Healthcare": ("Health", "Medical", "Care"),
    "Education": ("Academy", "Learning"),
    "Manufacturing": ("Industries", "Manufacturing", "Components"),
    "Retail": ("Stores", "Goods", "Market"),
    "Construction": ("Builders", "Construction"),
    "Hospitality": ("Hotels", "Hospitality"),
    "Government": ("Agency", "Authority"),
    "Not For Profit": ("Foundation", "Trust"),
    "Agriculture": ("Farms", "Agri"),
    "Food & Beverage": ("Foods", "Kitchen", "Brewing"),
    "Media": ("Media", "Studios"),
    "Transportation": ("Logistics", "Freight"),
    "Energy": ("Energy", "Power"),
    "Recreation": ("Outdoors", "Sports"),
    "Apparel": ("Apparel", "Threads"),
}

# (country as written on the lead, top-level domain, legal suffix). Several spellings of the
# same country on purpose: enrichment must recognise them all.
_FIT_COUNTRIES = (
    ("United States", "com", "Inc."),
    ("United States", "com", "Inc."),
    ("USA", "com", "LLC"),
    ("US", "io", "Inc."),
    ("United Kingdom", "co.uk", "Ltd"),
    ("UK", "co.uk", "Ltd"),
    ("Germany", "de", "GmbH"),
    ("Canada", "ca", "Inc."),
    ("Netherlands", "nl", "B.V."),
    ("France", "fr", "SAS"),
    ("Australia", "com.au", "Pty Ltd"),
    ("Ireland", "ie", "Ltd"),
    ("Sweden", "se", "AB"),
)
_OTHER_COUNTRIES = (
    ("Brazil", "com.br", "Ltda"),
    ("India", "in", "Pvt Ltd"),
    ("Mexico", "com.mx", "S.A."),
    ("Spain", "es", "S.L."),
    ("Italy", "it", "S.r.l."),
    ("Poland", "pl", "Sp. z o.o."),
    ("Japan", "co.jp", "K.K."),
    ("Singapore", "com.sg", "Pte Ltd"),
)

_FREE_MAIL = (
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "yahoo.co.uk",
    "hotmail.fr",
    "gmx.de",
    "web.de",
    "proton.me",
    "live.com",
)

_DECISION_MAKER_TITLES = (
    "VP Marketing",
    "VP of Sales",
    "Head of Growth",
    "Chief Marketing Officer",
    "CMO",
    "Chief Revenue Officer",
    "Director of Demand Generation",
    "Director, Revenue Operations",
    "Head of Sales Operations",
    "VP, Sales Operations",
    "IT Director",
    "CIO",
    "Head of IT",
    "VP Operations",
    "Director of Marketing Operations",
    "SVP Global Sales",
    "Director of Sales",
    "Head of Marketing",
    "COO",
    "Director, Business Operations",
)
_PRACTITIONER_TITLES = (
    "Marketing Manager",
    "Senior Marketing Manager",
    "Sales Operations Manager",
    "Demand Generation Manager",
    "RevOps Manager",
    "IT Manager",
    "Account Executive",
    "Sales Development Representative",
    "Marketing Operations Specialist",
    "Operations Analyst",
    "Customer Success Manager",
    "Product Manager",
    "Sr. Software Engineer",
    "Financial Analyst",
    "HR Business Partner",
    "Content Marketing Specialist",
    "Salesforce Administrator",
    "Marketing Coordinator",
    "Business Development Manager",
    "Data Analyst",
    "Office Manager",
)
_SMALL_OWNER_TITLES = (
    "Owner",
    "Founder",
    "Owner/Operator",
    "Founder & CEO",
    "President",
    "Co-Founder",
)
_SMALL_STAFF_TITLES = (
    "Bookkeeper",
    "Receptionist",
    "Sales Associate",
    "Marketing Assistant",
    "Apprentice",
    "Shop Assistant",
)
_MISFIT_TITLES = (
    "Student",
    "Graduate Student",
    "Marketing Intern",
    "Freelancer",
    "Teacher",
    "Retired",
    "Job Seeker",
    "Research Assistant",
)

_BANT_VALUES = {
    "budget": ("Approved", "$25k-$50k", "$50k-$100k", "Allocated for Q3", "Pending approval"),
    "authority": ("Economic buyer", "Decision maker", "Champion", "Influencer"),
    "need": (
        "Replace spreadsheets",
        "Lead routing",
        "Pipeline visibility",
        "CRM hygiene",
        "Faster follow-up",
    ),
    "timeline": ("This quarter", "Next quarter", "Within 6 months", "6-12 months"),
}


# ------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True, slots=True)
class _Scenario:
    """One situation a lead is in: its status, company fit, dates and how much BANT is filled."""

    name: str
    weight: int
    statuses: tuple[str, ...]
    fit: tuple[str, ...]  # company tiers to draw from: "icp", "near", "small", "none"
    free_mail: float  # share of free-mail addresses (always for the "none" tier)
    bant: float  # chance each BANT field is filled


_SCENARIOS = (
    # came in during the last two weeks: rules leave it to marketing for now
    _Scenario("fresh", 14, ("New", "New", "Open"), ("icp", "near", "near"), 0.04, 0.05),
    # being worked, partly qualified
    _Scenario("working", 9, ("Open", "MQL"), ("icp", "near", "near"), 0.08, 0.5),
    # good fit, full BANT, recently engaged: ready to become an MQL
    _Scenario("ready", 5, ("New", "Open"), ("icp", "icp", "near"), 0.02, 0.97),
    _Scenario("stale", 12, ("Open", "Open", "New", "MQL"), ("icp", "near", "near"), 0.15, 0.1),
    _Scenario("misfit", 15, ("New", "Open", "Open"), ("small", "none", "none"), 0.5, 0.0),
    _Scenario("sal_overdue", 6, ("SAL",), ("icp", "near"), 0.05, 0.4),
    _Scenario("sal_fresh", 5, ("SAL",), ("icp", "near"), 0.05, 0.5),
    _Scenario("mql", 6, ("MQL",), ("icp", "near"), 0.08, 0.25),
    _Scenario("sql", 9, ("SQL",), ("icp",), 0.02, 0.85),
    _Scenario("nurture_cold", 6, ("Nurture",), ("icp", "near", "near"), 0.2, 0.1),
    _Scenario("nurture_warm", 8, ("Nurture",), ("icp", "near", "near"), 0.15, 0.15),
    _Scenario("unqualified", 5, ("Unqualified",), ("near", "small", "none"), 0.5, 0.0),
)
_SCENARIO_WEIGHTS = tuple(s.weight for s in _SCENARIOS)


@dataclass(frozen=True, slots=True)
class _Company:
    name: str | None
    domain: str | None
    industry: str | None
    country: str | None
    employees: int | None
    annual_revenue: float | None


def _ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits only ('Lefèvre' -> 'lefevre', "O'Brien" -> 'obrien')."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _revenue(rng: random.Random, employees: int) -> float | None:
    if rng.random() < 0.2:
        return None
    return float(round(employees * rng.uniform(60_000, 300_000), -4))


def _new_brand(rng: random.Random, used_brands: set[str]) -> str:
    """A brand not in ``used_brands`` (added to it). Large n exhausts two-part brands, then
    three-part ones; then a number is appended."""
    for attempt in itertools.count():
        brand = rng.choice(_NAME_PREFIXES) + rng.choice(_NAME_CORES)
        if attempt >= 20:
            brand += " " + rng.choice(_NAME_PREFIXES)
        if attempt >= 60:
            brand += f" {attempt}"
        if brand not in used_brands:
            used_brands.add(brand)
            return brand
    raise AssertionError("unreachable: itertools.count() never ends")


def _make_company(rng: random.Random, tier: str, used_brands: set[str]) -> _Company:
    """A company of the given ICP tier with a unique brand; its domain derives from the brand."""
    if tier == "none":  # students, job seekers, people who left the company field empty
        if rng.random() < 0.5:
            return _Company(
                None,
                None,
                None,
                rng.choice(_FIT_COUNTRIES + _OTHER_COUNTRIES)[0] if rng.random() < 0.6 else None,
                None,
                None,
            )
        school = f"University of {rng.choice(_NAME_PREFIXES)}{rng.choice(_NAME_CORES)}"
        return _Company(school, None, "Education", rng.choice(_FIT_COUNTRIES)[0], None, None)
    if tier == "icp":
        industry = rng.choice(_FIT_INDUSTRIES)
        country, tld, suffix = rng.choice(_FIT_COUNTRIES)
        employees = int(rng.choice((rng.uniform(50, 400), rng.uniform(400, 5000))))
    elif tier == "near":  # one or two criteria off the profile
        off = rng.choice(("industry", "country", "size", "industry"))
        industry = rng.choice(_OTHER_INDUSTRIES if off == "industry" else _FIT_INDUSTRIES)
        country, tld, suffix = rng.choice(_OTHER_COUNTRIES if off == "country" else _FIT_COUNTRIES)
        employees = (
            rng.choice((rng.randint(10, 49), rng.randint(5001, 60000)))
            if off == "size"
            else rng.randint(50, 5000)
        )
    else:  # "small": a one-to-nine person business
        industry = rng.choice(_SMALL_BUSINESS_INDUSTRIES)
        country, tld, suffix = rng.choice(_FIT_COUNTRIES)
        employees = rng.randint(1, 9)
    # One company per brand ("Beaconwave"): a brand seen before would put one company name on
    # two email domains. Large n exhausts two-part brands, then three-part ones; then a number.
    brand = _new_brand(rng, used_brands)
    sector = rng.choice(_SECTOR_WORDS[industry])
    base = _ascii_slug(brand)
    domain = f"{base}.{tld}" if rng.random() < 0.6 else f"{base}{_ascii_slug(sector)}.{tld}"
    name = f"{brand} {sector}"
    if rng.random() < 0.5:
        name += f" {suffix}"
    return _Company(name, domain, industry, country, employees, _revenue(rng, employees))


def _title(rng: random.Random, tier: str, scenario: str) -> str | None:
    if tier == "none":
        return None if rng.random() < 0.45 else rng.choice(_MISFIT_TITLES)
    if tier == "small":  # mostly the owner; sometimes staff without a say in buying
        pick = rng.random()
        if pick < 0.5:
            return rng.choice(_SMALL_OWNER_TITLES)
        return rng.choice(_SMALL_STAFF_TITLES) if pick < 0.9 else None
    if scenario == "sql" or rng.random() < 0.3:
        return rng.choice(_DECISION_MAKER_TITLES)
    return rng.choice(_PRACTITIONER_TITLES) if rng.random() < 0.93 else None


def _email(
    rng: random.Random, first: str, last: str, domain: str | None, free: bool, used: set[str]
) -> str:
    given, family = _ascii_slug(first), _ascii_slug(last)
    if free or domain is None:
        domain = rng.choice(_FREE_MAIL)
        local = rng.choice(
            (
                f"{given}.{family}",
                f"{given}{family}{rng.randint(1, 99)}",
                f"{given[0]}{family}",
                f"{given}_{family}{rng.randint(70, 99)}",
            )
        )
    else:
        local = rng.choice((f"{given}.{family}", f"{given}.{family}", f"{given[0]}{family}", given))
    email = f"{local}@{domain}"
    n = 2
    while email in used:  # two Emma Smiths at one company
        email = f"{local}{n}@{domain}"
        n += 1
    used.add(email)
    return email


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A whole-second time in [start, end] (Salesforce stamps whole seconds)."""
    if end <= start:
        return start
    return start + timedelta(seconds=rng.randint(0, int((end - start).total_seconds())))


def _dates(
    rng: random.Random, scenario: str, now: datetime
) -> tuple[datetime, datetime | None, datetime]:
    """(created_at, last_activity_at, status changed at) for a scenario, all ≤ ``now``."""
    day = timedelta(days=1)
    hour = timedelta(hours=1)
    if scenario == "fresh":
        created = now - rng.uniform(0.1, 13) * day
        activity = _between(rng, created, now) if rng.random() < 0.8 else None
        changed = created
    elif scenario in ("working", "ready", "mql"):
        created = now - rng.uniform(15, 80) * day
        activity = _between(rng, max(created, now - 25 * day), now)
        changed = _between(rng, created, now)
    elif scenario == "stale":
        created = now - rng.uniform(120, 800) * day
        activity = (
            None if rng.random() < 0.3 else _between(rng, created, now - rng.uniform(91, 100) * day)
        )
        changed = _between(rng, created, activity or now - 91 * day)
    elif scenario == "misfit":
        created = now - rng.uniform(1, 400) * day
        activity = _between(rng, created, now) if rng.random() < 0.5 else None
        changed = created
    elif scenario == "sal_overdue":  # accepted more than 48 h ago and not touched since
        created = now - rng.uniform(10, 120) * day
        changed = now - rng.uniform(49, 240) * hour
        activity = _between(rng, created, changed) if rng.random() < 0.8 else None
    elif scenario == "sal_fresh":
        created = now - rng.uniform(5, 90) * day
        changed = now - rng.uniform(1, 36) * hour
        activity = _between(rng, changed, now) if rng.random() < 0.6 else changed
    elif scenario == "sql":
        created = now - rng.uniform(20, 200) * day
        changed = now - rng.uniform(1, 15) * day
        activity = _between(rng, changed, now)
    elif scenario == "nurture_cold":  # no touch for more than 180 days
        created = now - rng.uniform(250, 900) * day
        activity = _between(rng, created, now - rng.uniform(181, 240) * day)
        changed = _between(rng, created, activity)
    elif scenario == "nurture_warm":
        created = now - rng.uniform(60, 500) * day
        activity = now - rng.uniform(10, 150) * day
        changed = _between(rng, created, activity)
    else:  # "unqualified"
        created = now - rng.uniform(30, 700) * day
        changed = _between(rng, created, now)
        activity = _between(rng, created, changed) if rng.random() < 0.6 else None
    created = created.replace(microsecond=0)
    activity = activity.replace(microsecond=0) if activity is not None else None
    changed = changed.replace(microsecond=0)
    if activity is not None and activity < created:
        activity = created
    return created, activity, max(changed, created)


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            "now must be timezone-aware (e.g. datetime.now(UTC)); got a naive "
            "datetime, which would mix with the CRMs' UTC timestamps"
        )
    return now.replace(microsecond=0)


def generate_leads(n: int, *, seed: int, now: datetime) -> list[dict[str, Any]]:
    """Realistic, varied demo leads in canonical field names.

    Args:
        n: How many leads (0 or more).
        seed: Random seed; the same seed and ``now`` give the same leads.
        now: The demo's present (timezone-aware); every timestamp is at or before it.

    Returns:
        Leads with exactly the keys of :data:`DEMO_FIELDS`; values may be ``None`` where real
        CRMs have gaps (title, company, industry, employees, last activity, owner, BANT).

    Raises:
        ValueError: ``n`` is negative or ``now`` is naive.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    now = _check_now(now)
    rng = random.Random(seed)
    companies: dict[str, list[_Company]] = {"icp": [], "near": [], "small": []}
    used_brands: set[str] = set()
    used_emails: set[str] = set()
    # About four leads per company on average, as accounts collect several contacts.
    pool_target = max(3, n // 12)
    leads: list[dict[str, Any]] = []
    for _ in range(n):
        scenario = rng.choices(_SCENARIOS, weights=_SCENARIO_WEIGHTS)[0]
        tier = rng.choice(scenario.fit)
        if tier == "none":
            company = _make_company(rng, tier, used_brands)
        else:
            pool = companies[tier]
            if len(pool) < pool_target and (not pool or rng.random() < 0.5):
                pool.append(_make_company(rng, tier, used_brands))
            company = rng.choice(pool)
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        free = tier == "none" or rng.random() < scenario.free_mail
        created, activity, changed = _dates(rng, scenario.name, now)
        status = rng.choice(scenario.statuses)
        if status == "New":
            changed = created
        owner = None if status == "New" and rng.random() < 0.5 else rng.choice(_OWNERS)
        lead: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email": _email(rng, first, last, company.domain, free, used_emails),
            "title": _title(rng, tier, scenario.name),
            "company": company.name,
            "industry": company.industry,
            "country": company.country,
            "employees": company.employees,
            "annual_revenue": company.annual_revenue,
            "lead_source": rng.choice(LEAD_SOURCES),
            "status": status,
            "created_at": created,
            "last_activity_at": activity,
            "owner": owner,
        }
        for name, values in _BANT_VALUES.items():
            lead[name] = rng.choice(values) if rng.random() < scenario.bant else None
        lead["_status_changed_at"] = changed
        leads.append(lead)
    return leads


# ------------------------------------------------------------------------------ scale

# Pool sizes are distinct primes, so rotating through them by lead number gives long runs
# before a combination repeats, with no random call per lead.
_P_COMPANY, _P_PERSON, _P_TITLE, _P_DATES, _P_MISC = 997, 211, 53, 1009, 29


def _pick(rng: random.Random, values: Sequence[Any], k: int) -> list[Any]:
    return [rng.choice(values) for _ in range(k)]


def generate_scale_leads(n: int, *, seed: int, now: datetime) -> Iterator[dict[str, Any]]:
    """Many cheap leads for benchmarks: the shape of :func:`generate_leads`, less realism.

    Values rotate through small pools built once from ``seed``; every email is unique (it
    carries the lead number). Fast enough for a million leads in seconds.

    Args:
        n: How many leads (0 or more).
        seed: Random seed for the pools.
        now: The present (timezone-aware); every timestamp is at or before it.

    Returns:
        An iterator of leads with exactly the keys of :data:`DEMO_FIELDS`.

    Raises:
        ValueError: ``n`` is negative or ``now`` is naive (raised here, not on first ``next``).
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    return _scale_leads(n, random.Random(seed), _check_now(now))


def _scale_leads(n: int, rng: random.Random, now: datetime) -> Iterator[dict[str, Any]]:
    used: set[str] = set()
    companies = [
        _make_company(rng, rng.choice(("icp", "icp", "near", "small")), used)
        for _ in range(_P_COMPANY)
    ]
    domains = [c.domain or "gmail.com" for c in companies]
    free = _pick(rng, _FREE_MAIL, _P_COMPANY)
    people = [(rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)) for _ in range(_P_PERSON)]
    titles = _pick(
        rng, _DECISION_MAKER_TITLES + _PRACTITIONER_TITLES + _MISFIT_TITLES + (None,), _P_TITLE
    )
    dates = [
        _dates(rng, s.name, now) for s in rng.choices(_SCENARIOS, _SCENARIO_WEIGHTS, k=_P_DATES)
    ]
    statuses = [STATUSES[i % len(STATUSES)] for i in range(_P_MISC)]
    sources = [LEAD_SOURCES[i % len(LEAD_SOURCES)] for i in range(_P_MISC)]
    owners = [None, *(_OWNERS * 5)][:_P_MISC]
    bant = [
        {
            k: (v[i % len(v)] if (i * 7 + j) % 3 == 0 else None)
            for j, (k, v) in enumerate(_BANT_VALUES.items())
        }
        for i in range(_P_MISC)
    ]
    for i in range(n):
        company = companies[i % _P_COMPANY]
        first, last = people[i % _P_PERSON]
        created, activity, changed = dates[i % _P_DATES]
        misc = i % _P_MISC
        # Every fifth lead on a free-mail domain.
        domain = free[i % _P_COMPANY] if i % 5 == 0 else domains[i % _P_COMPANY]
        b = bant[misc]
        yield {
            "first_name": first,
            "last_name": last,
            "email": f"lead{i}@{domain}",
            "title": titles[i % _P_TITLE],
            "company": company.name,
            "industry": company.industry,
            "country": company.country,
            "employees": company.employees,
            "annual_revenue": company.annual_revenue,
            "lead_source": sources[misc],
            "status": statuses[misc],
            "created_at": created,
            "last_activity_at": activity,
            "owner": owners[misc],
            "budget": b["budget"],
            "authority": b["authority"],
            "need": b["need"],
            "timeline": b["timeline"],
            "_status_changed_at": changed,
        }
