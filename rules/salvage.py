"""The intact parts of a rule file that failed the shape check, so they are checked too.

An admin fixing a file wants every problem at once, not the shape errors first and the unknown
statuses on the next attempt. When the file as a whole does not validate, each rule, condition
and action is validated on its own: what passes becomes the same typed model a valid file
yields, and goes through the same :class:`~rules.compiler.RuleSetCompiler` checks. Nothing is
compiled from such a file (it has errors), so the parts only produce issues.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rules.compiler import RuleSetCompiler
from rules.diagnostics import Loc
from rules.parts import BrokenCondition, BrokenLeaf, Guard, Header, RuleParts, ValidPart
from rules.schema import COMBINATOR_KEYS, Action, Condition, RuleModel

__all__ = ["check_intact_parts"]

_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)


def check_intact_parts(compiler: RuleSetCompiler, data: Mapping[Any, Any]) -> None:
    """Run ``compiler``'s checks on what is valid in ``data`` (a file that failed validation)."""
    compiler.start(_header(data))
    rules = data.get("rules")
    if isinstance(rules, list):
        for index, raw in enumerate(rules):
            if isinstance(raw, dict):
                compiler.rule(_rule(index, raw))


def _header(data: Mapping[Any, Any]) -> Header:
    statuses = data.get("statuses")
    statuses = statuses if isinstance(statuses, dict) else {}
    mode = data.get("mode", "first_match")
    archive = data.get("archive_status")
    name = data.get("name")
    protected = data.get("protected")
    return Header(
        name=name if isinstance(name, str) else None,
        mode="first_match"
        if mode == "first_match"
        else ("all_match" if mode == "all_match" else None),
        statuses=tuple(s for s in statuses if isinstance(s, str)),
        converted=frozenset(
            s
            for s, meta in statuses.items()
            if isinstance(meta, dict) and meta.get("converted") is True
        ),
        archive_status=archive if isinstance(archive, str) else None,
        transitions=tuple(_guards(data.get("transitions"))),
        protected=_texts(protected) if isinstance(protected, list) else (),
    )


def _guards(raw: object) -> Iterator[Guard]:
    if not isinstance(raw, dict):
        return
    for target, guard in raw.items():
        sources = guard.get("from") if isinstance(guard, dict) else None
        yield Guard(
            target,
            target if isinstance(target, str) else None,
            _texts(sources) if isinstance(sources, list) else None,
        )


def _texts(items: list[Any]) -> tuple[tuple[int, str], ...]:
    return tuple((i, item) for i, item in enumerate(items) if isinstance(item, str))


def _rule(index: int, raw: Mapping[Any, Any]) -> RuleParts:
    try:
        return RuleParts.from_model(index, RuleModel.model_validate(raw))
    except ValidationError:
        pass
    rule_id, description, when, then = (raw.get(k) for k in ("id", "description", "when", "then"))
    return RuleParts(
        index=index,
        id=rule_id if isinstance(rule_id, str) else None,
        description=description if isinstance(description, str) else None,
        when=None if when is None else _condition(when, ("rules", index, "when")),
        actions=tuple(_actions(then)) if isinstance(then, list) else (),
        complete=False,
    )


def _actions(then: list[Any]) -> Iterator[tuple[int, Action]]:
    for index, raw in enumerate(then):
        try:
            yield index, _ACTION.validate_python(raw)
        except ValidationError:
            continue


def _condition(raw: object, loc: Loc) -> Condition | BrokenCondition:
    try:
        return _CONDITION.validate_python(raw)
    except ValidationError:
        return BrokenCondition(tuple(_broken_parts(raw, loc)))


def _parts(raw: object, loc: Loc) -> Iterator[ValidPart | BrokenLeaf]:
    try:
        yield ValidPart(loc, _CONDITION.validate_python(raw))
    except ValidationError:
        yield from _broken_parts(raw, loc)


def _broken_parts(raw: object, loc: Loc) -> Iterator[ValidPart | BrokenLeaf]:
    """The valid sub-conditions and broken leaves of a condition that failed validation."""
    if not isinstance(raw, dict):
        return
    for key in COMBINATOR_KEYS:
        if key in raw:
            inner = raw[key]
            if key == "not":
                yield from _parts(inner, (*loc, "not"))
            elif isinstance(inner, list):
                for i, child in enumerate(inner):
                    yield from _parts(child, (*loc, key, i))
            return
    field = raw.get("field")
    if isinstance(field, str):
        yield BrokenLeaf(loc, field)
