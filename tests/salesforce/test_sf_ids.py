"""A 15-character Salesforce Id turns into the 18-character one the API returns; nothing else
is touched (https://help.salesforce.com/s/articleView?id=000385008&type=1)."""

from __future__ import annotations

import pytest

from connectors.salesforce.ids import canonical, to_18
from connectors.testing.salesforce import SalesforceEmulator

from .support import lead, simple_client


def _documented_suffix(id15: str) -> str:
    """The rule as Salesforce words it, written out the long way: per 5-character chunk, read
    the upper-case flags from the chunk's last character to its first as a binary number."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    letters = []
    for chunk in (id15[:5], id15[5:10], id15[10:]):
        flags = "".join("1" if ch.isupper() and ch.isascii() else "0" for ch in reversed(chunk))
        letters.append(alphabet[int(flags, 2)])
    return "".join(letters)


@pytest.mark.parametrize(
    ("id15", "suffix"),
    [
        ("abcdeabcdeabcde", "AAA"),  # no upper-case letter in a chunk: 0 -> 'A'
        ("ABCDEABCDEABCDE", "555"),  # all five upper-case: 31 -> '5'
        ("Abcde00000abcdE", "BAQ"),  # first character: bit 0, 1 -> 'B'; fifth: bit 4, 16 -> 'Q'
        ("001A0000006Vm9r", "IAC"),  # the example of Salesforce's article
        ("00Q5g00000000Po", "EAI"),  # README's `syncd audit 00Q5g00000000PoEAI`
    ],
)
def test_a_15_character_id_gets_the_documented_suffix_when_converted(
    id15: str, suffix: str
) -> None:
    assert _documented_suffix(id15) == suffix
    assert to_18(id15) == id15 + suffix


@pytest.mark.parametrize(
    "ref",
    [
        "00Q5g00000000PoEAI",  # already 18 characters
        "00q5g00000000poeai",  # 18 characters in another case: Salesforce compares those
        "ann@acme.com",  # an email
        "1028",  # a HubSpot id
        "00Q5g0000000-Po",  # 15 characters, not an Id
        "00Q5g00000000P",  # 14 characters
        "",
    ],
)
def test_anything_but_a_15_character_id_comes_back_unchanged_when_converted(ref: str) -> None:
    assert to_18(ref) == ref


def test_ids_the_emulator_issues_come_back_whole_when_cut_to_15_characters_and_converted(
    emu: SalesforceEmulator,
) -> None:
    # Twelve leads: the counter's last digits run 1..9 then A, B, C (upper-case flags).
    emu.add_leads([lead(i) for i in range(12)])
    answer = simple_client(emu).query("SELECT Id FROM Lead ORDER BY Id")
    issued = [str(r["Id"]) for r in answer["records"]]
    assert len(issued) == 12
    assert all(len(i) == 18 for i in issued)
    assert len({i[15:] for i in issued}) > 1  # not all the same suffix
    assert [to_18(i[:15]) for i in issued] == issued
    assert [canonical(i.lower()) for i in issued] == issued
    assert [canonical(i.upper()) for i in issued] == issued


@pytest.mark.parametrize(
    ("typed", "issued"),
    [
        ("00q5g00000000poeai", "00Q5g00000000PoEAI"),  # the 18 in lower case
        ("00Q5G00000000POEAI", "00Q5g00000000PoEAI"),  # and in upper case
        ("00Q5g00000000Po", "00Q5g00000000PoEAI"),  # the 15
        ("001a0000006vm9riac", "001A0000006Vm9rIAC"),  # Salesforce's article's example
    ],
)
def test_an_id_typed_in_either_form_and_any_case_comes_back_as_the_api_returns_it(
    typed: str, issued: str
) -> None:
    assert canonical(typed) == issued


@pytest.mark.parametrize(
    "ref",
    [
        "00q5g00000000po555",  # the suffix marks digits as upper-case: not an Id
        "ann@acme.com",
        "1028",
        "00Q5g00000000PoEA-",
    ],
)
def test_what_is_not_an_id_comes_back_unchanged_from_canonical(ref: str) -> None:
    assert canonical(ref) == ref
