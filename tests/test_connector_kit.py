"""The connector kit: error tables, quarantine of CRM values, interruptible waits, one retry
settings shape for both connectors."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pydantic import ValidationError

from connectors.base import ConnectorStats, Outcome
from connectors.errors import ConnectorError, FatalError, Interrupted, RetriableError
from connectors.hubspot import HubSpotConfig
from connectors.hubspot.values import parse_fields
from connectors.kit import ErrorTable, Quarantine, RetrySettings, Waiter, call_with_retry
from connectors.kit.errors import ANY
from connectors.salesforce import SalesforceConfig
from syncd.open_changes import answered_unapplied

_AUTH = {"type": "private_app", "access_token": "pat-test"}


def test_error_table_prefers_status_and_code_then_code_then_status_then_class() -> None:
    table = ErrorTable(
        {(403, "LIMIT"): "budget", (ANY, "LOCK"): "retry", (403, ANY): "auth"},
        classes={5: "transient"},
        default="fatal",
    )
    assert table.lookup(403, "LIMIT") == "budget"
    assert table.lookup(400, "LOCK") == "retry"
    assert table.lookup(403, "OTHER") == "auth"
    assert table.lookup(503, None) == "transient"
    assert table.lookup(400, "OTHER") == "fatal"


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("integer", "1e400", "out of range"),
        ("integer", "inf", "out of range"),
        ("integer", "NaN", "not a valid"),
        ("integer", "99999999999999999999999", "too large"),
        ("number", "NaN", "not a finite number"),
        ("number", "1e400", "not a finite number"),
        ("number", "-Infinity", "not a finite number"),
        ("datetime", "2024-02-30T10:00:00Z", "not a valid"),
        ("datetime", "99999999999999999999", "out of range"),
        ("string", "x" * 200_000, "longer than"),
    ],
)
def test_unusable_hubspot_values_are_nulled_and_reported_never_raised(kind, raw, reason) -> None:
    quarantine = Quarantine()
    fields = parse_fields(
        {"p": raw, "ok": "25-50"}, {"f": "p", "employees": "ok"}, {"f": kind}, quarantine
    )
    assert fields == {"f": None, "employees": 25}
    [problem] = quarantine.problems
    assert problem.field == "f" and reason in problem.reason
    assert len(problem.excerpt) <= 41 and problem.excerpt.startswith(raw[:10])


def test_hubspot_flat_retry_keys_are_moved_into_the_retry_block() -> None:
    legacy = HubSpotConfig(auth=_AUTH, max_attempts=7, retry_initial_seconds=2, retry_max_seconds=9)
    assert legacy.retry == RetrySettings(
        attempts=7, initial_backoff_seconds=2, max_backoff_seconds=9, jitter_seconds=0
    )
    partial = HubSpotConfig(auth=_AUTH, retry={"attempts": 6})
    assert partial.retry.initial_backoff_seconds == 0.5  # HubSpot's default, not Salesforce's
    assert SalesforceConfig.model_fields["retry"].annotation is RetrySettings
    with pytest.raises(ValidationError, match=r"retry\.attempts"):
        HubSpotConfig(auth=_AUTH, max_attempts=3, retry={"attempts": 5})


def test_retry_wrapper_counts_retries_and_honours_retry_after() -> None:
    waits: list[float] = []
    stats = ConnectorStats()
    failures = [RetriableError("busy", retry_after=7.0), RetriableError("down")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    settings = RetrySettings(
        attempts=3, initial_backoff_seconds=1, max_backoff_seconds=60, jitter_seconds=0
    )
    result = call_with_retry(
        flaky,
        settings=settings,
        waiter=Waiter(waits.append),
        stats=stats,
        retry_on=RetriableError,
        describe=lambda: "test",
        log=logging.getLogger("test"),
    )
    assert result == "done" and stats.retries == 2
    assert waits[0] == 7.0 and 0 < waits[1] <= 60


def _chain(*errors: ConnectorError) -> ConnectorError:
    """The error ``call_with_retry`` ends with when each attempt raises the next of ``errors``
    (three attempts at most, no waits)."""
    queue = list(errors)

    def attempt() -> str:
        raise queue.pop(0)

    settings = RetrySettings(attempts=3, initial_backoff_seconds=0, jitter_seconds=0)
    with pytest.raises(ConnectorError) as raised:
        call_with_retry(
            attempt,
            settings=settings,
            waiter=Waiter(lambda _s: None),
            stats=ConnectorStats(),
            retry_on=RetriableError,
            describe=lambda: "test",
            log=logging.getLogger("test"),
        )
    return raised.value


def test_a_retry_chain_with_a_dropped_attempt_is_in_doubt_whatever_its_last_answer() -> None:
    dropped = RetriableError("connection reset", status=None)
    last = _chain(dropped, RetriableError("down", status=503), RetriableError("down", status=503))
    assert last.status == 503 and last.unanswered_attempts == 1
    assert not answered_unapplied(last)  # the dropped attempt may have been applied

    refused = _chain(RetriableError("gateway", status=504), FatalError("no", status=400))
    assert refused.unanswered_attempts == 1 and not answered_unapplied(refused)


def test_a_retry_chain_answered_with_errors_throughout_applied_nothing() -> None:
    last = _chain(*(RetriableError("down", status=503) for _ in range(3)))
    assert last.unanswered_attempts == 0 and answered_unapplied(last)
    timeouts = _chain(*(RetriableError("timeout", status=None) for _ in range(3)))
    assert timeouts.unanswered and not answered_unapplied(timeouts)


def test_a_stop_request_cuts_a_real_time_wait_short() -> None:
    stop = threading.Event()
    waiter = Waiter()
    waiter.bind(stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="stop requested"):
        waiter.wait(30)
    assert time.monotonic() - started < 5
    with pytest.raises(Interrupted):
        waiter.wait(0)  # once stopping, nothing more is sent


def test_record_outcome_tables_replace_if_chains() -> None:
    from connectors.salesforce.results import RECORD_OUTCOMES

    assert RECORD_OUTCOMES.lookup(code="UNABLE_TO_LOCK_ROW") is Outcome.RETRY
    assert RECORD_OUTCOMES.lookup(code="FIELD_CUSTOM_VALIDATION_EXCEPTION") is Outcome.FAILED
