"""Salesforce record Ids in their two forms: 15 characters (case-sensitive, what the UI's URLs
and many reports show) and 18 (case-insensitive, what the API returns and the mirror keeps).

The 18-character form is the 15 plus a 3-character suffix: for each 5-character chunk, a 5-bit
number whose bit i is set when character i is an upper-case letter A-Z, as a letter of
``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``
(https://help.salesforce.com/s/articleView?id=000385008&type=1; Apex ``Id.to15()``:
https://developer.salesforce.com/docs/atlas.en-us.apexref.meta/apexref/apex_methods_system_id.htm).
"""

from __future__ import annotations

__all__ = ["canonical", "to_18"]

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def to_18(record_id: str) -> str:
    """The 18-character form of a 15-character Salesforce Id; anything else as it is.

    Only 15 ASCII letters and digits are an Id to convert: an 18-character Id (its suffix not
    checked: Salesforce compares those case-insensitively), an email or a HubSpot id of another
    length comes back unchanged, so a lookup of the result fails as the original would.
    """
    if len(record_id) != 15 or not (record_id.isascii() and record_id.isalnum()):
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        chunk = record_id[start : start + 5]
        suffix += _SUFFIX[sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")]
    return record_id + suffix


def canonical(record_id: str) -> str:
    """The 18-character Id as the API returns it, from either form, in any case.

    Salesforce compares 18-character Ids case-insensitively because the suffix carries the case
    of the first 15 characters: here it puts that case back (``00q5g00000000poeai`` is
    ``00Q5g00000000PoEAI``). A 15-character Id gets its suffix (:func:`to_18`). Anything else,
    and an 18-character string whose suffix marks a digit as upper-case (not an Id), comes back
    unchanged.
    """
    if len(record_id) == 15:
        return to_18(record_id)
    if len(record_id) != 18 or not (record_id.isascii() and record_id.isalnum()):
        return record_id
    suffix = record_id[15:].upper()
    chars = list(record_id[:15].lower())
    for chunk, letter in enumerate(suffix):
        flags = _SUFFIX.find(letter)
        if flags < 0:
            return record_id
        for i in range(5):
            if flags & (1 << i):
                at = chunk * 5 + i
                if not chars[at].isalpha():
                    return record_id
                chars[at] = chars[at].upper()
    return "".join(chars) + suffix
