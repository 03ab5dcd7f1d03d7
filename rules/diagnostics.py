"""Where a problem in a rule file is, in the admin's terms: ``file:line:column`` and the rule.

Checks name the part of the file they object to by its *location*: the keys and list indexes
from the top of the document (``("rules", 3, "when", "all", 0, "field")``), which is also how
pydantic reports validation errors and how the compiler walks the typed models. A
:class:`Diagnostics` turns such a location into a :class:`~rules.issues.RuleIssue` with the line
and column from the parsed YAML and the id of the rule it sits in, and collects every issue of
one file. YAML syntax errors, which have no location in the data, are placed by their marks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rules.issues import RuleIssue, Severity
from rules.yamldoc import At, Key, Position, YamlContentError, YamlDocument

__all__ = ["Diagnostics", "Loc"]

#: A location in the document: mapping keys and list indexes from the root.
Loc = tuple[Key, ...]

_ID_LINE = re.compile(r"^\s*-\s+id:\s*([^\s#]+)")


class Diagnostics:
    """Every issue found in one rule file, each with its position and rule."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[RuleIssue] = []
        self._doc: YamlDocument | None = None
        self._rule_starts: list[tuple[int, str | None]] = []  # (line, id) per rule, in order

    # -- the document ----------------------------------------------------------------------

    def attach(self, doc: YamlDocument) -> None:
        """Locate further issues in ``doc``; report its duplicate keys."""
        self._doc = doc
        rules = doc.data.get("rules") if isinstance(doc.data, dict) else None
        if isinstance(rules, list):
            for i, item in enumerate(rules):
                rule_id = item.get("id") if isinstance(item, dict) else None
                line = doc.position(("rules", i))[0]
                self._rule_starts.append((line, rule_id if isinstance(rule_id, str) else None))
        for dup in doc.duplicates:
            self.error_at(
                dup.position,
                f"duplicate key '{dup.name}' (first at line "
                f"{dup.first_line}); YAML keeps only one of them: "
                "remove or rename one",
            )

    def position(self, loc: Sequence[Any], at: At = "value") -> Position:
        """1-based (line, column) of the part at ``loc`` (see :meth:`YamlDocument.position`)."""
        return self._doc.position(loc, at) if self._doc is not None else (1, 1)

    def line(self, loc: Loc) -> int:
        """The line a container (a rule, say) starts on."""
        return self.position(loc, "node")[0]

    # -- reporting -------------------------------------------------------------------------

    def error(
        self,
        loc: Sequence[Any],
        message: str,
        *,
        at: At = "value",
        suggestion: str | None = None,
        severity: Severity = "error",
    ) -> None:
        """Report a problem with the part of the document at ``loc``."""
        line, column = self.position(loc, at)
        self.issues.append(
            RuleIssue(self.file, line, column, self._rule_at(loc), message, suggestion, severity)
        )

    def error_at(self, position: Position, message: str) -> None:
        """Report a problem known only by its position (the rule is the one around it)."""
        self.issues.append(
            RuleIssue(self.file, position[0], position[1], self._rule_around(position[0]), message)
        )

    @property
    def has_errors(self) -> bool:
        """True when some issue is an error (warnings alone do not stop a load)."""
        return any(i.severity == "error" for i in self.issues)

    def warnings(self) -> tuple[RuleIssue, ...]:
        """The non-fatal issues, in the order found."""
        return tuple(i for i in self.issues if i.severity == "warning")

    def in_file_order(self) -> list[RuleIssue]:
        """Every issue by line and column (issues at one place keep the order found)."""
        return sorted(self.issues, key=lambda i: (i.line, i.column))

    def _rule_at(self, loc: Sequence[Any]) -> str | None:
        if (
            len(loc) < 2
            or loc[0] != "rules"
            or not isinstance(loc[1], int)
            or self._doc is None
            or not isinstance(self._doc.data, dict)
        ):
            return None
        rules = self._doc.data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
            return rule_id if isinstance(rule_id, str) else None
        return None

    def _rule_around(self, line: int) -> str | None:
        found = None
        for start, rule_id in self._rule_starts:
            if start <= line:
                found = rule_id
        return found

    # -- YAML that does not parse ----------------------------------------------------------

    def yaml_error(self, exc: YAMLError, text: str) -> None:
        """Report a YAML syntax error in the admin's words, at its mark."""
        line, col = 1, 1
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line, col = mark.line + 1, mark.column + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        if "\t" in problem or "\t" in source[: max(col, 1)] or source.lstrip(" ").startswith("\t"):
            tab_col = source.find("\t") + 1 if "\t" in source else col
            self._syntax_issue(
                line,
                tab_col,
                "tab character in indentation: YAML does not "
                "allow tabs for indentation; use spaces",
                lines,
            )
            return
        message = f"YAML syntax error: {problem}{_context(exc, line)}{_hint(problem)}"
        self._syntax_issue(line, col, message, lines)

    def content_error(self, exc: YamlContentError, text: str) -> None:
        """Report YAML that parsed but cannot be rule data (see :mod:`rules.yamldoc`)."""
        self._syntax_issue(exc.position[0], exc.position[1], exc.message, text.splitlines())

    def _syntax_issue(self, line: int, col: int, message: str, lines: list[str]) -> None:
        # No data after a syntax error: name the rule from the nearest `- id:` above.
        rule_id = None
        for text_line in reversed(lines[:line]):
            found = _ID_LINE.match(text_line)
            if found:
                rule_id = found.group(1).strip("'\"")
                break
            if text_line.startswith("rules:"):
                break
        self.issues.append(RuleIssue(self.file, line, col, rule_id, message))


def _context(exc: YAMLError, line: int) -> str:
    context = getattr(exc, "context", None)
    if not context or not isinstance(exc, MarkedYAMLError):
        return ""
    mark = getattr(exc, "context_mark", None)
    started = (
        f" started at line {mark.line + 1}, column {mark.column + 1}"
        if mark is not None and mark.line + 1 != line
        else ""
    )
    return f" ({context}{started})"


def _hint(problem: str) -> str:
    if "mapping values are not allowed" in problem:
        return "; a value containing ': ' must be quoted, or the indentation is off"
    if "could not find expected ':'" in problem:
        return "; check for a missing ':' after a key"
    if "expected <block end>" in problem:
        return "; check the indentation of this line against the lines above"
    return ""
