"""Rules a ``first_match`` set can never reach: an earlier rule takes every lead they match.

A rule's condition is read as a set of *conjuncts* (the items of a top-level ``all``, else the
condition itself). An earlier rule shadows a later one when each of its conjuncts holds for
every lead some conjunct of the later rule matches (a rule with no ``when`` has no conjuncts,
so it shadows everything after it). Besides the same conjunct written again, in any key order,
these implications on one field are used, each true for every value a lead can hold (see
``rules.conditions``: a wrong-typed value fails both sides):

* a lower bound implies a looser one: ``gte: 50`` implies ``gte: 40``, ``gt: 50`` implies
  ``gte: 50`` (not the other way); an upper bound likewise; numbers only (dates are written in
  too many forms to compare as text);
* ``eq: A`` and ``in: [A]`` imply an ``in`` that lists A (and ``in`` a wider ``in``);
* any condition that needs a value (``eq``, ``in``, the bounds, ``contains``, ``matches``)
  implies ``present: true`` (``missing: false``).

Nothing else is inferred (an earlier ``older_than: 30d`` is not taken to shadow a later
``older_than: 60d``: durations come in calendar and business units), so a warning is never
wrong, though a shadowed rule may go unreported.

:class:`ShadowIndex` finds the earliest shadowing rule without comparing every pair: rules are
grouped by what their conjuncts are about (the conjunct itself, or its field and kind of bound),
a later rule looks up only the groups its own conjuncts can imply. Inside a group, rules with
lists of values are found among those listing the later rule's rarest value, rules that differ
in one bound by a binary search; only rules with two bounds or more are compared one by one.
Thousands of rules are checked in about linear time.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from rules.schema import AllCondition, Condition, FieldRef, LeafCondition

__all__ = ["Conjunct", "ShadowIndex", "conjuncts"]

#: A lower bound, an upper bound, a list of values, a value at all; else the conjunct's text.
_MIN, _MAX, _ONE_OF, _PRESENT = "min", "max", "one of", "present"
_NEEDS_A_VALUE = frozenset({"eq", "in", "gt", "gte", "lt", "lte", "contains", "matches"})


@dataclass(frozen=True)
class Conjunct:
    """One condition a rule's leads must all meet.

    ``text``: canonical text (keys in the model's field order, values by ``repr``: ``1``,
    ``1.0``, ``true`` and ``'true'`` stay apart); ``key``: the text, or (kind, field) for a
    bound, a list of values or presence; ``param``: the bound's sort key or the values' texts.
    """

    text: str
    key: str | tuple[str, str]
    param: Any = field(default=None, compare=False)
    needs_value_of: str | None = field(default=None, compare=False)


def conjuncts(when: Condition | None) -> frozenset[Conjunct]:
    """The rule's condition as a set of conditions that must all hold."""
    if when is None:
        return frozenset()
    parts: list[Condition] = list(when.all_) if isinstance(when, AllCondition) else [when]
    return frozenset(_conjunct(p) for p in parts)


def _conjunct(part: Condition) -> Conjunct:
    # repr, not JSON: JSON would choke on a lone surrogate a quoted "\ud800" can put in a string.
    text = repr(part.model_dump(by_alias=True, exclude_unset=True))
    if not isinstance(part, LeafCondition):
        return Conjunct(text, text)
    op, value = part.operator()
    needs = part.field if op in _NEEDS_A_VALUE and not isinstance(value, FieldRef) else None
    if op in ("gt", "gte", "lt", "lte") and _plain_number(value):
        strict = op in ("gt", "lt")
        if op in ("gt", "gte"):
            # Sorted from loosest to tightest: a bound implies every bound sorted before it.
            return Conjunct(text, (_MIN, part.field), (value, strict), needs)
        return Conjunct(text, (_MAX, part.field), (-value, strict), needs)
    if op in ("eq", "in"):
        values = value if isinstance(value, list) else [value]
        return Conjunct(text, (_ONE_OF, part.field), frozenset(map(repr, values)), needs)
    if (op == "present" and value is True) or (op == "missing" and value is False):
        return Conjunct(text, (_PRESENT, part.field))
    return Conjunct(text, text, None, needs)


def _plain_number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def _reaches(c: Conjunct) -> Iterator[str | tuple[str, str]]:
    """The keys of the earlier conjuncts ``c`` may imply."""
    yield c.key
    if c.needs_value_of is not None:
        yield (_PRESENT, c.needs_value_of)


def _implies(later: Conjunct, earlier: Conjunct) -> bool:
    """Whether every lead ``later`` matches is matched by ``earlier`` (keys already agree)."""
    if later.text == earlier.text or not isinstance(earlier.key, tuple):
        return later.text == earlier.text
    kind = earlier.key[0]
    if kind == _PRESENT:
        return later.key == earlier.key or later.needs_value_of == earlier.key[1]
    if later.key != earlier.key:
        return False
    if kind == _ONE_OF:
        return bool(later.param <= earlier.param)
    return bool(earlier.param <= later.param)  # (value, strict): looser sorts first


@dataclass
class _Rule:
    order: int
    rule_id: str
    line: int
    conjuncts: frozenset[Conjunct]

    def takes_all_of(self, later: dict[str | tuple[str, str], list[Conjunct]]) -> bool:
        return all(any(_implies(c, e) for c in later.get(e.key, ())) for e in self.conjuncts)


def _bound_key(param: tuple[Any, bool]) -> tuple[Any, int]:
    """Reverses the order of (value, strict): rules kept in a group get looser one by one."""
    value, strict = param
    return (-value, -int(strict))


@dataclass
class _Group:
    """The rules so far (none shadowed) whose conjuncts have the same keys."""

    keys: frozenset[str | tuple[str, str]]
    #: With a list of values among the keys: each rule under every value of each of its lists.
    by_value: dict[tuple[tuple[str, str], str], list[_Rule]] = field(default_factory=dict)
    #: Else, rules whose one bound is their only parameter, loosest last, by ``_bound_key``.
    bounded: list[_Rule] = field(default_factory=list)
    bound_keys: list[tuple[Any, int]] = field(default_factory=list)
    #: Any other rule (two bounds): compared one by one.
    others: list[_Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.list_keys = [k for k in self.keys if isinstance(k, tuple) and k[0] == _ONE_OF]

    def add(self, rule: _Rule) -> None:
        params = [c for c in rule.conjuncts if c.param is not None]
        if self.list_keys:
            for c in params:
                if isinstance(c.key, tuple) and c.key[0] == _ONE_OF:
                    for text in c.param:
                        self.by_value.setdefault((c.key, text), []).append(rule)
        elif len(params) == 1:
            # Not shadowed, so looser than every bound already here (the rest is the same).
            self.bounded.append(rule)
            self.bound_keys.append(_bound_key(params[0].param))
        else:
            self.others.append(rule)

    def earliest(self, later: dict[str | tuple[str, str], list[Conjunct]]) -> _Rule | None:
        if self.list_keys:
            return self._earliest_listing(later)
        if self.bounded:
            found = self._earliest_bounded(later)
            if found is not None:
                return min([found, *self._others(later)], key=lambda r: r.order)
        return min(self._others(later), key=lambda r: r.order, default=None)

    def _earliest_listing(self, later: dict[str | tuple[str, str], list[Conjunct]]) -> _Rule | None:
        # A rule here takes the later rule's leads only if, for each list key, one of its lists
        # holds every value of one of the later rule's: it is among the rules listing that
        # list's rarest value. Of the list keys, look where those rules are fewest.
        def candidates(key: tuple[str, str]) -> list[list[_Rule]]:
            return [
                self.by_value.get((key, min(c.param, key=lambda t: self._count(key, t))), [])
                for c in later.get(key, ())
                if c.key == key
            ]

        fewest = min((candidates(k) for k in self.list_keys), key=lambda ls: sum(map(len, ls)))
        hits = [next((r for r in rules if r.takes_all_of(later)), None) for rules in fewest]
        return min((r for r in hits if r is not None), key=lambda r: r.order, default=None)

    def _count(self, key: tuple[str, str], text: str) -> int:
        return len(self.by_value.get((key, text), ()))

    def _earliest_bounded(self, later: dict[str | tuple[str, str], list[Conjunct]]) -> _Rule | None:
        bound = next(c.key for c in self.bounded[0].conjuncts if c.param is not None)
        tightest = min(
            (_bound_key(c.param) for c in later.get(bound, ()) if c.key == bound), default=None
        )
        # bound_keys increase along the list; a rule takes the later one's leads when its key
        # is at least the later one's (its bound is as loose or looser).
        if tightest is None:
            return None
        i = bisect.bisect_left(self.bound_keys, tightest)
        if i < len(self.bounded) and self.bounded[i].takes_all_of(later):
            return self.bounded[i]
        return None

    def _others(self, later: dict[str | tuple[str, str], list[Conjunct]]) -> list[_Rule]:
        hit = next((r for r in self.others if r.takes_all_of(later)), None)
        return [] if hit is None else [hit]


class ShadowIndex:
    """The rules so far that no earlier rule shadows, grouped by the keys of their conjuncts.

    A shadowed rule is left out: every lead it could take, a rule before it takes first.
    """

    def __init__(self) -> None:
        self._groups: dict[frozenset[str | tuple[str, str]], _Group] = {}
        self._known: set[str | tuple[str, str]] = set()
        self._count = 0

    def check(
        self, conjuncts: frozenset[Conjunct], rule_id: str, line: int
    ) -> tuple[frozenset[Conjunct], str, int] | None:
        """The earliest rule so far that shadows this one, as (conjuncts, id, line); else None,
        and this rule is remembered for the rules after it."""
        later: dict[str | tuple[str, str], list[Conjunct]] = {}
        for c in conjuncts:
            for key in _reaches(c):
                later.setdefault(key, []).append(c)
        # Only keys some earlier rule has can be part of a group's keys: the others (most of
        # the presence keys a rule's conditions imply) would only multiply the subsets to try.
        known = frozenset(key for key in later if key in self._known)
        found = [
            rule for group in self._candidates(known) if (rule := group.earliest(later)) is not None
        ]
        if found:
            first = min(found, key=lambda r: r.order)
            return first.conjuncts, first.rule_id, first.line
        keys = frozenset(c.key for c in conjuncts)
        self._known |= keys
        self._groups.setdefault(keys, _Group(keys)).add(
            _Rule(self._count, rule_id, line, conjuncts)
        )
        self._count += 1
        return None

    def _candidates(self, keys: frozenset[str | tuple[str, str]]) -> Iterable[_Group]:
        if 2 ** len(keys) <= len(self._groups):
            for size in range(len(keys) + 1):
                for subset in itertools.combinations(keys, size):
                    group = self._groups.get(frozenset(subset))
                    if group is not None:
                        yield group
        else:
            for group_keys, group in self._groups.items():
                if group_keys <= keys:
                    yield group
