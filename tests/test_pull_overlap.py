"""The overlapped pull (syncd.pull_overlap): the CRM's next page is read while the last one is
stored, and the pull's guarantees stay those of a pull that does one after the other."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from syncd.pull_overlap import pull_overlapped


class _StoreBroke(Exception):
    pass


class _ReadBroke(Exception):
    pass


class _Org:
    """Pages 1..n, recording on which thread each step ran and in what order."""

    def __init__(self, pages: int, *, fail_read: int | None = None) -> None:
        self.pages, self.fail_read = pages, fail_read
        self.events: list[str] = []
        self.threads: dict[str, set[int]] = {"read": set(), "prepare": set(), "store": set()}
        self.stored: list[int] = []

    def read(self) -> Iterator[int]:
        for k in range(1, self.pages + 1):
            self.threads["read"].add(threading.get_ident())
            if k == self.fail_read:
                raise _ReadBroke(f"page {k} unreadable")
            self.events.append(f"read {k}")
            yield k

    def prepare(self, k: int) -> int:
        self.threads["prepare"].add(threading.get_ident())
        self.events.append(f"prepare {k}")
        return k

    def store(self, k: int, *, fail: int | None = None, slow: float = 0.0) -> None:
        self.threads["store"].add(threading.get_ident())
        threading.Event().wait(slow)  # the server working on the page
        if k == fail:
            raise _StoreBroke(f"page {k} refused")
        self.stored.append(k)
        self.events.append(f"stored {k}")


def test_every_page_is_stored_once_in_order_and_the_pull_reports_it_ran_out() -> None:
    org = _Org(5)
    stopped = pull_overlapped(org.read(), org.prepare, org.store, lambda: False)
    assert stopped is False
    assert org.stored == [1, 2, 3, 4, 5]


def test_pages_are_read_and_prepared_on_the_calling_thread_and_stored_on_another() -> None:
    org = _Org(4)
    pull_overlapped(org.read(), org.prepare, org.store, lambda: False)
    me = threading.get_ident()
    assert org.threads["read"] == {me} and org.threads["prepare"] == {me}
    assert me not in org.threads["store"] and len(org.threads["store"]) == 1


def test_the_next_page_is_read_while_the_last_one_is_being_stored() -> None:
    org = _Org(3)
    pull_overlapped(org.read(), org.prepare, lambda k: org.store(k, slow=0.2), lambda: False)
    # Page 2 was read before page 1's slow store ended.
    assert org.events.index("read 2") < org.events.index("stored 1")


def test_a_page_is_prepared_only_after_the_page_before_it_is_stored() -> None:
    org = _Org(4)
    pull_overlapped(org.read(), org.prepare, lambda k: org.store(k, slow=0.05), lambda: False)
    for k in (2, 3, 4):
        assert org.events.index(f"stored {k - 1}") < org.events.index(f"prepare {k}")


def test_a_failure_storing_a_page_is_raised_and_no_later_page_is_stored() -> None:
    org = _Org(5)
    with pytest.raises(_StoreBroke, match="page 2 refused"):
        pull_overlapped(org.read(), org.prepare, lambda k: org.store(k, fail=2), lambda: False)
    assert org.stored == [1]
    assert "prepare 3" not in org.events  # read at most, never prepared nor stored


def test_a_failure_reading_a_page_waits_for_the_page_being_stored_and_is_raised() -> None:
    org = _Org(5, fail_read=3)
    with pytest.raises(_ReadBroke, match="page 3 unreadable"):
        pull_overlapped(org.read(), org.prepare, lambda k: org.store(k, slow=0.2), lambda: False)
    assert org.stored == [1, 2]  # page 2 committed before the error left the pull


def test_a_store_failure_is_raised_rather_than_the_read_failure_that_followed_it() -> None:
    # Without overlap page 3 would never have been read: page 2's failure is the cycle's.
    org = _Org(5, fail_read=3)
    with pytest.raises(_StoreBroke, match="page 2 refused"):
        pull_overlapped(
            org.read(), org.prepare, lambda k: org.store(k, fail=2, slow=0.2), lambda: False
        )
    assert org.stored == [1]


def test_a_stop_request_ends_the_pull_once_the_page_being_stored_is_committed() -> None:
    org = _Org(10)
    stop = threading.Event()

    def store(k: int) -> None:
        org.store(k, slow=0.05)
        if k == 3:
            stop.set()

    stopped = pull_overlapped(org.read(), org.prepare, store, stop.is_set)
    assert stopped is True
    assert org.stored == [1, 2, 3]
    # At most the page read while page 3 was stored is left unstored; none read after it.
    assert "read 5" not in org.events


def test_a_stop_after_the_last_page_is_reported_as_a_stop() -> None:
    stop = threading.Event()
    org = _Org(2)

    def store(k: int) -> None:
        org.store(k)
        if k == 2:
            stop.set()

    assert pull_overlapped(org.read(), org.prepare, store, stop.is_set) is True
    assert org.stored == [1, 2]


_RUN: contextvars.ContextVar[str] = contextvars.ContextVar("run", default="none")


def test_the_store_thread_runs_in_the_pulls_context_so_its_logs_name_the_cycle() -> None:
    seen: list[str] = []
    _RUN.set("run-7")
    org = _Org(2)

    def store(k: int) -> None:
        seen.append(_RUN.get())  # syncd.logs tags records from this context variable

    pull_overlapped(org.read(), org.prepare, store, lambda: False)
    assert seen == ["run-7", "run-7"]


def test_without_overlap_every_step_runs_on_the_calling_thread_one_after_the_other() -> None:
    org = _Org(3)
    assert (
        pull_overlapped(org.read(), org.prepare, org.store, lambda: False, overlap=False) is False
    )
    assert org.threads["store"] == {threading.get_ident()}
    assert org.events == [
        f"{step} {k}" for k in (1, 2, 3) for step in ("read", "prepare", "stored")
    ]


def test_pages_the_pull_marks_inline_are_stored_in_order_on_the_calling_thread() -> None:
    org = _Org(4)
    pull_overlapped(org.read(), org.prepare, org.store, lambda: False, inline=lambda k: k % 2 == 0)
    me = threading.get_ident()
    assert org.stored == [1, 2, 3, 4]
    assert me in org.threads["store"] and len(org.threads["store"]) == 2
    # An inline page waits for the page before it, stored on the other thread, to commit.
    assert org.events.index("stored 1") < org.events.index("stored 2")


def test_an_idle_pulls_one_empty_page_starts_no_store_thread() -> None:
    org = _Org(1)
    before = threading.active_count()
    started: list[str] = []
    threading.setprofile(lambda *_: started.append(threading.current_thread().name))
    try:
        stopped = pull_overlapped(
            org.read(), org.prepare, org.store, lambda: False, inline=lambda _k: True
        )
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    assert stopped is False and org.stored == [1]
    assert org.threads["store"] == {threading.get_ident()}
    assert not [name for name in started if name.startswith("syncd-pull-store")]
    assert threading.active_count() == before
