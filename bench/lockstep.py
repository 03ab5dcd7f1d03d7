"""Two cycle sequences measured turn about, so that both see the same machine.

§8 compares one store with another on a shared two-core machine whose speed drifts by tens of
per cent within minutes (other work, frequency). Run one after the other, two sequences' idle
cycles (a few milliseconds each) land in different moments of that drift, and the ratio of two
such moments says more about the machine than about the stores: in the runs before, the same
code gave idle ratios of 0.87 to 1.65 between cycles. Here each sequence runs on a thread of its
own and, once both are set up, their measured cycles alternate: one cycle of the first, one of
the second, and so on, so neighbouring cycles of the two compare under the same load.

Setting up (seeding the emulator, building the App, the first sync and the cycles that settle
it) happens one sequence at a time, in their order, under :meth:`Lockstep.setting_up`: the first
syncs are still measured alone, and Alembic's schema upgrade, which an App build runs, is not
thread-safe. While one sequence sets up or takes its turn, the other waits on a condition and
runs nothing (its App's lease thread renews now and then, as both do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["Lockstep", "run_in_lockstep"]

T = TypeVar("T")


class Lockstep:
    """Set-up and turns for ``names`` in their order; a sequence that ended (or failed) gives
    up its turns."""

    def __init__(self, names: list[str]) -> None:
        self._names = list(names)
        self._cond = threading.Condition()
        self._ready: set[str] = set()
        self._done: set[str] = set()
        self._turn = 0

    @contextmanager
    def setting_up(self, name: str) -> Iterator[None]:
        """Wait until every sequence before ``name`` is set up, then set up; :meth:`ready`
        (or the end of the body) lets the next one start."""
        with self._cond:
            self._cond.wait_for(lambda: self._before(name) <= self._ready | self._done)
        try:
            yield
        finally:
            with self._cond:
                self._ready.add(name)
                self._cond.notify_all()

    def ready(self, name: str) -> None:
        """``name`` is set up: the next sequence may set up, and ``name`` waits for all."""
        with self._cond:
            self._ready.add(name)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._ready | self._done >= set(self._names))

    @contextmanager
    def turn(self, name: str) -> Iterator[None]:
        """Run the body in ``name``'s turn, then pass the turn on."""
        with self._cond:
            self._cond.wait_for(lambda: self._current() == name)
        try:
            yield
        finally:
            with self._cond:
                self._turn = (self._turn + 1) % len(self._names)
                self._cond.notify_all()

    def done(self, name: str) -> None:
        with self._cond:
            self._done.add(name)
            self._cond.notify_all()

    def _before(self, name: str) -> set[str]:
        return set(self._names[: self._names.index(name)])

    def _current(self) -> str | None:
        """Whose turn it is (None once every sequence ended)."""
        if len(self._done) == len(self._names):
            return None
        while self._names[self._turn] in self._done:
            self._turn = (self._turn + 1) % len(self._names)
        return self._names[self._turn]


def run_in_lockstep(jobs: dict[str, Callable[[Lockstep], T]]) -> dict[str, T]:
    """Run each job on a thread of its own with one shared :class:`Lockstep` (turns in the
    order of ``jobs``); return their results, or raise the first job's error."""
    step = Lockstep(list(jobs))
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str, job: Callable[[Lockstep], T]) -> None:
        try:
            results[name] = job(step)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            errors[name] = exc
        finally:
            step.done(name)

    threads = [
        threading.Thread(target=run, args=(name, job), name=f"bench-{name}")
        for name, job in jobs.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in jobs:
        if name in errors:
            raise errors[name]
    return results
