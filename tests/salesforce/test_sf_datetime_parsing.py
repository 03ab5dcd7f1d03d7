"""Salesforce dateTime values: the fast reading of the usual wire shape agrees with the
documented format (``2024-01-01T12:00:00.000+0000``), and anything else is judged as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from connectors.kit.values import MAX_TEXT_CHARS
from connectors.salesforce.soql import parse_datetime

from .support import lead


def _documented(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T12:00:00.000+0000",
        "2024-02-29T23:59:59.999+0000",
        "2024-01-01T12:00:00.123-0530",
        "2024-01-01T00:30:00.000+0100",  # the previous day in UTC
        "2024-01-01T12:00:00.000Z",  # Bulk API 2.0 query results write UTC as Z
        "2024-01-01T12:00:00.5Z",  # not the usual shape: the documented format reads it
        "2024-01-01T12:00:00.000000+0000",
    ],
)
def test_wire_datetimes_read_as_the_same_utc_instant_as_the_documented_format(value):
    got = parse_datetime(value)
    assert got == _documented(value)
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01T12:00:00.000+0000",  # month 13, in the usual shape
        "2024-01-01T12:00:00.000+2400",  # offset of a whole day
        "2024-02-30T12:00:00.000Z",  # no such day, in the Bulk shape
        "2024-01-01 12:00:00",
        "yesterday",
        "",
    ],
)
def test_malformed_datetimes_are_refused_as_the_documented_format_refuses_them(value):
    def refusal(parse: Callable[[str], datetime]) -> str:
        try:
            parse(value)
        except ValueError as exc:
            return str(exc)
        pytest.fail(f"{value!r} was read")

    # Refused in the same words: the quarantine report shows what the format said.
    assert refusal(parse_datetime) == refusal(_documented)


def test_pulled_text_longer_than_the_mirror_keeps_is_nulled_and_reported(emu, connector):
    emu.add_leads([lead(1, Title="x" * (MAX_TEXT_CHARS + 1), Budget__c="Yes")])
    emu.clock.advance(1)
    (got,) = [lead for p in connector.iter_pages(None, until=emu.clock.now()) for lead in p.leads]
    assert got.fields["title"] is None and got.fields["budget"] == "Yes"
    assert [(p.field, p.reason) for p in got.problems] == [
        ("title", f"text longer than {MAX_TEXT_CHARS:,} characters")
    ]
