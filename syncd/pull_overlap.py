"""A pull that reads the CRM's next page while the state store stores the last one.

Storing a page ends in statements the database executes: on PostgreSQL in the server's own
processes, on SQLite in C with the GIL released (``sqlite3_step``, the commit's fsync). Done one
after the other, syncd's thread idles while the store works and the store idles while syncd
fetches and parses the next page. Here one store thread stores page k while the calling thread
reads page k+1 from the CRM, so each waits only for what the other has not finished.

What stays as in a pull without overlap:

* the CRM client is used from the calling thread only: ``pages`` (the connector's page
  iterator) and ``prepare`` (a page's first-sight history reads) run there; the store thread
  runs ``store`` alone, which uses the state store and no CRM call;
* one page at a time is stored, in order, each in its own transaction with its cursor: the
  cursor never passes a page that is not committed, whatever instant the process dies at;
* ``prepare`` of page k+1 runs after page k committed, so it reads the store as it would
  without overlap (a lead repeated on both pages is not new on the second);
* a failure storing page k is raised in the calling thread, after which nothing later is
  stored; a failure reading page k+1 is raised once page k's store has ended, and if that
  store failed too, its error is raised (it is the one the pull without overlap would have
  met first: it never read page k+1);
* a stop request is looked at before each read of the CRM and after each stored page: the pull
  leaves at most one read page unstored (its leads are read again by the next pull, from the
  committed cursor).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Generic, TypeVar, cast

__all__ = ["pull_overlapped"]

P = TypeVar("P")  # a page as the connector yields it
R = TypeVar("R")  # a page ready to store


def pull_overlapped(
    pages: Iterator[P],
    prepare: Callable[[P], R],
    store: Callable[[R], None],
    stopping: Callable[[], bool],
    *,
    overlap: bool = True,
    inline: Callable[[R], bool] | None = None,
) -> bool:
    """Store every page of ``pages``: ``prepare`` (calling thread) then ``store`` (store
    thread), reading the next page meanwhile. True when ``stopping`` ended the pull after a
    stored page, False when the pages ran out.

    ``overlap`` False: everything on the calling thread, one step after the other (a store
    whose connections are per thread, as an in-memory SQLite database's, has one thread).
    ``inline``: pages it accepts (an idle pull's one empty page) are stored on the calling
    thread, once the page before them is stored: nothing to overlap, and the store thread is
    started only for a page that needs it (starting one costs more than storing nothing)."""
    if not overlap:
        return _one_after_the_other(pages, prepare, store, stopping)
    with ExitStack() as stack:
        storer = _Storer(stack, store, inline)
        storing: Future[None] | None = None
        try:
            while True:
                if storing is not None and stopping():
                    storing.result()
                    return True
                try:
                    page, ended = next(pages), False
                except StopIteration:
                    page, ended = None, True
                if storing is not None:
                    done, storing = storing, None
                    done.result()  # page k committed (or its error raised) before k+1 goes on
                    if stopping():
                        return True
                if ended:
                    return False
                storing = storer.submit(prepare(cast(P, page)))
        except BaseException:
            if storing is not None:
                failed = storing.exception()  # waits: nothing may outlive the pull
                if failed is not None:
                    raise failed from None
            raise


class _Storer(Generic[R]):
    """Stores a page on the store thread, started at the first page that needs it, or on the
    calling thread when ``inline`` accepts the page (a future already done either way)."""

    def __init__(
        self, stack: ExitStack, store: Callable[[R], None], inline: Callable[[R], bool] | None
    ) -> None:
        self._stack, self._store, self._inline = stack, store, inline
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, ready: R) -> Future[None]:
        if self._inline is not None and self._inline(ready):
            done: Future[None] = Future()
            try:
                self._store(ready)
            except Exception as exc:  # noqa: BLE001 - raised by the pull as a thread's would be
                done.set_exception(exc)
            else:
                done.set_result(None)
            return done
        if self._pool is None:
            self._pool = self._stack.enter_context(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-pull-store")
            )
        # The store thread logs in the cycle's context (its run id on every record).
        context = contextvars.copy_context()
        return self._pool.submit(context.run, self._store, ready)


def _one_after_the_other(
    pages: Iterator[P],
    prepare: Callable[[P], R],
    store: Callable[[R], None],
    stopping: Callable[[], bool],
) -> bool:
    for page in pages:
        store(prepare(page))
        if stopping():
            return True
    return False
