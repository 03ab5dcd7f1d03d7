"""Regular expressions that make Python's backtracking engine take exponential time.

Python's ``re`` tries the ways a pattern can match a text one after another. When a repeated
part can match the same text in more than one way, a text that finally does not match makes it
try every combination: ``([a-z]+\\.?)+@`` on ``aaaa...a!`` (a repeat inside a repeat: each run of
letters can be split between the two) and ``(a|aa)+$`` on ``aaaa...a!`` (a choice inside a
repeat whose branches match the same text) double their time per letter: 30 letters take
minutes, in the daemon's cycle.

The check is conservative about that exponential kind: what it lets through has at most one way
to match each repeated part; it may refuse a pattern that is in fact harmless. (Repeats side by
side outside any repeat, ``\\d+\\d+\\d+x``, still try every split: polynomial, checked by
:mod:`rules.regex_polynomial`.)
Inside a part that repeats more than once,

* a part that repeats a variable number of times (``+``, ``*``, ``?``, ``{1,3}``) is accepted
  only if the next character of the text decides whether it goes round again: what it repeats
  cannot match nothing, nor start with a character that may come right after the repeat (the
  rest of the pattern, the next round of the outer repeat), so it stops exactly where its run
  ends (``(?:[a-z]+\\.)+``, ``(\\d{1,3}\\.){3}``, ``(?:[a-z]+(?:-[a-z]+)*\\.)+``);
* a choice is accepted only if no two of its branches can match at the same place: they
  differ in a character both must have there (``(?:Mr|Ms|Dr)+`` at the second), or cannot
  start with the same character (a branch that can match nothing starts with what follows).

Possessive repeats and atomic groups are never backtracked into once they matched, so only
what is inside them is checked, as if it stood alone.
The pattern is read with Python's own parser, so what it has already simplified (``(\\w|\\d)``
is the character class ``[\\w\\d]``, ``(ab|ac)`` is ``a[bc]``) is judged in that form.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["NESTED_REPEAT", "OVERLAPPING_CHOICE", "backtracking_risk"]

#: Python's regex parser: a pattern's parse tree has no public API (typeshed has no stubs).
_parser: Any = importlib.import_module("re._parser")
#: Characters IGNORECASE matches beyond lower()/upper() ('s' and the long s, 'k' and the Kelvin
#: sign), from the regex compiler itself; a KeyError here means Python changed it.
_EXTRA_CASES: dict[int, tuple[int, ...]] = vars(importlib.import_module("re._compiler"))[
    "_EXTRA_CASES"
]
_VARIABLE_REPEATS = frozenset({_parser.MAX_REPEAT, _parser.MIN_REPEAT})
_ONE_CHARACTER = frozenset({_parser.LITERAL, _parser.NOT_LITERAL, _parser.IN, _parser.ANY})
_ZERO_WIDTH = frozenset({_parser.AT, _parser.ASSERT, _parser.ASSERT_NOT})

#: What :func:`backtracking_risk` finds.
NESTED_REPEAT = "nested repeat"
OVERLAPPING_CHOICE = "overlapping choice"

#: A character set too large to list (``\w``, ``[^,]``, ``.``): taken to overlap every set.
_LARGE = 1024

#: A character one position of the text may hold: (parse item, flags in force), or None for any.
_Atom = tuple[tuple[Any, Any], int] | None


def backtracking_risk(pattern: str) -> str | None:
    """:data:`NESTED_REPEAT`, :data:`OVERLAPPING_CHOICE` or None (``pattern`` compiles)."""
    parsed = _parser.parse(pattern)
    return _scan(list(parsed), [], inside=False, flags=parsed.state.flags)


def _scan(items: Sequence[Any], follow: list[_Atom], *, inside: bool, flags: int) -> str | None:
    """The first risk in a sequence of parse items; ``follow``: what may come after it;
    ``inside``: the sequence is part of something repeated more than once."""
    for i, (op, av) in enumerate(items):
        rest, rest_empty = _first(items[i + 1 :], flags)
        after = rest + follow if rest_empty else rest
        if op in _VARIABLE_REPEATS:
            low, high, body = av
            if inside and high > low and not _one_way_to_repeat(body, after, flags):
                return NESTED_REPEAT
            again = _first(body, flags)[0] if high > 1 else []
            risk = _scan(body, after + again, inside=inside or high > 1, flags=flags)
        elif op is _parser.SUBPATTERN:
            _group, add, remove, body = av
            risk = _scan(body, after, inside=inside, flags=(flags | add) & ~remove)
        elif op is _parser.BRANCH:
            branches = av[1]
            if inside and _branches_overlap(branches, after, flags):
                return OVERLAPPING_CHOICE
            risk = next(
                (r for b in branches if (r := _scan(b, after, inside=inside, flags=flags))), None
            )
        elif op in (_parser.ASSERT, _parser.ASSERT_NOT):
            # A lookaround that matched is not tried again in another way.
            risk = _scan(av[1], [], inside=False, flags=flags)
        elif op is _parser.GROUPREF_EXISTS:
            _group, yes, no = av
            risk = _scan(yes, after, inside=inside, flags=flags) or (
                _scan(no, after, inside=inside, flags=flags) if no else None
            )
        elif op is _parser.ATOMIC_GROUP or op is _parser.POSSESSIVE_REPEAT:
            # Never backtracked into once matched, and it matches the first way it can: what
            # follows cannot make it try another. Only its own parts can still stall it.
            risk = _scan(av if op is _parser.ATOMIC_GROUP else av[2], [], inside=False, flags=flags)
        else:  # one character, an anchor, a back-reference
            risk = None
        if risk:
            return risk
    return None


def _one_way_to_repeat(body: Any, after: list[_Atom], flags: int) -> bool:
    """Whether the next character decides if a repeat of ``body`` goes round again: ``body``
    cannot match nothing and cannot start with anything that may come right after it."""
    first, empty = _first(body, flags)
    return not empty and not any(_overlap(a, b) for a in first for b in after)


def _branches_overlap(branches: Sequence[Any], after: list[_Atom], flags: int) -> bool:
    """Whether two branches may match at the same place: compared character by character
    while both begin with single characters (``Mr|Ms`` differ at the second), else by the
    characters they may start with (a branch that may match nothing: with what follows it)."""
    starts = []
    for branch in branches:
        first, empty = _first(branch, flags)
        starts.append(first + after if empty else first)
    for i, mine in enumerate(branches):
        for j in range(i + 1, len(branches)):
            theirs = branches[j]
            k = 0
            while k < min(len(mine), len(theirs)) and all(
                x[k][0] in _ONE_CHARACTER for x in (mine, theirs)
            ):
                if not _overlap((mine[k], flags), (theirs[k], flags)):
                    break
                k += 1
            else:
                if k == 0 and not any(_overlap(a, b) for a in starts[i] for b in starts[j]):
                    continue
                return True
    return False


def _first(items: Sequence[Any], flags: int) -> tuple[list[_Atom], bool]:
    """(the characters a match of ``items`` may start with, whether it may match nothing)."""
    found: list[_Atom] = []
    for op, av in items:
        first, empty = _item_first(op, av, flags)
        found += first
        if not empty:
            return found, False
    return found, True


def _item_first(op: Any, av: Any, flags: int) -> tuple[list[_Atom], bool]:
    if op in _ONE_CHARACTER:
        return [((op, av), flags)], False
    if op in _ZERO_WIDTH:
        return [], True
    if op in (*_VARIABLE_REPEATS, _parser.POSSESSIVE_REPEAT):
        low, _high, body = av
        first, empty = _first(body, flags)
        return first, empty or low == 0
    if op is _parser.SUBPATTERN:
        _group, add, remove, body = av
        return _first(body, (flags | add) & ~remove)
    if op is _parser.ATOMIC_GROUP:
        return _first(av, flags)
    if op is _parser.BRANCH:
        found: list[_Atom] = []
        empty = False
        for branch in av[1]:
            first, branch_empty = _first(branch, flags)
            found += first
            empty = empty or branch_empty
        return found, empty
    return [None], True  # a back-reference, a conditional: anything


def _overlap(a: _Atom, b: _Atom) -> bool:
    """Whether one character of text can match both (True when not sure)."""
    if a is None or b is None:
        return True
    if (a[1] | b[1]) & re.IGNORECASE:
        mine, theirs = _listed(a[0]), _listed(b[0])
        if mine is None or theirs is None:
            return True
        return not _case_keys(mine).isdisjoint(_case_keys(theirs))
    mine, theirs = _listed(a[0]), _listed(b[0])
    if mine is not None and theirs is not None:
        return not mine.isdisjoint(theirs)
    if mine is not None:
        return _holds_any(b, mine)
    if theirs is not None:
        return _holds_any(a, theirs)
    return True


def _case_keys(chars: set[str]) -> set[str]:
    """What IGNORECASE compares for ``chars``: a character of text matches one of them only if
    its lower-case form is among these (Python's regex engine compares lower-case forms, and
    lists the few extra equivalents, like the long s for 's', in ``_EXTRA_CASES``)."""
    keys = set()
    for c in chars:
        low = c.lower()  # 'İ'.lower() is two characters: no single one of text matches it
        keys.add(low)
        if len(low) == 1:
            keys.update(chr(x) for x in _EXTRA_CASES.get(ord(low), ()))
        if len(up := c.upper().lower()) == 1:
            keys.add(up)
    return keys


def _listed(item: tuple[Any, Any]) -> set[str] | None:
    """The characters a one-character item matches, if few, else None."""
    op, av = item
    if op is _parser.LITERAL:
        codes = [(av, av)]
    elif op is _parser.IN and av and av[0][0] is not _parser.NEGATE:
        codes = []
        for kind, value in av:
            if kind is _parser.LITERAL:
                codes.append((value, value))
            elif kind is _parser.RANGE:
                codes.append(value)
            else:  # a category: \d, \w, \s
                return None
    else:
        return None
    if sum(hi - lo + 1 for lo, hi in codes) > _LARGE:
        return None
    return {chr(c) for lo, hi in codes for c in range(lo, hi + 1)}


def _holds_any(atom: tuple[tuple[Any, Any], int], chars: set[str]) -> bool:
    """Whether one of ``chars`` may match ``atom`` (True when not sure); no IGNORECASE."""
    (op, av), flags = atom
    if op is _parser.NOT_LITERAL:
        return bool(chars - {chr(av)})
    if op is _parser.ANY:
        return bool(chars - {"\n"}) or bool(flags & re.DOTALL)
    parts = []
    for kind, value in av:
        if kind is _parser.NEGATE:
            parts.append("^")
        elif kind is _parser.LITERAL:
            parts.append(re.escape(chr(value)))
        elif kind is _parser.RANGE:
            parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
        elif kind is _parser.CATEGORY and value in _CATEGORIES:
            parts.append(_CATEGORIES[value])
        else:
            return True
    # The set as a character class again, run once over all the characters.
    one_of = re.compile("[" + "".join(parts) + "]", flags & re.ASCII)
    return one_of.search("".join(sorted(chars))) is not None


_CATEGORIES = {
    _parser.CATEGORY_DIGIT: r"\d",
    _parser.CATEGORY_NOT_DIGIT: r"\D",
    _parser.CATEGORY_SPACE: r"\s",
    _parser.CATEGORY_NOT_SPACE: r"\S",
    _parser.CATEGORY_WORD: r"\w",
    _parser.CATEGORY_NOT_WORD: r"\W",
}
