"""One retry layer for both connectors: settings, interruptible waits, the tenacity wrapper.

A wait (a retry backoff, a ``Retry-After``, client-side pacing) goes through :class:`Waiter`, so
the daemon's stop event cuts it short: the wait raises :class:`~connectors.errors.Interrupted`
and nothing more is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity
from pydantic import BaseModel, ConfigDict, Field
from tenacity.wait import wait_exponential_jitter

from connectors.base import ConnectorStats
from connectors.errors import ConnectorError, Interrupted, RetriableError

__all__ = ["RetrySettings", "Waiter", "call_with_retry"]

T = TypeVar("T")
E = TypeVar("E", bound=RetriableError)


class RetrySettings(BaseModel):
    """Retries of a whole request after a transient failure (5xx, resets, timeouts, 429)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    attempts: int = Field(5, ge=1)
    """Total attempts per request, the first included; then the error is raised."""
    initial_backoff_seconds: float = Field(1.0, ge=0)
    """Wait before the second attempt; doubles per attempt (exponential backoff)."""
    max_backoff_seconds: float = Field(60.0, ge=0)
    """Upper bound of one wait (a CRM's ``Retry-After`` is honoured as given)."""
    jitter_seconds: float = Field(1.0, ge=0)
    """Random extra wait in [0, jitter) so parallel daemons do not retry in lockstep."""


class Waiter:
    """Waits that the daemon's stop event can interrupt.

    Args:
        sleep: an injected sleep (a simulated clock in tests); None waits in real time on the
            stop event, so setting the event ends the wait at once.
    """

    def __init__(self, sleep: Callable[[float], None] | None = None) -> None:
        self._sleep = sleep
        self._stop: threading.Event | None = None

    def bind(self, stop: threading.Event) -> None:
        self._stop = stop

    def check(self, what: str = "the next request") -> None:
        """Raise ``Interrupted`` if the daemon is stopping."""
        if self._stop is not None and self._stop.is_set():
            raise Interrupted(f"stop requested; {what} was not sent")

    def wait(self, seconds: float, what: str = "the next request") -> None:
        self.check(what)
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        elif self._stop is not None:
            if self._stop.wait(seconds):
                raise Interrupted(
                    f"stop requested during a {seconds:.1f}s wait; {what} was not sent"
                )
            return
        else:
            threading.Event().wait(seconds)
        self.check(what)


def call_with_retry(
    fn: Callable[[], T],
    *,
    settings: RetrySettings,
    waiter: Waiter,
    stats: ConnectorStats,
    retry_on: type[E],
    describe: Callable[[], str],
    log: logging.Logger,
    exhausted: Callable[[E], Exception] | None = None,
) -> T:
    """Call ``fn``, retrying ``retry_on`` errors up to ``settings.attempts`` times in all.

    A ``retry_after`` on the error (a CRM's ``Retry-After``) replaces the computed backoff.
    Every retry counts in ``stats.retries``, and one after an attempt that got no answer in
    ``stats.unanswered`` too. After the last attempt ``exhausted(error)`` is
    raised if given, else the error itself. Whatever ``ConnectorError`` ends the chain carries
    in ``unanswered_attempts`` how many earlier attempts got no answer (the CRM may have
    applied one of them).
    """
    backoff = wait_exponential_jitter(
        multiplier=settings.initial_backoff_seconds,
        max=settings.max_backoff_seconds,
        jitter=settings.jitter_seconds,
    )

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            return max(float(exc.retry_after), 0.0)
        if settings.initial_backoff_seconds <= 0:
            return 0.0
        return float(backoff(state))

    unanswered = 0  # attempts that got no answer: any of them may have been applied

    def before_sleep(state: tenacity.RetryCallState) -> None:
        nonlocal unanswered
        stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConnectorError) and exc.unanswered:
            unanswered += 1
            stats.unanswered += 1
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.1fs",
            describe(),
            state.attempt_number,
            exc,
            state.upcoming_sleep or 0.0,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception_type(retry_on),
        sleep=lambda seconds: waiter.wait(seconds, describe()),
        reraise=True,
        before_sleep=before_sleep,
    )
    try:
        try:
            return retrying(fn)
        except retry_on as exc:
            if exhausted is None:
                raise
            raise exhausted(exc) from None
    except ConnectorError as exc:
        # Whatever ended the chain (the last retriable answer, a refusal, a stop during a
        # wait), an earlier attempt without an answer may have been applied: the caller must
        # not take the last answer for the whole chain's (syncd.open_changes).
        exc.unanswered_attempts += unanswered
        raise
