"""Salesforce record Ids in their two forms: 15 characters (case-sensitive, what the UI's URLs
and many reports show) and 18 (case-insensitive, what the API returns and the mirror keeps).

The 18-character form is the 15 plus a 3-character suffix: for each 5-character chunk, a 5-bit
number whose bit i is set when character i is an upper-case letter A-Z, as a letter of
``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``
(https://help.salesforce.com/s/articleView?id=000385008&type=1; Apex ``Id.to15()``:
https://developer.salesforce.com/docs/atlas.en-us.apexref.meta/apexref/apex_methods_system_id.htm).
"""

from __future__ import annotations

__all__ = ["to_18"]

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
