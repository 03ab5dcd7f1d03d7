"""Compile a rule file's typed models (:mod:`rules.schema`) into a :class:`~rules.engine.RuleSet`.

The schema has checked the shape; this module checks what depends on the set itself and on the
config, and reports each problem at its location (:class:`~rules.diagnostics.Diagnostics`):

* statuses named in ``archive_status``, ``transitions``, ``protected``, ``set_status`` and status
  conditions must be in the set's vocabulary;
* condition fields must be in the field catalogue and each operator must suit the field's type
  and value (durations, regexes, dates, numbers; see :mod:`rules.conditions`);
* rule ids are well-formed and unique; newsletters are configured; ``set_field`` writes only
  allowlisted fields with values of their type; a rule sets at most one status;
* in a ``first_match`` set, a rule that an earlier one shadows is a warning.

The compiler reads the header and rules through :mod:`rules.parts`, which a valid file fills
from its models and :mod:`rules.salvage` from what validated in a file that did not, so a broken
file still gets every one of these checks on its intact parts. Actions are checked in
:mod:`rules.actions`, unreachable rules found in :mod:`rules.shadowing`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rules.actions import ActionChecker, ActionContext
from rules.analysis import SetShape, analyse
from rules.conditions import (
    ConditionError,
    DurationTable,
    LeafSpec,
    Node,
    OperatorValue,
    always,
    combine,
    compile_leaf,
)
from rules.diagnostics import Diagnostics, Loc
from rules.engine import CompiledRule, RuleSet
from rules.fields import FieldType
from rules.issues import suggest
from rules.parts import BrokenCondition, Header, LoadOptions, RuleParts, ValidPart
from rules.schema import (
    AllCondition,
    Condition,
    FieldRef,
    LeafCondition,
    NotCondition,
    RuleSetModel,
)
from rules.shadowing import ShadowIndex, conjuncts

__all__ = ["RuleSetCompiler"]

_DEFAULT_ARCHIVE = "Archived"
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STATUS_OPERATORS = frozenset({"eq", "ne", "in", "not_in"})


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    statuses: tuple[str, ...]
    archive_status: str | None
    transitions: dict[str, tuple[str, ...]]
    protected: frozenset[str]


class RuleSetCompiler:
    """Checks and compiles one rule file; issues go to ``diag``.

    Use :meth:`compile` for a file that passed the shape check. For one that did not,
    :mod:`rules.salvage` calls :meth:`start` and then :meth:`rule` for each rule it could read.
    """

    def __init__(self, path: Path, options: LoadOptions, diag: Diagnostics) -> None:
        self.path = path
        self.options = options
        self.diag = diag
        self.durations = DurationTable()
        self.header = Header(None, None, (), frozenset(), None, (), ())
        self.vocabulary = _Vocabulary((), None, {}, frozenset())
        self._actions = ActionContext(options, diag, None, self.known_status)
        self._ids: dict[str, int] = {}  # rule id -> line
        self._shadows = ShadowIndex()
        self._shadowed: set[int] = set()  # indexes of rules an earlier rule shadows

    def compile(self, model: RuleSetModel, digest: str) -> RuleSet | None:
        """The compiled set, or None when a problem was found (then ``diag`` has it)."""
        self.start(Header.from_model(model))
        compiled = [self.rule(RuleParts.from_model(i, r)) for i, r in enumerate(model.rules)]
        if self.diag.has_errors:
            return None
        if not self._analyse(compiled):
            return None
        return RuleSet(
            name=model.name,
            path=self.path,
            mode=model.mode,
            statuses=self.vocabulary.statuses,
            converted=self.header.converted,
            protected=self.vocabulary.protected,
            transitions=self.vocabulary.transitions,
            archive_status=self.vocabulary.archive_status,
            rules=tuple(r for r in compiled if r is not None),
            durations=self.durations.durations(),
            digest=digest,
            warnings=self.diag.warnings(),
            fields=dict(self.options.fields),
            calendar=self.options.calendar,
        )

    def _analyse(self, compiled: list[CompiledRule | None]) -> bool:
        """Never-firing rules and loops (:mod:`rules.analysis`), reported at their rule;
        False when one is an error (a loop that needs nothing outside syncd to change)."""
        shape = SetShape(
            self.vocabulary.statuses,
            self.header.converted,
            self.vocabulary.protected,
            self.vocabulary.transitions,
            self.durations.durations(),
            self.options.calendar,
            first_match=self.header.mode != "all_match",
        )
        rules = [(i, r) for i, r in enumerate(compiled) if r is not None]
        ok = True
        for finding in analyse(rules, shape, frozenset(self._shadowed)):
            self.diag.error(
                ("rules", finding.index), finding.message, at="node", severity=finding.severity
            )
            ok = ok and finding.severity != "error"
        return ok

    # -- header ----------------------------------------------------------------------------

    def start(self, header: Header) -> None:
        """Check the header's statuses; later rules are checked against its vocabulary."""
        self.header = header
        archive = header.archive_status
        if archive is not None:
            self.known_status(("archive_status",), archive, "archive_status")
        elif _DEFAULT_ARCHIVE in header.statuses:
            archive = _DEFAULT_ARCHIVE
        self.vocabulary = _Vocabulary(
            header.statuses, archive, self._transitions(header), frozenset(self._protected(header))
        )
        self._actions = ActionContext(self.options, self.diag, archive, self.known_status)

    def _transitions(self, header: Header) -> dict[str, tuple[str, ...]]:
        transitions: dict[str, tuple[str, ...]] = {}
        for guard in header.transitions:
            if guard.target is not None:
                self.known_status(("transitions", guard.key), guard.target, "transitions")
            for i, source in guard.sources or ():
                self.known_status(("transitions", guard.key, "from", i), source, "transitions")
            if guard.target is not None and guard.sources is not None:
                transitions[guard.target] = tuple(s for _, s in guard.sources)
        return transitions

    def _protected(self, header: Header) -> Iterator[str]:
        for i, status in header.protected:
            if self.known_status(("protected", i), status, "protected"):
                yield status

    def known_status(self, loc: Loc, status: str, what: str) -> bool:
        statuses = self.header.statuses
        if status in statuses:
            return True
        if not statuses:
            self.diag.error(
                loc,
                f"{what} '{status}' is not a status of this set: `statuses` is "
                "empty; list the status vocabulary under `statuses:`",
            )
        else:
            self.diag.error(
                loc,
                f"unknown status '{status}' in {what}; this set's statuses are "
                f"{', '.join(statuses)} (add it to `statuses:` if your CRM "
                "has it)",
                suggestion=suggest(status, statuses),
            )
        return False

    # -- rules -----------------------------------------------------------------------------

    def rule(self, parts: RuleParts) -> CompiledRule | None:
        """Check one rule; the compiled rule if it is complete and sound."""
        loc: Loc = ("rules", parts.index)
        line = self.diag.line(loc)
        if parts.id is not None:
            self._check_id(loc, parts.id, line)
        node, condition_ok = self._when(loc, parts.when)
        effects = ActionChecker(self._actions, loc).check(parts.actions)
        if self.header.mode == "first_match" and parts.id is not None and parts.complete:
            self._shadow_check(loc, parts, line)
        if not (parts.complete and condition_ok) or effects is None or parts.id is None:
            return None
        return CompiledRule(
            ruleset=self._set_name,
            id=parts.id,
            line=line,
            description=parts.description,
            cond=node.fn if node is not None else always,
            node=node,
            status=effects.status,
            archived=effects.archived,
            newsletters=effects.newsletters,
            field_sets=effects.field_sets,
            stop=effects.stop,
        )

    @property
    def _set_name(self) -> str:
        return self.header.name if self.header.name is not None else self.path.stem

    def _check_id(self, loc: Loc, rule_id: str, line: int) -> None:
        if not _RULE_ID.fullmatch(rule_id):
            self.diag.error(
                (*loc, "id"),
                f"rule id {rule_id!r} may contain only letters, "
                "digits, '-', '_' and '.', and must start with a "
                "letter or digit",
            )
        first = self._ids.get(rule_id)
        if first is not None:
            self.diag.error(
                (*loc, "id"),
                f"duplicate rule id '{rule_id}' (first used by the "
                f"rule at line {first}); rule ids must be unique",
            )
        else:
            self._ids[rule_id] = line

    def _when(self, loc: Loc, when: Condition | BrokenCondition | None) -> tuple[Node | None, bool]:
        """(the compiled condition or None, whether it is sound)."""
        if when is None:
            return None, True
        if isinstance(when, BrokenCondition):
            for part in when.parts:
                if isinstance(part, ValidPart):
                    self.condition(part.condition, part.loc)
                else:
                    self._field_type(part.field, part.loc)
            return None, False
        node = self.condition(when, (*loc, "when"))
        return node, node is not None

    def _shadow_check(self, loc: Loc, parts: RuleParts, line: int) -> None:
        assert parts.id is not None and not isinstance(parts.when, BrokenCondition)
        mine = conjuncts(parts.when)
        earlier = self._shadows.check(mine, parts.id, line)
        if earlier is not None:
            prev, prev_id, prev_line = earlier
            self._shadowed.add(parts.index)
            why = (
                "matches every lead"
                if not prev
                else ("has the same condition" if prev == mine else "has a broader condition")
            )
            self.diag.error(
                loc,
                f"this rule can never match: rule '{prev_id}' (line "
                f"{prev_line}) {why} and comes first in this first_match set; "
                "move this rule above it or narrow the earlier rule",
                at="node",
                severity="warning",
            )

    # -- conditions ------------------------------------------------------------------------

    def condition(self, cond: Condition, loc: Loc) -> Node | None:
        """Compile a condition; None (with the problems reported) if some part is unsound."""
        if isinstance(cond, LeafCondition):
            return self._leaf(cond, loc)
        if isinstance(cond, NotCondition):
            child = self.condition(cond.not_, (*loc, "not"))
            return combine("not", [child]) if child is not None else None
        kind, items = ("all", cond.all_) if isinstance(cond, AllCondition) else ("any", cond.any_)
        children = [self.condition(c, (*loc, kind, i)) for i, c in enumerate(items)]
        if any(c is None for c in children):
            return None
        return combine(kind, [c for c in children if c is not None])

    def _field_type(self, name: str, loc: Loc) -> FieldType | None:
        ftype = self.options.fields.get(name)
        if ftype is None:
            self.diag.error(
                (*loc, "field"),
                f"unknown field '{name}'; conditions can use the "
                "canonical lead fields (rules/fields.py) and "
                "custom fields declared in config",
                suggestion=suggest(name, self.options.fields),
            )
        return ftype

    def _leaf(self, cond: LeafCondition, loc: Loc) -> Node | None:
        ftype = self._field_type(cond.field, loc)
        if ftype is None:
            return None
        op, raw = cond.operator()
        try:
            fn, text = compile_leaf(
                cond.field,
                ftype,
                op,
                raw,
                self.durations,
                self.options.fields,
                self.options.calendar,
            )
        except ConditionError as exc:
            self._leaf_error(loc, op, raw, exc)
            return None
        if cond.field == "status" and not self._statuses_known(loc, op, raw):
            return None
        return Node("leaf", fn, spec=LeafSpec(cond.field, op, text, raw))

    def _leaf_error(self, loc: Loc, op: str, raw: OperatorValue, exc: ConditionError) -> None:
        where: Loc = (*loc, op) if exc.item is None else (*loc, op, exc.item)
        if isinstance(raw, FieldRef):
            where = (*loc, op, "field")
        self.diag.error(
            where, exc.message, at="key" if exc.at_key else "value", suggestion=exc.suggestion
        )

    def _statuses_known(self, loc: Loc, op: str, raw: OperatorValue) -> bool:
        statuses = self.header.statuses
        if not statuses or op not in _STATUS_OPERATORS:
            return True
        values = raw if isinstance(raw, list) else [raw]
        for k, value in enumerate(values):
            if value not in statuses:
                where: Loc = (*loc, op, k) if isinstance(raw, list) else (*loc, op)
                self.diag.error(
                    where,
                    f"unknown status '{value}' in a condition; this set's "
                    f"statuses are {', '.join(statuses)}",
                    suggestion=suggest(value, statuses),
                )
                return False
        return True
