"""Behaviour of syncd.enrichment: derived lead fields and the reasons given for them."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.fields import ENRICHMENT_FIELDS
from syncd.enrichment import (
    ROLES,
    SENIORITIES,
    Enricher,
    EnrichmentSettings,
    IcpSettings,
    IcpWeights,
    classify_title,
)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(EnrichmentSettings())


# A lead that fits the default ICP on every criterion.
FIT_LEAD: dict[str, Any] = {
    "email": "jane.doe@acme.com",
    "title": "VP Marketing",
    "industry": "Software",
    "country": "US",
    "employees": 250,
}


# ---------------------------------------------------------------------------- titles

TITLES = [
    # (title, role, seniority)
    ("CEO", "executive", "c_level"),
    ("Chief Executive Officer", "executive", "c_level"),
    ("Founder & CEO", "executive", "c_level"),
    ("Co-Founder", "executive", "c_level"),
    ("Owner", "executive", "c_level"),
    ("President", "executive", "c_level"),
    ("Managing Director", "executive", "c_level"),
    ("CFO", "finance", "c_level"),
    ("Chief Marketing Officer (CMO)", "marketing", "c_level"),
    ("Chief Revenue Officer", "sales", "c_level"),
    ("CTO & Co-founder", "engineering", "c_level"),
    ("Chief Information Security Officer", "it", "c_level"),
    ("COO", "operations", "c_level"),
    ("Geschäftsführer", "executive", "c_level"),
    # assistants to executives are neither executives nor decision makers
    ("Assistant to the CEO", "other", "individual"),
    ("Executive Assistant to the CFO", "other", "individual"),
    ("Chief of Staff", "executive", "manager"),
    ("VP Marketing", "marketing", "vp"),
    ("VP, Sales Operations", "operations", "vp"),
    ("Senior Vice President, Global Sales", "sales", "vp"),
    ("EVP Customer Success", "customer_success", "vp"),
    ("Vice-President, Finance", "finance", "vp"),
    ("Head of Growth", "marketing", "vp"),
    ("Head of IT", "it", "vp"),
    ("General Counsel", "legal", "vp"),
    ("AVP, Marketing", "marketing", "director"),
    ("Director of Demand Generation", "marketing", "director"),
    ("IT Director", "it", "director"),
    ("Directeur Commercial", "sales", "director"),
    ("Director, Product Management", "product", "director"),
    ("Associate Director, Product Marketing", "marketing", "manager"),
    ("Senior Manager, Revenue Operations", "operations", "manager"),
    ("Marketing Manager", "marketing", "manager"),
    ("Customer Success Manager", "customer_success", "manager"),
    ("Engineering Manager", "engineering", "manager"),
    ("HR Manager", "hr", "manager"),
    ("Operations Manager", "operations", "manager"),
    ("Team Lead, Support", "customer_success", "manager"),
    ("Product Manager", "product", "manager"),
    ("Responsable Marketing", "marketing", "manager"),
    ("Jefe de Ventas", "sales", "manager"),
    ("Abteilungsleiter Vertrieb", "sales", "manager"),
    ("Sr. Software Engineer", "engineering", "individual"),
    ("Staff Software Engineer", "engineering", "individual"),
    ("Network Engineer", "it", "individual"),
    ("Sales Engineer", "sales", "individual"),
    ("Marketing Intern", "marketing", "individual"),
    ("Lead Generation Specialist", "marketing", "individual"),
    ("Sales Development Representative", "sales", "individual"),
    ("Account Executive", "sales", "individual"),
    ("Financial Analyst", "finance", "individual"),
    ("Talent Acquisition Specialist", "hr", "individual"),
    ("Paralegal", "legal", "individual"),
    ("Salesforce Administrator", "operations", "individual"),
    ("Product Owner", "product", "individual"),
    ("Principal Consultant", "other", "individual"),
    ("Gerente de TI", "it", "manager"),
    ("Head of People", "hr", "vp"),
    ("Chief Customer Officer", "customer_success", "c_level"),
    ("Student", "other", "individual"),
    ("Vice President", "other", "vp"),
    ("Ninja", "other", "unknown"),
]


@pytest.mark.parametrize(("title", "role", "seniority"), TITLES)
def test_title_maps_to_role_and_seniority(title: str, role: str, seniority: str) -> None:
    found = classify_title(title)
    assert (found.role, found.seniority) == (role, seniority)


def test_title_table_covers_every_role_and_seniority() -> None:
    assert {role for _, role, _ in TITLES} == set(ROLES)
    assert {seniority for _, _, seniority in TITLES} == set(SENIORITIES)


@pytest.mark.parametrize(
    ("title", "decision_maker"),
    [
        ("Founder & CEO", True),
        ("VP Marketing", True),
        ("Head of Growth", True),
        ("Director of IT", True),
        ("Assistant to the CEO", False),
        ("Chief of Staff", False),
        ("Marketing Manager", False),
        ("Marketing Intern", False),
        ("Ninja", False),
    ],
)
def test_decision_maker_follows_seniority(
    enricher: Enricher, title: str, decision_maker: bool
) -> None:
    assert enricher.enrich({"title": title}).values["decision_maker"] is decision_maker


def test_seniority_reason_quotes_the_title_and_the_words_as_written(enricher: Enricher) -> None:
    reasons = enricher.enrich({"title": "VP Marketing"}).reasons
    assert reasons["seniority"] == "title 'VP Marketing' → seniority vp (matched 'VP')"
    assert reasons["role"] == "title 'VP Marketing' → role marketing (matched 'Marketing')"


def test_title_case_and_punctuation_do_not_change_classification() -> None:
    variants = ["vp marketing", "VP MARKETING", "  VP - Marketing ", "V.P. Marketing"]
    assert {(classify_title(t).role, classify_title(t).seniority) for t in variants[:3]} == {
        ("marketing", "vp")
    }
    # "V.P." is read as the words "v" and "p": rank unknown, but the function still shows.
    assert classify_title(variants[3]).role == "marketing"


# ---------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("email", "domain", "free_mail"),
    [
        ("jane@gmail.com", "gmail.com", True),
        ("Jane.Doe@GMAIL.COM", "gmail.com", True),
        ("  jane@googlemail.com ", "googlemail.com", True),
        ("jane@yahoo.co.uk", "yahoo.co.uk", True),
        ("jane@yahoo.com.br", "yahoo.com.br", True),
        ("jane@yahoo.fr", "yahoo.fr", True),
        ("jane@hotmail.de", "hotmail.de", True),
        ("jane@outlook.com", "outlook.com", True),
        ("jane@gmx.net", "gmx.net", True),
        ("jane@web.de", "web.de", True),
        ("jane@mail.ru", "mail.ru", True),
        ("jane@yandex.ru", "yandex.ru", True),
        ("jane@qq.com", "qq.com", True),
        ("jane@163.com", "163.com", True),
        ("jane@icloud.com", "icloud.com", True),
        ("jane@proton.me", "proton.me", True),
        ("jane@fastmail.fm", "fastmail.fm", True),
        ("jane@hey.com", "hey.com", True),
        ("jane@zoho.com", "zoho.com", True),
        ("jane@mail.yahoo.co.jp", "mail.yahoo.co.jp", True),  # subdomain of a country variant
        ("jane@eu.mail.gmail.com", "eu.mail.gmail.com", True),  # subdomain of a provider
        ("jane@acme.com", "acme.com", False),
        ("jane@sales.acme.co.uk", "sales.acme.co.uk", False),
        ("jane@gmail.com.evil.io", "gmail.com.evil.io", False),  # provider name as a subdomain
        ("jane@yahoo-finance-partners.com", "yahoo-finance-partners.com", False),
        ("jane@notgmail.com", "notgmail.com", False),
        ("a@b@acme.io", "acme.io", False),  # the domain is what follows the last '@'
    ],
)
def test_email_domain_and_free_mail(
    enricher: Enricher, email: str, domain: str, free_mail: bool
) -> None:
    values = enricher.enrich({"email": email}).values
    assert (values["email_domain"], values["free_mail"]) == (domain, free_mail)


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        (None, "no email"),
        ("", "email is blank"),
        ("jane.doe", "email has no '@'"),
        ("@acme.com", "email has nothing before '@'"),
        ("jane@", "email has nothing after '@'"),
        ("jane@localhost", "email domain 'localhost' is not a valid host name"),
        ("jane@acme..com", "email domain 'acme..com' is not a valid host name"),
        ("jane@-acme.com", "email domain '-acme.com' is not a valid host name"),
        (12345, "email is int, not text"),
    ],
)
def test_invalid_email_gives_no_domain_and_says_why(
    enricher: Enricher, email: Any, reason: str
) -> None:
    result = enricher.enrich({"email": email})
    assert result.values["email_domain"] is None
    assert result.values["free_mail"] is None
    assert result.reasons["email_domain"] == reason


def test_bytes_email_is_decoded(enricher: Enricher) -> None:
    assert enricher.enrich({"email": b"jane@Acme.com"}).values["email_domain"] == "acme.com"


def test_internationalised_domain_is_accepted(enricher: Enricher) -> None:
    assert enricher.enrich({"email": "jörg@müller.de"}).values["email_domain"] == "müller.de"


def test_extra_free_mail_domains_extend_the_built_in_list() -> None:
    enricher = Enricher(EnrichmentSettings(extra_free_mail_domains=["@Regional-Mail.example"]))
    result = enricher.enrich({"email": "jane@inbox.regional-mail.example"})
    assert result.values["free_mail"] is True
    assert "extra_free_mail_domains" in result.reasons["free_mail"]
    assert (
        Enricher(EnrichmentSettings())
        .enrich({"email": "jane@regional-mail.example"})
        .values["free_mail"]
        is False
    )


def test_free_mail_reason_names_the_provider(enricher: Enricher) -> None:
    assert enricher.enrich({"email": "j@mail.yahoo.co.jp"}).reasons["free_mail"] == (
        "mail.yahoo.co.jp is a consumer mail provider via yahoo.co.jp (built-in list)"
    )


# ---------------------------------------------------------------------------- ICP


def test_icp_reason_lists_each_criterion_with_its_points(enricher: Enricher) -> None:
    result = enricher.enrich({**FIT_LEAD, "title": "Marketing Manager"})
    assert result.values["icp_score"] == 80
    assert result.reasons["icp_score"] == (
        "icp_score 80: industry Software +25, country US +15, 250 employees in 50..5000 +20, "
        "role marketing +10, business email +10; missed: not a decision maker"
    )


def test_full_fit_scores_100_and_is_strong(enricher: Enricher) -> None:
    values = enricher.enrich(FIT_LEAD).values
    assert (values["icp_score"], values["icp_fit"]) == (100, "strong")


def test_student_with_free_mail_and_no_company_is_weak(enricher: Enricher) -> None:
    result = enricher.enrich({"email": "kid@gmail.com", "title": "Student"})
    assert (result.values["icp_score"], result.values["icp_fit"]) == (0, "weak")
    assert result.reasons["icp_score"] == (
        "icp_score 0: no points; missed: industry unknown, country unknown, employees unknown, "
        "role other not in ICP, not a decision maker, free mail"
    )
    assert result.reasons["icp_fit"] == "icp_score 0 < medium_at 40"


def test_lead_with_no_fields_scores_zero_without_raising(enricher: Enricher) -> None:
    result = enricher.enrich({})
    assert set(result.values) == set(ENRICHMENT_FIELDS) == set(result.reasons)
    assert result.values == {
        "email_domain": None,
        "free_mail": None,
        "role": None,
        "seniority": None,
        "decision_maker": None,
        "icp_score": 0,
        "icp_fit": "weak",
        "bant_score": 0,
        "bant_complete": False,
    }
    assert all(result.reasons.values())


@pytest.mark.parametrize(
    "industry", ["COMPUTER_SOFTWARE", "computer software", "Marketing & Advertising", " Software "]
)
def test_industry_matches_across_crm_spellings(enricher: Enricher, industry: str) -> None:
    assert "+25" in enricher.enrich({"industry": industry}).reasons["icp_score"]


@pytest.mark.parametrize(
    "country", ["US", "us", "USA", "United States", "U.S.A.", "United States of America"]
)
def test_country_aliases_resolve_to_iso_code(enricher: Enricher, country: str) -> None:
    assert "country US +15" in enricher.enrich({"country": country}).reasons["icp_score"]


def test_country_outside_icp_and_unrecognised_country_are_told_apart(enricher: Enricher) -> None:
    assert "country BR not in ICP" in enricher.enrich({"country": "Brazil"}).reasons["icp_score"]
    assert (
        "country 'Narnia' not recognised"
        in enricher.enrich({"country": "Narnia"}).reasons["icp_score"]
    )


@pytest.mark.parametrize(
    ("employees", "in_range"),
    [
        (50, True),
        (5000, True),
        (49, False),
        (5001, False),
        ("1,200", True),
        ("51-200", True),
        ("10000+", False),
        (250.0, True),
        ("12", False),
        ("many", None),
        (True, None),
        (-3, None),
        (None, None),
    ],
)
def test_company_size_bounds_are_inclusive_and_odd_values_are_unknown(
    enricher: Enricher, employees: Any, in_range: bool | None
) -> None:
    reason = enricher.enrich({"employees": employees}).reasons["icp_score"]
    if in_range is None:
        assert "employees unknown" in reason
    elif in_range:
        assert "in 50..5000 +20" in reason
    else:
        assert "outside 50..5000" in reason


def test_weights_and_thresholds_come_from_settings() -> None:
    settings = EnrichmentSettings(
        icp=IcpSettings(
            industries=["Retail"],
            countries=["Germany"],
            min_employees=1,
            max_employees=None,
            roles=["finance"],
            weights=IcpWeights(
                industry=50, country=0, company_size=0, role=0, decision_maker=0, business_email=0
            ),
            strong_at=50,
            medium_at=10,
        )
    )
    result = Enricher(settings).enrich(
        {"industry": "retail", "country": "DE", "employees": 100000, "title": "CFO"}
    )
    assert (result.values["icp_score"], result.values["icp_fit"]) == (50, "strong")
    assert "100000 employees in ≥ 1 +0" in result.reasons["icp_score"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"weights": {"industry": 90, "country": 90}}, "add up to"),
        ({"roles": ["marketng"]}, "unknown role 'marketng'"),
        ({"countries": ["Narnia"]}, "unknown country 'Narnia'"),
        ({"min_employees": 100, "max_employees": 10}, "below min_employees"),
        ({"strong_at": 30, "medium_at": 60}, "above strong_at"),
        ({"strong_at": 70, "stronk_at": 80}, "stronk_at"),
    ],
)
def test_invalid_icp_settings_are_rejected_at_load(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        IcpSettings.model_validate(bad)


def test_every_settings_field_is_described() -> None:
    for model in (IcpSettings, IcpWeights, EnrichmentSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


# ---------------------------------------------------------------------------- BANT


@pytest.mark.parametrize(
    ("lead", "score"),
    [
        ({}, 0),
        ({"budget": "Approved"}, 1),
        ({"budget": "Approved", "need": "Routing", "timeline": "Q3"}, 3),
        ({"budget": "Approved", "authority": "Signer", "need": "Routing", "timeline": "Q3"}, 4),
        ({"budget": "  ", "need": "", "timeline": "N/A", "authority": "unknown"}, 0),
        ({"budget": True, "need": False}, 1),
        ({"budget": 50000}, 1),
        ({"budget": b"yes"}, 1),
        # authority also counts when the title makes the lead a decision maker
        ({"title": "CFO", "budget": "Approved", "need": "x", "timeline": "Q3"}, 4),
        ({"title": "Analyst", "budget": "Approved", "need": "x", "timeline": "Q3"}, 3),
    ],
)
def test_bant_counts_present_criteria(enricher: Enricher, lead: dict[str, Any], score: int) -> None:
    values = enricher.enrich(lead).values
    assert values["bant_score"] == score
    assert values["bant_complete"] is (score == 4)


def test_bant_reason_names_present_and_missing_criteria(enricher: Enricher) -> None:
    reasons = enricher.enrich({"title": "VP Sales", "budget": "Approved"}).reasons
    assert reasons["bant_score"] == (
        "bant_score 2: budget, authority (decision maker); missing: need, timeline"
    )
    assert reasons["bant_complete"] == "missing: need, timeline"


# ---------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    ("title", "reason"),
    [
        (None, "no title"),
        ("", "no title"),
        ("   ", "no title"),
        (42, "title is int, not text"),
        (["CEO"], "title is list, not text"),
    ],
)
def test_missing_or_non_text_title_gives_none_with_reason(
    enricher: Enricher, title: Any, reason: str
) -> None:
    result = enricher.enrich({"title": title})
    assert (result.values["role"], result.values["seniority"], result.values["decision_maker"]) == (
        None,
        None,
        None,
    )
    assert result.reasons["seniority"] == reason


def test_bytes_title_is_decoded(enricher: Enricher) -> None:
    assert enricher.enrich({"title": "Directrice Générale".encode()}).values["seniority"] == (
        "c_level"
    )


def test_odd_types_everywhere_never_raise(enricher: Enricher) -> None:
    odd: list[Any] = [
        None,
        0,
        -1,
        3.5,
        float("nan"),
        True,
        b"\xff\xfe",
        [],
        {},
        object(),
        "x" * 500,
    ]
    for value in odd:
        lead = {
            name: value
            for name in (
                "email",
                "title",
                "industry",
                "country",
                "employees",
                "budget",
                "authority",
                "need",
                "timeline",
            )
        }
        result = enricher.enrich(lead)
        assert set(result.values) == set(ENRICHMENT_FIELDS)
        assert 0 <= result.values["icp_score"] <= 100
        assert all(len(reason) < 400 for reason in result.reasons.values())


def test_long_title_is_shortened_in_reason(enricher: Enricher) -> None:
    reason = enricher.enrich({"title": "Marketing " * 30}).reasons["role"]
    assert "…" in reason and len(reason) < 150


def test_enrichment_is_deterministic_across_instances_and_cache_state() -> None:
    leads = [FIT_LEAD, {"email": "x@gmail.com", "title": "Student"}, {"title": "Head of IT"}, {}]
    first = Enricher(EnrichmentSettings())
    warm = [first.enrich(lead) for lead in leads]
    again = [first.enrich(lead) for lead in leads]  # from the caches this time
    fresh = [Enricher(EnrichmentSettings()).enrich(lead) for lead in leads]
    assert warm == again == fresh


def test_enrich_does_not_modify_the_lead(enricher: Enricher) -> None:
    lead = dict(FIT_LEAD)
    enricher.enrich(lead)
    assert lead == FIT_LEAD


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.binary(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.emails(),
    st.sampled_from([t for t, _, _ in TITLES]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            name: _ANY_VALUE
            for name in (
                "email",
                "title",
                "industry",
                "country",
                "employees",
                "budget",
                "authority",
                "need",
                "timeline",
            )
        },
    )
)
def test_any_lead_enriches_to_values_within_their_domains(lead: dict[str, Any]) -> None:
    enricher = Enricher(EnrichmentSettings())
    result = enricher.enrich(lead)
    values = result.values
    assert enricher.values(lead) == values, "what a pull stores is what enrich derives"
    assert set(values) == set(result.reasons) == set(ENRICHMENT_FIELDS)
    assert values["role"] in (*ROLES, None)
    assert values["seniority"] in (*SENIORITIES, None)
    assert values["free_mail"] in (True, False, None)
    assert (values["email_domain"] is None) == (values["free_mail"] is None)
    assert 0 <= values["icp_score"] <= 100
    assert values["icp_fit"] in ("strong", "medium", "weak")
    assert 0 <= values["bant_score"] <= 4
    assert all(isinstance(reason, str) and reason for reason in result.reasons.values())


@pytest.mark.parametrize(
    "settings_",
    [
        EnrichmentSettings(),
        EnrichmentSettings(
            extra_free_mail_domains=["acme.com", "mail.example"],
            icp={"min_employees": 1000, "max_employees": None, "roles": ["it"]},
        ),
    ],
    ids=["defaults", "other-icp"],
)
def test_values_are_the_values_of_enrich_on_realistic_and_odd_leads(
    settings_: EnrichmentSettings,
) -> None:
    # A pull stores values() (no reasons); explain shows enrich(): they must agree on every
    # lead, from cold and from warm caches alike (each has caches of its own).
    from datetime import UTC, datetime

    from bench.realistic import realistic_leads

    leads: list[dict[str, Any]] = list(
        realistic_leads(4000, seed=9, now=datetime(2026, 11, 1, tzinfo=UTC))
    )
    leads += [
        {"email": b"x@GMAIL.com", "title": b"VP Sales", "employees": "51-200", "industry": 7},
        {"email": "a@\uff47\uff4d\uff41\uff49\uff4c\uff0e\uff43\uff4f\uff4d", "title": " "},
        {"email": "@x.com", "budget": "n/a", "authority": True},
        {"email": "nobody", "employees": float("nan"), "title": 3.5},
        {"email": "j@m\u00fcller.de", "employees": -3, "need": "  ", "timeline": "Q3"},
        {},
    ]
    enricher = Enricher(settings_)
    for _ in range(2):
        for lead in leads:
            assert enricher.values(lead) == enricher.enrich(lead).values, lead
