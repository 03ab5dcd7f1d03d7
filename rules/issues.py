"""Load-time problems in a rule file, as the admin sees them.

Every problem found while loading a rule file becomes a :class:`RuleIssue` with the file, line and
column of the offending key or value, the rule it belongs to and, where a typo is likely, a
did-you-mean suggestion. Loading collects all issues of all files and raises one
:class:`RuleLoadError` carrying them; warnings (a rule that can never match, ...) do not stop a
load and are kept on the loaded rule book.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["RuleIssue", "RuleLoadError", "describe_kind", "suggest", "visible"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """One problem in a rule file.

    Attributes:
        file: The rule file as given to the loader.
        line: 1-based line of the offending key or value (1 when unknown).
        column: 1-based column.
        rule_id: The id of the rule the problem is in, if it is inside a rule that has an id.
        message: Plain-English description of the problem and, where useful, how to fix it.
        suggestion: The closest valid name for an unknown one (rendered as "did you mean").
        severity: ``"error"`` stops the load; ``"warning"`` is reported but the file loads.
    """

    file: str
    line: int
    column: int
    rule_id: str | None
    message: str
    suggestion: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        level = "warning: " if self.severity == "warning" else ""
        rule = f"rule '{self.rule_id}': " if self.rule_id else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return visible(f"{where}{level}{rule}{self.message}{hint}")


class RuleLoadError(Exception):
    """A rule file (or several) could not be loaded; ``issues`` lists every error found.

    ``str()`` is one line per issue, ready to print to the admin.
    """

    def __init__(self, issues: Iterable[RuleIssue]) -> None:
        self.issues: list[RuleIssue] = list(issues)
        count = len([i for i in self.issues if i.severity == "error"])
        head = f"{count} error{'s' if count != 1 else ''} in rule files"
        super().__init__("\n".join([head + ":", *(str(i) for i in self.issues)]))


def visible(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences, bidi
    overrides, newlines inside a value) shown as Python escapes (``\\x1b``), not interpreted."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def suggest(word: object, candidates: Iterable[object]) -> str | None:
    """The closest candidate to ``word`` (difflib, case-insensitive), or None if none is close."""
    if not isinstance(word, str) or not word:
        return None
    by_lower: dict[str, str] = {}
    for c in candidates:
        if isinstance(c, str):
            by_lower.setdefault(c.lower(), c)
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return by_lower[word.lower()]  # only the case differs
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def describe_kind(value: object) -> str:
    """The kind of a YAML value in an admin's words ("text", "a number", ...)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "an empty value" if value is None else type(value).__name__
