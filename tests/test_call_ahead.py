"""``syncd.call_ahead``: one call on its way at a time, its error handed back, never lost."""

from __future__ import annotations

import threading

import pytest

from syncd.call_ahead import CallAhead


def test_a_second_call_cannot_leave_before_the_first_ones_answer_is_taken() -> None:
    ahead: CallAhead[str, int] = CallAhead("test")
    release = threading.Event()
    ahead.launch("first", lambda: release.wait(5) and 1)
    with pytest.raises(RuntimeError, match="already on its way"):
        ahead.launch("second", lambda: 2)
    release.set()
    answer = ahead.answer()
    assert answer is not None and (answer.sent, answer.result, answer.error) == ("first", 1, None)
    ahead.launch("second", lambda: 2)
    assert ahead.close() is not None
    assert not ahead.busy


def test_a_calls_error_is_handed_back_with_what_it_carried_not_raised() -> None:
    ahead: CallAhead[str, int] = CallAhead("test")

    def refused() -> int:
        raise ConnectionError("dropped")

    ahead.launch("batch 7", refused)
    answer = ahead.answer()
    assert answer is not None
    assert answer.sent == "batch 7" and answer.result is None
    assert isinstance(answer.error, ConnectionError)
    assert ahead.answer() is None  # taken once
    ahead.close()


def test_close_waits_for_the_call_on_its_way_and_returns_its_answer() -> None:
    ahead: CallAhead[str, int] = CallAhead("test")
    finished = threading.Event()

    def slow() -> int:
        finished.wait(0.2)
        finished.set()
        return 3

    ahead.launch("last", slow)
    answer = ahead.close()
    assert finished.is_set(), "close returned before the call ended"
    assert answer is not None and answer.result == 3
    assert ahead.close() is None
