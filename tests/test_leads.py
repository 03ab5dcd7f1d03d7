"""Behaviour of connectors.testing.leads: varied, deterministic leads the default lifecycle rules
act on."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.testing.leads import (
    DEMO_FIELDS,
    LEAD_SOURCES,
    STATUSES,
    generate_leads,
    generate_scale_leads,
)
from rules.fields import CRM_FIELDS
from syncd.enrichment import Enricher, EnrichmentSettings

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
SEEDS = (0, 1, 7, 42, 2026)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(EnrichmentSettings())


@pytest.fixture(scope="module", params=SEEDS)
def demo(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return generate_leads(300, seed=request.param, now=NOW)


def _age(moment: datetime) -> timedelta:
    return NOW - moment


# ---------------------------------------------------------------------------- shape


def test_demo_fields_are_canonical_crm_fields_plus_status_changed_at() -> None:
    assert set(DEMO_FIELDS) - set(CRM_FIELDS) == {"_status_changed_at"}
    assert set(CRM_FIELDS) <= set(DEMO_FIELDS)


def test_every_lead_has_exactly_the_demo_fields(demo: list[dict[str, Any]]) -> None:
    assert len(demo) == 300
    assert all(tuple(lead) == DEMO_FIELDS for lead in demo)


def test_same_seed_and_now_give_the_same_leads() -> None:
    assert generate_leads(120, seed=5, now=NOW) == generate_leads(120, seed=5, now=NOW)


def test_different_seeds_give_different_leads() -> None:
    first = [lead["email"] for lead in generate_leads(50, seed=1, now=NOW)]
    second = [lead["email"] for lead in generate_leads(50, seed=2, now=NOW)]
    assert first != second


def test_zero_leads_is_an_empty_list() -> None:
    assert generate_leads(0, seed=1, now=NOW) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: generate_leads(-1, seed=1, now=NOW),
        lambda: generate_leads(5, seed=1, now=datetime(2026, 1, 1)),
        lambda: generate_scale_leads(-1, seed=1, now=NOW),
        lambda: generate_scale_leads(5, seed=1, now=datetime(2026, 1, 1)),
    ],
)
def test_bad_arguments_raise_value_error_at_call_time(call: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each call breaks another argument
        call()


# ---------------------------------------------------------------------------- variety


def test_every_status_and_lead_source_appears(demo: list[dict[str, Any]]) -> None:
    assert {lead["status"] for lead in demo} == set(STATUSES)
    assert {lead["lead_source"] for lead in demo} == set(LEAD_SOURCES)


def test_free_mail_share_is_between_15_and_40_percent(
    demo: list[dict[str, Any]], enricher: Enricher
) -> None:
    free = sum(enricher.enrich(lead).values["free_mail"] for lead in demo)
    assert 0.15 <= free / len(demo) <= 0.40


def test_every_email_is_unique_and_has_a_valid_domain(
    demo: list[dict[str, Any]], enricher: Enricher
) -> None:
    emails = [lead["email"] for lead in demo]
    assert len(set(emails)) == len(emails)
    for lead in demo:
        values = enricher.enrich(lead).values
        assert values["email_domain"] is not None, lead["email"]
        assert lead["email"].isascii() and lead["email"] == lead["email"].lower()


def test_business_email_domain_matches_the_company(
    demo: list[dict[str, Any]], enricher: Enricher
) -> None:
    by_company: dict[str, set[str]] = {}
    for lead in demo:
        values = enricher.enrich(lead).values
        if values["free_mail"] is False:
            by_company.setdefault(lead["company"], set()).add(values["email_domain"])
    assert by_company
    assert all(len(domains) == 1 for domains in by_company.values())


def test_icp_fit_is_mixed(demo: list[dict[str, Any]], enricher: Enricher) -> None:
    fits = Counter(enricher.enrich(lead).values["icp_fit"] for lead in demo)
    for fit in ("strong", "medium", "weak"):
        assert fits[fit] >= 0.1 * len(demo), fits


def test_clear_misfits_exist(demo: list[dict[str, Any]], enricher: Enricher) -> None:
    students = [lead for lead in demo if lead["title"] in ("Student", "Graduate Student")]
    tiny = [lead for lead in demo if lead["employees"] is not None and lead["employees"] < 10]
    untitled_free_mail = [
        lead for lead in demo if lead["title"] is None and enricher.enrich(lead).values["free_mail"]
    ]
    assert students and tiny and untitled_free_mail
    for lead in students + tiny + untitled_free_mail:
        assert enricher.enrich(lead).values["icp_fit"] != "strong"


def test_stale_open_leads_exist(demo: list[dict[str, Any]]) -> None:
    stale = [
        lead
        for lead in demo
        if lead["status"] in ("New", "Open", "MQL")
        and (
            lead["last_activity_at"] is None or _age(lead["last_activity_at"]) > timedelta(days=90)
        )
    ]
    never_touched = [lead for lead in stale if lead["last_activity_at"] is None]
    assert len(stale) >= 15 and never_touched


def test_recently_active_open_leads_exist(demo: list[dict[str, Any]]) -> None:
    recent = [
        lead
        for lead in demo
        if lead["status"] in ("New", "Open", "MQL")
        and lead["last_activity_at"] is not None
        and _age(lead["last_activity_at"]) < timedelta(days=30)
    ]
    assert len(recent) >= 15


def test_sal_leads_both_within_and_past_the_48_hour_follow_up(demo: list[dict[str, Any]]) -> None:
    sal = [lead for lead in demo if lead["status"] == "SAL"]
    overdue = [
        lead
        for lead in sal
        if _age(lead["_status_changed_at"]) > timedelta(hours=48)
        and (
            lead["last_activity_at"] is None
            or lead["last_activity_at"] <= lead["_status_changed_at"]
        )
    ]
    within = [lead for lead in sal if _age(lead["_status_changed_at"]) < timedelta(hours=48)]
    assert overdue and within


def test_nurture_leads_both_untouched_past_180_days_and_recently(
    demo: list[dict[str, Any]],
) -> None:
    nurture = [lead for lead in demo if lead["status"] == "Nurture"]
    cold = [
        lead
        for lead in nurture
        if _age(lead["last_activity_at"]) > timedelta(days=180)
        and _age(lead["_status_changed_at"]) > timedelta(days=180)
    ]
    warm = [lead for lead in nurture if _age(lead["last_activity_at"]) < timedelta(days=180)]
    assert cold and warm


def test_unqualified_leads_untouched_for_90_days_exist(demo: list[dict[str, Any]]) -> None:
    assert any(
        lead["status"] == "Unqualified"
        and _age(lead["_status_changed_at"]) > timedelta(days=90)
        and (
            lead["last_activity_at"] is None or _age(lead["last_activity_at"]) > timedelta(days=90)
        )
        for lead in demo
    )


def test_good_fits_with_complete_bant_and_recent_activity_exist(
    demo: list[dict[str, Any]], enricher: Enricher
) -> None:
    ready = [
        lead
        for lead in demo
        if lead["status"] in ("New", "Open")
        and lead["last_activity_at"] is not None
        and _age(lead["last_activity_at"]) < timedelta(days=30)
        and enricher.enrich(lead).values["bant_complete"]
        and enricher.enrich(lead).values["icp_fit"] in ("strong", "medium")
    ]
    assert ready


def test_weak_fits_with_a_business_email_and_no_buying_authority_exist(
    demo: list[dict[str, Any]], enricher: Enricher
) -> None:
    found = []
    for lead in demo:
        values = enricher.enrich(lead).values
        if (
            values["icp_fit"] == "weak"
            and values["free_mail"] is False
            and values["seniority"] in ("individual", "unknown")
        ):
            found.append(lead)
    assert found


def test_sql_leads_mostly_have_bant(demo: list[dict[str, Any]], enricher: Enricher) -> None:
    sql = [lead for lead in demo if lead["status"] == "SQL"]
    complete = [lead for lead in sql if enricher.enrich(lead).values["bant_score"] >= 3]
    assert len(complete) >= len(sql) / 2


def test_timestamps_are_ordered_aware_whole_seconds_and_not_in_the_future(
    demo: list[dict[str, Any]],
) -> None:
    for lead in demo:
        created, activity, changed = (
            lead["created_at"],
            lead["last_activity_at"],
            lead["_status_changed_at"],
        )
        for moment in filter(None, (created, activity, changed)):
            assert moment.tzinfo is not None and moment.microsecond == 0
            assert moment <= NOW
        assert created <= changed
        assert activity is None or created <= activity
        if lead["status"] == "New":
            assert changed == created


def test_names_are_varied_and_include_non_ascii(demo: list[dict[str, Any]]) -> None:
    assert len({lead["last_name"] for lead in demo}) >= 30
    assert any(not lead["last_name"].isascii() or not lead["first_name"].isascii() for lead in demo)


def test_types_match_the_field_catalogue(demo: list[dict[str, Any]]) -> None:
    for lead in demo:
        assert lead["employees"] is None or type(lead["employees"]) is int
        assert lead["annual_revenue"] is None or type(lead["annual_revenue"]) is float
        for name in ("budget", "authority", "need", "timeline", "owner", "title", "company"):
            assert lead[name] is None or isinstance(lead[name], str)


# ---------------------------------------------------------------------------- scale


def test_scale_leads_have_the_demo_shape_and_unique_emails(enricher: Enricher) -> None:
    leads = list(generate_scale_leads(5000, seed=3, now=NOW))
    assert len(leads) == 5000
    assert all(tuple(lead) == DEMO_FIELDS for lead in leads)
    assert len({lead["email"] for lead in leads}) == 5000
    assert {lead["status"] for lead in leads} == set(STATUSES)
    assert {lead["lead_source"] for lead in leads} == set(LEAD_SOURCES)
    for lead in leads[:500]:
        assert enricher.enrich(lead).values["email_domain"] is not None
        assert lead["created_at"] <= NOW and lead["_status_changed_at"] <= NOW


def test_scale_leads_are_deterministic_and_lazy() -> None:
    first = list(itertools.islice(generate_scale_leads(10**9, seed=4, now=NOW), 300))
    again = list(itertools.islice(generate_scale_leads(10**9, seed=4, now=NOW), 300))
    assert first == again


def test_scale_leads_mix_free_mail_and_business_domains(enricher: Enricher) -> None:
    leads = generate_scale_leads(1000, seed=3, now=NOW)
    free = sum(bool(enricher.enrich(lead).values["free_mail"]) for lead in leads)
    assert 100 <= free <= 500
