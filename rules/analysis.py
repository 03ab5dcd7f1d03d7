"""Static checks of a compiled rule set: rules that can never fire, and rules that undo each other.

Both rest on one question, "can these leaf conditions hold at the same time?", answered without
guessing at the semantics: a condition is brought into disjunctive normal form (``not`` pushed
to the leaves, at most :data:`_MAX_CLAUSES` clauses, else the rule is not analysed), and a
clause holds for some lead when, field by field, some candidate value satisfies every leaf on
that field. Candidates are the values the conditions name (and their neighbours), a value none
names, "missing", and for dates the instants around every threshold; each leaf is decided by its
own compiled closure, so null semantics, types and date-only values are exactly the engine's.
``matches`` and comparisons with another field are taken as satisfiable (they cannot be decided
from one field's candidates), so the checks err on the side of silence.

Never-firing rules (warnings): a condition that contradicts itself (``eq: A`` and ``eq: B`` on
one field in an ``all``), a status target the guards refuse from every status the condition
admits, a converted status as a target.

Loops: a rule that sets status ``T`` and admits status ``S`` is an edge ``S -> T`` of the set's
status graph (only where the guards allow the move). A cycle of edges is a loop. It is an
**error** when the rules on it can all hold for one lead right after syncd changed its status
(``status_changed_at`` = now; fields the rules on the loop set are left free): such a lead would
flip on every cycle with nothing outside changing. It is a **warning** when the conditions
exclude each other except as time passes or the lead changes in the CRM (``status_changed_at
older_than 30d``, ``within: 7d`` against ``older_than: 90d``, ``icp_fit: strong`` against
``weak``): then the loop is slow, but still a loop. At run time the engine blocks any lead whose
evaluation comes back to a state it was in (:mod:`rules.engine`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from rules.calendar import DEFAULT_CALENDAR, BusinessDuration, Calendar
from rules.conditions import Duration, Node
from rules.durations import DurationError, parse_duration
from rules.engine import MAX_CHAIN, CompiledRule, RuleSet
from rules.issues import RuleIssue
from rules.schema import BusinessSpan, FieldRef

__all__ = ["Finding", "SetShape", "analyse", "book_loops"]

_MAX_CLAUSES = 64
_MAX_CYCLES = 200
_MAX_COMBOS = 64
_MAX_REPORTED = 10
_NOW = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)  # any instant: only differences matter
_FRESH = "\x00none of the named values"


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem of one rule (``index`` in the file's ``rules`` list)."""

    index: int
    message: str
    severity: Literal["error", "warning"]
    loop: tuple[int, ...] = ()  # for a loop: the indexes of its rules


@dataclass(frozen=True, slots=True)
class SetShape:
    """What the analysis needs of a rule set besides its rules."""

    statuses: tuple[str, ...]
    converted: frozenset[str]
    protected: frozenset[str]
    transitions: Mapping[str, tuple[str, ...]]
    durations: tuple[Duration, ...]
    calendar: Calendar | None
    first_match: bool = True


@dataclass(frozen=True, slots=True)
class _Literal:
    field: str
    op: str
    value: Any
    fn: Callable[[Mapping[str, Any], Sequence[datetime]], bool]
    positive: bool
    text: str

    @property
    def undecidable(self) -> bool:
        return isinstance(self.value, FieldRef) or (self.op == "matches" and self.positive)


Clause = tuple[_Literal, ...]


def analyse(
    rules: Sequence[tuple[int, CompiledRule]],
    shape: SetShape,
    unreachable: frozenset[int] = frozenset(),
    loops_only: Callable[[tuple[int, ...]], bool] | None = None,
) -> list[Finding]:
    """Findings for the rules of one set (``(index in file, rule)`` pairs, in file order);
    ``unreachable``: indexes of rules an earlier rule shadows (they make no moves);
    ``loops_only``: report only loops whose rule indexes it accepts, and nothing else."""
    checker = _Checker(shape)
    findings: list[Finding] = []
    edges: dict[tuple[str, str], list[tuple[int, CompiledRule, list[Clause]]]] = {}
    taken: set[str] = set()  # first_match: statuses an earlier rule takes whole
    for index, rule in rules:
        clauses = _dnf(rule.node, True) if rule.node is not None else [()]
        if clauses is None:
            continue
        sources = [
            s
            for s in shape.statuses
            if s not in taken and any(checker.admits(c, s) for c in clauses)
        ]
        if shape.first_match:
            taken.update(
                s
                for s in shape.statuses
                if any(_status_only(c) and checker.admits(c, s) for c in clauses)
            )
        live = [c for c in clauses if checker.holds(c, {}, skip_status=False)]
        if not live:
            findings.append(
                Finding(
                    index,
                    "this rule can never match: its condition "
                    f"contradicts itself ({checker.why(clauses[0])}); fix or "
                    "remove it",
                    "warning",
                )
            )
            continue
        if rule.status is None or index in unreachable:
            continue
        sources = [s for s in sources if any(checker.admits(c, s) for c in live)]
        findings.extend(_target_findings(index, rule, sources, shape))
        for source in sources:
            if source != rule.status and _guard(shape, source, rule.status) is None:
                edges.setdefault((source, rule.status), []).append((index, rule, live))
    if loops_only is not None:
        return _loops(edges, checker, loops_only)
    findings.extend(_loops(edges, checker, None))
    return findings


def book_loops(sets: Sequence[RuleSet]) -> list[RuleIssue]:
    """Loops through rules of more than one file (each file's own are reported with it).

    The sets of a book act together on a lead: the first status set wins, guards of every set
    apply. Located at the loop's first rule, in its file.
    """
    rules: list[tuple[int, CompiledRule]] = []
    where: list[tuple[RuleSet, CompiledRule]] = []
    for rs in sets:
        for rule in rs.rules:
            rules.append((len(where), rule))
            where.append((rs, rule))
    if len({rs.name for rs in sets if any(r.status for r in rs.rules)}) < 2:
        return []
    calendar = next((rs.calendar for rs in sets if rs.calendar is not None), None)
    shape = SetShape(
        tuple(dict.fromkeys(s for rs in sets for s in rs.statuses)),
        frozenset(s for rs in sets for s in rs.converted),
        frozenset(s for rs in sets for s in rs.protected),
        _merged_transitions(sets),
        tuple(d for rs in sets for d in rs.durations),
        calendar,
        first_match=False,
    )

    def several_files(loop: tuple[int, ...]) -> bool:
        return len({id(where[i][0]) for i in loop}) > 1

    issues: list[RuleIssue] = []
    for finding in analyse(rules, shape, loops_only=several_files):
        rs, rule = where[finding.index]
        issues.append(
            RuleIssue(
                str(rs.path),
                rule.line,
                5,
                rule.id,
                finding.message + " (rules from several files)",
                severity=finding.severity,
            )
        )
    return issues


def _merged_transitions(sets: Sequence[RuleSet]) -> dict[str, tuple[str, ...]]:
    """Allowed sources per target that every set agrees on."""
    merged: dict[str, tuple[str, ...]] = {}
    for rs in sets:
        for target, sources in rs.transitions.items():
            have = merged.get(target)
            merged[target] = sources if have is None else tuple(s for s in have if s in sources)
    return merged


def _status_only(clause: Clause) -> bool:
    return all(lit.field == "status" and not lit.undecidable for lit in clause)


def _target_findings(
    index: int, rule: CompiledRule, sources: list[str], shape: SetShape
) -> list[Finding]:
    target = rule.status
    assert target is not None
    if target in shape.converted:
        return [
            Finding(
                index,
                f"this rule can never convert a lead: '{target}' is a converted "
                "status, and leads are converted in the CRM (its conversion "
                "creates the account, contact and opportunity), not by setting a "
                "status; remove the rule or target another status",
                "warning",
            )
        ]
    moves = [s for s in sources if s != target]
    if moves and all(_guard(shape, s, target) is not None for s in moves):
        reasons = "; ".join(dict.fromkeys(str(_guard(shape, s, target)) for s in moves))
        return [
            Finding(
                index,
                f"this rule can never fire: its condition admits only leads in "
                f"{', '.join(moves)}, and the guards refuse every one of those "
                f"moves to '{target}' ({reasons}); widen `transitions` or narrow "
                "the condition",
                "warning",
            )
        ]
    return []


def _guard(shape: SetShape, current: str, target: str) -> str | None:
    if current in shape.converted:
        return f"'{current}' is converted"
    if current in shape.protected:
        return f"'{current}' is protected"
    sources = shape.transitions.get(target)
    if sources is not None and current not in sources:
        return f"transitions allow '{target}' only from {', '.join(sources)}"
    return None


# -- loops ---------------------------------------------------------------------------------

_Edge = tuple[int, CompiledRule, list[Clause]]


def _loops(
    edges: Mapping[tuple[str, str], list[_Edge]],
    checker: _Checker,
    keep: Callable[[tuple[int, ...]], bool] | None,
) -> list[Finding]:
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    findings: list[Finding] = []
    seen: set[frozenset[str]] = set()
    for cycle in _cycles(succ):
        options = [edges[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))]
        worst: tuple[bool, Sequence[_Edge]] | None = None
        for combo in itertools.islice(itertools.product(*options), _MAX_COMBOS):
            ids = frozenset(e[1].id for e in combo)
            if ids in seen or (keep is not None and not keep(tuple(e[0] for e in combo))):
                continue
            free = _jointly_possible(combo, cycle, checker)
            if free is None:
                continue
            if worst is None or (free and not worst[0]):
                worst = (free, combo)
            if free:
                break
        if worst is None:
            continue
        free, chosen = worst
        seen.add(frozenset(e[1].id for e in chosen))
        findings.append(_loop_finding(free, chosen, cycle))
        if len(findings) >= _MAX_REPORTED:
            break
    return findings


def _cycles(succ: Mapping[str, list[str]]) -> Iterator[list[str]]:
    """Elementary cycles, each once (started at its first node in ``succ`` order), bounded."""
    order = {n: i for i, n in enumerate(succ)}
    found = 0
    for start in succ:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in succ.get(node, ()):
                if nxt == start:
                    yield path
                    found += 1
                    if found >= _MAX_CYCLES:
                        return
                elif (
                    nxt not in path and order.get(nxt, -1) > order[start] and len(path) < MAX_CHAIN
                ):
                    stack.append((nxt, [*path, nxt]))


def _jointly_possible(
    combo: Sequence[_Edge], cycle: Sequence[str], checker: _Checker
) -> bool | None:
    """Whether one lead can satisfy every rule on the loop right after a status change, each
    rule firing at its step (no earlier rule of the loop taking that step's status first);
    None when an earlier rule always takes some step (no loop at all)."""
    written = {f for _, rule, _ in combo for f, _ in rule.field_sets}
    per_rule = [
        [c for c in clauses if checker.admits(c, source)]
        for (_, _, clauses), source in zip(combo, cycle, strict=True)
    ]
    fixed = {"status_changed_at": _NOW}
    possible = False
    for choice in itertools.islice(itertools.product(*per_rule), _MAX_COMBOS):
        if _preempted(combo, cycle, choice, checker):
            continue
        possible = True
        merged = tuple(
            lit
            for clause in choice
            for lit in clause
            if lit.field not in written and lit.field != "status"
        )
        if checker.holds(merged, fixed, skip_status=True):
            return True
    return False if possible else None


def _preempted(
    combo: Sequence[_Edge], cycle: Sequence[str], choice: Sequence[Clause], checker: _Checker
) -> bool:
    """An earlier rule of the loop also holds at a step: it decides there, not the step's rule
    (the conditions of every rule on the loop hold for the lead being checked)."""
    for i, (index, _, _) in enumerate(combo):
        for j, (other, _, _) in enumerate(combo):
            if other < index and checker.admits(choice[j], cycle[i]):
                return True
    return False


def _loop_finding(free: bool, combo: Sequence[_Edge], cycle: Sequence[str]) -> Finding:
    ids = [rule.id for _, rule, _ in combo]
    listed = (
        " and ".join(f"'{i}'" for i in ids)
        if len(ids) <= 2
        else ", ".join(f"'{i}'" for i in ids[:-1]) + f" and '{ids[-1]}'"
    )
    path = " -> ".join(f"{cycle[i]} ({ids[i]})" for i in range(len(cycle))) + f" -> {cycle[0]}"
    if free:
        message = (
            f"rules {listed} undo each other: {path}; a lead can match all of them, so "
            "it would flip on every cycle with nothing changing outside syncd (syncd "
            "blocks such leads); narrow a condition so they exclude each other"
        )
        return Finding(combo[0][0], message, "error", tuple(e[0] for e in combo))
    message = (
        f"rules {listed} can undo each other: {path}; their conditions exclude each "
        "other only until time passes or the lead changes in the CRM, so a lead may "
        "cycle slowly; check that this is intended"
    )
    return Finding(combo[0][0], message, "warning", tuple(e[0] for e in combo))


# -- satisfiability ------------------------------------------------------------------------


def _dnf(node: Node, positive: bool) -> list[Clause] | None:
    """``node`` (negated unless ``positive``) as a list of conjunctive clauses; None if large."""
    if node.kind == "leaf":
        spec = node.spec
        assert spec is not None
        return [(_Literal(spec.field, spec.op, spec.value, node.fn, positive, spec.text),)]
    if node.kind == "not":
        return _dnf(node.children[0], not positive)
    parts = [_dnf(c, positive) for c in node.children]
    if any(p is None for p in parts):
        return None
    lists = [p for p in parts if p is not None]
    conjunctive = (node.kind == "all") is positive
    if not conjunctive:
        out = [c for p in lists for c in p]
        return out if len(out) <= _MAX_CLAUSES else None
    product: list[Clause] = [()]
    for p in lists:
        product = [a + b for a in product for b in p]
        if len(product) > _MAX_CLAUSES:
            return None
    return product


class _Checker:
    """Decides clauses with the leaves' own closures on candidate values."""

    def __init__(self, shape: SetShape) -> None:
        self.shape = shape
        self.th = tuple(_threshold(d, shape.calendar) for d in shape.durations)
        self._instants: dict[str, datetime | None] = {}

    def admits(self, clause: Clause, status: str) -> bool:
        """Whether the clause's status leaves hold for a lead in ``status``."""
        lead = {"status": status}
        return all(
            lit.fn(lead, self.th) is lit.positive
            for lit in clause
            if lit.field == "status" and not lit.undecidable
        )

    def holds(self, clause: Clause, fixed: Mapping[str, Any], *, skip_status: bool) -> bool:
        """Whether some lead satisfies the clause (fields in ``fixed`` take that value)."""
        return self._failing(clause, fixed, skip_status) is None

    def why(self, clause: Clause) -> str:
        field = self._failing(clause, {}, False)
        lits = [
            lit.text if lit.positive else f"not {lit.text}" for lit in clause if lit.field == field
        ]
        return " and ".join(lits) if lits else "no lead satisfies it"

    def _failing(self, clause: Clause, fixed: Mapping[str, Any], skip_status: bool) -> str | None:
        by_field: dict[str, list[_Literal]] = {}
        for lit in clause:
            if lit.undecidable or (skip_status and lit.field == "status"):
                continue
            by_field.setdefault(lit.field, []).append(lit)
        for field, lits in by_field.items():
            values = [fixed[field]] if field in fixed else self._candidates(field, lits)
            if not any(
                all(lit.fn({field: v}, self.th) is lit.positive for lit in lits) for v in values
            ):
                return field
        return None

    def _relative(self, raw: object) -> datetime | None:
        """The threshold of an ``older_than``/``within`` value at :data:`_NOW`."""
        key = repr(raw)
        if key not in self._instants:
            duration: Duration | None = None
            if isinstance(raw, BusinessSpan):
                duration = BusinessDuration(raw.business_days or 0, raw.business_hours or 0)
            elif isinstance(raw, str):
                try:
                    duration = parse_duration(raw)
                except DurationError:
                    duration = None
            self._instants[key] = (
                None if duration is None else _threshold(duration, self.shape.calendar)
            )
        return self._instants[key]

    def _candidates(self, field: str, lits: Sequence[_Literal]) -> list[Any]:
        values: list[Any] = [
            None,
            _FRESH,
            True,
            False,
            0,
            _NOW,
            _NOW + timedelta(days=1),
            datetime(1971, 1, 1, tzinfo=UTC),
        ]
        for lit in lits:
            raw = lit.value
            if lit.op in ("older_than", "within"):
                instant = self._relative(raw)
                if instant is not None:
                    values.extend(instant + timedelta(seconds=s) for s in (-1, 0, 1))
                    values.extend(((instant - timedelta(days=1)).date(), instant.date()))
                continue
            items = raw if isinstance(raw, list) else [raw]
            for item in items:
                if isinstance(item, (BusinessSpan, FieldRef)) or item is None:
                    continue
                values.append(item)
                if isinstance(item, str):
                    values.append(item + "x")
                    values.append(item.upper())
                    values.extend(_around(item))
                elif isinstance(item, (int, float)) and not isinstance(item, bool):
                    values.extend((item - 1, item + 1, item - 0.5, item + 0.5))
                elif isinstance(item, (datetime, date)):
                    values.extend((item, item))
        return values


def _around(text: str) -> list[datetime]:
    """Instants next to a date/time written as text (``gt: 2026-01-31``)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return []
    aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return [aware - timedelta(seconds=1), aware + timedelta(seconds=1)]


def _threshold(duration: Duration, calendar: Calendar | None) -> datetime:
    if isinstance(duration, BusinessDuration):
        return duration.before(_NOW, calendar or DEFAULT_CALENDAR)
    return _NOW - duration
