"""Judging races from the CRM's status history (``syncd.races``), without a CRM: which written
leads the cheap look at people's edits makes suspects, and what the full history then says."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import HistoryActorKind, HistoryEntry
from syncd.races import find_races, suspects

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class _Written:
    """The fields of an outbox row the judge reads."""

    lead_id: str
    before: Any
    value: Any
    kind: str = "field"
    field: str = "status"


def _edit(
    lead: str, old: str, new: str, minute: int, actor: HistoryActorKind = "person"
) -> HistoryEntry:
    return HistoryEntry(lead, "status", old, new, T + timedelta(minutes=minute), actor)


def _w(lead: str, before: str = "Open", value: str = "Nurture") -> Any:
    return _Written(lead, before, value)


def test_an_edit_the_read_already_saw_makes_no_suspect_and_costs_no_history_read() -> None:
    # The person set Open before syncd read it as Open: the read saw that edit.
    edits = [_edit("A", "New", "Open", 1)]
    assert suspects([_w("A")], edits) == []


def test_an_edit_after_the_read_to_another_value_makes_a_suspect() -> None:
    edits = [_edit("A", "New", "Open", 1), _edit("A", "Open", "Working", 3)]
    written = [_w("A"), _w("B")]
    assert [w.lead_id for w in suspects(written, edits)] == ["A"]


def test_the_integration_users_own_rows_never_make_a_suspect() -> None:
    edits = [_edit("A", "Open", "Nurture", 3, actor="integration")]
    assert suspects([_w("A")], edits) == []


def test_a_race_is_found_and_a_persons_later_edit_is_never_undone() -> None:
    raced = [
        _edit("A", "Open", "Working", 3),
        _edit("A", "Working", "Nurture", 4, actor="integration"),
    ]
    (race,) = find_races([_w("A")], raced)
    assert race.person_value == "Working"
    # The person changed it again after syncd's write: their latest value stands.
    later = [*raced, _edit("A", "Nurture", "Qualified", 6)]
    assert find_races([_w("A")], later) == []


def _field(
    lead: str, field: str, old: str | None, new: str | None, minute: int, actor: HistoryActorKind
) -> HistoryEntry:
    return HistoryEntry(lead, field, old, new, T + timedelta(minutes=minute), actor)


def test_a_field_write_is_judged_by_that_fields_history_when_a_person_edits_it_in_flight() -> None:
    # syncd read A with tier empty and status Open, wrote tier 7 and status Nurture; a person
    # set tier 5 in between. LeadHistory keeps text: the number written reads 7.0 there.
    tier = _Written("A", None, 7, field="tier")
    status = _w("A")
    entries = [
        _edit("A", "Open", "Nurture", 4, actor="integration"),
        _field("A", "tier", None, "5", 3, "person"),
        _field("A", "tier", "5", "7.0", 4, "integration"),
    ]
    assert suspects([status, tier], [entries[1]]) == [tier]
    (race,) = find_races([status, tier], entries)
    assert (race.field, race.person_value, race.change) == ("tier", "5", tier)


def test_a_persons_status_edit_makes_no_suspect_of_a_field_write_when_the_field_is_untouched() -> (
    None
):
    tier = _Written("A", None, "Hot", field="tier")
    assert suspects([tier], [_edit("A", "Open", "Working", 3)]) == []


def test_a_persons_clearing_of_a_field_in_flight_is_a_race_whose_value_is_none() -> None:
    # syncd read A with tier Warm and wrote Hot; a person cleared tier in between.
    tier = _Written("A", "Warm", "Hot", field="tier")
    entries = [
        _field("A", "tier", "Warm", None, 3, "person"),
        _field("A", "tier", None, "Hot", 4, "integration"),
    ]
    assert suspects([tier], entries[:1]) == [tier]
    (race,) = find_races([tier], entries)
    assert (race.field, race.person_value, race.edit) == ("tier", None, entries[0])


def test_no_race_is_judged_from_an_empty_value_no_persons_clearing_set_right_before_the_write() -> (
    None
):
    tier = _Written("A", "Warm", "Hot", field="tier")
    # The oldest value a bounded history keeps has no known predecessor (None).
    truncated = [_field("A", "tier", None, "Hot", 4, "integration")]
    # A person's clearing long ago, then someone else's value before syncd's write.
    earlier = [
        _field("A", "tier", "Cold", None, 1, "person"),
        _field("A", "tier", None, "Warm", 2, "automation"),
        _field("A", "tier", "Warm", None, 3, "automation"),
        _field("A", "tier", None, "Hot", 4, "integration"),
    ]
    # A status is never written back empty.
    status = _Written("A", "Open", "Nurture")
    cleared = [
        HistoryEntry("A", "status", "Open", None, T + timedelta(minutes=3), "person"),
        HistoryEntry("A", "status", None, "Nurture", T + timedelta(minutes=4), "integration"),
    ]

    assert find_races([tier], truncated) == []
    assert find_races([tier], earlier) == []
    assert find_races([status], cleared) == []
