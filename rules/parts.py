"""A rule file as the compiler reads it: the header and each rule, as far as they could be read.

A file that passed the shape check fills these from its typed models (``from_model``); one that
did not is read part by part by :mod:`rules.salvage`, so the same checks run on what is intact.
:class:`LoadOptions` is what the config adds (fields, settable fields, newsletters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rules.calendar import Calendar
from rules.diagnostics import Loc
from rules.fields import FieldType
from rules.schema import Action, Condition, RuleModel, RuleSetModel
from rules.yamldoc import Key

__all__ = [
    "BrokenCondition",
    "BrokenLeaf",
    "Guard",
    "Header",
    "LoadOptions",
    "Mode",
    "RuleParts",
    "ValidPart",
]

Mode = Literal["first_match", "all_match"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the config adds to a rule file: the field catalogue, the settable fields and the
    configured newsletters (None accepts any newsletter name)."""

    fields: Mapping[str, FieldType]
    settable: frozenset[str] = frozenset()
    newsletters: frozenset[str] | None = None
    calendar: Calendar | None = None


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
            converted=frozenset(
                s for s, meta in model.statuses.items() if meta is not None and meta.converted
            ),
            archive_status=model.archive_status,
            transitions=tuple(
                Guard(t, t, tuple(enumerate(g.from_))) for t, g in model.transitions.items()
            ),
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
        return cls(
            index,
            model.id,
            model.description,
            model.when,
            tuple(enumerate(model.then)),
            complete=True,
        )
