"""A rule's actions, checked against the set and the config, and what they add up to.

``set_status`` needs a status of the set, ``archive`` an archive status, ``add_to_newsletter`` a
configured newsletter, ``set_field`` a field on the settable allowlist and a value of its type;
a rule sets at most one status and each field once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from rules.conditions import ConditionError, check_value
from rules.diagnostics import Diagnostics, Loc
from rules.fields import FieldType
from rules.issues import suggest
from rules.parts import LoadOptions
from rules.schema import Action, AddToNewsletter, Archive, SetField, SetFieldArgs, SetStatus, Stop

__all__ = ["ActionChecker", "ActionContext", "RuleEffects"]


@dataclass(frozen=True, slots=True)
class RuleEffects:
    """What a rule does when it matches."""

    status: str | None = None
    archived: bool = False
    newsletters: tuple[str, ...] = ()
    field_sets: tuple[tuple[str, Any], ...] = ()
    stop: bool = False


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What checking actions needs from the set being compiled."""

    options: LoadOptions
    diag: Diagnostics
    archive_status: str | None
    #: (location, status, what names it) -> whether the set has the status (reports if not)
    known_status: Callable[[Loc, str, str], bool]


@dataclass
class ActionChecker:
    """Checks one rule's actions in order and collects their :class:`RuleEffects`."""

    context: ActionContext
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
            self._action((*self.rule_loc, "then", index), index, action)
        if not self.ok:
            return None
        return RuleEffects(
            self.status,
            self.archived,
            tuple(self.newsletters),
            tuple(self.field_sets.items()),
            self.stop,
        )

    def _action(self, loc: Loc, index: int, action: Action) -> None:
        target: str | None = None
        if isinstance(action, SetStatus):
            target = self._set_status(loc, action.set_status)
        elif isinstance(action, Archive):
            target = self._archive(loc)
        elif isinstance(action, AddToNewsletter):
            self._newsletter((*loc, "add_to_newsletter"), action.add_to_newsletter)
        elif isinstance(action, SetField):
            self.ok = self._set_field((*loc, "set_field"), action.set_field) and self.ok
        elif isinstance(action, Stop):
            self.stop = True
        if target is not None:
            self._one_status(loc, index, target)

    def _set_status(self, loc: Loc, status: str) -> str | None:
        if self.context.known_status((*loc, "set_status"), status, "set_status"):
            return status
        self.ok = False
        return None

    def _archive(self, loc: Loc) -> str | None:
        archive = self.context.archive_status
        if archive is None:
            self.context.diag.error(
                loc,
                "`archive` needs an archive status: this set has no "
                "'Archived' status and no `archive_status`; add one",
                at="node",
            )
            self.ok = False
            return None
        self.archived = True
        return archive

    def _one_status(self, loc: Loc, index: int, target: str) -> None:
        if self.status_action is not None:
            self.context.diag.error(
                loc,
                f"the rule already sets the status (action "
                f"{self.status_action + 1}); a rule sets at most one "
                "status",
                at="node",
            )
            self.ok = False
        self.status, self.status_action = target, index

    def _newsletter(self, loc: Loc, name: str) -> None:
        known = self.context.options.newsletters
        if known is not None and name not in known:
            listing = ", ".join(sorted(known)) or "none configured"
            self.context.diag.error(
                loc,
                f"unknown newsletter '{name}'; configured newsletters: {listing}",
                suggestion=suggest(name, known),
            )
            self.ok = False
        elif name not in self.newsletters:
            self.newsletters.append(name)

    def _set_field(self, loc: Loc, args: SetFieldArgs) -> bool:
        fname, value = args.field, args.value
        problem = self._unsettable(fname)
        if problem is not None:
            message, guess = problem
            self.context.diag.error((*loc, "field"), message, suggestion=guess)
            return False
        ftype = self.context.options.fields[fname]
        try:
            checked = check_value(fname, ftype, value)
        except ConditionError as exc:
            self.context.diag.error((*loc, "value"), exc.message)
            return False
        if ftype is FieldType.DATETIME:
            checked = value  # written as the ISO text the admin gave
        if fname in self.field_sets and self.field_sets[fname] != checked:
            self.context.diag.error(
                loc, f"the rule sets '{fname}' twice with different values", at="node"
            )
            return False
        self.field_sets[fname] = checked
        return True

    def _unsettable(self, fname: str) -> tuple[str, str | None] | None:
        """(message, suggestion) when ``set_field`` may not write ``fname``."""
        options = self.context.options
        if fname == "status":
            return "use `set_status` (or `archive`) to change the status, not set_field", None
        if fname not in options.fields:
            return f"unknown field '{fname}'", suggest(fname, options.fields)
        if fname not in options.settable:
            allowed = ", ".join(sorted(options.settable)) or "none"
            message = (
                f"field '{fname}' is not on the settable allowlist (settable fields: "
                f"{allowed}); add it to the config's settable fields first"
            )
            return message, suggest(fname, options.settable)
        return None
