"""Rule fixtures: example leads with the decision an admin expects, run like tests.

A fixture file::

    ruleset: ../../default.yaml          # the rule file these cases are for (relative path)
    now: 2026-03-02T09:00:00Z            # the cycle time the cases are evaluated at
    cases:
      - name: stale SAL goes back to MQL
        now: 2026-03-03T09:00:00Z        # optional per-case override
        lead: {status: SAL, status_changed_at: 2026-02-20T10:00:00Z}
        expect: {status: MQL, rule: sal-follow-up-breached, newsletters: [], archived: false}

``expect`` keys (each optional, only given ones are checked): ``status`` (null = no status
decision), ``rule`` (``Decision.rule_id``; a chain of rules is written ``a -> b``),
``newsletters`` (exact list), ``archived``,
``blocked`` (true/false, or text the guard reason must contain), ``field_sets`` (exact mapping),
``matched_rules`` (exact list). A fixture problem (bad YAML, unknown lead field, a ruleset that is
not in the book) is reported as a failure, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from rules.conditions import as_aware_datetime
from rules.engine import Decision, RuleBook
from rules.fields import FieldType
from rules.issues import suggest, visible
from rules.yamlread import round_trip_yaml

__all__ = ["CaseResult", "FixtureReport", "run_fixtures"]

_EXPECT_KEYS = (
    "status",
    "rule",
    "newsletters",
    "archived",
    "blocked",
    "field_sets",
    "matched_rules",
)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One fixture case (or a whole-file problem, then ``name`` is ``"<file>"``)."""

    file: str
    name: str
    line: int
    passed: bool
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}: {'PASS' if self.passed else 'FAIL'} {self.name}"
        return visible(head) + "".join(f"\n    {visible(p)}" for p in self.problems)


@dataclass
class FixtureReport:
    """Results of :func:`run_fixtures`, in file and case order."""

    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Number of cases that passed."""
        return sum(r.passed for r in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        """The failed cases and file problems."""
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        """True when there was at least one case and nothing failed."""
        return bool(self.results) and not self.failures

    def __str__(self) -> str:
        lines = [str(r) for r in self.failures]
        lines.append(f"{self.passed} passed, {len(self.failures)} failed")
        return "\n".join(lines)


def _identity(lead: dict[str, Any]) -> dict[str, Any]:
    return lead


def run_fixtures(
    paths: Sequence[Path],
    book: RuleBook,
    *,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] = _identity,
) -> FixtureReport:
    """Evaluate every fixture case against ``book`` and compare with its expectations.

    Args:
        paths: Fixture files.
        book: The loaded rule book; each fixture's ``ruleset`` must be one of its files.
        prepare: Applied to each fixture lead before evaluation (the daemon passes its
            enrichment so fixtures can give raw CRM fields only).

    Returns:
        The report; nothing is raised for fixture problems.
    """
    report = FixtureReport()
    book_files = {p.resolve() for p in book.paths}
    for path in paths:
        _run_file(Path(path), book, book_files, prepare, report)
    return report


def _line(container: Any, key: Any) -> int:
    try:
        if isinstance(container, CommentedMap):
            return int(container.lc.key(key)[0]) + 1
        if isinstance(container, CommentedSeq):
            return int(container.lc.item(key)[0]) + 1
    except Exception:  # noqa: BLE001 - line numbers are best effort
        pass
    return 1


def _run_file(
    path: Path,
    book: RuleBook,
    book_files: set[Path],
    prepare: Callable[[dict[str, Any]], dict[str, Any]],
    report: FixtureReport,
) -> None:
    file = str(path)

    def file_problem(line: int, message: str) -> None:
        report.results.append(CaseResult(file, "<file>", line, False, (message,)))

    try:
        doc = round_trip_yaml().load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        file_problem(1, f"cannot read the fixture file: {exc}")
        return
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        file_problem(
            mark.line + 1 if mark else 1,
            f"YAML syntax error: {getattr(exc, 'problem', None) or exc}",
        )
        return
    except Exception as exc:  # noqa: BLE001 - a fixture problem is a failure, not a crash
        file_problem(1, f"cannot read the fixture file: {type(exc).__name__}: {exc}")
        return
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("cases"), CommentedSeq):
        file_problem(1, "a fixture file is a mapping with `ruleset`, `now` and a `cases` list")
        return
    ruleset = doc.get("ruleset")
    if isinstance(ruleset, str) and (path.parent / ruleset).resolve() not in book_files:
        file_problem(
            _line(doc, "ruleset"),
            f"the cases are for rule file '{ruleset}', which is not in the loaded "
            f"rule book ({', '.join(str(p) for p in book.paths)})",
        )
        return
    default_now = as_aware_datetime(doc.get("now"))
    fields = book.fields
    for i, case in enumerate(doc["cases"]):
        line = _line(doc["cases"], i)
        name = case.get("name") if isinstance(case, dict) else None
        name = name if isinstance(name, str) else f"case #{i + 1}"
        try:
            problems = _run_case(case, default_now, fields, book, prepare)
        except Exception as exc:  # noqa: BLE001 - a broken case or prepare hook is a failure
            problems = [f"error while running the case: {type(exc).__name__}: {exc}"]
        report.results.append(CaseResult(file, name, line, not problems, tuple(problems)))


def _run_case(
    case: Any,
    default_now: datetime | None,
    fields: Mapping[str, FieldType],
    book: RuleBook,
    prepare: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[str]:
    if (
        not isinstance(case, dict)
        or not isinstance(case.get("lead"), dict)
        or not isinstance(case.get("expect"), dict)
    ):
        return ["a case is a mapping with `name`, `lead` (mapping) and `expect` (mapping)"]
    now = as_aware_datetime(case.get("now")) if case.get("now") is not None else default_now
    if now is None:
        return ["no valid `now` (ISO date/time) for this case or its file"]
    problems: list[str] = []
    lead: dict[str, Any] = {}
    for key, value in case["lead"].items():
        ftype = fields.get(key)
        if ftype is None:
            problems.append(
                f"lead field '{key}' is not a known field"
                + (f" (did you mean '{s}'?)" if (s := suggest(key, fields)) else "")
            )
            continue
        if ftype is FieldType.DATETIME and value is not None:
            lead[str(key)] = as_aware_datetime(value) or value
        elif isinstance(value, str):
            lead[str(key)] = str(value)
        else:
            lead[str(key)] = value
    unknown = [k for k in case["expect"] if k not in _EXPECT_KEYS]
    for key in unknown:
        problems.append(
            f"unknown expect key '{key}'"
            + (
                f" (did you mean '{s}'?)"
                if (s := suggest(key, _EXPECT_KEYS))
                else f"; use {', '.join(_EXPECT_KEYS)}"
            )
        )
    if problems:
        return problems
    decision = book.evaluate(prepare(dict(lead)), now)
    return _compare(case["expect"], decision)


def _compare(expect: Mapping[str, Any], d: Decision) -> list[str]:
    problems: list[str] = []
    for key, check in _CHECKS:
        if key in expect:
            problems.extend(check(expect[key], d))
    return problems


def _differ(what: str, want: Any, got: Any) -> list[str]:
    return [] if want == got else [f"{what}: expected {want!r}, got {got!r}"]


def _blocked(want: Any, d: Decision) -> list[str]:
    reason = d.blocked.reason if d.blocked else None
    if isinstance(want, bool):
        return [] if want == (reason is not None) else _differ("blocked", want, reason or False)
    if reason is None or str(want).lower() not in reason.lower():
        return [f"blocked reason containing: expected {str(want)!r}, got {reason!r}"]
    return []


#: expect key -> its check, in the order problems are listed.
_CHECKS: tuple[tuple[str, Callable[[Any, Decision], list[str]]], ...] = (
    ("status", lambda want, d: _differ("status", want, d.status)),
    ("rule", lambda want, d: _differ("rule", want, d.rule_id)),
    ("newsletters", lambda want, d: _differ("newsletters", list(want or []), list(d.newsletters))),
    ("archived", lambda want, d: _differ("archived", bool(want), d.archived)),
    ("blocked", _blocked),
    ("field_sets", lambda want, d: _differ("field_sets", dict(want or {}), dict(d.field_sets))),
    (
        "matched_rules",
        lambda want, d: _differ("matched_rules", list(want or []), list(d.matched_rules)),
    ),
)
