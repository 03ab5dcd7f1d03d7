"""check(): status options, field mapping and newsletter lists."""

from __future__ import annotations

import pytest

from connectors.testing.hubspot import DEFAULT_LEAD_STATUSES, EmulatorConfig


def test_missing_status_option_is_a_problem_unless_adding_is_allowed_then_options_are_merged(
    emu, make_connector
):
    wanted = {"OPEN", "NURTURE", "ARCHIVED"}
    strict = make_connector().check(statuses=wanted, fields={"status"}, newsletters=set())
    assert len(strict.problems) == 2
    assert any("'NURTURE'" in p and "allow_add_status_options" in p for p in strict.problems)
    assert strict.statuses == set(DEFAULT_LEAD_STATUSES)
    assert not emu.journal.entries("PATCH")

    assert emu.config.options_patch_semantics == "replace"  # dropping options is possible
    connector = make_connector(allow_add_status_options=True)
    lenient = connector.check(statuses=wanted, fields={"status"}, newsletters=set())

    assert lenient.problems == []
    assert lenient.statuses == set(DEFAULT_LEAD_STATUSES) | {"NURTURE", "ARCHIVED"}
    assert lenient.missing_statuses == {"NURTURE", "ARCHIVED"} and lenient.setup
    assert not emu.journal.entries("PATCH")  # a check never writes
    connector.prepare(lenient)
    assert set(emu.status_options()) == set(DEFAULT_LEAD_STATUSES) | {"NURTURE", "ARCHIVED"}
    assert emu.status_options()[: len(DEFAULT_LEAD_STATUSES)] == list(DEFAULT_LEAD_STATUSES)


@pytest.mark.parametrize("emu_config", [EmulatorConfig(status_options_read_only=True)])
def test_read_only_status_options_are_a_problem_even_when_adding_is_allowed(emu, make_connector):
    result = make_connector(allow_add_status_options=True).check(
        statuses={"NURTURE"}, fields=set(), newsletters=set()
    )
    assert len(result.problems) == 1 and "read-only" in result.problems[0]


def test_dynamic_list_is_a_configuration_problem(emu, make_connector):
    manual, dynamic = emu.add_list("News", "MANUAL"), emu.add_list("Active", "DYNAMIC")
    connector = make_connector(newsletters={"news": manual, "active": dynamic, "gone": "999"})
    result = connector.check(
        statuses=set(), fields=set(), newsletters={"news", "active", "gone", "unmapped"}
    )
    assert len(result.problems) == 3
    assert any(f"list {dynamic} ('Active')" in p and "DYNAMIC" in p for p in result.problems)
    assert any("list 999" in p for p in result.problems)
    assert any("'unmapped'" in p for p in result.problems)
    assert not any(f"list {manual} " in p for p in result.problems)


def test_unknown_and_read_only_fields_are_problems(emu, make_connector):
    fields = {
        "status": "hs_lead_status",
        "title": "jobtitle",
        "shoe_size": "shoe_size",
        "lead_source": "hs_analytics_source",
        "email": None,
    }  # null unmaps a default
    result = make_connector(fields=fields).check(
        statuses=set(),
        fields={"status", "title", "shoe_size", "lead_source", "email"},
        newsletters=set(),
    )
    assert {"status", "title"} <= result.writable_fields
    assert not {"shoe_size", "lead_source", "email"} & result.writable_fields
    assert "shoe_size" in result.missing_fields
    assert len(result.problems) == 3
    assert any("'shoe_size'" in p for p in result.problems)
    assert any("hs_analytics_source" in p and "read-only" in p for p in result.problems)
    assert any("'email' has no HubSpot property mapping" in p for p in result.problems)
