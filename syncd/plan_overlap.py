"""A plan that records one batch of verdicts while it judges the next.

The plan step (``Pipeline.plan``) judges the due leads in batches of 1,000 and records each
batch in its own transaction: its outbox rows, due times and progress. On PostgreSQL recording
is mostly waiting for the server, which does the work in its own processes; done one after the
other, syncd's thread idles while the server writes and the server idles while syncd judges.
Measured on a 100k first sync (2 cores, 2026-12-02, two runs): the plan step took 6.5-8.1 s on
PostgreSQL against 4.5-5.0 s on SQLite, 3.2-4.5 s of it recording against 2.0-2.4 s. Here a
store thread records batch k while the calling thread judges batch k+1.

What stays as in a plan without overlap:

* one batch is recorded at a time, in order, each in its own transaction: a process dying at
  any instant leaves whole batches recorded, the same states as before;
* recording batch k+1 starts only after batch k's has ended, and an error recording batch k
  is raised in the calling thread (at its next batch or at the end), after which nothing later
  is recorded;
* an error in the calling thread (judging batch k+1) waits for batch k's record to end, and if
  that failed too, its error is raised: it is the one the plan without overlap met first;
* nothing outlives the plan: its result (the leads with field changes, summed over the
  batches) is read after the last batch is recorded.

The batches are disjoint (each lead is judged once per plan) and judging reads only the
leads' own rows (``syncd.due.iter_plan_rows`` pages by keyset), so what batch k's record
writes is never what batch k+1's judging reads. On SQLite, whose work runs in this process
under the same interpreter lock, everything stays on the calling thread (``overlap`` False).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["BatchRecorder"]

B = TypeVar("B")  # one batch of verdicts


class BatchRecorder(Generic[B]):
    """Records batches in order with ``record`` (which returns a count), on a store thread
    when ``overlap``, else at once on the calling thread. Use it as a context manager."""

    def __init__(self, record: Callable[[B], int], *, overlap: bool) -> None:
        self._record = record
        self._overlap = overlap
        self._pool: ThreadPoolExecutor | None = None
        self._recording: Future[int] | None = None
        self._total = 0

    def __enter__(self) -> BatchRecorder[B]:
        return self

    def submit(self, batch: B) -> None:
        """Record ``batch`` once the batch before it is recorded (raising that one's error)."""
        self._wait()
        if not self._overlap:
            self._total += self._record(batch)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-plan-store")
        # The store thread logs in the cycle's context (its run id on every record).
        context = contextvars.copy_context()
        self._recording = self._pool.submit(context.run, self._record, batch)

    def total(self) -> int:
        """The sum of ``record``'s counts, once every batch is recorded."""
        self._wait()
        return self._total

    def _wait(self) -> None:
        recording, self._recording = self._recording, None
        if recording is not None:
            self._total += recording.result()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            recording, self._recording = self._recording, None
            if recording is not None:
                failed = recording.exception()  # waits: nothing may outlive the plan
                if failed is not None and exc is not None:
                    raise failed from None
                if failed is not None:
                    raise failed
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
