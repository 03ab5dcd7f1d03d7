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
  first phrase (in preference order) whose words follow;
* the first rule in list order that matches wins; the scan finds it in one pass over the words,
  trying at each word the phrases starting with it (looked up by the word, built at import) in
  (rule, preference) order.

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
        all_starts: list[dict[str, list[tuple[int, Phrase]]]] = []
        all_suffixes: list[list[tuple[int, Phrase]]] = []
        suffix_ends: dict[str, None] = {}  # the suffixes' words, without repeats
        for _label, pattern in rules:
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
                        suffix_ends[phrase.words[0]] = None
                    else:
                        starts.setdefault(phrase.words[0], []).append((order, phrase))
                    order += 1
            all_starts.append(starts)
            all_suffixes.append(suffixes)
        self._suffix_ends = tuple(suffix_ends)
        # Every rule's phrases by first word, in (rule, preference) order: one pass over the
        # title's words tries them all, where a scan per rule went over the words once per
        # rule with a phrase among them (2.6 scans per title on the realistic bench data).
        by_word: dict[str, list[tuple[int, int, Phrase]]] = {}
        for k, starts_k in enumerate(all_starts):
            for word, phrases in starts_k.items():
                by_word.setdefault(word, []).extend((k, order, ph) for order, ph in phrases)
        self._by_word = {w: tuple(sorted(c, key=_rank)) for w, c in by_word.items()}
        self._suffix_phrases = tuple(
            sorted(((k, o, ph) for k, s in enumerate(all_suffixes) for o, ph in s), key=_rank)
        )

    def first(self, text: str, words: Sequence[str]) -> tuple[str, str] | None:
        """(label, matched text) of the first rule matching the normalised title ``text``;
        ``words`` are its words (``text.split(" ")``).

        What trying the rules in order, each at its leftmost match, gives: one pass over the
        words, where at each word the candidates are tried in (rule, preference) order and
        only rules before the best found so far are still looked for (a later rule cannot
        win; an earlier one may still match further right)."""
        best = -1  # rule index of the best match so far (-1: none)
        found = ""
        by_word = self._by_word
        ends = self._suffix_ends
        at = 0  # where words[i] starts in text
        count = len(words)
        for i, word in enumerate(words):
            candidates = by_word.get(word)
            if ends and word.endswith(ends):
                extra = [c for c in self._suffix_phrases if word.endswith(c[2].words[0])]
                if extra:
                    candidates = tuple(sorted((*(candidates or ()), *extra), key=_rank))
            if candidates:
                for k, _order, phrase in candidates:
                    if best >= 0 and k >= best:
                        break  # sorted by rule: nothing better at this word
                    n = len(phrase.words)
                    if n > 1 and (i + n > count or tuple(words[i : i + n]) != phrase.words):
                        continue
                    matched = word if phrase.suffix else phrase.text
                    if phrase.not_after and text.endswith(phrase.not_after, 0, at):
                        continue
                    if phrase.not_before and text.startswith(phrase.not_before, at + len(matched)):
                        continue
                    best, found = k, matched
                    break
                if best == 0:
                    break  # the first rule: nothing can beat it
            at += len(word) + 1
        return (self._labels[best], found) if best >= 0 else None


def _rank(candidate: tuple[int, int, Phrase]) -> tuple[int, int]:
    """(rule, preference): the order the regexes, tried rule by rule, would prefer."""
    return candidate[0], candidate[1]
