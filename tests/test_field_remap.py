"""syncd.field_remap's decisions: which fields changed mapping, and which are held until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.field_remap import active_holds, changed_fields, holds_after

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_mapping_not_recorded_yet_counts_as_the_one_the_mirror_was_read_under() -> None:
    assert changed_fields(None, {"tier": "Tier__c"}) == []


def test_remapped_newly_mapped_and_unmapped_fields_are_all_changes() -> None:
    stored = {"tier": "Tier__c", "need": "Need__c", "email": "Email"}
    current = {"tier": "Need__c", "score": "Score__c", "email": "Email"}
    assert changed_fields(stored, current) == ["need", "score", "tier"]


def test_only_settable_fields_still_mapped_are_held_and_an_earlier_longer_hold_stands() -> None:
    kept = {"score": (T0 + timedelta(days=20)).isoformat(), "gone": T0.isoformat()}
    holds = holds_after(
        kept,
        ["tier", "score", "need", "title"],
        {"tier": "Need__c", "score": "Score__c", "title": "Title"},
        frozenset({"tier", "score", "need"}),
        T0 + timedelta(days=14),
    )
    assert holds == {
        "tier": (T0 + timedelta(days=14)).isoformat(),
        "score": (T0 + timedelta(days=20)).isoformat(),  # the later end of the two
    }


def test_a_hold_is_active_strictly_before_its_end() -> None:
    stored = {"tier": (T0 + timedelta(hours=1)).isoformat()}
    assert active_holds(stored, T0) == {"tier": T0 + timedelta(hours=1)}
    assert active_holds(stored, T0 + timedelta(hours=1)) == {}
    assert active_holds(None, T0) == {}
