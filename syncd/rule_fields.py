"""Which lead fields rules use, and the custom fields connectors' configs add to the language.

The rule language knows the standard fields (``rules.fields``); every other field a connector
maps in its ``fields`` setting is a custom field, typed by that connector's ``field_types``
(``string`` when not given). Preflight uses :func:`rules_reading` to name the rules that need
a field a CRM lacks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rules.conditions import Node
from rules.engine import CompiledRule, RuleBook
from rules.fields import STANDARD_FIELDS, FieldType

__all__ = ["RuleUse", "custom_fields", "field_catalogue", "rules_reading"]


@dataclass(frozen=True, slots=True)
class RuleUse:
    """A rule that reads or writes a field, with its place for messages."""

    path: str
    line: int
    rule_id: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: rule '{self.rule_id}'"


def custom_fields(connector_blocks: Mapping[str, Mapping[str, Any]]) -> dict[str, FieldType]:
    """Custom canonical fields mapped in the connectors' raw ``connector:`` blocks, typed.

    A field two connectors type differently takes the first connector's type (in config
    order); the connectors' own validation reports bad type names.
    """
    out: dict[str, FieldType] = {}
    for block in connector_blocks.values():
        mapping = block.get("fields") or {}
        types = block.get("field_types") or {}
        if not isinstance(mapping, Mapping) or not isinstance(types, Mapping):
            continue
        for name, api in mapping.items():
            if not isinstance(name, str) or name in STANDARD_FIELDS or not api:
                continue
            try:
                out.setdefault(name, FieldType(types.get(name, "string")))
            except ValueError:
                out.setdefault(name, FieldType.STRING)
    return out


def field_catalogue(connector_blocks: Mapping[str, Mapping[str, Any]]) -> dict[str, FieldType]:
    """Standard fields plus the connectors' custom ones: what conditions may name."""
    return {**STANDARD_FIELDS, **custom_fields(connector_blocks)}


def _leaf_fields(node: Node | None) -> Iterator[str]:
    if node is None:
        return
    if node.spec is not None:
        yield node.spec.field
    for child in node.children:
        yield from _leaf_fields(child)


def fields_of(rule: CompiledRule) -> set[str]:
    """Fields a rule's condition reads or its ``set_field`` actions write."""
    return set(_leaf_fields(rule.node)) | {f for f, _ in rule.field_sets}


def rules_reading(book: RuleBook, field: str) -> list[RuleUse]:
    """The rules of ``book`` that use ``field``, in book order."""
    return [
        RuleUse(str(rs.path), rule.line, rule.id)
        for rs in book.sets
        for rule in rs.rules
        if field in fields_of(rule)
    ]
