"""The keyset cursor both connectors share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import Cursor, overlap_start

T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_numeric_ids_order_as_numbers_within_one_timestamp() -> None:
    # HubSpot ids are numbers of varying length; text order would put "999" after "1000" and
    # resume a read before contacts it had already read.
    assert Cursor(T, "999") < Cursor(T, "1000") < Cursor(T, "10000")
    assert max(Cursor(T, "1000"), Cursor(T, "999")).record_id == "1000"


def test_salesforce_ids_order_as_text_like_soql_order_by_id() -> None:
    ids = ["00Q5g000000001tEAA", "00Q5g0000000034EAA", "00Q5g000000000NEAQ"]
    assert [c.record_id for c in sorted(Cursor(T, i) for i in ids)] == sorted(ids)


def test_time_orders_before_id_and_read_time_is_not_part_of_identity() -> None:
    assert Cursor(T, "9") < Cursor(T + timedelta(seconds=1), "1")
    assert Cursor(T, "5", read_at=T) == Cursor(T, "5")


def test_overlap_reaches_back_only_from_the_last_read() -> None:
    five = timedelta(minutes=5)
    assert overlap_start(None, five) is None
    assert overlap_start(Cursor(T, "1"), five) == T - five  # read time unknown: full window
    assert overlap_start(Cursor(T, "1", read_at=T + timedelta(minutes=2)), five) == T - timedelta(
        minutes=3
    )
    assert overlap_start(Cursor(T, "1", read_at=T + timedelta(minutes=6)), five) is None
    assert overlap_start(Cursor(T, "1", read_at=T), timedelta(0)) is None
