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

The compiler reads the header and rules through :class:`Header` and :class:`RuleParts`, which a
valid file fills from its models and :mod:`rules.salvage` fills from what validated in a file
that did not, so a broken file still gets every one of these checks on its intact parts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rules.conditions import (
    ConditionError,
    DurationTable,
    LeafSpec,
    Node,
    OperatorValue,
    always,
    check_value,
    combine,
    compile_leaf,
)
from rules.diagnostics import Diagnostics, Loc
from rules.engine import CompiledRule, RuleSet
from rules.fields import FieldType
from rules.issues import suggest
from rules.schema import (
    Action,
    AddToNewsletter,
    AllCondition,
    Archive,
    Condition,
    FieldRef,
    LeafCondition,
    NotCondition,
    RuleModel,
    RuleSetModel,
    SetField,
    SetFieldArgs,
    SetStatus,
    Stop,
)
from rules.yamldoc import Key

__all__ = [
    "BrokenCondition",
    "BrokenLeaf",
    "Guard",
    "Header",
    "LoadOptions",
    "RuleEffects",
    "RuleParts",
    "RuleSetCompiler",
    "ValidPart",
]

Mode = Literal["first_match", "all_match"]

_DEFAULT_ARCHIVE = "Archived"
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STATUS_OPERATORS = frozenset({"eq", "ne", "in", "not_in"})


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the config adds to a rule file: the field catalogue, the settable fields and the
    configured newsletters (None accepts any newsletter name)."""

    fields: Mapping[str, FieldType]
    settable: frozenset[str] = frozenset()
    newsletters: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Guard:
    """One ``transitions`` entry: the target as written (its key), the target status, and the
    allowed sources with their list positions (None when the guard itself is unreadable)."""

    key: Key
    target: str | None
    sources: tuple[tuple[int, str], ...] | None


@dataclass(frozen=True, slots=True)
class Header:
    """A rule set's settings: everything but the rules, as far as they could be read."""

    name: str | None
    mode: Mode | None
    statuses: tuple[str, ...]
    converted: frozenset[str]
    archive_status: str | None
    transitions: tuple[Guard, ...]
    protected: tuple[tuple[int, str], ...]

    @classmethod
    def from_model(cls, model: RuleSetModel) -> Header:
        return cls(
            name=model.name,
            mode=model.mode,
            statuses=tuple(model.statuses),
            converted=frozenset(s for s, meta in model.statuses.items()
                                if meta is not None and meta.converted),
            archive_status=model.archive_status,
            transitions=tuple(Guard(t, t, tuple(enumerate(g.from_)))
                              for t, g in model.transitions.items()),
            protected=tuple(enumerate(model.protected)),
        )


@dataclass(frozen=True, slots=True)
class ValidPart:
    """A sub-condition of a broken condition that is itself valid (``loc``: where it is)."""

    loc: Loc
    condition: Condition


@dataclass(frozen=True, slots=True)
class BrokenLeaf:
    """A leaf condition that failed the shape check but names a field."""

    loc: Loc
    field: str


@dataclass(frozen=True, slots=True)
class BrokenCondition:
    """A condition that failed the shape check: its valid parts and broken leaves, in order."""

    parts: tuple[ValidPart | BrokenLeaf, ...]


@dataclass(frozen=True, slots=True)
class RuleParts:
    """One rule as far as it could be read; only a ``complete`` rule is compiled.

    Attributes:
        index: Position in the file's ``rules`` list.
        id: The id, if it is text.
        description: The description, if valid.
        when: The condition (a :class:`BrokenCondition` when it failed the shape check).
        actions: The valid actions with their positions in ``then``.
        complete: The whole rule passed the shape check.
    """

    index: int
    id: str | None
    description: str | None
    when: Condition | BrokenCondition | None
    actions: tuple[tuple[int, Action], ...]
    complete: bool

    @classmethod
    def from_model(cls, index: int, model: RuleModel) -> RuleParts:
        return cls(index, model.id, model.description, model.when,
                   tuple(enumerate(model.then)), complete=True)


@dataclass(frozen=True, slots=True)
class RuleEffects:
    """What a rule does when it matches."""

    status: str | None = None
    archived: bool = False
    newsletters: tuple[str, ...] = ()
    field_sets: tuple[tuple[str, Any], ...] = ()
    stop: bool = False


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
        self._ids: dict[str, int] = {}  # rule id -> line
        self._shadows = _ShadowIndex()

    def compile(self, model: RuleSetModel, digest: str) -> RuleSet | None:
        """The compiled set, or None when a problem was found (then ``diag`` has it)."""
        self.start(Header.from_model(model))
        compiled = [self.rule(RuleParts.from_model(i, r)) for i, r in enumerate(model.rules)]
        if self.diag.has_errors:
            return None
        return RuleSet(
            name=model.name, path=self.path, mode=model.mode,
            statuses=self.vocabulary.statuses, converted=self.header.converted,
            protected=self.vocabulary.protected, transitions=self.vocabulary.transitions,
            archive_status=self.vocabulary.archive_status,
            rules=tuple(r for r in compiled if r is not None),
            durations=self.durations.durations(), digest=digest,
            warnings=self.diag.warnings(), fields=dict(self.options.fields))

    # -- header ----------------------------------------------------------------------------

    def start(self, header: Header) -> None:
        """Check the header's statuses; later rules are checked against its vocabulary."""
        self.header = header
        archive = header.archive_status
        if archive is not None:
            self.known_status(("archive_status",), archive, "archive_status")
        elif _DEFAULT_ARCHIVE in header.statuses:
            archive = _DEFAULT_ARCHIVE
        self.vocabulary = _Vocabulary(header.statuses, archive, self._transitions(header),
                                      frozenset(self._protected(header)))

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
            self.diag.error(loc, f"{what} '{status}' is not a status of this set: `statuses` is "
                                 "empty; list the status vocabulary under `statuses:`")
        else:
            self.diag.error(loc, f"unknown status '{status}' in {what}; this set's statuses are "
                                 f"{', '.join(statuses)} (add it to `statuses:` if your CRM "
                                 "has it)", suggestion=suggest(status, statuses))
        return False

    # -- rules -----------------------------------------------------------------------------

    def rule(self, parts: RuleParts) -> CompiledRule | None:
        """Check one rule; the compiled rule if it is complete and sound."""
        loc: Loc = ("rules", parts.index)
        line = self.diag.line(loc)
        if parts.id is not None:
            self._check_id(loc, parts.id, line)
        node, condition_ok = self._when(loc, parts.when)
        effects = _ActionChecker(self, loc).check(parts.actions)
        if self.header.mode == "first_match" and parts.id is not None and parts.complete:
            self._shadow_check(loc, parts, line)
        if not (parts.complete and condition_ok) or effects is None or parts.id is None:
            return None
        return CompiledRule(
            ruleset=self._set_name, id=parts.id, line=line,
            description=parts.description, cond=node.fn if node is not None else always,
            node=node, status=effects.status, archived=effects.archived,
            newsletters=effects.newsletters, field_sets=effects.field_sets, stop=effects.stop)

    @property
    def _set_name(self) -> str:
        return self.header.name if self.header.name is not None else self.path.stem

    def _check_id(self, loc: Loc, rule_id: str, line: int) -> None:
        if not _RULE_ID.fullmatch(rule_id):
            self.diag.error(loc + ("id",), f"rule id {rule_id!r} may contain only letters, "
                                           "digits, '-', '_' and '.', and must start with a "
                                           "letter or digit")
        first = self._ids.get(rule_id)
        if first is not None:
            self.diag.error(loc + ("id",), f"duplicate rule id '{rule_id}' (first used by the "
                                           f"rule at line {first}); rule ids must be unique")
        else:
            self._ids[rule_id] = line

    def _when(self, loc: Loc, when: Condition | BrokenCondition | None
              ) -> tuple[Node | None, bool]:
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
        node = self.condition(when, loc + ("when",))
        return node, node is not None

    def _shadow_check(self, loc: Loc, parts: RuleParts, line: int) -> None:
        # A first_match rule is unreachable when an earlier rule's conjuncts are a subset of
        # its own: every lead it matches was taken by the earlier rule (a rule with no `when`
        # has no conjuncts, so it shadows everything after it).
        assert parts.id is not None and not isinstance(parts.when, BrokenCondition)
        conjuncts = _conjuncts(parts.when)
        earlier = self._shadows.earliest_subset(conjuncts)
        if earlier is not None:
            prev, prev_id, prev_line = earlier
            why = "matches every lead" if not prev else (
                "has the same condition" if prev == conjuncts else "has a broader condition")
            self.diag.error(loc, f"this rule can never match: rule '{prev_id}' (line "
                                 f"{prev_line}) {why} and comes first in this first_match set; "
                                 "move this rule above it or narrow the earlier rule",
                            at="node", severity="warning")
        self._shadows.add(conjuncts, parts.id, line)

    # -- conditions ------------------------------------------------------------------------

    def condition(self, cond: Condition, loc: Loc) -> Node | None:
        """Compile a condition; None (with the problems reported) if some part is unsound."""
        if isinstance(cond, LeafCondition):
            return self._leaf(cond, loc)
        if isinstance(cond, NotCondition):
            child = self.condition(cond.not_, loc + ("not",))
            return combine("not", [child]) if child is not None else None
        kind, items = ("all", cond.all_) if isinstance(cond, AllCondition) else \
            ("any", cond.any_)
        children = [self.condition(c, loc + (kind, i)) for i, c in enumerate(items)]
        if any(c is None for c in children):
            return None
        return combine(kind, [c for c in children if c is not None])

    def _field_type(self, name: str, loc: Loc) -> FieldType | None:
        ftype = self.options.fields.get(name)
        if ftype is None:
            self.diag.error(loc + ("field",), f"unknown field '{name}'; conditions can use the "
                                              "canonical lead fields (rules/fields.py) and "
                                              "custom fields declared in config",
                            suggestion=suggest(name, self.options.fields))
        return ftype

    def _leaf(self, cond: LeafCondition, loc: Loc) -> Node | None:
        ftype = self._field_type(cond.field, loc)
        if ftype is None:
            return None
        op, raw = cond.operator()
        try:
            fn, text = compile_leaf(cond.field, ftype, op, raw, self.durations,
                                    self.options.fields)
        except ConditionError as exc:
            self._leaf_error(loc, op, raw, exc)
            return None
        if cond.field == "status" and not self._statuses_known(loc, op, raw):
            return None
        return Node("leaf", fn, spec=LeafSpec(cond.field, op, text))

    def _leaf_error(self, loc: Loc, op: str, raw: OperatorValue, exc: ConditionError) -> None:
        where: Loc = loc + (op,) if exc.item is None else loc + (op, exc.item)
        if isinstance(raw, FieldRef):
            where = loc + (op, "field")
        self.diag.error(where, exc.message, at="key" if exc.at_key else "value",
                        suggestion=exc.suggestion)

    def _statuses_known(self, loc: Loc, op: str, raw: OperatorValue) -> bool:
        statuses = self.header.statuses
        if not statuses or op not in _STATUS_OPERATORS:
            return True
        values = raw if isinstance(raw, list) else [raw]
        for k, value in enumerate(values):
            if value not in statuses:
                where: Loc = loc + (op, k) if isinstance(raw, list) else loc + (op,)
                self.diag.error(where, f"unknown status '{value}' in a condition; this set's "
                                       f"statuses are {', '.join(statuses)}",
                                suggestion=suggest(value, statuses))
                return False
        return True


def _conjuncts(when: Condition | None) -> frozenset[str]:
    """The rule's condition as a set of conditions that must all hold, each as canonical JSON
    (keys in the model's field order, so the order they were written in does not matter)."""
    if when is None:
        return frozenset()
    parts: list[Condition] = list(when.all_) if isinstance(when, AllCondition) else [when]
    return frozenset(p.model_dump_json(by_alias=True, exclude_unset=True) for p in parts)


class _ShadowIndex:
    """The conjunct sets of the rules so far, to find the first one that is a subset of a new
    rule's (without comparing every pair of rules: thousands of rules load in linear time)."""

    def __init__(self) -> None:
        self._first: dict[frozenset[str], tuple[int, str, int]] = {}  # set -> (order, id, line)

    def earliest_subset(self, conjuncts: frozenset[str]
                        ) -> tuple[frozenset[str], str, int] | None:
        """The earliest rule whose conjuncts are a subset of ``conjuncts``: (set, id, line)."""
        found = [(entry, key) for key, entry in self._candidates(conjuncts)]
        if not found:
            return None
        (_, rule_id, line), key = min(found, key=lambda f: f[0][0])
        return key, rule_id, line

    def _candidates(self, conjuncts: frozenset[str]
                    ) -> Iterator[tuple[frozenset[str], tuple[int, str, int]]]:
        if 2 ** len(conjuncts) <= len(self._first):
            for size in range(len(conjuncts) + 1):
                for subset in itertools.combinations(conjuncts, size):
                    key = frozenset(subset)
                    entry = self._first.get(key)
                    if entry is not None:
                        yield key, entry
        else:
            for key, entry in self._first.items():
                if key <= conjuncts:
                    yield key, entry

    def add(self, conjuncts: frozenset[str], rule_id: str, line: int) -> None:
        self._first.setdefault(conjuncts, (len(self._first), rule_id, line))


@dataclass
class _ActionChecker:
    """Checks a rule's actions in order and collects their :class:`RuleEffects`."""

    compiler: RuleSetCompiler
    rule_loc: Loc
    ok: bool = True
    status: str | None = None
    status_action: int | None = None  # index in `then` of the action that set the status
    archived: bool = False
    newsletters: list[str] = field(default_factory=list)
    field_sets: dict[str, Any] = field(default_factory=dict)
    stop: bool = False

    def check(self, actions: Collection[tuple[int, Action]]) -> RuleEffects | None:
        for index, action in actions:
            self._action(self.rule_loc + ("then", index), index, action)
        if not self.ok:
            return None
        return RuleEffects(self.status, self.archived, tuple(self.newsletters),
                           tuple(self.field_sets.items()), self.stop)

    def _action(self, loc: Loc, index: int, action: Action) -> None:
        target: str | None = None
        if isinstance(action, SetStatus):
            target = self._set_status(loc, action.set_status)
        elif isinstance(action, Archive):
            target = self._archive(loc)
        elif isinstance(action, AddToNewsletter):
            self._newsletter(loc + ("add_to_newsletter",), action.add_to_newsletter)
        elif isinstance(action, SetField):
            self.ok = self._set_field(loc + ("set_field",), action.set_field) and self.ok
        elif isinstance(action, Stop):
            self.stop = True
        if target is not None:
            self._one_status(loc, index, target)

    def _set_status(self, loc: Loc, status: str) -> str | None:
        if self.compiler.known_status(loc + ("set_status",), status, "set_status"):
            return status
        self.ok = False
        return None

    def _archive(self, loc: Loc) -> str | None:
        archive = self.compiler.vocabulary.archive_status
        if archive is None:
            self.compiler.diag.error(loc, "`archive` needs an archive status: this set has no "
                                          "'Archived' status and no `archive_status`; add one",
                                     at="node")
            self.ok = False
            return None
        self.archived = True
        return archive

    def _one_status(self, loc: Loc, index: int, target: str) -> None:
        if self.status_action is not None:
            self.compiler.diag.error(loc, f"the rule already sets the status (action "
                                          f"{self.status_action + 1}); a rule sets at most one "
                                          "status", at="node")
            self.ok = False
        self.status, self.status_action = target, index

    def _newsletter(self, loc: Loc, name: str) -> None:
        known = self.compiler.options.newsletters
        if known is not None and name not in known:
            listing = ", ".join(sorted(known)) or "none configured"
            self.compiler.diag.error(loc, f"unknown newsletter '{name}'; configured "
                                          f"newsletters: {listing}",
                                     suggestion=suggest(name, known))
            self.ok = False
        elif name not in self.newsletters:
            self.newsletters.append(name)

    def _set_field(self, loc: Loc, args: SetFieldArgs) -> bool:
        fname, value = args.field, args.value
        problem = self._unsettable(fname)
        if problem is not None:
            message, guess = problem
            self.compiler.diag.error(loc + ("field",), message, suggestion=guess)
            return False
        ftype = self.compiler.options.fields[fname]
        try:
            checked = check_value(fname, ftype, value)
        except ConditionError as exc:
            self.compiler.diag.error(loc + ("value",), exc.message)
            return False
        if ftype is FieldType.DATETIME:
            checked = value  # written as the ISO text the admin gave
        if fname in self.field_sets and self.field_sets[fname] != checked:
            self.compiler.diag.error(loc, f"the rule sets '{fname}' twice with different values",
                                     at="node")
            return False
        self.field_sets[fname] = checked
        return True

    def _unsettable(self, fname: str) -> tuple[str, str | None] | None:
        """(message, suggestion) when ``set_field`` may not write ``fname``."""
        options = self.compiler.options
        if fname == "status":
            return "use `set_status` (or `archive`) to change the status, not set_field", None
        if fname not in options.fields:
            return f"unknown field '{fname}'", suggest(fname, options.fields)
        if fname not in options.settable:
            allowed = ", ".join(sorted(options.settable)) or "none"
            message = (f"field '{fname}' is not on the settable allowlist (settable fields: "
                       f"{allowed}); add it to the config's settable fields first")
            return message, suggest(fname, options.settable)
        return None
