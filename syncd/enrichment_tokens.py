"""Title rules as word lookups: the first-match regex scan of :mod:`syncd.enrichment` without
running regexes.

The title rules are written as regexes, ``\\b(?:phrase|phrase...)\\b``, over a normalised title
(lower case, words of ``\\w`` characters separated by single spaces); they stay the definition.
Their phrases use a small part of regex syntax: literal text, ``(?:a|b)`` groups, ``?`` after a
character or a group, ``[ea]`` character classes, leading ``(?<!text )`` lookbehinds, a trailing
``(?!text|text)`` lookahead and a leading ``(?:\\w*)`` (the phrase may end a longer word). Each
phrase is therefore a finite list of word sequences, in the order the regex engine prefers them
(:func:`expand`), and a match is a run of whole words, found by dictionary lookups
(:class:`TokenScan`):

* a rule's regex matches at the leftmost word where one of its phrases does, and there with the
  first phrase (in preference order) whose words follow; the scan does the same, word by word;
* rules are tried in list order, but only those with a phrase starting with one of the title's
  words (an integer bit mask per word, built at import).

A phrase using any other syntax makes :class:`TokenScan` raise at import, so a new rule cannot
silently be matched differently from its regex (the enricher's tests compare both on thousands
of titles).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

__all__ = ["TokenScan", "expand"]

_LOOKBEHIND = "(?<!"
_LOOKAHEAD = "(?!"
_ANY_WORD_START = "(?:\\w*)"


def _split_top(text: str) -> list[str]:
    """``text`` split at the ``|`` that are not inside a group or escaped."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _group_end(text: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``text[start]``."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "(") - (c == ")")
        if depth == 0:
            return i
        i += 1
    raise ValueError(f"unbalanced group in title rule phrase {text!r}")


def _literal(text: str, phrase: str) -> str:
    if any(c in "\\()[]{}?*+|.^$" for c in text):
        raise ValueError(f"title rule phrase {phrase!r}: {text!r} is not literal text")
    return text


def _texts(pattern: str, phrase: str) -> list[str]:
    """Every text ``pattern`` (no lookarounds) matches, in the regex engine's preference order:
    the greedy choice first, the first item of the sequence varying slowest."""
    items: list[list[str]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            if not pattern.startswith("(?:", i):
                raise ValueError(f"title rule phrase {phrase!r}: only (?:...) groups are read")
            end = _group_end(pattern, i)
            choices = [t for part in _split_top(pattern[i + 3 : end]) for t in _texts(part, phrase)]
            i = end + 1
        elif c == "[":
            end = pattern.index("]", i)
            choices = list(_literal(pattern[i + 1 : end], phrase))
            i = end + 1
        else:
            choices = [_literal(c, phrase)]
            i += 1
        if pattern.startswith("?", i):  # greedy: with the item first, then without
            choices = [*choices, ""]
            i += 1
        if i < len(pattern) and pattern[i] in "*+{":
            raise ValueError(f"title rule phrase {phrase!r}: only the ? quantifier is read")
        items.append(choices)
    return ["".join(parts) for parts in product(*items)]


@dataclass(frozen=True, slots=True)
class Phrase:
    """One word sequence a rule matches, with the lookarounds of the phrase it comes from."""

    words: tuple[str, ...]
    text: str  # the words joined by single spaces: the regex's matched text
    not_after: tuple[str, ...]  # the title's text before the match must not end with these
    not_before: tuple[str, ...]  # ... nor the text after it start with these
    suffix: bool  # the last word may be the end of a longer word ("(?:\\w*)leiter")


def expand(phrase: str) -> list[Phrase]:
    """The word sequences one phrase of a title rule matches, in preference order.

    Raises:
        ValueError: The phrase uses regex syntax this module does not read.
    """
    rest = phrase
    not_after: list[str] = []
    while rest.startswith(_LOOKBEHIND):
        end = _group_end(rest, 0)
        not_after.append(_literal(rest[len(_LOOKBEHIND) : end], phrase))
        rest = rest[end + 1 :]
    not_before: tuple[str, ...] = ()
    at = rest.find(_LOOKAHEAD)
    if at >= 0:
        end = _group_end(rest, at)
        if end != len(rest) - 1:
            raise ValueError(f"title rule phrase {phrase!r}: a lookahead must end the phrase")
        inner = rest[at + len(_LOOKAHEAD) : end]
        not_before = tuple(_literal(part, phrase) for part in _split_top(inner))
        rest = rest[:at]
    suffix = rest.startswith(_ANY_WORD_START)
    if suffix:
        rest = rest[len(_ANY_WORD_START) :]
    out = []
    for text in _texts(rest, phrase):
        words = tuple(text.split(" "))
        if not all(words) or (suffix and len(words) != 1):
            raise ValueError(f"title rule phrase {phrase!r}: {text!r} is not a run of words")
        out.append(Phrase(words, text, tuple(not_after), not_before, suffix))
    return out


class TokenScan:
    """First-match classification over an ordered list of ``\\b(?:...)\\b`` title rules, by word
    lookups; gives exactly what ``pattern.search`` over the list in order gives."""

    def __init__(self, rules: Sequence[tuple[str, re.Pattern[str]]]) -> None:
        self._labels = tuple(label for label, _pattern in rules)
        # Per rule: first word -> the phrases starting with it, in preference order.
        self._starts: list[dict[str, list[tuple[int, Phrase]]]] = []
        self._suffixes: list[list[tuple[int, Phrase]]] = []
        masks: dict[str, int] = {}
        suffix_bits: dict[str, int] = {}
        for k, (_label, pattern) in enumerate(rules):
            body = pattern.pattern
            if not (body.startswith("\\b(?:") and body.endswith(")\\b")) or pattern.flags & (
                re.IGNORECASE | re.ASCII
            ):
                raise ValueError(f"title rule {body!r} is not \\b(?:phrase|...)\\b")
            starts: dict[str, list[tuple[int, Phrase]]] = {}
            suffixes: list[tuple[int, Phrase]] = []
            order = 0
            for part in _split_top(body[len("\\b(?:") : -len(")\\b")]):
                for phrase in expand(part):
                    if phrase.suffix:
                        suffixes.append((order, phrase))
                        suffix_bits[phrase.words[0]] = suffix_bits.get(phrase.words[0], 0) | 1 << k
                    else:
                        starts.setdefault(phrase.words[0], []).append((order, phrase))
                        masks[phrase.words[0]] = masks.get(phrase.words[0], 0) | 1 << k
                    order += 1
            self._starts.append(starts)
            self._suffixes.append(suffixes)
        self._masks = masks
        self._suffix_bits = tuple(suffix_bits.items())
        self._suffix_ends = tuple(suffix_bits)

    def mask(self, words: Sequence[str]) -> int:
        """The rules (bit k: rule k) with a phrase that can start at one of ``words``."""
        get = self._masks.get
        mask = 0
        for word in words:
            mask |= get(word, 0)
        ends = self._suffix_ends
        if ends:
            for word in words:
                if word.endswith(ends):
                    for end, bits in self._suffix_bits:
                        if word.endswith(end):
                            mask |= bits
        return mask

    def first(self, text: str, words: Sequence[str], mask: int) -> tuple[str, str] | None:
        """(label, matched text) of the first rule matching the normalised title ``text``;
        ``words`` are its words (``text.split(" ")``), ``mask`` is :meth:`mask` of them."""
        while mask:  # lowest bit first: list order
            low = mask & -mask
            k = low.bit_length() - 1
            found = self._find(k, text, words)
            if found is not None:
                return self._labels[k], found
            mask ^= low
        return None

    def _find(self, k: int, text: str, words: Sequence[str]) -> str | None:
        """The text rule ``k`` matches at its leftmost match in ``text``, or None."""
        starts, suffixes = self._starts[k], self._suffixes[k]
        at = 0  # where words[i] starts in text
        count = len(words)
        for i, word in enumerate(words):
            candidates = starts.get(word)
            if suffixes:
                extra = [(o, p) for o, p in suffixes if word.endswith(p.words[0])]
                if extra:
                    candidates = sorted((*(candidates or ()), *extra), key=lambda c: c[0])
            if candidates:
                for _order, phrase in candidates:
                    n = len(phrase.words)
                    if n > 1 and (i + n > count or tuple(words[i : i + n]) != phrase.words):
                        continue
                    matched = word if phrase.suffix else phrase.text
                    if phrase.not_after and text.endswith(phrase.not_after, 0, at):
                        continue
                    if phrase.not_before and text.startswith(phrase.not_before, at + len(matched)):
                        continue
                    return matched
            at += len(word) + 1
        return None
