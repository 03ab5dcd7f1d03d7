"""The overlapped plan (syncd.plan_overlap): batch k is recorded on a store thread while the
next one is judged, and the plan's guarantees stay those of a plan that does one after the
other."""

from __future__ import annotations

import contextvars
import threading

import pytest

from syncd.plan_overlap import BatchRecorder


class _RecordBroke(Exception):
    pass


class _JudgeBroke(Exception):
    pass


class _Store:
    """Records batches (lists of ints), noting the thread and the order of events."""

    def __init__(self, *, fail: int | None = None, slow: float = 0.0) -> None:
        self.fail, self.slow = fail, slow
        self.events: list[str] = []
        self.threads: set[int] = set()
        self.recorded: list[int] = []

    def record(self, batch: list[int]) -> int:
        self.threads.add(threading.get_ident())
        self.events.append(f"recording {batch[0]}")
        threading.Event().wait(self.slow)  # the server working on the batch
        if batch[0] == self.fail:
            raise _RecordBroke(f"batch {batch[0]} refused")
        self.recorded.append(batch[0])
        self.events.append(f"recorded {batch[0]}")
        return len(batch)


def _plan(
    store: _Store, batches: int, *, overlap: bool = True, judge_fails: int | None = None
) -> int:
    with BatchRecorder[list[int]](store.record, overlap=overlap) as recorder:
        for k in range(1, batches + 1):
            if k == judge_fails:
                raise _JudgeBroke(f"batch {k} unjudgeable")
            store.events.append(f"judged {k}")
            recorder.submit([k, k])
        return recorder.total()


def test_every_batch_is_recorded_once_in_order_and_the_counts_are_summed() -> None:
    store = _Store()
    assert _plan(store, 5) == 10
    assert store.recorded == [1, 2, 3, 4, 5]


def test_batches_are_recorded_on_one_store_thread_and_judged_on_the_calling_one() -> None:
    store = _Store()
    _plan(store, 4)
    assert threading.get_ident() not in store.threads and len(store.threads) == 1


def test_the_next_batch_is_judged_while_the_last_one_is_being_recorded() -> None:
    store = _Store(slow=0.2)
    _plan(store, 3)
    assert store.events.index("judged 2") < store.events.index("recorded 1")


def test_a_batch_is_recorded_only_after_the_batch_before_it_is_recorded() -> None:
    store = _Store(slow=0.05)
    _plan(store, 4)
    for k in (2, 3, 4):
        assert store.events.index(f"recorded {k - 1}") < store.events.index(f"recording {k}")


def test_a_failure_recording_a_batch_is_raised_and_no_later_batch_is_recorded() -> None:
    store = _Store(fail=2, slow=0.02)
    with pytest.raises(_RecordBroke, match="batch 2"):
        _plan(store, 5)
    assert store.recorded == [1]
    assert "recording 3" not in store.events


def test_a_failure_recording_the_last_batch_is_raised_by_the_total() -> None:
    store = _Store(fail=3)
    with pytest.raises(_RecordBroke, match="batch 3"):
        _plan(store, 3)
    assert store.recorded == [1, 2]


def test_a_failure_judging_waits_for_the_batch_being_recorded_and_is_raised() -> None:
    store = _Store(slow=0.2)
    with pytest.raises(_JudgeBroke):
        _plan(store, 5, judge_fails=3)
    assert store.recorded == [1, 2]  # batch 2 finished before the error left the plan


def test_a_record_failure_is_raised_rather_than_the_judging_failure_that_followed_it() -> None:
    store = _Store(fail=2, slow=0.2)
    with pytest.raises(_RecordBroke):  # the plan without overlap never judged batch 3
        _plan(store, 5, judge_fails=3)
    assert store.recorded == [1]


def test_the_store_thread_runs_in_the_plans_context_so_its_logs_name_the_cycle() -> None:
    run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="none")
    seen: list[str] = []

    def record(batch: list[int]) -> int:
        seen.append(run_id.get())
        return 1

    run_id.set("run-7")
    with BatchRecorder[list[int]](record, overlap=True) as recorder:
        recorder.submit([1])
        recorder.submit([2])
        assert recorder.total() == 2
    assert seen == ["run-7", "run-7"]


def test_without_overlap_every_batch_is_recorded_on_the_calling_thread_at_once() -> None:
    store = _Store()
    assert _plan(store, 3, overlap=False) == 6
    assert store.threads == {threading.get_ident()}
    assert store.events == [
        "judged 1", "recording 1", "recorded 1",
        "judged 2", "recording 2", "recorded 2",
        "judged 3", "recording 3", "recorded 3",
    ]  # fmt: skip


def test_a_plan_with_nothing_to_record_starts_no_store_thread() -> None:
    before = {t.name for t in threading.enumerate()}
    with BatchRecorder[list[int]](_Store().record, overlap=True) as recorder:
        assert recorder.total() == 0
        started = {t.name for t in threading.enumerate()} - before
    assert not [name for name in started if name.startswith("syncd-plan-store")]
