"""Which connectors a rule can apply to, read from its condition (``rules.can_apply``): a
top-level test of ``crm`` or ``connector`` that fails for a connector rules it out; anything
the reading is not sure of leaves the rule in."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleBook, can_apply, load_rulebook


def _rule_when(tmp_path: Path, when: str) -> RuleBook:
    path = tmp_path / "scope.yaml"
    path.write_text(
        "version: 1\nname: scope\nmode: first_match\nstatuses: {New: {}, Open: {}}\n"
        "rules:\n"
        "  - id: r\n"
        f"    when: {when}\n"
        "    then: [{set_field: {field: industry, value: Tech}}]\n"
    )
    return load_rulebook([path], settable_fields=("industry",))


SCOPES = [
    # (condition, applies to salesforce/us, applies to hubspot)
    ("{field: crm, eq: salesforce}", True, False),
    ("{field: connector, eq: salesforce/us}", True, False),
    ("{field: connector, eq: salesforce/emea}", False, False),
    ("{field: crm, in: [salesforce, pipedrive]}", True, False),
    ("{field: crm, ne: salesforce}", False, True),
    ("{field: crm, not_in: [salesforce]}", False, True),
    ("{all: [{field: crm, eq: salesforce}, {field: title, eq: Buyer}]}", True, False),
    ("{all: [{field: title, eq: Buyer}, {all: [{field: crm, eq: hubspot}]}]}", False, True),
]


@pytest.mark.parametrize(("when", "on_salesforce", "on_hubspot"), SCOPES)
def test_a_rule_cannot_apply_to_a_connector_when_its_top_level_condition_names_another(
    tmp_path: Path, when: str, on_salesforce: bool, on_hubspot: bool
) -> None:
    [rule] = _rule_when(tmp_path, when).sets[0].rules

    assert can_apply(rule, crm="salesforce", connector="salesforce/us") is on_salesforce
    assert can_apply(rule, crm="hubspot", connector="hubspot") is on_hubspot


UNSURE = [
    "{field: title, eq: Buyer}",
    "{any: [{field: crm, eq: salesforce}, {field: title, eq: Buyer}]}",
    "{not: {field: crm, eq: hubspot}}",
    "{any: [{field: crm, eq: salesforce}]}",
]


@pytest.mark.parametrize("when", UNSURE)
def test_a_rule_counts_for_every_connector_when_its_scope_is_not_a_top_level_test(
    tmp_path: Path, when: str
) -> None:
    [rule] = _rule_when(tmp_path, when).sets[0].rules

    assert can_apply(rule, crm="hubspot", connector="hubspot")


def test_a_rule_without_a_condition_applies_to_every_connector(tmp_path: Path) -> None:
    path = tmp_path / "always.yaml"
    path.write_text(
        "version: 1\nname: always\nmode: first_match\nstatuses: {New: {}}\n"
        "rules:\n"
        "  - id: r\n"
        "    then: [{set_field: {field: industry, value: Tech}}]\n"
    )
    [rule] = load_rulebook([path], settable_fields=("industry",)).sets[0].rules

    assert rule.node is None
    assert can_apply(rule, crm="hubspot", connector="hubspot")
