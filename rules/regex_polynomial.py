"""Regular expressions whose search time grows as a high power of the text's length.

Repeats side by side outside any repeat (``\\d+\\d+\\d+x``) do not backtrack exponentially, but
on a text that finally does not match, Python's ``re`` tries every way to split a run of
characters between them: k such repeats over one run of n characters try about n**k splits,
and a search that is not anchored at the start tries them again from each of the n starting
positions (one power more). ``re.search(r'\\d+\\d+\\d+\\d+x', '1' * 200 + '!')`` takes 39 s.

:func:`search_degree` estimates that power, k, conservatively (it may overestimate, so refuse
a harmless pattern; the aim is that it never underestimates). Two repeats split the same run
when the later one can match a character the earlier can end with, and start with a character
the earlier can match; what stands between them must match nothing or a character one of them
can also match (``\\S+@\\S+``: ``\\S`` takes the ``@`` too, so each ``@`` of the text is a split).
A character no repeat of the run can match ends the run at a fixed place: what follows starts
from there, reached in as many ways as the run had splits before its last repeat. A repeat
that may stop at many places (``(ab)*``, after any ``ab``) before one that starts with its
characters is one more power when what follows can go on over its text (``(?:ab)*a+b[ab]+!``),
not when it stops within the next part (``(\\d+,)*\\d+$``). A possessive repeat or an atomic
group is never split, but takes the rest of the run afresh after each split before it. A repeat
after which the rest of the pattern cannot fail (``.*foo.*``, the last ``.*``) is never
backtracked into: the search has succeeded. A repeat counts when it may take many characters
(unbounded, or a range of at least :data:`LONG_RANGE`): ``\\d{1,3}`` splits a run in at most
four ways. Inside a part repeated more than once, :mod:`rules.regex_backtracking` already
allows only repeats with one way to match, so such a part counts as one repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rules.regex_backtracking import _VARIABLE_REPEATS, _Atom, _first, _overlap, _parser

__all__ = ["LONG_RANGE", "search_degree"]

#: A repeat whose count may vary by this much or more is counted as taking "many" characters.
LONG_RANGE = 32

_ANCHORS_AT_START = frozenset({_parser.AT_BEGINNING_STRING})


def search_degree(pattern: str) -> int:
    """k: a failing ``re.search(pattern, text)`` may take about len(text)**k steps."""
    parsed = _parser.parse(pattern)
    flags = parsed.state.flags
    items = _flatten(list(parsed), flags)
    starts = 0 if items and _anchors_start(items[0]) else 1
    return _Run(arrivals=starts).walk(items, tail_free=True)


#: One parse item with the flags in force where it stands.
_Item = tuple[Any, Any, int]


def _flatten(items: Sequence[Any], flags: int) -> list[_Item]:
    """The items with groups that are not repeated opened up: ``a(b+)c`` is ``a b+ c``."""
    flat: list[_Item] = []
    for op, av in items:
        if op is _parser.SUBPATTERN:
            _group, add, remove, body = av
            flat += _flatten(body, (flags | add) & ~remove)
        else:
            flat.append((op, av, flags))
    return flat


def _anchors_start(item: _Item) -> bool:
    op, av, flags = item
    if op is not _parser.AT:
        return False
    return av in _ANCHORS_AT_START or (
        av is _parser.AT_BEGINNING and not flags & _parser.SRE_FLAG_MULTILINE
    )


@dataclass
class _Run:
    """Walks one sequence: ``arrivals``, the power of the ways the walk reaches where it is."""

    arrivals: int
    length: int = 0  #: repeats in the current run
    ends: list[_Atom] = field(default_factory=list)  #: what the run's last part may end with
    chars: list[_Atom] = field(default_factory=list)  #: what the run may match
    #: Where an ended run may have stopped short (`(ab)*a+`: after any `ab`), each place is
    #: reached once, and what follows, kept within the run's next part, costs that part's
    #: length at each: n in all. A part that can take the ended run's characters (`chars`)
    #: goes on from each such place over the rest of the text: one more power then.
    stops: int = 0
    stop_chars: list[_Atom] = field(default_factory=list)
    worst: int = 0

    def walk(self, items: list[_Item], *, tail_free: bool) -> int:
        """The worst power met in ``items``; ``tail_free``: what follows them cannot fail."""
        self.worst = max(self.worst, self.arrivals)
        for i, (op, av, flags) in enumerate(items):
            free_after = tail_free and all(_cannot_fail(*it) for it in items[i + 1 :])
            for body, body_tail_free in _inner(op, av, free_after):
                # Searched afresh at each arrival here: a run inside it splits as well.
                inner = _Run(arrivals=self.arrivals + max(self.length - 1, 0))
                walked = inner.walk(_flatten(body, flags), tail_free=body_tail_free)
                self.worst = max(self.worst, walked)
            if op in (_parser.ASSERT, _parser.ASSERT_NOT):
                continue  # matches no character: the run goes on past it
            if not free_after and _scans(op, av):
                # Never split, but it takes the rest of the run afresh after each split before
                # it: `\d+\d++x` takes n**2 steps from each start, `\d++\d+x` n.
                self.worst = max(self.worst, self.arrivals + self.length + 1)
            first, may_be_empty = _first([(op, av)], flags)
            chars = _all_chars([(op, av)], flags)
            self._past_stops(chars, may_be_empty=may_be_empty)
            if weight := _weight(op, av):
                if free_after and op in _VARIABLE_REPEATS:
                    return self.worst  # it takes what it can and the search has succeeded
                self._repeat(weight, first, chars, _last([(op, av)], flags), may_be_empty)
            elif self.length and not may_be_empty and not _meets(self.chars, chars):
                self._end_run()  # a character the run cannot take: the run ends here
            elif self.length:
                # Matches nothing, or what the run's repeats match too: the run goes on.
                self.ends = self.ends + chars
                self.chars = self.chars + chars
            if free_after:
                return self.worst
        return self.worst

    def _past_stops(self, chars: list[_Atom], *, may_be_empty: bool) -> None:
        """Settle :attr:`stops` at a part matching ``chars``."""
        if self.stops and _meets(self.stop_chars, chars):
            self.arrivals += self.stops
            self.stops, self.stop_chars = 0, []
            self.worst = max(self.worst, self.arrivals + self.length)
        elif self.stops and not may_be_empty and not _meets(self.chars, chars):
            self.stops, self.stop_chars = 0, []  # a character neither can take: one place

    def _repeat(
        self,
        weight: int,
        first: list[_Atom],
        chars: list[_Atom],
        ends: list[_Atom],
        may_be_empty: bool,
    ) -> None:
        """A repeat taking many characters: it splits the run, or starts one."""
        splits = self.length and _meets(self.ends, chars) and _meets(self.chars, first)
        if self.length and not splits and may_be_empty:
            # `\d+[a-z]*\d+`: it may match nothing, and the run goes on past it.
            self.ends = self.ends + ends
            self.chars = self.chars + chars
            return
        if self.length and not splits and _meets(self.chars, first):
            self.stops += 1  # the run may have stopped short where this one starts
            self.stop_chars = self.stop_chars + self.chars
        if not splits:
            self._end_run()
        self.length += weight
        self.ends = ends
        self.chars = self.chars + chars
        self.worst = max(self.worst, self.arrivals + self.length)

    def _end_run(self) -> None:
        self.arrivals += max(self.length - 1, 0)
        self.length = 0
        self.ends = []
        self.chars = []


def _inner(op: Any, av: Any, free_after: bool) -> list[tuple[Sequence[Any], bool]]:
    """The sequences inside an item, each with whether what follows it there cannot fail: a
    lookaround, an atomic group or a possessive repeat is done once its inside has matched."""
    if op in (_parser.ASSERT, _parser.ASSERT_NOT):
        return [(av[1], True)]
    if op is _parser.ATOMIC_GROUP:
        return [(av, True)]
    if op is _parser.POSSESSIVE_REPEAT:
        return [(av[2], True)]
    if op in _VARIABLE_REPEATS:
        return [(av[2], False)]
    if op is _parser.BRANCH:
        return [(branch, free_after) for branch in av[1]]
    if op is _parser.GROUPREF_EXISTS:
        _group, yes, no = av
        return [(yes, free_after), (no or [], free_after)]
    return []


def _scans(op: Any, av: Any) -> bool:
    """A possessive repeat or atomic group that may take many characters."""
    if op is _parser.POSSESSIVE_REPEAT:
        low, high, body = av
        return bool(high - low >= LONG_RANGE or _count_repeats(body))
    if op is _parser.ATOMIC_GROUP:
        return _count_repeats(av) > 0 or any(_scans(o, a) for o, a in av)
    return False


def _weight(op: Any, av: Any) -> int:
    """How many repeats taking many characters an item counts as (0: a fixed part)."""
    if op in _VARIABLE_REPEATS:
        low, high, _body = av
        return 1 if high - low >= LONG_RANGE else 0
    if op is _parser.BRANCH:
        return max(_count_repeats(branch) for branch in av[1])
    if op is _parser.GROUPREF_EXISTS:
        _group, yes, no = av
        return max(_count_repeats(yes), _count_repeats(no or []))
    if op is _parser.GROUPREF:
        return 1  # as long as what its group matched: `(\d+)\1` splits a run of digits
    return 0


def _count_repeats(items: Sequence[Any]) -> int:
    """Repeats taking many characters in ``items``, wherever they stand (conservative)."""
    count = 0
    for op, av in items:
        if op is _parser.SUBPATTERN:
            count += _count_repeats(av[3])
        elif op in (_parser.BRANCH, _parser.GROUPREF_EXISTS, *_VARIABLE_REPEATS):
            count += _weight(op, av)
    return count


def _cannot_fail(op: Any, av: Any, _flags: int) -> bool:
    """Whether an item matches wherever it is tried (a repeat that may match nothing)."""
    if op in (*_VARIABLE_REPEATS, _parser.POSSESSIVE_REPEAT):
        return bool(av[0] == 0)
    if op is _parser.SUBPATTERN:
        return all(_cannot_fail(o, a, 0) for o, a in av[3])
    if op is _parser.BRANCH:
        return any(all(_cannot_fail(o, a, 0) for o, a in branch) for branch in av[1])
    return False


def _meets(mine: list[_Atom], theirs: list[_Atom]) -> bool:
    return any(_shares(a, b) for a in mine for b in theirs)


def _shares(a: _Atom, b: _Atom) -> bool:
    """Whether one character can match both: :func:`_overlap`, which cannot tell two classes
    like ``\\w`` and ``\\s`` apart, told which of them have no character in common."""
    mine, theirs = _categories(a), _categories(b)
    if mine is not None and theirs is not None:
        return any(frozenset({x, y}) not in _DISJOINT for x in mine for y in theirs)
    return _overlap(a, b)


def _categories(atom: _Atom) -> list[Any] | None:
    """The classes a one-character set is made of (``[\\w\\s]``), if only classes."""
    if atom is None:
        return None
    (op, av), _flags = atom
    if op is not _parser.IN or not av or any(kind is not _parser.CATEGORY for kind, _ in av):
        return None
    return [value for _kind, value in av]


_C = _parser
#: Pairs of classes no character matches both of, ASCII or not (\d is a subset of \w).
_DISJOINT = frozenset(
    frozenset(pair)
    for pair in [
        (_C.CATEGORY_DIGIT, _C.CATEGORY_NOT_DIGIT),
        (_C.CATEGORY_SPACE, _C.CATEGORY_NOT_SPACE),
        (_C.CATEGORY_WORD, _C.CATEGORY_NOT_WORD),
        (_C.CATEGORY_DIGIT, _C.CATEGORY_SPACE),
        (_C.CATEGORY_WORD, _C.CATEGORY_SPACE),
        (_C.CATEGORY_DIGIT, _C.CATEGORY_NOT_WORD),
    ]
)


def _all_chars(items: Sequence[Any], flags: int) -> list[_Atom]:
    """Every character ``items`` may match, as atoms (conservative: None for anything)."""
    found: list[_Atom] = []
    for op, av in items:
        if op in (_parser.LITERAL, _parser.NOT_LITERAL, _parser.IN, _parser.ANY):
            found.append(((op, av), flags))
        elif op in (*_VARIABLE_REPEATS, _parser.POSSESSIVE_REPEAT):
            found += _all_chars(av[2], flags)
        elif op is _parser.SUBPATTERN:
            _group, add, remove, body = av
            found += _all_chars(body, (flags | add) & ~remove)
        elif op is _parser.ATOMIC_GROUP:
            found += _all_chars(av, flags)
        elif op is _parser.BRANCH:
            for branch in av[1]:
                found += _all_chars(branch, flags)
        elif op in (_parser.AT, _parser.ASSERT, _parser.ASSERT_NOT):
            continue  # matches no character
        else:  # a back-reference, a conditional
            found.append(None)
    return found


def _last(items: Sequence[Any], flags: int) -> list[_Atom]:
    """The characters a match of ``items`` may end with (conservative: may list more)."""
    found: list[_Atom] = []
    for op, av in reversed(items):
        if op in (_parser.LITERAL, _parser.NOT_LITERAL, _parser.IN, _parser.ANY):
            return [*found, ((op, av), flags)]
        if op in (_parser.AT, _parser.ASSERT, _parser.ASSERT_NOT):
            continue
        if op in (*_VARIABLE_REPEATS, _parser.POSSESSIVE_REPEAT):
            found += _last(av[2], flags)
            if av[0] == 0 or _first(av[2], flags)[1]:
                continue
            return found
        if op is _parser.SUBPATTERN:
            _group, add, remove, body = av
            found += _last(body, (flags | add) & ~remove)
            if not _first(body, (flags | add) & ~remove)[1]:
                return found
            continue
        found += _all_chars([(op, av)], flags)  # a choice, a group: anything it holds
        if not _first([(op, av)], flags)[1]:
            return found
    return found
