"""Evaluate loaded rule sets against leads: ``RuleBook.evaluate(lead, now) -> Decision``.

Semantics (kept in one place so ``plan``, ``explain`` and the docs agree):

* A rule book is an ordered list of rule sets, evaluated in order on the *original* lead (a later
  set does not see what an earlier one decided).
* ``first_match`` set: the first rule whose condition holds is the only one applied from that set.
* ``all_match`` set: every rule whose condition holds is applied, in file order.
* ``stop`` ends evaluation for the lead: no later rule of any set is looked at.
* Status and field values: the first rule (book order) to set one wins; a later rule setting the
  same status or field to a *different* value is recorded as a :class:`Conflict` and not applied.
* Guards: before a rule's status target is applied it is checked against the current status
  (``check_transition``: converted statuses, ``protected``, ``transitions``). A blocked rule is
  withheld as a whole (its newsletters and field values are not applied either, so a protected
  or converted lead is never touched by a rule aimed at another stage); the first block is
  reported in ``Decision.blocked`` and a first_match set does not fall through to its next rule.
  ``stop`` of a blocked rule still ends evaluation.
* ``Decision.rule_id`` is the rule that decided the status; else the blocked rule; else the first
  rule that matched; else None.

Evaluation never raises on lead data (see ``rules.conditions`` for null semantics) and allocates
little: decisions are cached per (matched rules, current status) and shared, so treat them as
read-only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from rules.conditions import CondFn, Node
from rules.fields import FieldType
from rules.issues import RuleIssue

__all__ = [
    "CompiledRule",
    "Conflict",
    "Decision",
    "GuardBlock",
    "RuleBook",
    "RuleSet",
    "RuleTrace",
]

_UTC = UTC
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two rules tried to set the same status or field to different values.

    Attributes:
        field: ``"status"`` or the field name.
        kept_value: The value applied (from ``kept_rule``, earlier in book order).
        kept_rule: Id of the rule whose value was applied.
        rejected_value: The value not applied.
        rejected_rule: Id of the rule whose value was not applied.
    """

    field: str
    kept_value: Any
    kept_rule: str
    rejected_value: Any
    rejected_rule: str


@dataclass(frozen=True, slots=True)
class GuardBlock:
    """A status target rejected by the guards; ``reason`` is ready to show in ``plan``."""

    rule_id: str
    ruleset: str
    current: str | None
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one lead. Shared between leads: do not mutate.

    Attributes:
        rule_id: See the module docstring.
        status: Target status, or None for no status decision (it may equal the current status;
            use :meth:`changes_status`).
        newsletters: Newsletters to add the lead to, in rule order, without duplicates.
        field_sets: Field values to write (read-only mapping).
        archived: The status decision came from an ``archive`` action.
        matched_rules: Ids of all rules whose condition held and that were reached.
        conflicts: Values that were not applied because an earlier rule set another one.
        blocked: The first status target rejected by the guards (then ``status`` is not it).
    """

    rule_id: str | None = None
    status: str | None = None
    newsletters: tuple[str, ...] = ()
    field_sets: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    archived: bool = False
    matched_rules: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    blocked: GuardBlock | None = None

    def changes_status(self, current: str | None) -> bool:
        """True when applying this decision changes the lead's status from ``current``."""
        return self.status is not None and self.status != current


NO_DECISION = Decision()


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One line of ``explain``: whether a rule matched, and the leaf condition that decided it.

    Attributes:
        ruleset: Rule set name.
        rule_id: Rule id.
        line: Line of the rule in its file.
        matched: The condition held.
        decided_by: The deciding leaf, e.g. ``"last_activity_at older_than 90d (value ...)"``.
        effect: ``"applied"``, ``"blocked: <reason>"``, ``"not reached: <why>"`` or ``""``.
    """

    ruleset: str
    rule_id: str
    line: int
    matched: bool
    decided_by: str
    effect: str = ""


@dataclass(frozen=True, eq=False, slots=True)
class CompiledRule:
    """A rule ready to run (hashing by identity: used as a cache key)."""

    ruleset: str
    id: str
    line: int
    description: str | None
    cond: CondFn
    node: Node | None
    status: str | None
    archived: bool
    newsletters: tuple[str, ...]
    field_sets: tuple[tuple[str, Any], ...]
    stop: bool


@dataclass(frozen=True, eq=False)
class RuleSet:
    """One loaded rule file. Build a :class:`RuleBook` to evaluate it.

    Attributes:
        name: The set's ``name``.
        path: The file it was loaded from.
        mode: ``"first_match"`` or ``"all_match"``.
        statuses: The status vocabulary.
        converted: Statuses marked ``converted: true``.
        protected: Statuses syncd never changes away from.
        transitions: Target status -> allowed source statuses (in file order).
        archive_status: Target of ``archive``, if the vocabulary has one.
        rules: Compiled rules in file order.
        durations: The set's ``older_than``/``within`` durations (threshold table order).
        digest: sha256 of the file's bytes.
        warnings: Non-fatal issues found while loading.
        fields: The field catalogue the set was checked against.
    """

    name: str
    path: Path
    mode: Literal["first_match", "all_match"]
    statuses: tuple[str, ...]
    converted: frozenset[str]
    protected: frozenset[str]
    transitions: Mapping[str, tuple[str, ...]]
    archive_status: str | None
    rules: tuple[CompiledRule, ...]
    durations: tuple[timedelta, ...]
    digest: str
    warnings: tuple[RuleIssue, ...] = ()
    fields: Mapping[str, FieldType] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Short sha256 of the file's contents."""
        return self.digest[:12]


class RuleBook:
    """Several rule sets evaluated in order (see the module docstring for the semantics)."""

    def __init__(self, sets: Sequence[RuleSet]) -> None:
        self.sets: tuple[RuleSet, ...] = tuple(sets)
        joined = hashlib.sha256()
        for rs in self.sets:
            joined.update(rs.digest.encode())
        self._version = joined.hexdigest()[:12]
        self._bound: tuple[datetime, tuple[tuple[datetime, ...], ...]] | None = None
        self._cache: dict[tuple[Any, ...], Decision] = {}
        self._first_match = tuple(rs.mode == "first_match" for rs in self.sets)

    # -- introspection -------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Short sha256 over the files' contents, in book order (stable, content-sensitive)."""
        return self._version

    @property
    def statuses(self) -> set[str]:
        """Every status any set declares."""
        return {s for rs in self.sets for s in rs.statuses}

    @property
    def target_statuses(self) -> set[str]:
        """Statuses some rule can write (``set_status`` and ``archive``)."""
        return {r.status for rs in self.sets for r in rs.rules if r.status is not None}

    @property
    def newsletters_used(self) -> set[str]:
        """Newsletters some rule adds leads to."""
        return {n for rs in self.sets for r in rs.rules for n in r.newsletters}

    @property
    def fields_written(self) -> set[str]:
        """Fields some rule writes with ``set_field``."""
        return {f for rs in self.sets for r in rs.rules for f, _ in r.field_sets}

    @property
    def warnings(self) -> list[RuleIssue]:
        """Non-fatal load issues of all sets (e.g. rules that can never match)."""
        return [w for rs in self.sets for w in rs.warnings]

    @property
    def paths(self) -> tuple[Path, ...]:
        """The rule files, in book order."""
        return tuple(rs.path for rs in self.sets)

    @property
    def fields(self) -> Mapping[str, FieldType]:
        """The field catalogue the book was checked against."""
        merged: dict[str, FieldType] = {}
        for rs in self.sets:
            merged.update(rs.fields)
        return merged

    # -- guards --------------------------------------------------------------------------

    def check_transition(self, current: str | None, target: str) -> str | None:
        """Whether the guards allow moving a lead from ``current`` to ``target``.

        Returns:
            None if allowed (staying in the same status always is), else the reason.
        """
        if current == target:
            return None
        for rs in self.sets:
            if current in rs.converted:
                return f"'{current}' is a converted status; nothing leaves it"
        for rs in self.sets:
            if current in rs.protected:
                return f"'{current}' is protected; syncd never changes a lead away from it"
        for rs in self.sets:
            sources = rs.transitions.get(target)
            if sources is not None and current not in sources:
                now = "has no status" if current is None else f"is '{current}'"
                return (f"'{target}' can only be reached from {', '.join(sources)} "
                        f"(transitions in {rs.path.name}); the lead {now}")
        return None

    # -- evaluation ----------------------------------------------------------------------

    def _thresholds(self, now: datetime) -> tuple[tuple[datetime, ...], ...]:
        bound = self._bound
        if bound is not None and bound[0] == now:  # naive == aware is False, never raises
            return bound[1]
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        th = tuple(tuple(aware - d for d in rs.durations) for rs in self.sets)
        self._bound = (now, th)
        return th

    def bind(self, now: datetime) -> Callable[[Mapping[str, Any]], Decision]:
        """An evaluator for one cycle: thresholds computed once for ``now`` (thread-safe)."""
        th = self._thresholds(now)
        return lambda lead: self._evaluate(lead, th)

    def evaluate(self, lead: Mapping[str, Any], now: datetime) -> Decision:
        """Decide status, newsletters and field values for one lead at ``now``.

        Args:
            lead: Canonical field name -> value (missing keys and None are allowed).
            now: The cycle's time (naive is taken as UTC); ``older_than``/``within`` are
                relative to it.

        Returns:
            The decision; :data:`NO_DECISION`-like (all empty) when no rule matched.
        """
        return self._evaluate(lead, self._thresholds(now))

    def _matching(self, lead: Mapping[str, Any],
                  th: tuple[tuple[datetime, ...], ...]) -> list[CompiledRule]:
        matched: list[CompiledRule] = []
        for k, rs in enumerate(self.sets):
            t = th[k]
            stop = False
            if self._first_match[k]:
                for rule in rs.rules:
                    if rule.cond(lead, t):
                        matched.append(rule)
                        stop = rule.stop
                        break
            else:
                for rule in rs.rules:
                    if rule.cond(lead, t):
                        matched.append(rule)
                        if rule.stop:
                            stop = True
                            break
            if stop:
                break
        return matched

    def _evaluate(self, lead: Mapping[str, Any],
                  th: tuple[tuple[datetime, ...], ...]) -> Decision:
        matched = self._matching(lead, th)
        if not matched:
            return NO_DECISION
        current = lead.get("status")
        if current is not None and current.__class__ is not str:
            current = str(current)  # a wrong-typed status is no known status
        key = (current, *matched)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(matched, current)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = decision
        return decision

    def _decide(self, matched: Sequence[CompiledRule], current: str | None) -> Decision:
        outcome = _Outcome(current)
        for rule in matched:
            if rule.status is not None:
                reason = self.check_transition(current, rule.status)
                if reason is not None:
                    outcome.block(rule, reason)
                    continue  # a blocked rule is withheld as a whole
                outcome.set_status(rule)
            outcome.add_extras(rule)
        return outcome.decision(matched)

    def explain(self, lead: Mapping[str, Any], now: datetime) -> list[RuleTrace]:
        """Every rule of every set, in order: matched or not, why, and what became of it."""
        th = self._thresholds(now)
        decision = self._evaluate(lead, th)
        applied = set(self._matching(lead, th))
        traces: list[RuleTrace] = []
        stopped_by: str | None = None
        for k, rs in enumerate(self.sets):
            decided_by: str | None = None
            for rule in rs.rules:
                if rule.node is None:
                    matched, why = True, "always (the rule has no `when`)"
                else:
                    matched, why = rule.node.explain(lead, th[k])
                effect = ""
                if stopped_by is not None:
                    effect = f"not reached: rule '{stopped_by}' stopped evaluation"
                elif decided_by is not None:
                    effect = f"not reached: rule '{decided_by}' matched first"
                elif rule in applied:
                    effect = _effect(rule, decision)
                    decided_by = rule.id if self._first_match[k] else None
                    stopped_by = rule.id if rule.stop else None
                traces.append(RuleTrace(rs.name, rule.id, rule.line, matched, why, effect))
        return traces


def _effect(rule: CompiledRule, decision: Decision) -> str:
    """What became of a rule that matched and was reached (for ``explain``)."""
    blocked = decision.blocked
    if blocked is not None and blocked.rule_id == rule.id and blocked.ruleset == rule.ruleset:
        return f"blocked: {blocked.reason}"
    if any(c.rejected_rule == rule.id for c in decision.conflicts):
        return "applied with conflicts"
    return "applied"


class _Outcome:
    """A decision being assembled from the matched rules, in book order."""

    def __init__(self, current: str | None) -> None:
        self.current = current
        self.status: str | None = None
        self.status_rule: CompiledRule | None = None
        self.archived = False
        self.blocked: GuardBlock | None = None
        self.newsletters: list[str] = []
        self.field_sets: dict[str, Any] = {}
        self.field_rule: dict[str, str] = {}
        self.conflicts: list[Conflict] = []

    def block(self, rule: CompiledRule, reason: str) -> None:
        assert rule.status is not None
        if self.blocked is None:
            self.blocked = GuardBlock(rule.id, rule.ruleset, self.current, rule.status, reason)

    def set_status(self, rule: CompiledRule) -> None:
        if self.status_rule is None:
            self.status, self.status_rule, self.archived = rule.status, rule, rule.archived
        elif rule.status != self.status:
            self.conflicts.append(Conflict("status", self.status, self.status_rule.id,
                                           rule.status, rule.id))

    def add_extras(self, rule: CompiledRule) -> None:
        for name in rule.newsletters:
            if name not in self.newsletters:
                self.newsletters.append(name)
        for fname, value in rule.field_sets:
            if fname not in self.field_sets:
                self.field_sets[fname], self.field_rule[fname] = value, rule.id
            elif self.field_sets[fname] != value:
                self.conflicts.append(Conflict(fname, self.field_sets[fname],
                                               self.field_rule[fname], value, rule.id))

    def decision(self, matched: Sequence[CompiledRule]) -> Decision:
        if self.status_rule is not None:
            rule_id: str | None = self.status_rule.id
        elif self.blocked is not None:
            rule_id = self.blocked.rule_id
        else:
            rule_id = matched[0].id
        return Decision(
            rule_id=rule_id,
            status=self.status,
            newsletters=tuple(self.newsletters),
            field_sets=MappingProxyType(self.field_sets) if self.field_sets else _EMPTY,
            archived=self.archived,
            matched_rules=tuple(r.id for r in matched),
            conflicts=tuple(self.conflicts),
            blocked=self.blocked,
        )
