"""The emulator's record ids carry Salesforce's case-safety checksum."""

from __future__ import annotations

import pytest

from connectors.testing.salesforce.ids import IdFactory, to_18


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),  # Salesforce's documented example
        ("00Q000000000000", "00Q000000000000EAA"),
        ("ZZZZZZZZZZZZZZZ", "ZZZZZZZZZZZZZZZ555"),
        ("zzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzAAA"),
    ],
)
def test_the_checksum_flags_the_upper_case_letters_of_each_five_characters(
    id15: str, id18: str
) -> None:
    assert to_18(id15) == id18


def test_minted_ids_are_18_characters_whose_suffix_is_their_checksum() -> None:
    ids = IdFactory()
    minted = [ids.new("00Q") for _ in range(1000)]
    assert minted == sorted(minted) and len(set(minted)) == 1000
    assert all(len(i) == 18 and to_18(i[:15]) == i for i in minted)
