"""pydantic's validation errors for a rule file, in the admin's words and at the right place.

The schema (:mod:`rules.schema`) checks the *shape* of a file. Its raw errors name union tags and
pydantic error types; :func:`report_shape_errors` turns each into one plain-English issue located
at the offending key or value: unknown keys with a did-you-mean and the allowed keys, a missing
key only when no misspelt key explains it, one "must be text or a number" per value instead of
one error per union member, and the familiar messages for actions and operators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rules.diagnostics import Diagnostics, Loc
from rules.issues import describe_kind, suggest
from rules.schema import (
    ACTION_KEYS,
    COMBINATOR_KEYS,
    CONDITION_OPERATORS,
    BusinessSpan,
    FieldRef,
    RuleModel,
    RuleSetModel,
    SetFieldArgs,
    StatusMeta,
    TransitionGuard,
)
from rules.yamldoc import has_child

__all__ = ["report_shape_errors"]

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true/false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "empty",
    "int_from_float": "a whole number",
}
_WORD_ORDER = ["text", "a number", "a whole number", "true/false", "a list", "a mapping", "empty"]
_TOO_SHORT = {
    "then": "the rule has no actions: `then` needs at least one action "
    "(e.g. `- set_status: Nurture`)",
    "rules": "the rule set has no rules; add at least one under `rules:`",
    "in": "'in' needs at least one value",
    "not_in": "'not_in' needs at least one value",
    "all": "'all' needs at least one condition",
    "any": "'any' needs at least one condition",
    "from": "'from' needs at least one status",
}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


#: Union members that are mappings (`older_than: {business_days: 2}`, `lt: {field: x}`), and
#: what to call them. A mapping written for one is judged by that member alone: its problem is
#: the error, not also "must be text" from the union's text and number members.
_MAPPING_MEMBERS: dict[str, tuple[type[BaseModel], str]] = {
    "BusinessSpan": (BusinessSpan, "a business duration"),
    "FieldRef": (FieldRef, "a field reference"),
}


def _member_at(step: object) -> str | None:
    """The mapping member a pydantic location step names (``FieldRef``,
    ``function-after[_exactly_one(), BusinessSpan]``), if any."""
    if not isinstance(step, str):
        return None
    return next(
        (m for m in _MAPPING_MEMBERS if step == m or step.endswith((f", {m}]", f"[{m}]"))), None
    )


def _member(loc: Iterable[Any]) -> str | None:
    """The innermost mapping member in a pydantic location."""
    return next((m for m in map(_member_at, reversed(list(loc))) if m is not None), None)


_RULESET_KEYS = _keys(RuleSetModel)
_RULE_KEYS = _keys(RuleModel)
_LEAF_KEYS = ["field", *CONDITION_OPERATORS]


def report_shape_errors(diag: Diagnostics, data: object, exc: ValidationError) -> None:
    """Report every error of ``exc`` (from validating ``data``) to ``diag``."""
    _ShapeReport(diag, data).report(exc.errors(include_url=False))


def _tag(loc: Iterable[Any]) -> str | None:
    """The innermost union tag in a pydantic location (``cond:all``, ``action:stop``, ...)."""
    return next(
        (
            s
            for s in reversed(list(loc))
            if isinstance(s, str) and s.startswith(("cond:", "action:"))
        ),
        None,
    )


def _name(path: Loc) -> str:
    if not path:
        return "the rule set"
    last = path[-1]
    if isinstance(last, int):
        parent = next((p for p in reversed(path[:-1]) if isinstance(p, str)), "list")
        return f"item {last + 1} of '{parent}'"
    return f"'{last}'"


class _ShapeReport:
    def __init__(self, diag: Diagnostics, data: object) -> None:
        self.diag = diag
        self.data = data

    def real_path(self, loc: Iterable[Any]) -> Loc:
        """The part of a pydantic ``loc`` that exists in the data."""
        node: Any = self.data
        out = []
        for step in loc:
            if has_child(node, step):
                node = node[step]
                out.append(step)
        return tuple(out)

    def value_at(self, path: Loc) -> Any:
        node: Any = self.data
        for step in path:
            node = node[step]
        return node

    def report(self, errors: list[ErrorDetails]) -> None:
        extra_containers = {
            self.real_path(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"
        }
        # Values written as a mapping that a mapping member of their union judged: the text
        # and number members' "must be text" errors for them are noise.
        judged = {
            path
            for e in errors
            for i, step in enumerate(e["loc"])
            if _member_at(step) is not None
            and isinstance(self.value_at(path := self.real_path(e["loc"][:i])), dict)
        }
        type_groups: dict[Loc, list[ErrorDetails]] = {}
        for err in errors:
            if "[key]" in err["loc"]:  # the mapping key itself is wrong (a number, not text)
                self.bad_key(err["loc"])
            elif err["type"] in _TYPE_WORDS and self.real_path(err["loc"]) in judged:
                continue
            elif err["type"] in _TYPE_WORDS:
                type_groups.setdefault(self.real_path(err["loc"]), []).append(err)
            elif not (err["type"] == "missing" and self.real_path(err["loc"]) in extra_containers):
                # (a missing key next to an unknown one: the misspelling is reported instead)
                self.one(err)
        for path, group in type_groups.items():
            self.wrong_type(path, group)

    def one(self, err: ErrorDetails) -> None:
        loc, kind, path = err["loc"], err["type"], self.real_path(err["loc"])
        if kind == "extra_forbidden":
            self.unknown_key(loc, path)
        elif kind == "missing":
            self.diag.error(
                path, f"missing required key '{loc[-1]}' {_context(loc, path)}", at="node"
            )
        elif kind == "condition_shape":
            self.diag.error(
                path,
                "a condition must be a mapping such as "
                "`{field: status, eq: SAL}` or one of all/any/not, not "
                f"{describe_kind(self.value_at(path))}",
            )
        elif kind == "action_shape":
            self.bad_action(path)
        elif kind == "value_error":
            self.leaf_value_error(path, str(err["msg"]).removeprefix("Value error, "))
        elif kind == "literal_error":
            self.literal_error(path, err)
        elif kind == "too_short":
            last = path[-1] if path else None
            self.diag.error(path, _TOO_SHORT.get(str(last), f"{_name(path)} must not be empty"))
        else:
            self.diag.error(path, f"{_name(path)}: {err['msg']}")

    def bad_key(self, loc: Sequence[Any]) -> None:
        at = list(loc).index("[key]")
        container = self.real_path(loc[: at - 1])
        key = loc[at - 1]
        self.diag.error(
            (*container, key),
            f"key {key!r} in {_name(container)} must be text, "
            f'not {describe_kind(key)}; quote it: "{key}"',
            at="key",
        )

    def wrong_type(self, path: Loc, group: list[ErrorDetails]) -> None:
        if path and path[-1] in ("archive", "stop"):
            self.diag.error(path, f"`{path[-1]}` takes no arguments; write `{path[-1]}: {{}}`")
            return
        words = {_TYPE_WORDS[e["type"]] for e in group}
        if "a number" in words:
            words.discard("a whole number")
        ordered = sorted(words, key=_WORD_ORDER.index)
        expected = ([", ".join(ordered[:-1])] if len(ordered) > 1 else []) + ordered[-1:]
        self.diag.error(
            path,
            f"{_name(path)} must be {' or '.join(expected)}, not "
            f"{describe_kind(self.value_at(path))}",
        )

    def unknown_key(self, loc: Sequence[Any], path: Loc) -> None:
        key, container_loc = loc[-1], loc[:-1]
        member = _member(container_loc)
        if member is not None:  # a key of `{business_days: N}` / `{field: F}`, not an operator
            model, what = _MAPPING_MEMBERS[member]
            keys = _keys(model)
            guess = suggest(key, keys)
            self.diag.error(
                path,
                f"unknown key '{key}' in {what}"
                + ("" if guess else f"; allowed keys: {', '.join(keys)}"),
                at="key",
                suggestion=guess,
            )
            return
        tag = _tag(container_loc)
        allowed = _allowed_keys(container_loc, path[:-1])
        guess = suggest(key, allowed)
        special = _misplaced_key_message(tag, key, guess)
        if special is not None:
            self.diag.error(
                path,
                special,
                at="key",
                suggestion=guess if special.startswith("unknown operator") else None,
            )
            return
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed and guess is None else ""
        if isinstance(key, str) and " " in key.strip():
            listing += (
                "; if this is the rest of a text value, a comma inside `{...}` split "
                "it: quote the text"
            )
        self.diag.error(
            path,
            f"unknown key '{key}' {_context(container_loc, path[:-1])}{listing}",
            at="key",
            suggestion=guess,
        )

    def bad_action(self, path: Loc) -> None:
        value = self.value_at(path)
        if isinstance(value, dict) and len(value) == 1:
            key = next(iter(value))
            self.diag.error(
                (*path, key),
                f"unknown action '{key}'; actions are {', '.join(ACTION_KEYS)}",
                at="key",
                suggestion=suggest(key, ACTION_KEYS),
            )
        elif isinstance(value, dict) and value:
            keys = ", ".join(str(k) for k in value)
            self.diag.error(
                path,
                f"an action has exactly one key, found {len(value)} ({keys}); "
                "put each action in its own `- ` list item",
                at="node",
            )
        elif isinstance(value, str):
            message, guess = _action_text_message(value)
            self.diag.error(path, message, suggestion=guess)
        else:
            self.diag.error(
                path,
                "an action is a mapping with one key such as "
                f"`- set_status: Nurture`, not {describe_kind(value)}",
            )

    def leaf_value_error(self, path: Loc, message: str) -> None:
        value = self.value_at(path)
        if message.startswith("a condition takes exactly one operator") and isinstance(value, dict):
            ops = [k for k in value if k in CONDITION_OPERATORS]
            self.diag.error((*path, ops[1]), message, at="key")
        else:
            self.diag.error(path, message, at="node")

    def literal_error(self, path: Loc, err: Mapping[str, Any]) -> None:
        value = self.value_at(path)
        if path == ("version",):
            self.diag.error(path, f"unsupported version {value!r}; this syncd reads `version: 1`")
        elif path == ("mode",):
            self.diag.error(
                path,
                f"unknown mode {value!r}; use first_match (status sets) or "
                "all_match (tagging sets)",
                suggestion=suggest(value, ["first_match", "all_match"]),
            )
        else:
            self.diag.error(path, f"{_name(path)}: {err['msg']}")


def _action_text_message(value: str) -> tuple[str, str | None]:
    """(message, suggestion) for an action written as text instead of a mapping."""
    if value in ("archive", "stop"):
        return f"write the action as a mapping: `- {value}: {{}}`", None
    if value in ACTION_KEYS:
        return f"`{value}` needs a value: `- {value}: ...`", None
    return (
        f"unknown action '{value}'; an action is a mapping such as `- set_status: Nurture`",
        suggest(value, ACTION_KEYS),
    )


def _misplaced_key_message(tag: str | None, key: object, guess: str | None) -> str | None:
    """The message for an unknown key that the condition/action grammar explains, if any."""
    combinator = tag is not None and tag.startswith("cond:") and tag != "cond:leaf"
    if combinator and key in _LEAF_KEYS:
        assert tag is not None
        return (
            f"'{key}' cannot sit next to `{tag[5:]}`: a condition is either all/any/not or "
            f"a field with one operator; nest it inside the `{tag[5:]}` list"
        )
    if combinator and key in COMBINATOR_KEYS:
        assert tag is not None
        return (
            f"a condition mapping takes one of all/any/not, not both '{tag[5:]}' and "
            f"'{key}'; nest one inside the other"
        )
    if tag in ("action:archive", "action:stop"):
        assert tag is not None
        return f"`{tag[7:]}` takes no arguments; write `{tag[7:]}: {{}}`"
    if tag == "cond:leaf" and (guess is None or guess in CONDITION_OPERATORS):
        return f"unknown operator '{key}'; use one of {', '.join(CONDITION_OPERATORS)}"
    return None


def _context(loc: Sequence[Any], path: Loc) -> str:
    tag = _tag(loc)
    if tag == "cond:leaf":
        return "in a condition"
    if tag and tag.startswith("cond:"):
        return f"in an `{tag[5:]}` condition"
    if tag and tag.startswith("action:"):
        return f"in action `{tag[7:]}`"
    if not path or (len(path) == 1 and path[0] != "rules"):
        return "at the top level of the rule set"
    if path[0] == "rules" and len(path) == 2:
        return "in the rule"
    if path[0] == "statuses":
        return f"in status '{path[1]}'" if len(path) > 1 else "in `statuses`"
    if path[0] == "transitions":
        return f"in the transition guard for '{path[1]}'" if len(path) > 1 else "in `transitions`"
    return "here"


def _allowed_keys(loc: Sequence[Any], path: Loc) -> list[str]:
    tag = _tag(loc)
    if tag == "cond:leaf":
        return _LEAF_KEYS + list(COMBINATOR_KEYS)
    if tag and tag.startswith("cond:"):
        return [tag[5:]]
    if tag == "action:set_field":
        return _keys(SetFieldArgs)
    if tag and tag.startswith("action:"):
        return []
    if not path:
        return _RULESET_KEYS
    if path[0] == "rules" and len(path) == 2:
        return _RULE_KEYS
    if path[0] == "statuses":
        return _keys(StatusMeta)
    if path[0] == "transitions":
        return _keys(TransitionGuard)
    return []
