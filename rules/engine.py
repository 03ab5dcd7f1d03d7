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
* Convergence: when a decision changes the lead (status or a field value), the book is evaluated
  again on the lead's *would-be* state (new status, ``status_changed_at`` = the cycle's now, the
  set fields, the joined newsletters) until nothing changes, at most :data:`MAX_CHAIN` steps.
  Only the final state is returned: one write. ``Decision.chain`` names every step's rule and
  ``rule_id`` is then ``"a -> b"``. A chain that comes back to a state it was in ("rules X and Y
  undo each other") is blocked as a whole, as is one that does not settle within the limit.

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

from rules.calendar import Calendar
from rules.conditions import CondFn, Duration, Node, always, combine
from rules.fields import FieldType
from rules.issues import RuleIssue, visible
from rules.timing import TimeTable

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
_STATUS_OPS = frozenset({"eq", "ne", "in", "not_in"})
#: Most rule steps one evaluation follows before it gives up on a lead (blocked).
MAX_CHAIN = 8


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
        blocked: The first status target rejected by the guards (then ``status`` is not it),
            or the chain that undid itself (then nothing is applied).
        chain: Ids of the rules of each step when evaluation went on from a would-be state
            (empty for a one-step decision); what the audit row names, joined with " -> ".
    """

    rule_id: str | None = None
    status: str | None = None
    newsletters: tuple[str, ...] = ()
    field_sets: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    archived: bool = False
    matched_rules: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    blocked: GuardBlock | None = None
    chain: tuple[str, ...] = ()

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
        calendar: Working time for business durations and date-only values (None: UTC,
            Mon-Fri 9-17).
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
    durations: tuple[Duration, ...]
    digest: str
    warnings: tuple[RuleIssue, ...] = ()
    fields: Mapping[str, FieldType] = field(default_factory=dict)
    calendar: Calendar | None = None

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
        #: Issues of the book as a whole (loops through rules of several files).
        self.book_warnings: tuple[RuleIssue, ...] = ()
        self._written = tuple(sorted(self.fields_written))
        # Per set, status -> the rules that can match a lead in it (in order): rules scoped by
        # a status condition are skipped without evaluating them. Exact: a rule is left out
        # only when one of its top-level status conditions is false for that status.
        # Each kept rule comes with its condition minus those status tests (true for that
        # status), so a lead's status is compared once, not once per rule.
        given = {r: _given_status(r) for rs in self.sets for r in rs.rules}
        self._by_status = tuple(
            {
                status: tuple((r, given[r]) for r in rs.rules if _admits(r, status))
                for status in rs.statuses
            }
            for rs in self.sets
        )
        self._unscoped = tuple(tuple((r, r.cond) for r in rs.rules) for rs in self.sets)
        # Per set, what _matching reads, in one tuple: a lead is matched set by set.
        self._scan = tuple(zip(self._by_status, self._unscoped, self._first_match, strict=True))
        # Statuses no rule of any set can match a lead in: a decision moving a lead there has
        # settled without evaluating its would-be state.
        self._inert = frozenset(
            s
            for s in set().union(*(rs.statuses for rs in self.sets))
            if all(not by.get(s, True) for by in self._by_status)
        )
        self._set_of = {r.id: rs.name for rs in self.sets for r in rs.rules}
        self._time = TimeTable(self.sets)
        # Asked per lead by next_change: TimeTable's truth is a Python-level __bool__ call.
        self._timed = bool(self._time)

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
        """Non-fatal load issues of all sets (e.g. rules that can never match) and of the book
        (loops through rules of several files)."""
        return [w for rs in self.sets for w in rs.warnings] + list(self.book_warnings)

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
        reason = self._guard_reason(current, target)
        return None if reason is None else visible(reason)  # statuses come from files and CRMs

    def _guard_reason(self, current: str | None, target: str) -> str | None:
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
                return (
                    f"'{target}' can only be reached from {', '.join(sources)} "
                    f"(transitions in {rs.path.name}); the lead {now}"
                )
        return None

    # -- evaluation ----------------------------------------------------------------------

    def _thresholds(self, now: datetime) -> tuple[tuple[datetime, ...], ...]:
        bound = self._bound
        if bound is not None and bound[0] == now:  # naive == aware is False, never raises
            return bound[1]
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        th = tuple(tuple(_threshold(aware, d, rs) for d in rs.durations) for rs in self.sets)
        self._bound = (now, th)
        return th

    def bind(self, now: datetime) -> Callable[[Mapping[str, Any]], Decision]:
        """An evaluator for one cycle: thresholds computed once for ``now`` (thread-safe)."""
        th = self._thresholds(now)
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        return lambda lead: self._converge(lead, th, aware)

    def bind_next_change(self, now: datetime) -> Callable[[Mapping[str, Any]], datetime | None]:
        """:meth:`next_change` for one cycle: ``now`` and its thresholds taken once, not
        checked again per lead (thread-safe)."""
        if not self._timed:
            return lambda lead: None
        th = self._thresholds(now)
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        table = self._time
        return lambda lead: table.next_change(lead, aware, th)

    def evaluate(self, lead: Mapping[str, Any], now: datetime) -> Decision:
        """Decide status, newsletters and field values for one lead at ``now``.

        Args:
            lead: Canonical field name -> value (missing keys and None are allowed).
            now: The cycle's time (naive is taken as UTC); ``older_than``/``within`` are
                relative to it.

        Returns:
            The decision; :data:`NO_DECISION`-like (all empty) when no rule matched. When the
            rules go on from the would-be state, the final state of the chain (see the module
            docstring).
        """
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        return self._converge(lead, self._thresholds(now), aware)

    def next_change(self, lead: Mapping[str, Any], now: datetime) -> datetime | None:
        """The earliest instant after ``now`` at which the decision for ``lead`` could change
        with nothing but time passing (None: never). Possibly earlier than the real change,
        never later (``rules.timing``)."""
        if not self._timed:
            return None
        bound = self._bound
        if bound is not None and bound[0] == now and now.tzinfo is not None:
            return self._time.next_change(lead, now, bound[1])  # the cycle's, as bound
        aware = now if now.tzinfo is not None else now.replace(tzinfo=_UTC)
        return self._time.next_change(lead, aware, self._thresholds(now))

    # -- convergence ---------------------------------------------------------------------

    def _converge(
        self, lead: Mapping[str, Any], th: tuple[tuple[datetime, ...], ...], now: datetime
    ) -> Decision:
        first = self._evaluate(lead, th)
        if first is NO_DECISION or not _changes(first, lead):
            return first
        if first.status in self._inert:
            return first  # no rule can match a lead in its new status: settled
        state = _would_be(lead, first, now)
        step = self._evaluate(state, th)
        if step is NO_DECISION or step.blocked is not None or not _changes(step, state):
            return first  # settled after one step: the common case, no bookkeeping
        return self._follow(lead, [first, step], state, th, now)

    def _follow(
        self,
        lead: Mapping[str, Any],
        steps: list[Decision],
        state: dict[str, Any],
        th: tuple[tuple[datetime, ...], ...],
        now: datetime,
    ) -> Decision:
        """Go on from ``state`` (after ``steps[0]``) until nothing changes or a state repeats."""
        states: list[tuple[Any, ...]] = [self._state_key(lead), self._state_key(state)]
        state = _would_be(state, steps[1], now)
        while True:
            key = self._state_key(state)
            if key in states:
                return self._blocked_chain(steps, lead, _undone(steps, states, states.index(key)))
            if len(steps) > MAX_CHAIN:
                return self._blocked_chain(steps, lead, _unsettled(steps))
            states.append(key)
            step = self._evaluate(state, th)
            if step is NO_DECISION or step.blocked is not None or not _changes(step, state):
                break  # settled (a later step the guards refuse is not taken)
            steps.append(step)
            state = _would_be(state, step, now)
        return _chained(steps, lead, state)

    def _blocked_chain(
        self, steps: Sequence[Decision], lead: Mapping[str, Any], reason: str
    ) -> Decision:
        """The whole chain withheld: nothing is written, the lead is shown as blocked."""
        chain = tuple(_step_id(s) for s in steps)
        current = lead.get("status")
        block = GuardBlock(
            chain[0],
            self._set_of.get(chain[0], ""),
            current if isinstance(current, str) else None,
            str(steps[0].status),
            visible(reason),
        )
        return Decision(
            rule_id=" -> ".join(chain),
            matched_rules=steps[0].matched_rules,
            blocked=block,
            chain=chain,
        )

    def _state_key(self, lead: Mapping[str, Any]) -> tuple[Any, ...]:
        return (lead.get("status"), *(repr(lead.get(f)) for f in self._written))

    def _matching(
        self, lead: Mapping[str, Any], th: tuple[tuple[datetime, ...], ...]
    ) -> list[CompiledRule]:
        matched: list[CompiledRule] = []
        status: Any = lead.get("status")
        keyed = status.__class__ is str
        for k, (by_status, unscoped, first_match) in enumerate(self._scan):
            t = th[k]
            rules = by_status.get(status, unscoped) if keyed else unscoped
            for rule, cond in rules:
                if cond(lead, t):
                    matched.append(rule)
                    if rule.stop:
                        return matched  # ends evaluation: no later rule of any set
                    if first_match:
                        break
        return matched

    def _evaluate(self, lead: Mapping[str, Any], th: tuple[tuple[datetime, ...], ...]) -> Decision:
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


def _threshold(now: datetime, duration: Duration, rs: RuleSet) -> datetime:
    """``now - duration``: wall-clock for a timedelta, working time for a business duration."""
    if isinstance(duration, timedelta):
        return now - duration
    return duration.before(now, rs.calendar)


def _admits(rule: CompiledRule, status: str) -> bool:
    """Whether the rule's top-level status conditions hold for a lead in ``status``."""
    node = rule.node
    if node is None:
        return True
    leaves = node.children if node.kind == "all" else (node,)
    probe = {"status": status}
    return all(
        leaf.fn(probe, ())
        for leaf in leaves
        if leaf.kind == "leaf" and leaf.spec is not None and leaf.spec.field == "status"
    )


def _status_test(node: Node) -> bool:
    """A leaf comparing the status with values written in the rule (it reads nothing else)."""
    spec = node.spec
    return (
        node.kind == "leaf"
        and spec is not None
        and spec.field == "status"
        and spec.op in _STATUS_OPS
        and isinstance(spec.value, (str, list))
    )


def _given_status(rule: CompiledRule) -> CondFn:
    """The rule's condition for a lead whose status ``_admits`` it: its top-level status tests
    (true for that status) left out."""
    node = rule.node
    if node is None:
        return rule.cond
    if _status_test(node):
        return always
    if node.kind != "all":
        return rule.cond
    rest = [c for c in node.children if not _status_test(c)]
    if len(rest) == len(node.children):
        return rule.cond
    return combine("all", rest).fn if rest else always


def _changes(decision: Decision, lead: Mapping[str, Any]) -> bool:
    """Whether applying ``decision`` changes ``lead``'s status or a field value."""
    if decision.status is not None and decision.status != lead.get("status"):
        return True
    fields = decision.field_sets
    return bool(fields) and any(lead.get(f) != v for f, v in fields.items())


def _would_be(lead: Mapping[str, Any], decision: Decision, now: datetime) -> dict[str, Any]:
    """The lead as it will be once ``decision`` is written at ``now``."""
    state = dict(lead)
    if decision.status is not None and decision.status != lead.get("status"):
        state["status"] = decision.status
        state["status_changed_at"] = now  # what syncd records when it writes a status
    if decision.field_sets:  # a read-only mapping: updating from it costs even when empty
        state.update(decision.field_sets)
    if decision.newsletters:
        current = lead.get("newsletters")
        if current:
            joined = [n for n in str(current).split(",") if n]
            joined += [n for n in decision.newsletters if n not in joined]
            state["newsletters"] = ",".join(joined)
        else:  # none joined yet (most leads): the decision's own, as the lines above give
            state["newsletters"] = ",".join(decision.newsletters)
    return state


def _step_id(step: Decision) -> str:
    return step.rule_id or "?"


def _chained(
    steps: Sequence[Decision], lead: Mapping[str, Any], final: Mapping[str, Any]
) -> Decision:
    """One decision for the final state of a chain of steps (one write)."""
    newsletters: list[str] = []
    fields: dict[str, Any] = {}
    matched: list[str] = []
    status_step: Decision | None = None
    for step in steps:
        newsletters += [n for n in step.newsletters if n not in newsletters]
        fields.update(step.field_sets)
        matched += [r for r in step.matched_rules if r not in matched]
        if step.status is not None:
            status_step = step
    chain = tuple(_step_id(s) for s in steps)
    final_status = final.get("status")
    return Decision(
        rule_id=" -> ".join(chain),
        status=final_status if final_status != lead.get("status") else None,
        newsletters=tuple(newsletters),
        field_sets=MappingProxyType(fields) if fields else _EMPTY,
        archived=status_step.archived if status_step is not None else False,
        matched_rules=tuple(matched),
        conflicts=tuple(c for s in steps for c in s.conflicts),
        blocked=steps[0].blocked,
        chain=chain,
    )


def _undone(steps: Sequence[Decision], states: Sequence[tuple[Any, ...]], start: int) -> str:
    """Why a chain that came back to the state it had before step ``start`` is blocked."""
    names = list(dict.fromkeys(_step_id(s) for s in steps[start:]))
    listed = " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]
    path = " -> ".join(str(state[0]) for state in (*states[start:], states[start]))
    return (
        f"rules {listed} undo each other ({path}); nothing is written until the "
        "rule set is fixed (`syncd rules check` shows the loop)"
    )


def _unsettled(steps: Sequence[Decision]) -> str:
    chain = " -> ".join(_step_id(s) for s in steps)
    return (
        f"the rules did not settle within {MAX_CHAIN} steps ({chain}); nothing is written "
        "until the rule set is fixed (`syncd rules check` shows loops)"
    )


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
            self.conflicts.append(
                Conflict("status", self.status, self.status_rule.id, rule.status, rule.id)
            )

    def add_extras(self, rule: CompiledRule) -> None:
        for name in rule.newsletters:
            if name not in self.newsletters:
                self.newsletters.append(name)
        for fname, value in rule.field_sets:
            if fname not in self.field_sets:
                self.field_sets[fname], self.field_rule[fname] = value, rule.id
            elif self.field_sets[fname] != value:
                self.conflicts.append(
                    Conflict(fname, self.field_sets[fname], self.field_rule[fname], value, rule.id)
                )

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
