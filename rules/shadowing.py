"""Rules a ``first_match`` set can never reach: an earlier rule takes every lead they match.

A rule's condition is read as a set of *conjuncts* (the items of a top-level ``all``, else the
condition itself). When an earlier rule's conjuncts are a subset of a later rule's, every lead
the later rule matches was already taken (a rule with no ``when`` has no conjuncts, so it
shadows everything after it). :class:`ShadowIndex` finds the earliest such rule without
comparing every pair, so thousands of rules are checked in linear time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from rules.schema import AllCondition, Condition

__all__ = ["ShadowIndex", "conjuncts"]


def conjuncts(when: Condition | None) -> frozenset[str]:
    """The rule's condition as a set of conditions that must all hold, each in a canonical text
    form: keys in the model's field order (so the order they were written in does not matter),
    values by ``repr`` (``1``, ``1.0``, ``true`` and ``'true'`` stay apart; JSON would choke on
    a lone surrogate that a quoted ``"\\ud800"`` can put into a string)."""
    if when is None:
        return frozenset()
    parts: list[Condition] = list(when.all_) if isinstance(when, AllCondition) else [when]
    return frozenset(repr(p.model_dump(by_alias=True, exclude_unset=True)) for p in parts)


class ShadowIndex:
    """The conjunct sets of the rules so far, each with the first rule that had it."""

    def __init__(self) -> None:
        self._first: dict[frozenset[str], tuple[int, str, int]] = {}  # set -> (order, id, line)

    def earliest_subset(self, conjuncts: frozenset[str]) -> tuple[frozenset[str], str, int] | None:
        """The earliest rule whose conjuncts are a subset of ``conjuncts``: (set, id, line)."""
        found = [(entry, key) for key, entry in self._candidates(conjuncts)]
        if not found:
            return None
        (_, rule_id, line), key = min(found, key=lambda f: f[0][0])
        return key, rule_id, line

    def _candidates(
        self, conjuncts: frozenset[str]
    ) -> Iterator[tuple[frozenset[str], tuple[int, str, int]]]:
        if 2 ** len(conjuncts) <= len(self._first):
            for size in range(len(conjuncts) + 1):
                for subset in itertools.combinations(conjuncts, size):
                    key = frozenset(subset)
                    entry = self._first.get(key)
                    if entry is not None:
                        yield key, entry
        else:
            for key, entry in self._first.items():
                if key <= conjuncts:
                    yield key, entry

    def add(self, conjuncts: frozenset[str], rule_id: str, line: int) -> None:
        self._first.setdefault(conjuncts, (len(self._first), rule_id, line))
