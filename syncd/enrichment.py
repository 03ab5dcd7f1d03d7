"""In-process lead enrichment: derived fields that rules can test, each with the reason for it.

:class:`Enricher` turns one lead (a mapping in canonical field names, see :mod:`rules.fields`)
into the values of :data:`rules.fields.ENRICHMENT_FIELDS`:

``email_domain``
    The lower-cased part of the email after the last ``@``; ``None`` when the email is missing or
    its domain is not a valid host name.
``free_mail``
    ``True`` when that domain (or a parent of it) is a consumer mail provider: a built-in list
    (:mod:`syncd.enrichment_data`, country variants such as ``yahoo.co.uk`` included) plus
    ``extra_free_mail_domains`` from the settings.
``role`` and ``seniority``
    Function and rank read from the title, because titles alone say little ("market to the role,
    not the title", domain.md). Roles: see :data:`ROLES`; seniorities: see :data:`SENIORITIES`.
    The rank ladder is deliberate where usage is mixed:

    * "Head of X" counts as ``vp``: the title is used where one person runs a function with no
      VP above them (start-ups, European firms), i.e. the person who signs.
    * "Chief of Staff" is ``manager`` and role ``executive``: close to the executive but without
      a budget of their own. "Assistant to the CEO" and other assistants are ``individual`` and
      role ``other``; the executive they work for does not make them one.
    * Assistant/associate ranks sit one step lower: "AVP" is ``director``, "Associate Director"
      is ``manager``. "Managing Director" is ``c_level`` (the head of a company in Europe);
      "General Manager" is ``director``; "General Counsel" is ``vp``.
    * "<function> operations" titles (sales, revenue, marketing, business operations) are role
      ``operations``: they run the process and tooling that syncd-like products serve.
``decision_maker``
    ``True`` for ``c_level``, ``vp`` and ``director``; ``False`` for other known or unknown ranks.
``icp_score`` and ``icp_fit``
    0..100 from industry, country, company size, role, decision maker and business email, with
    configurable weights (:class:`IcpWeights`); ``strong``/``medium``/``weak`` by thresholds.
    Unknown inputs earn no points (a lead we know nothing about is not a fit), and the reason
    lists both the points earned and the ones missed.
``bant_score`` and ``bant_complete``
    How many of budget, authority, need, timeline are present; authority also counts when the
    lead is a decision maker.

Missing inputs give ``None`` values with a reason and never raise; odd types (``bytes`` is
decoded, numbers where text is expected are treated as missing) are handled the same way.

``enrich`` is pure and deterministic. Repeating values cost a cache lookup: the title
classification, the email-domain verdict and the ICP score (a function of six small inputs) are
computed once per distinct input and kept in bounded per-enricher LRU caches, and every BANT
outcome is precomputed. Unique values (most corporate domains and many titles in a real org) are
cheap too: the title rules, written as regexes, are matched by word lookups compiled from
those regexes (:mod:`syncd.enrichment_tokens`, exactly the full first-match regex scan), and the
ICP reason is assembled from parts scored once per company place and per kind of person.

:meth:`Enricher.values` derives the same values without the reasons: what a pull stores and the
rules read. The reasons are text for people, and ``syncd explain`` derives them with
:meth:`Enricher.enrich` from the lead's stored fields when asked.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from syncd.enrichment_data import (
    COUNTRY_SUFFIX_SECOND_LEVELS,
    FREE_MAIL_BRANDS,
    FREE_MAIL_DOMAINS,
)
from syncd.enrichment_settings import EnrichmentSettings, IcpSettings, IcpWeights
from syncd.enrichment_tokens import TokenScan
from syncd.enrichment_vocab import (
    DECISION_MAKER_SENIORITIES,
    NON_WORD,
    ROLES,
    SENIORITIES,
    country_code,
    normalise_label,
)

__all__ = [
    "DECISION_MAKER_SENIORITIES",
    "ROLES",
    "SENIORITIES",
    "Enricher",
    "Enrichment",
    "EnrichmentSettings",
    "IcpSettings",
    "IcpWeights",
    "TitleClass",
    "classify_title",
    "title_values",
]


_BANT_FIELDS: tuple[str, ...] = ("budget", "authority", "need", "timeline")
# Values forms and CRMs use for "nothing entered"; they do not make a BANT criterion present.
_BLANK_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "",
        "-",
        "--",
        "?",
        "n/a",
        "na",
        "none",
        "null",
        "unknown",
        "tbd",
        "not set",
    }
)
_LONGEST_PLACEHOLDER = max(map(len, _BLANK_PLACEHOLDERS))
_BANT_BITS: tuple[tuple[int, str], ...] = tuple((1 << i, n) for i, n in enumerate(_BANT_FIELDS))


def _bant_outcome(mask: int, decision_maker: bool) -> tuple[int, str, str]:
    """(bant_score, its reason, bant_complete's reason) for the criteria present in ``mask``."""
    present: list[str] = []
    absent: list[str] = []
    for bit, name in _BANT_BITS:
        if mask & bit:
            present.append(name)
        elif name == "authority" and decision_maker:
            present.append("authority (decision maker)")
        else:
            absent.append(name)
    reason = f"bant_score {len(present)}: " + (", ".join(present) if present else "none present")
    if absent:
        reason += "; missing: " + ", ".join(absent)
    complete = (
        "all of budget, authority, need, timeline present"
        if not absent
        else "missing: " + ", ".join(absent)
    )
    return len(present), reason, complete


# Sixteen presence masks x decision maker or not: every BANT outcome, computed at import.
_BANT_OUTCOMES: dict[tuple[int, bool], tuple[int, str, str]] = {
    (mask, dm): _bant_outcome(mask, dm) for mask in range(16) for dm in (False, True)
}
#: (points, reasons earned, reasons missed) of some ICP criteria, in criteria order.
_Part = tuple[int, tuple[str, ...], tuple[str, ...]]
_CACHE_SIZE = 16_384  # distinct titles/domains kept per enricher; real data repeats heavily
_SHOW = 60  # longest input echoed in a reason


# --------------------------------------------------------------------------------------------
# Title classification


def _words(*phrases: str) -> str:
    """A regex matching any of ``phrases`` as whole words in a normalised title.

    Phrases may contain regex syntax; a space stands for the single space normalisation leaves.
    """
    return r"\b(?:" + "|".join(phrases) + r")\b"


def _compile(rules: Iterable[tuple[str, str]]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((label, re.compile(pattern)) for label, pattern in rules)


# Support staff who work *for* someone senior: neither their rank nor their function is the
# boss's (domain.md: derive the decision maker from the title, not from words in it).
_ASSISTANT_TO = _words(
    "(?:assistant|secretary|ea|pa) (?:to|of)",
    "executive assistant",
    "personal assistant",
    "administrative assistant",
    "admin assistant",
    "office assistant",
    "executive secretary",
)

# First match wins: specific compounds come before the single words they contain.
_SENIORITY_RULES = _compile(
    [
        ("individual", _ASSISTANT_TO),
        ("manager", _words("chief of staff")),
        ("director", _words("avp", "(?:assistant|associate) vice president")),
        ("manager", _words("(?:assistant|associate|deputy) (?:director|directeur|directora)")),
        ("individual", _words("founding engineer", "product owner")),
        (
            "c_level",
            _words(
                "ceo",
                "cfo",
                "cto",
                "coo",
                "cmo",
                "cro",
                "cio",
                "ciso",
                "cpo",
                "chro",
                "cdo",
                "cso",
                "cco",
                "cxo",
                "cao",
                "chief",
                r"(?<!vice )presidente?",
                "co ?founder",
                "founder",
                r"(?<!product )(?<!process )owner",
                "managing (?:director|partner)",
                "founding partner",
                "general partner",
                "chair(?:man|woman|person)",
                "board member",
                "gesch(?:ä|ae|a)ftsf(?:ü|ue|u)hrer(?:in)?",
                "inhaber(?:in)?",
                "pdg",
                "(?:directeur|directrice|director|directora) g(?:é|e)n(?:é|e)ral(?:e)?",
                "gerente general",
            ),
        ),
        (
            "vp",
            _words(
                "vp",
                "svp",
                "evp",
                "vice ?president(?:e)?",
                "vizepr(?:ä|ae|a)sident(?:in)?",
                "head",
                "general counsel",
            ),
        ),
        (
            "director",
            _words(
                "director",
                "directora",
                "directeur",
                "directrice",
                "direktor(?:in)?",
                "direttore",
                "dir",
                "general manager",
                "gm",
            ),
        ),
        (
            "manager",
            _words(
                "manager",
                "mgr",
                "managers",
                "supervisor",
                "superintendent",
                "foreman",
                r"lead(?! gen| generation| development| qualification| nurturing)",
                "team ?leader",
                "team ?lead",
                "leader",
                "(?:\\w*)leiter(?:in)?",
                "responsable",
                "jef[ea]",
                "gerente",
                "chef",
                "controller",
            ),
        ),
        (
            "individual",
            _words(
                "specialist",
                "analyst",
                "engineer",
                "developer",
                "associate",
                "coordinator",
                "representative",
                "rep",
                "intern",
                "internship",
                "trainee",
                "apprentice",
                "student",
                "assistant",
                "consultant",
                "administrator",
                "admin",
                "designer",
                "scientist",
                "architect",
                "accountant",
                "bookkeeper",
                "recruiter",
                "writer",
                "copywriter",
                "editor",
                "strategist",
                "executive",
                "officer",
                "agent",
                "clerk",
                "technician",
                "programmer",
                "sdr",
                "bdr",
                "ldr",
                "ae",
                "staff",
                "member",
                "advisor",
                "adviser",
                "planner",
                "buyer",
                "generalist",
                "paralegal",
                "attorney",
                "counsel",
                "lawyer",
                "auditor",
                "researcher",
                "teacher",
                "professor",
                "freelancer?",
                "contractor",
                "marketer",
                "operator",
                "hacker",
                "business partner",
                "ingenieur",
                "ingénieur",
                "ingeniero",
                "entwickler",
                "berater",
                "mitarbeiter(?:in)?",
                "referent(?:in)?",
                "sachbearbeiter(?:in)?",
                "commercial",
            ),
        ),
    ]
)

_ROLE_RULES = _compile(
    [
        ("other", _ASSISTANT_TO),
        (
            "operations",
            _words(
                "(?:sales|revenue|marketing|business|gtm|go to market) (?:operations|ops)",
                "rev ?ops",
                "mops",
                "biz ?ops",
                "crm",
                "salesforce (?:admin|administrator)",
                "hubspot (?:admin|administrator)",
            ),
        ),
        ("hr", _words("people (?:operations|ops|partner)", "talent")),
        ("marketing", _words("product marketing")),
        (
            "sales",
            _words(
                "sales engineer",
                "solutions? (?:engineer|consultant|architect)",
                "pre ?sales",
            ),
        ),
        ("it", _words("it (?:support|help ?desk|service desk)")),
        (
            "customer_success",
            _words(
                "customer (?:success|support|service|care|experience)",
                "client (?:success|services?)",
                "technical support",
                "support engineer",
                "cx",
            ),
        ),
        ("engineering", _words("cto", "chief technology officer", "chief technical officer")),
        (
            "it",
            _words(
                "it",
                "information technology",
                "information security",
                "infosec",
                "cio",
                "ciso",
                "chief information(?: security)? officer",
                "cyber ?security",
                "security",
                "network",
                "systems? administrator",
                "sys ?admin",
                "help ?desk",
                "desktop support",
                "infrastructure",
                "technology",
                "informatique",
                "informatik",
                "sistemas",
                "ti",  # Spanish/Portuguese "tecnología/tecnologia da informação"
            ),
        ),
        (
            "product",
            _words(
                "product (?:manager|management|owner|lead|director)",
                "cpo",
                "chief product officer",
            ),
        ),
        (
            "engineering",
            _words(
                "engineer",
                "engineering",
                "engineers",
                "developer",
                "development engineer",
                "software",
                "dev ?ops",
                "sre",
                "site reliability",
                "architect",
                "programmer",
                "qa",
                "quality assurance",
                "data scientist",
                "machine learning",
                "ml",
                "r d",
                "ingenieur",
                "ingénieur",
                "ingeniero",
                "entwickler",
                "developpeur",
                "développeur",
                "desarrollador",
            ),
        ),
        (
            "finance",
            _words(
                "finance",
                "financial",
                "cfo",
                "controller",
                "controlling",
                "accounting",
                "accountant",
                "accounts (?:payable|receivable)",
                "treasury",
                "treasurer",
                "fp a",
                "bookkeeper",
                "tax",
                "auditor",
                "payroll",
                "comptable",
                "finanzen",
                "buchhaltung",
                "finanzas",
                "contador",
            ),
        ),
        (
            "legal",
            _words(
                "legal",
                "counsel",
                "attorney",
                "lawyer",
                "paralegal",
                "compliance",
                "clo",
                "juriste",
                "contracts",
                "abogado",
                "jurist(?:in)?",
            ),
        ),
        (
            "hr",
            _words(
                "hr",
                "human resources?",
                "people",
                "recruit(?:er|ing|ment)?",
                "chro",
                "personnel",
                "learning (?:and )?development",
                "l d",
                "ressources humaines",
                "rrhh",
            ),
        ),
        (
            "marketing",
            _words(
                "marketing",
                "marketer",
                "cmo",
                "brand",
                "growth",
                "demand (?:gen|generation)",
                "lead (?:gen|generation)",
                "content",
                "seo",
                "sem",
                "ppc",
                "communications?",
                "comms",
                "pr",
                "public relations",
                "social media",
                "digital",
                "events?",
                "campaigns?",
                "advertising",
                "creative",
                "copywriter",
                "community",
                "mercadeo",
                "mercadotecnia",
            ),
        ),
        (
            "sales",
            _words(
                "sales",
                "cro",
                "chief revenue officer",
                "revenue",
                "commercial",
                "comercial",
                "vertrieb",
                "ventas",
                "vendas",
                "business development",
                "account",
                "key account",
                "partnerships?",
                "partner manager",
                "channel",
                "alliances",
                "territory",
                "sdr",
                "bdr",
                "ae",
                "seller",
                "salesperson",
            ),
        ),
        ("customer_success", _words("support", "customer", "onboarding", "implementation")),
        (
            "operations",
            _words(
                "operations",
                "ops",
                "operating",
                "coo",
                "supply chain",
                "logistics",
                "procurement",
                "purchasing",
                "facilities",
                "office manager",
                "op(?:é|e)rations",
            ),
        ),
        ("product", _words("product", "products")),
        (
            "executive",
            _words(
                "ceo",
                "chief executive",
                "co ?founder",
                "founder",
                r"(?<!product )owner",
                r"(?<!vice )presidente?",
                "managing (?:director|partner)",
                "general manager",
                "gesch(?:ä|ae|a)ftsf(?:ü|ue|u)hrer(?:in)?",
                "inhaber(?:in)?",
                "pdg",
                "(?:directeur|directrice|director|directora) g(?:é|e)n(?:é|e)ral(?:e)?",
                "gerente general",
                "chief of staff",
                "chair(?:man|woman|person)",
                "board member",
                "entrepreneur",
                "proprietor",
                "self employed",
                "partner",
            ),
        ),
    ]
)


class TitleClass(NamedTuple):
    """What a title says about function, rank and purchase authority, with the reason for each.

    Immutable as a tuple: built once per distinct title, where a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field, about 0.8 µs) was a tenth of
    classifying a new title.
    """

    role: str | None
    seniority: str | None
    decision_maker: bool | None
    role_reason: str
    seniority_reason: str
    decision_maker_reason: str


# Seniority -> (decision_maker, its reason): one per rank, not one string per title.
_DECIDES: dict[str, tuple[bool, str]] = {
    rank: (True, f"seniority {rank} decides purchases")
    if rank in DECISION_MAKER_SENIORITIES
    else (False, f"seniority {rank} is not a decision maker")
    for rank in SENIORITIES
}
# The rules' regexes are their definition; matching runs on word lookups compiled from them.
_ROLE_SCAN = TokenScan(_ROLE_RULES)
_SENIORITY_SCAN = TokenScan(_SENIORITY_RULES)
_WRITTEN: dict[str, re.Pattern[str]] = {}  # words matched -> pattern finding them as written


def _as_written(title: str, matched: str) -> str:
    """The words ``matched`` in ``title`` as the user wrote them ('VP', not 'vp')."""
    if " " not in matched and title.isascii():
        # One ASCII word in an ASCII title: case-insensitive search is a search in lower case.
        at = title.lower().find(matched)
        return title[at : at + len(matched)] if at >= 0 else matched
    pattern = _WRITTEN.get(matched)
    if pattern is None:
        pattern = re.compile(r"[\W_]+".join(map(re.escape, matched.split())), re.IGNORECASE)
        if len(_WRITTEN) < _CACHE_SIZE:
            _WRITTEN[matched] = pattern
    found = pattern.search(title)
    return found.group(0) if found else matched


def classify_title(title: str) -> TitleClass:
    """Derive role and seniority from a job title (uncached; :class:`Enricher` caches it).

    Args:
        title: The title as entered, any case and punctuation.

    Returns:
        ``role`` is one of :data:`ROLES` and ``seniority`` one of :data:`SENIORITIES`; both are
        ``None`` only when the title is blank.
    """
    shown = title.strip()
    if not shown:
        return TitleClass(None, None, None, "no title", "no title", "no title")
    if len(shown) > _SHOW:
        shown = shown[:_SHOW] + "…"
    role, rank = _scan_title(title)
    quoted = repr(shown)  # what {shown!r} gives, made once for both reasons
    if role is None:
        role_out, role_reason = "other", f"title {quoted} → role other (no function word)"
    else:
        role_out = role[0]
        role_reason = f"title {quoted} → role {role_out} (matched {_as_written(title, role[1])!r})"
    if rank is None:
        rank_out, rank_reason = "unknown", f"title {quoted} → seniority unknown (no rank word)"
    else:
        rank_out = rank[0]
        rank_reason = (
            f"title {quoted} → seniority {rank_out} (matched {_as_written(title, rank[1])!r})"
        )
    decision_maker, dm_reason = _DECIDES[rank_out]
    return TitleClass(role_out, rank_out, decision_maker, role_reason, rank_reason, dm_reason)


def _scan_title(title: str) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(role, rank) rules matching a non-blank title, each (label, matched words) or None."""
    text = NON_WORD.sub(" ", title.lower()).strip()
    words = text.split(" ") if text else []
    return _ROLE_SCAN.first(text, words), _SENIORITY_SCAN.first(text, words)


def title_values(title: str) -> tuple[str | None, str | None, bool | None]:
    """(role, seniority, decision_maker) of :func:`classify_title`, without its reasons."""
    if not title.strip():
        return None, None, None
    role, rank = _scan_title(title)
    rank_out = "unknown" if rank is None else rank[0]
    return "other" if role is None else role[0], rank_out, _DECIDES[rank_out][0]


# --------------------------------------------------------------------------------------------
# Email domains

_HOST = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\Z"
)


#: Full stops IDNA reads as the label separator '.' (RFC 3490 section 3.1).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _read_domain(raw: str) -> str:
    """The domain of the text after an email's last '@', as mail systems read it."""
    domain = raw.strip().lower().rstrip(".")
    if domain.isascii():
        return domain
    # Mail systems read a domain as IDNA does (RFC 3490 nameprep: NFKC, and the ideographic full
    # stops as dots): gmail.com in full-width letters and full stop, as East Asian input methods
    # type it, is gmail.com, and a free-mail address.
    return unicodedata.normalize("NFKC", domain).lower().translate(_DOTS).rstrip(".")


def _valid_host(domain: str) -> bool:
    if domain.isascii():
        return _HOST.match(domain) is not None
    try:  # internationalised domain: valid when its ASCII (punycode) form is
        return _HOST.match(domain.encode("idna").decode("ascii")) is not None
    except UnicodeError:
        return False


def _free_mail_match(domain: str, exact: frozenset[str], extra: frozenset[str]) -> str | None:
    """The provider domain or brand ``domain`` belongs to, or ``None`` for a business domain."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):  # the domain itself, then each parent but the TLD
        candidate = ".".join(labels[start:]) if start else domain
        if candidate in extra:
            return candidate
        if candidate in exact:
            return candidate
        # Country variants of a brand: brand.<cc>, brand.co.<cc>, brand.com.<cc> (yahoo.co.uk)
        rest = labels[start + 1 :]
        if labels[start] in FREE_MAIL_BRANDS and (
            len(rest) == 1
            or (len(rest) == 2 and rest[0] in COUNTRY_SUFFIX_SECOND_LEVELS and len(rest[1]) == 2)
        ):
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Firmographics


_RANGE = re.compile(r"(\d+)\s*(?:-|\u2013|to)\s*(\d+)")  # hyphen, en dash or "to"
_PLUS = re.compile(r"(\d+)\s*\+")


def _employee_count(value: Any) -> int | None:
    """An employee count from an int, a float, or text such as '250', '1,200', '51-200', '10000+'.

    A range reads as its midpoint, an open range ('10000+') as its lower bound.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", "").replace("_", "").replace(" ", "")
    try:  # int() refuses digits that are not decimal ('²') and more than 4,300 of them
        if text.isdigit():
            return int(text)
        if found := _RANGE.fullmatch(text):
            low, high = int(found.group(1)), int(found.group(2))
            return (low + high) // 2 if high >= low else None
        if found := _PLUS.fullmatch(text):
            return int(found.group(1))
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None


def _text(value: Any) -> str | None:
    """``value`` as text: ``str`` as is, ``bytes`` decoded, anything else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None


def _present(value: Any) -> bool:
    """Whether a BANT value counts as entered: non-blank text, ``True``, or any other value."""
    if value is None or value is False:
        return False
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value.strip().lower() not in _BLANK_PLACEHOLDERS
    return True


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


# --------------------------------------------------------------------------------------------
# The enricher


@dataclass(slots=True)
class Enrichment:
    """Derived values for one lead, keyed by :data:`rules.fields.ENRICHMENT_FIELDS` names.

    Attributes:
        values: Every enrichment field, ``None`` where it could not be derived.
        reasons: For every field, a short human sentence saying how its value was derived.
    """

    values: dict[str, Any]
    reasons: dict[str, str]


class Enricher:
    """Derives :data:`rules.fields.ENRICHMENT_FIELDS` from a lead; pure and deterministic.

    One instance may be shared by threads: its caches are thread-safe and it holds no other state.
    """

    def __init__(self, settings: EnrichmentSettings) -> None:
        """Compile ``settings`` into lookup sets and per-value caches.

        Args:
            settings: Validated enrichment settings.
        """
        icp = settings.icp
        self.settings = settings
        self._weights = icp.weights
        self._industries = frozenset(normalise_label(i) for i in icp.industries)
        self._countries = frozenset(c for c in map(country_code, icp.countries) if c)
        self._roles = frozenset(icp.roles)
        self._min_employees = icp.min_employees
        self._max_employees = icp.max_employees
        self._size_range = (
            f"{icp.min_employees}..{icp.max_employees}"
            if icp.max_employees is not None
            else f"≥ {icp.min_employees}"
        )
        self._strong_at = icp.strong_at
        self._medium_at = icp.medium_at
        self._fits: dict[int, tuple[str, str]] = {}  # scores are 0..100
        self._extra_free = frozenset(
            d.strip().lower().lstrip("@").strip(".") for d in settings.extra_free_mail_domains
        )
        # Bounded per-value caches: titles, domains, industries and countries repeat across
        # leads, so the regex work runs once per distinct value.
        self._title: Callable[[str], TitleClass] = lru_cache(_CACHE_SIZE)(classify_title)
        self._domain = lru_cache(_CACHE_SIZE)(self._classify_domain)
        # The same without reasons (:meth:`values`), cached apart: a pull asks only these.
        self._title_v: Callable[[str], tuple[str | None, str | None, bool | None]] = lru_cache(
            _CACHE_SIZE
        )(title_values)
        self._domain_v = lru_cache(_CACHE_SIZE)(self._domain_values)
        self._industry = lru_cache(1024)(self._score_industry)
        self._country = lru_cache(1024)(self._score_country)
        self._place = lru_cache(_CACHE_SIZE)(self._score_place)
        self._person = lru_cache(256)(self._score_person)  # few roles x ranks x email kinds

    # ---- per-value classifiers (cached) ----

    def _domain_values(self, raw: str) -> tuple[str | None, bool | None]:
        """(email_domain, free_mail) of :meth:`_classify_domain`, without its reasons."""
        domain = _read_domain(raw)
        if not domain or not _valid_host(domain):
            return None, None
        return domain, _free_mail_match(domain, FREE_MAIL_DOMAINS, self._extra_free) is not None

    def _classify_domain(self, raw: str) -> tuple[str | None, str, bool | None, str]:
        """(email_domain, reason, free_mail, reason) for the text after the last '@'."""
        domain = _read_domain(raw)
        read_as = ""
        typed = raw.strip().lower().rstrip(".")
        if domain != typed:
            read_as = f", {_shown(typed)!r} read as mail systems do"
        if not domain:
            return None, "email has nothing after '@'", None, "no email domain"
        if not _valid_host(domain):
            return (
                None,
                f"email domain {_shown(domain)!r} is not a valid host name",
                None,
                "no valid email domain",
            )
        reason = f"email domain {domain} (part after '@', lower-cased{read_as})"
        provider = _free_mail_match(domain, FREE_MAIL_DOMAINS, self._extra_free)
        if provider is None:
            return domain, reason, False, f"{domain} is not a known consumer mail provider"
        source = "extra_free_mail_domains" if provider in self._extra_free else "built-in list"
        via = "" if provider == domain else f" via {provider}"
        return domain, reason, True, f"{domain} is a consumer mail provider{via} ({source})"

    def _score_industry(self, industry: str) -> tuple[bool, str]:
        """(fits, text): the text names the industry, plus why not when it does not fit."""
        label = f"industry {_shown(industry.strip())}"
        if normalise_label(industry) in self._industries:
            return True, label
        return False, f"{label} not in ICP"

    def _score_country(self, country: str) -> tuple[bool, str]:
        """(fits, text) for a country name, code or alias, shown as its ISO code."""
        code = country_code(country)
        if code is None:
            return False, f"country {_shown(country.strip())!r} not recognised"
        if code in self._countries:
            return True, f"country {code}"
        return False, f"country {code} not in ICP"

    def _score_icp(
        self,
        industry: str | None,
        country: str | None,
        employees: int | None,
        role: str | None,
        decider: str | None,
        free: bool | None,
    ) -> tuple[int, str, str, str]:
        """(icp_score, reason, icp_fit, reason); ``decider`` is the seniority of a decision maker.

        Each criterion earns its weight or nothing; the reason lists both, so a low score
        explains itself. The company's place (industry, country) and the person (role,
        decision maker, email) are scored once per distinct pair or triple; only the employee
        count is judged per call.
        """
        place_score, place_earned, place_missed = self._place(industry, country)
        person_score, person_earned, person_missed = self._person(role, decider, free)
        score = place_score + person_score
        w = self._weights
        if employees is None:
            earned = place_earned + person_earned
            missed = (*place_missed, "employees unknown", *person_missed)
        elif self._in_size(employees):
            score += w.company_size
            size = f"{employees} employees in {self._size_range} +{w.company_size}"
            earned = (*place_earned, size, *person_earned)
            missed = place_missed + person_missed
        else:
            earned = place_earned + person_earned
            size = f"{employees} employees outside {self._size_range}"
            missed = (*place_missed, size, *person_missed)
        reason = f"icp_score {score}: " + (", ".join(earned) if earned else "no points")
        if missed:
            reason += "; missed: " + ", ".join(missed)
        return (score, reason, *self._fit(score))

    def _in_size(self, employees: int) -> bool:
        """Whether a company of ``employees`` is within the ICP's size range."""
        return employees >= self._min_employees and (
            self._max_employees is None or employees <= self._max_employees
        )

    def _score_place(self, industry: str | None, country: str | None) -> _Part:
        """(points, earned, missed) of the industry and country criteria."""
        w = self._weights
        earned: list[str] = []
        missed: list[str] = []
        score = _criterion("industry", industry, self._industry, w.industry, earned, missed)
        score += _criterion("country", country, self._country, w.country, earned, missed)
        return score, tuple(earned), tuple(missed)

    def _score_person(self, role: str | None, decider: str | None, free: bool | None) -> _Part:
        """(points, earned, missed) of the role, decision maker and business email criteria."""
        w = self._weights
        score = 0
        earned: list[str] = []
        missed: list[str] = []
        if role is None:
            missed.append("role unknown")
        elif role in self._roles:
            score += w.role
            earned.append(f"role {role} +{w.role}")
        else:
            missed.append(f"role {role} not in ICP")

        if decider is not None:
            score += w.decision_maker
            earned.append(f"decision maker ({decider}) +{w.decision_maker}")
        else:
            missed.append("decision maker unknown" if role is None else "not a decision maker")

        if free is False:
            score += w.business_email
            earned.append(f"business email +{w.business_email}")
        else:
            missed.append("free mail" if free else "email domain unknown")
        return score, tuple(earned), tuple(missed)

    def _fit(self, score: int) -> tuple[str, str]:
        """(icp_fit, reason) of an ICP score."""
        fit = self._fits.get(score)
        if fit is None:
            fit = self._fits[score] = self._judge_fit(score)
        return fit

    def _judge_fit(self, score: int) -> tuple[str, str]:
        if score >= self._strong_at:
            return "strong", f"icp_score {score} ≥ strong_at {self._strong_at}"
        if score >= self._medium_at:
            return "medium", (
                f"icp_score {score} ≥ medium_at {self._medium_at}, < strong_at {self._strong_at}"
            )
        return "weak", f"icp_score {score} < medium_at {self._medium_at}"

    def _email(self, email: object) -> tuple[str | None, str, bool | None, str]:
        """(email_domain, reason, free_email, reason) of an email value of any type."""
        text = email if isinstance(email, str) else None if email is None else _text(email)
        if text is None:
            why = "no email" if email is None else f"email is {type(email).__name__}, not text"
            return None, why, None, why
        local, at, rest = text.rpartition("@")
        if not at:
            return (
                None,
                "email is blank" if not text.strip() else "email has no '@'",
                None,
                "no email domain",
            )
        if not local.strip():
            return None, "email has nothing before '@'", None, "no valid email address"
        return self._domain(rest)

    def _email_values(self, email: object) -> tuple[str | None, bool | None]:
        """(email_domain, free_email) of :meth:`_email`, without its reasons."""
        text = email if isinstance(email, str) else None if email is None else _text(email)
        if text is None:
            return None, None
        local, at, rest = text.rpartition("@")
        if not at or not local.strip():
            return None, None
        return self._domain_v(rest)

    # ---- the public entry points ----

    def values(self, lead: Mapping[str, Any]) -> dict[str, Any]:
        """The values of :meth:`enrich`, without their reasons: what a pull stores and rules
        read. The reasons are text for people (``syncd explain``), derived from the same
        fields when asked; building them was about 40 % of enriching a lead whose title and
        email domain are new, the common case in a real org."""
        get = lead.get
        domain, free = self._email_values(get("email"))
        raw_title = get("title")
        title = raw_title if isinstance(raw_title, str) else _text(raw_title)
        if title is None:
            role = seniority = decision_maker = None
        else:
            role, seniority, decision_maker = self._title_v(title)
        industry, country, employees = _firmographics(get)
        score = self._place(industry, country)[0]
        score += self._person(role, seniority if decision_maker else None, free)[0]
        if employees is not None and self._in_size(employees):
            score += self._weights.company_size
        bant = _BANT_OUTCOMES[_bant_mask(get), bool(decision_maker)][0]
        return {
            "email_domain": domain,
            "free_mail": free,
            "role": role,
            "seniority": seniority,
            "decision_maker": decision_maker,
            "icp_score": score,
            "icp_fit": self._fit(score)[0],
            "bant_score": bant,
            "bant_complete": bant == 4,
        }

    def enrich(self, lead: Mapping[str, Any]) -> Enrichment:
        """Derive every enrichment field of ``lead``.

        Args:
            lead: Field values in canonical names (:mod:`rules.fields`); any may be missing.

        Returns:
            Values and reasons for every field of :data:`rules.fields.ENRICHMENT_FIELDS`. Never
            raises for missing or oddly typed inputs.
        """
        get = lead.get

        domain, domain_reason, free, free_reason = self._email(get("email"))

        # Role, seniority, decision maker.
        raw_title = get("title")
        title = raw_title if isinstance(raw_title, str) else _text(raw_title)
        if title is None:
            why = (
                "no title"
                if raw_title is None
                else f"title is {type(raw_title).__name__}, not text"
            )
            role = seniority = decision_maker = None
            role_reason = seniority_reason = dm_reason = why
        else:
            tc = self._title(title)
            role, seniority, decision_maker = tc.role, tc.seniority, tc.decision_maker
            role_reason, seniority_reason = tc.role_reason, tc.seniority_reason
            dm_reason = tc.decision_maker_reason

        # ICP score: a pure function of six inputs, scored per lead from the cached scores of
        # its place and person parts. Not cached whole: the employee count makes nearly every
        # combination new on real data (47,205 of 50,000 realistic leads), where the cache's
        # hashing and eviction cost more than scoring (2.0 vs 1.2 µs per lead).
        industry, country, employees = _firmographics(get)
        score, icp_reason, fit, fit_reason = self._score_icp(
            industry, country, employees, role, seniority if decision_maker else None, free
        )

        # BANT: presence of each criterion; authority also from a decision-maker title.
        mask = _bant_mask(get)
        bant, bant_reason, complete_reason = _BANT_OUTCOMES[mask, bool(decision_maker)]

        return Enrichment(
            values={
                "email_domain": domain,
                "free_mail": free,
                "role": role,
                "seniority": seniority,
                "decision_maker": decision_maker,
                "icp_score": score,
                "icp_fit": fit,
                "bant_score": bant,
                "bant_complete": bant == 4,
            },
            reasons={
                "email_domain": domain_reason,
                "free_mail": free_reason,
                "role": role_reason,
                "seniority": seniority_reason,
                "decision_maker": dm_reason,
                "icp_score": icp_reason,
                "icp_fit": fit_reason,
                "bant_score": bant_reason,
                "bant_complete": complete_reason,
            },
        )


def _firmographics(get: Callable[[str], Any]) -> tuple[str | None, str | None, int | None]:
    """(industry, country, employees) of a lead, as text and a count where they can be."""
    industry = get("industry")
    if industry is not None and type(industry) is not str:
        industry = _text(industry)
    country = get("country")
    if country is not None and type(country) is not str:
        country = _text(country)
    employees = get("employees")
    if type(employees) is not int or employees < 0:  # int is the common case
        employees = _employee_count(employees)
    return industry, country, employees


def _bant_mask(get: Callable[[str], Any]) -> int:
    """Which BANT criteria a lead has entered, one bit each (:data:`_BANT_BITS`)."""
    mask = 0
    for bit, name in _BANT_BITS:
        value = get(name)
        if value is None:
            continue
        if type(value) is str:  # the common case, inlined: this runs per lead
            stripped = value.strip()
            ok = bool(stripped) and (
                len(stripped) > _LONGEST_PLACEHOLDER or stripped.lower() not in _BLANK_PLACEHOLDERS
            )
        else:
            ok = _present(value)
        if ok:
            mask |= bit
    return mask


def _criterion(
    name: str,
    value: str | None,
    judge: Callable[[str], tuple[bool, str]],
    weight: int,
    earned: list[str],
    missed: list[str],
) -> int:
    """Points one text criterion earns; its reason goes to ``earned`` or ``missed``."""
    if value is None or not value.strip():
        missed.append(f"{name} unknown")
        return 0
    hit, label = judge(value)
    if hit:
        earned.append(f"{label} +{weight}")
        return weight
    missed.append(label)
    return 0
