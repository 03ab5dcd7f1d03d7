"""The structure of a rule file as pydantic models (``extra="forbid"`` everywhere).

These models check the *shape* of a rule file (which keys exist, which values are text, lists or
mappings) and generate ``rules/ruleset.schema.json`` for editors (yaml-language-server). What
depends on the lead catalogue or on the rule set itself (known fields, value types per field,
statuses, newsletters, regexes, durations) is checked by ``rules.compiler`` afterwards, because a
JSON schema cannot know it.

Conditions and actions are closed unions whose member is chosen by which key is present
(``all`` / ``any`` / ``not`` / a leaf; ``set_status`` / ``archive`` / ...), so a typo fails at load
with its location instead of being silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

__all__ = [
    "ACTION_KEYS",
    "COMBINATOR_KEYS",
    "CONDITION_OPERATORS",
    "SCHEMA_PATH",
    "Action",
    "AllCondition",
    "AnyCondition",
    "BusinessSpan",
    "Condition",
    "FieldRef",
    "LeafCondition",
    "NotCondition",
    "RuleModel",
    "RuleSetModel",
    "Scalar",
    "ruleset_json_schema",
]

#: Leaf operators, in the order the docs list them.
CONDITION_OPERATORS: tuple[str, ...] = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "present",
    "missing",
    "contains",
    "matches",
    "older_than",
    "within",
)
COMBINATOR_KEYS: tuple[str, ...] = ("all", "any", "not")
ACTION_KEYS: tuple[str, ...] = ("set_status", "archive", "add_to_newsletter", "set_field", "stop")

#: Where the generated schema ships (a test keeps it equal to :func:`ruleset_json_schema`).
SCHEMA_PATH = Path(__file__).with_name("ruleset.schema.json")

#: A comparison value: text, a number or true/false (never converted from one to another).
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr

_STRICT = ConfigDict(extra="forbid", populate_by_name=True)
_DURATION_TEXT = (
    "Duration: a number and a unit s, m, h, d or w (30s, 15m, 48h, 90d, 2w, 1.5h), "
    "or working time: {business_days: 2} / {business_hours: 16}."
)


class FieldRef(BaseModel):
    """Compare with another field of the same lead: ``lt: {field: status_changed_at}``."""

    model_config = ConfigDict(extra="forbid")
    field: StrictStr


class BusinessSpan(BaseModel):
    """Working time by the configured calendar: ``{business_days: 2}``, ``{business_hours: 16}``."""

    model_config = ConfigDict(extra="forbid")
    business_days: StrictInt | StrictFloat | None = Field(
        default=None, description="Working days (one is one working day's hours)."
    )
    business_hours: StrictInt | StrictFloat | None = Field(
        default=None, description="Working hours."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> BusinessSpan:
        given = [k for k in ("business_days", "business_hours") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a business duration is `{business_days: N}` or `{business_hours: N}` (exactly one)"
            )
        value = getattr(self, given[0])
        if not 0 < value <= 100_000:
            raise ValueError(f"{given[0]} must be more than 0 and at most 100000 (got {value})")
        return self


class LeafCondition(BaseModel):
    """``{field: F, OP: V}`` with exactly one operator."""

    model_config = _STRICT

    field: StrictStr = Field(description="Canonical lead field name (see rules/fields.py).")
    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    not_in: list[Scalar] | None = Field(default=None, min_length=1)
    gt: Scalar | FieldRef | None = None
    gte: Scalar | FieldRef | None = None
    lt: Scalar | FieldRef | None = None
    lte: Scalar | FieldRef | None = None
    present: StrictBool | None = None
    missing: StrictBool | None = None
    contains: StrictStr | None = None
    matches: StrictStr | None = Field(
        default=None, description="Python regular expression (search)."
    )
    older_than: StrictStr | BusinessSpan | None = Field(default=None, description=_DURATION_TEXT)
    within: StrictStr | BusinessSpan | None = Field(default=None, description=_DURATION_TEXT)

    @model_validator(mode="after")
    def _exactly_one_operator(self) -> LeafCondition:
        given = [op for op, attr in _OPERATOR_ATTRS if attr in self.model_fields_set]
        if len(given) != 1:
            if given:
                raise ValueError(
                    f"a condition takes exactly one operator, found {len(given)}: "
                    f"{', '.join(given)}; combine several with `all:` or `any:`"
                )
            raise ValueError(
                f"condition on '{self.field}' has no operator; add one of "
                f"{', '.join(CONDITION_OPERATORS)}"
            )
        if getattr(self, _alias(given[0])) is None:
            raise ValueError(
                f"operator '{given[0]}' has no value; to test for an empty value use "
                "`missing: true`"
            )
        return self

    def operator(self) -> tuple[str, Scalar | list[Scalar] | FieldRef | BusinessSpan]:
        """The condition's one operator and its value (validation guarantees exactly one)."""
        given = self.model_fields_set
        for op, attr in _OPERATOR_ATTRS:
            if attr in given:
                return op, getattr(self, attr)
        raise AssertionError("a validated leaf condition has an operator")


def _alias(op: str) -> str:
    return "in_" if op == "in" else op


#: (operator, attribute of LeafCondition) pairs.
_OPERATOR_ATTRS = tuple((op, _alias(op)) for op in CONDITION_OPERATORS)


class AllCondition(BaseModel):
    """True when every listed condition is true."""

    model_config = _STRICT
    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyCondition(BaseModel):
    """True when at least one listed condition is true."""

    model_config = _STRICT
    any_: list[Condition] = Field(alias="any", min_length=1)


class NotCondition(BaseModel):
    """True when the inner condition is false."""

    model_config = _STRICT
    not_: Condition = Field(alias="not")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in COMBINATOR_KEYS:
            if key in value:
                return f"cond:{key}"
        return "cond:leaf"
    if isinstance(value, BaseModel):
        return {AllCondition: "cond:all", AnyCondition: "cond:any", NotCondition: "cond:not"}.get(
            type(value), "cond:leaf"
        )
    return None


Condition = Annotated[
    Union[  # noqa: UP007 - one member per line, each with its tag
        Annotated[AllCondition, Tag("cond:all")],
        Annotated[AnyCondition, Tag("cond:any")],
        Annotated[NotCondition, Tag("cond:not")],
        Annotated[LeafCondition, Tag("cond:leaf")],
    ],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_shape",
        custom_error_message="a condition must be a mapping",
    ),
]


for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()


class NoArguments(BaseModel):
    """``{}``: the action takes no arguments."""

    model_config = _STRICT


class SetStatus(BaseModel):
    """Set the lead status (first_match sets: the deciding rule)."""

    model_config = _STRICT
    set_status: StrictStr


class Archive(BaseModel):
    """Set the status to the set's ``archive_status`` (default ``Archived``)."""

    model_config = _STRICT
    archive: NoArguments | None


class AddToNewsletter(BaseModel):
    """Add the lead to a newsletter (Salesforce CampaignMember / HubSpot list)."""

    model_config = _STRICT
    add_to_newsletter: StrictStr


class SetFieldArgs(BaseModel):
    model_config = _STRICT
    field: StrictStr
    value: Scalar


class SetField(BaseModel):
    """Write a value to a field on the settable allowlist."""

    model_config = _STRICT
    set_field: SetFieldArgs


class Stop(BaseModel):
    """Evaluate nothing after this rule (no later rule, no later rule set) for this lead."""

    model_config = _STRICT
    stop: NoArguments | None


def _action_tag(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return f"action:{key}" if key in ACTION_KEYS else None
    if isinstance(value, BaseModel):
        return f"action:{next(iter(type(value).model_fields))}"
    return None


Action = Annotated[
    Union[  # noqa: UP007 - one member per line, each with its tag
        Annotated[SetStatus, Tag("action:set_status")],
        Annotated[Archive, Tag("action:archive")],
        Annotated[AddToNewsletter, Tag("action:add_to_newsletter")],
        Annotated[SetField, Tag("action:set_field")],
        Annotated[Stop, Tag("action:stop")],
    ],
    Discriminator(
        _action_tag,
        custom_error_type="action_shape",
        custom_error_message="an action is a mapping with one known key",
    ),
]


class RuleModel(BaseModel):
    """One rule: an id, an optional condition and at least one action."""

    model_config = _STRICT
    id: StrictStr = Field(description="Unique within the rule book; stored in audit rows.")
    description: StrictStr | None = None
    when: Condition | None = Field(default=None, description="Omitted: the rule always matches.")
    then: list[Action] = Field(min_length=1)


class StatusMeta(BaseModel):
    """Lifecycle metadata of one status."""

    model_config = _STRICT
    converted: StrictBool = Field(default=False, description="Nothing leaves a converted status.")
    description: StrictStr | None = None


class TransitionGuard(BaseModel):
    """Allowed source statuses for a target status."""

    model_config = _STRICT
    from_: list[StrictStr] = Field(alias="from", min_length=1)


class RuleSetModel(BaseModel):
    """A rule file: one rule set."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="syncd rule set")
    version: Literal[1]
    name: StrictStr
    description: StrictStr | None = None
    mode: Literal["first_match", "all_match"] = "first_match"
    statuses: dict[StrictStr, StatusMeta | None] = Field(default_factory=dict)
    archive_status: StrictStr | None = Field(
        default=None, description='Target of `archive`; default "Archived" when it is a status.'
    )
    transitions: dict[StrictStr, TransitionGuard] = Field(default_factory=dict)
    protected: list[StrictStr] = Field(default_factory=list)
    rules: list[RuleModel] = Field(min_length=1)


def ruleset_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file, generated from :class:`RuleSetModel`."""
    schema = RuleSetModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def write_schema(path: Path = SCHEMA_PATH) -> None:
    """Regenerate the shipped schema file (``python -m rules.schema``)."""
    path.write_text(
        json.dumps(ruleset_json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":  # pragma: no cover
    write_schema()
