"""Title rules matched by word lookups give exactly what their regexes give."""

from __future__ import annotations

import re

import pytest

from syncd import enrichment
from syncd.enrichment_tokens import TokenScan, expand


def _regex_first(
    rules: tuple[tuple[str, re.Pattern[str]], ...], text: str
) -> tuple[str, str] | None:
    for label, pattern in rules:
        found = pattern.search(text)
        if found:
            return label, found.group(0)
    return None


def test_phrase_expands_to_every_text_in_the_regex_engines_preference_order() -> None:
    texts = [p.text for p in expand("vice ?president(?:e)?")]
    assert texts == ["vice presidente", "vice president", "vicepresidente", "vicepresident"]
    assert [p.text for p in expand("jef[ea]")] == ["jefe", "jefa"]
    owner = expand("(?<!product )(?<!process )owner")
    assert [(p.text, p.not_after) for p in owner] == [("owner", ("product ", "process "))]
    lead = expand("lead(?! gen| generation)")
    assert [(p.text, p.not_before) for p in lead] == [("lead", (" gen", " generation"))]
    (leiter, leiterin) = expand("(?:\\w*)leiter(?:in)?")[::-1]
    assert (leiter.text, leiter.suffix, leiterin.text) == ("leiter", True, "leiterin")


@pytest.mark.parametrize(
    "phrase",
    ["lead.*", "(sales|ops)", "ops+", "\\d+ years", "a{2}", "(?!x)lead", "a  b"],
)
def test_regex_syntax_the_scan_cannot_read_is_refused_when_the_rules_are_built(
    phrase: str,
) -> None:
    with pytest.raises(ValueError, match="title rule"):
        TokenScan([("x", re.compile(r"\b(?:" + phrase + r")\b"))])


@pytest.mark.parametrize(
    "text",
    [
        "vice president sales",
        "servicevice president",
        "presidente",
        "lead generation manager",
        "lead genius",
        "lead developer",
        "product owner",
        "process owner",
        "owner",
        "bereichsleiterin vertrieb",
        "teamleiter",
        "leiterinx",
        "r d lead",
        "learning and development partner",
        "chief information security officer",
        "go to market operations",
        "it help desk",
        "it helpdesk",
        "",
    ],
)
def test_word_scan_finds_what_the_rule_regexes_find_around_lookarounds_and_word_parts(
    text: str,
) -> None:
    words = text.split(" ") if text else []
    for rules, scan in (
        (enrichment._ROLE_RULES, enrichment._ROLE_SCAN),
        (enrichment._SENIORITY_RULES, enrichment._SENIORITY_SCAN),
    ):
        assert scan.first(text, words) == _regex_first(rules, text)
