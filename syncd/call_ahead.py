"""One CRM call on its way on a worker thread while the calling thread records the last one.

A drain of many write calls spends, per call, the CRM's time to apply it and syncd's time to
record its answers (outbox states, audit rows, the mirror: one transaction). Done one after the
other, each waits for the other. Here the drain sends call k+1 as soon as call k has answered
and records call k's answers while call k+1 is on its way (``syncd.pipeline``).

What this keeps of a drain without it:

* one call at a time reaches the CRM client: the next call leaves only once the last one has
  answered (:meth:`CallAhead.answer`), so the client is never used by two threads at once, and
  the calling thread makes no CRM call of its own while one is on its way;
* the state store is used from the calling thread only (marking rows ``sending`` before their
  call leaves, recording answers): the worker runs the connector call alone;
* rows are marked ``sending`` before their call leaves, as without it: a process that dies
  with a call on its way leaves its rows in doubt, for the next cycle to settle;
* nothing outlives the drain: :meth:`CallAhead.close` waits for the call on its way.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Answer", "CallAhead"]

T = TypeVar("T")  # what the call gives back
D = TypeVar("D")  # what the caller keeps beside it (the batches it carried)


@dataclass(frozen=True, slots=True)
class Answer(Generic[D, T]):
    """A call that ended: the caller's note of what it carried, and its result or error."""

    sent: D
    result: T | None
    error: BaseException | None


class CallAhead(Generic[D, T]):
    """At most one call on its way on one worker thread, started at the first call."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._on_way: tuple[D, Future[T]] | None = None

    @property
    def busy(self) -> bool:
        return self._on_way is not None

    def launch(self, sent: D, call: Callable[[], T]) -> None:
        """Start ``call`` on the worker. The last call must have been answered first."""
        if self._on_way is not None:
            raise RuntimeError("a call is already on its way; take its answer first")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        # The worker logs in the cycle's context (its run id on every record).
        context = contextvars.copy_context()
        self._on_way = (sent, self._pool.submit(context.run, call))

    def answer(self) -> Answer[D, T] | None:
        """Wait for the call on its way, if any; its result or error, never raised here."""
        if self._on_way is None:
            return None
        sent, future = self._on_way
        self._on_way = None
        try:
            return Answer(sent, future.result(), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            return Answer(sent, None, exc)

    def close(self) -> Answer[D, T] | None:
        """Wait for the call on its way (its answer, for a caller that can still use it) and
        stop the worker."""
        try:
            return self.answer()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
