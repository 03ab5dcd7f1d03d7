"""Salesforce-shaped record ids: 3-char key prefix + 12-char counter + 3-char case checksum.

The counter is base62 in ASCII order (0-9, A-Z, a-z), so for one prefix string order equals
creation order, which keeps ``ORDER BY Id`` and ``Id > :last`` consistent in the emulator.
"""

from __future__ import annotations

import itertools
import threading

__all__ = ["IdFactory", "to_18"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


#: An id's characters as bits of the checksum: upper-case letters 1, the rest 0.
_UPPER_BITS = str.maketrans({ch: "1" if "A" <= ch <= "Z" else "0" for ch in _B62})


def to_18(id15: str) -> str:
    """Append Salesforce's case-safety checksum to a 15-character id."""
    if id15.isascii() and id15.isalnum():
        # Each 5-character chunk's upper-case flags, first character lowest bit: one
        # translate and three base-2 parses (the emulator mints an id per record written).
        bits = id15[:15].translate(_UPPER_BITS)
        return (
            id15
            + _SUFFIX[int(bits[4::-1], 2)]
            + _SUFFIX[int(bits[9:4:-1], 2)]
            + _SUFFIX[int(bits[14:9:-1], 2)]
        )
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits_of = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits_of]
    return id15 + suffix


class IdFactory:
    """Mints increasing 18-character ids per key prefix ('00Q' Lead, '701' Campaign, ...)."""

    def __init__(self, org_marker: str = "5g") -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}
        self._marker = org_marker  # two chars after the prefix, like a pod/instance marker

    def observe(self, record_id: str) -> None:
        """Mint only ids after ``record_id`` from now on (a restored record keeps its id)."""
        prefix, digits = record_id[:3], record_id[3 + len(self._marker) : 15]
        n = 0
        for ch in digits:
            n = n * 62 + _B62.index(ch)
        with self._lock:
            current = self._counters.get(prefix)
            start = next(current) if current is not None else 1
            self._counters[prefix] = itertools.count(max(start, n + 1))

    def new(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counters.setdefault(prefix, itertools.count(1)))
        digits = ""
        for _ in range(10):
            n, r = divmod(n, 62)
            digits = _B62[r] + digits
        return to_18(prefix + self._marker + digits)
