"""The enricher's fast paths give exactly what a straightforward implementation gives.

``classify_title`` tries only the rules a title's word starts make plausible, and finds the words
as written without a regex for ASCII titles; the reference here runs every rule's regex in order
and searches case-insensitively, as the enricher did before. Both must agree on every value and
every reason, over thousands of varied titles.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

from bench.realistic import realistic_leads
from connectors.testing.leads import generate_leads
from syncd import enrichment
from syncd.enrichment import (
    DECISION_MAKER_SENIORITIES,
    Enricher,
    EnrichmentSettings,
    TitleClass,
    classify_title,
)

_NOW = datetime(2026, 6, 1, tzinfo=UTC)
_PHRASE_WORDS = re.compile(r"[a-zäöüéèáíóúñß]+(?: [a-zäöüéèáíóúñß]+)*")


def _reference_first(
    rules: tuple[tuple[str, re.Pattern[str]], ...], text: str
) -> tuple[str, str] | None:
    for label, pattern in rules:
        found = pattern.search(text)
        if found:
            return label, found.group(0)
    return None


def _reference_written(title: str, matched: str) -> str:
    pattern = r"[\W_]+".join(map(re.escape, matched.split()))
    found = re.search(pattern, title, re.IGNORECASE)
    return found.group(0) if found else matched


def _reference_classify(title: str) -> TitleClass:
    """classify_title written the plain way: every regex of both lists, in order."""
    shown = title.strip()
    if not shown:
        return TitleClass(None, None, None, "no title", "no title", "no title")
    if len(shown) > 60:
        shown = shown[:60] + "…"
    text = re.sub(r"[\W_]+", " ", title.lower()).strip()
    role = _reference_first(enrichment._ROLE_RULES, text)
    rank = _reference_first(enrichment._SENIORITY_RULES, text)
    if role is None:
        role_out, role_reason = "other", f"title {shown!r} → role other (no function word)"
    else:
        role_out = role[0]
        written = _reference_written(title, role[1])
        role_reason = f"title {shown!r} → role {role[0]} (matched {written!r})"
    if rank is None:
        rank_out, rank_reason = "unknown", f"title {shown!r} → seniority unknown (no rank word)"
    else:
        rank_out = rank[0]
        written = _reference_written(title, rank[1])
        rank_reason = f"title {shown!r} → seniority {rank[0]} (matched {written!r})"
    if rank_out in DECISION_MAKER_SENIORITIES:
        dm, dm_reason = True, f"seniority {rank_out} decides purchases"
    else:
        dm, dm_reason = False, f"seniority {rank_out} is not a decision maker"
    return TitleClass(role_out, rank_out, dm, role_reason, rank_reason, dm_reason)


def _phrase_titles(rng: random.Random) -> list[str]:
    """Titles built around every word the rule lists know, in varied places, cases and
    punctuation, plus near misses (the word inside another word, a prefix of it)."""
    words: set[str] = set()
    for _label, pattern in (*enrichment._ROLE_RULES, *enrichment._SENIORITY_RULES):
        words.update(_PHRASE_WORDS.findall(pattern.pattern))
    fillers = ["Senior", "of", "Global", "EMEA", "II", "&", "-", "/", "for", "the", "x"]
    titles = []
    for word in sorted(words):
        for _ in range(4):
            parts = [rng.choice(fillers) for _ in range(rng.randint(0, 3))]
            token = rng.choice((word, word.upper(), word.title(), f"pre{word}", word[:-1]))
            parts.insert(rng.randint(0, len(parts)), token)
            title = rng.choice((" ", ", ", "_", " | ")).join(parts)
            titles.append(title)
    return titles


def _varied_titles() -> list[str]:
    rng = random.Random(7)
    titles = [
        lead["title"]
        for lead in realistic_leads(3000, seed=3, now=_NOW)
        if isinstance(lead["title"], str)
    ]
    titles += [t for lead in generate_leads(300, seed=5, now=_NOW) if (t := lead["title"])]
    titles += _phrase_titles(rng)
    titles += [
        "İstanbul Müdürü",
        "DIRECTEUR GÉNÉRAL",
        "Straße-Leiter",
        "K-12 Teacher",
        "\u017fales",
    ]
    titles += ["Vice President", "vice-president, sales", "Product Owner", "Process Owner"]
    titles += ["a b c", "r&d lead", "l&d", "x", "  ", "CRM", "crm admin", "R & D"]
    return titles


def test_title_classification_matches_the_full_regex_scan_on_thousands_of_titles() -> None:
    titles = _varied_titles()
    assert len(titles) > 4000
    mismatches = [
        (t, classify_title(t), _reference_classify(t))
        for t in titles
        if classify_title(t) != _reference_classify(t)
    ]
    assert mismatches == []


def _reference_icp(
    enricher: Enricher, values: dict[str, Any], lead: dict[str, Any]
) -> tuple[int, str, str, str]:
    """icp_score, its reason, icp_fit and its reason, criterion by criterion in one pass."""
    w = enricher.settings.icp.weights
    icp = enricher.settings.icp
    score = 0
    earned: list[str] = []
    missed: list[str] = []
    for name, value, judge, weight in (
        ("industry", lead["industry"], enricher._score_industry, w.industry),
        ("country", lead["country"], enricher._score_country, w.country),
    ):
        if value is None or not value.strip():
            missed.append(f"{name} unknown")
            continue
        hit, label = judge(value)
        if hit:
            score += weight
            earned.append(f"{label} +{weight}")
        else:
            missed.append(label)
    employees, role = lead["employees"], values["role"]
    size = f"{icp.min_employees}..{icp.max_employees}"
    if employees is None:
        missed.append("employees unknown")
    elif icp.min_employees <= employees <= icp.max_employees:
        score += w.company_size
        earned.append(f"{employees} employees in {size} +{w.company_size}")
    else:
        missed.append(f"{employees} employees outside {size}")
    if role is None:
        missed.append("role unknown")
    elif role in icp.roles:
        score += w.role
        earned.append(f"role {role} +{w.role}")
    else:
        missed.append(f"role {role} not in ICP")
    if values["decision_maker"]:
        score += w.decision_maker
        earned.append(f"decision maker ({values['seniority']}) +{w.decision_maker}")
    else:
        missed.append("decision maker unknown" if role is None else "not a decision maker")
    if values["free_mail"] is False:
        score += w.business_email
        earned.append(f"business email +{w.business_email}")
    else:
        missed.append("free mail" if values["free_mail"] else "email domain unknown")
    reason = f"icp_score {score}: " + (", ".join(earned) if earned else "no points")
    if missed:
        reason += "; missed: " + ", ".join(missed)
    return (score, reason, *enricher._judge_fit(score))


def test_enricher_gives_the_same_values_and_reasons_as_the_reference_implementations() -> None:
    enricher = Enricher(EnrichmentSettings())
    leads = list(realistic_leads(3000, seed=9, now=_NOW))
    assert len({lead["title"] for lead in leads}) > 1500  # varied, not a few cached values
    for lead in leads:
        got = enricher.enrich(lead)
        values, reasons = got.values, got.reasons
        title = lead["title"]
        if isinstance(title, str):
            want = _reference_classify(title)
            assert (values["role"], values["seniority"]) == (want.role, want.seniority)
            assert values["decision_maker"] == want.decision_maker
            assert reasons["role"] == want.role_reason
            assert reasons["seniority"] == want.seniority_reason
            assert reasons["decision_maker"] == want.decision_maker_reason
        score, reason, fit, fit_reason = _reference_icp(enricher, values, lead)
        assert (values["icp_score"], values["icp_fit"]) == (score, fit)
        assert (reasons["icp_score"], reasons["icp_fit"]) == (reason, fit_reason)
