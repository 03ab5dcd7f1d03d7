"""How far a long pull got: a progress bar on a terminal, percent lines in a log.

A first sync of a large org reads for minutes; the CRMs say at the start how many leads the pull
will yield (``Page.total``), which is enough for a rate and an estimate of the time left. Only
pulls of at least :data:`MIN_TOTAL` leads are shown: an incremental cycle of a few pages needs
no progress display.

* :class:`LogProgress` (no terminal, or JSON logs): one ``syncd.progress`` record every 10 % or
  30 s, whichever comes first, with ``done``, ``total``, ``percent`` and ``rate`` fields.
* :class:`BarProgress` (a terminal): a rich progress bar per connector with rate and ETA, on
  stderr; log lines keep scrolling above it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = [
    "MIN_TOTAL",
    "BarProgress",
    "LogProgress",
    "ProgressFactory",
    "PullProgress",
    "progress_factory",
]

log = logging.getLogger("syncd.progress")

MIN_TOTAL = 2000  #: smaller pulls are a page or two: nothing to show
LOG_EVERY_SHARE = 0.10
LOG_EVERY_SECONDS = 30.0


class PullProgress(Protocol):
    def advance(self, count: int, total: int | None) -> None:
        """``count`` more leads were stored; ``total`` is the pull's expected size if known."""

    def close(self) -> None:
        """The pull ended (done, stopped or failed)."""


#: Called with the connector instance's name at the start of each pull.
ProgressFactory = Callable[[str], PullProgress]


class LogProgress:
    """Percent lines: every 10 % or 30 s of a pull of at least MIN_TOTAL leads."""

    def __init__(self, crm: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.crm = crm
        self.done = 0
        self.total: int | None = None
        self._clock = clock
        self._started = clock()
        self._logged_at = self._started
        self._logged_share = 0.0

    def advance(self, count: int, total: int | None) -> None:
        self.done += count
        self.total = total if total is not None else self.total
        if self.total is None or self.total < MIN_TOTAL:
            return
        now = self._clock()
        share = min(self.done / self.total, 1.0)
        if (
            # A tenth of the pull since the last line; 1e-9: 0.3 - 0.2 < 0.1 in floats, and
            # the 30 % line would wait for 40 %.
            share - self._logged_share >= LOG_EVERY_SHARE - 1e-9
            or share >= 1.0 > self._logged_share
            or now - self._logged_at >= LOG_EVERY_SECONDS
        ):
            self._logged_share, self._logged_at = share, now
            elapsed = max(now - self._started, 1e-6)
            rate = self.done / elapsed
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            log.info(
                "%s: pulled %d of %d leads (%d%%), %.0f leads/s, about %s left",
                self.crm,
                self.done,
                self.total,
                share * 100,
                rate,
                _duration(max(left, 0.0)),
                extra={
                    "done": self.done,
                    "total": self.total,
                    "percent": round(share * 100, 1),
                    "rate": round(rate, 1),
                },
            )

    def close(self) -> None:
        pass


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} leads/s" if speed else "- leads/s", style="progress.data.speed")


class BarProgress:
    """One rich progress display shared by every connector's pull (cycles run in threads)."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._open = 0

    def __call__(self, crm: str) -> PullProgress:
        return _Bar(self, crm)

    def _add(self, crm: str, total: int) -> TaskID:
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TaskProgressColumn(),
                    _RateColumn(),
                    TextColumn("ETA"),
                    TimeRemainingColumn(),
                    console=self._console,
                    transient=False,
                )
                self._progress.start()
            self._open += 1
            return self._progress.add_task(f"{crm}: pulling", total=total)

    def _update(self, task: TaskID, completed: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(task, completed=min(completed, total), total=total)

    def _remove(self, task: TaskID) -> None:
        with self._lock:
            if self._progress is None:
                return
            self._open -= 1
            if self._open == 0:
                self._progress.stop()
                self._progress = None


class _Bar:
    def __init__(self, board: BarProgress, crm: str) -> None:
        self._board = board
        self._crm = crm
        self._task: TaskID | None = None
        self.done = 0
        self.total: int | None = None

    def advance(self, count: int, total: int | None) -> None:
        self.done += count
        self.total = total if total is not None else self.total
        if self.total is None or self.total < MIN_TOTAL:
            return
        if self._task is None:
            self._task = self._board._add(self._crm, self.total)  # noqa: SLF001 - its board
        self._board._update(self._task, self.done, self.total)  # noqa: SLF001 - its board

    def close(self) -> None:
        if self._task is not None:
            self._board._remove(self._task)  # noqa: SLF001 - its board
            self._task = None


def progress_factory(*, json_logs: bool, stream: object = None) -> ProgressFactory:
    """A bar on a terminal (text logs), percent log lines otherwise."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if not json_logs and callable(isatty) and isatty():
        return BarProgress()
    return LogProgress


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"
