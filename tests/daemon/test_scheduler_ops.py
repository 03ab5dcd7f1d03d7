"""The scheduler as an operator sees it: one line per streak of skipped starts, and watchdog
pings only while the scheduler lives."""

# The tests drive the daemon's scheduler and main loop directly, with timings too short for
# the configured minimum interval.

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.notify import Notifier
from syncd.scheduler import Daemon
from tests.daemon.harness import running_app, sf_lead, write_config


def test_starts_skipped_while_a_cycle_runs_are_one_line_not_a_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_app(write_config(tmp_path, crms=("salesforce",))) as app:
        emu = app.embedded.salesforce
        emu.add_leads([sf_lead("A", "a@acme.com", title="Analyst")])
        emu.faults.slow_next(1, delay=2.5, path="/composite$")  # the cycle outlasts 8 ticks
        daemon = Daemon(app)
        # The configured minimum interval is 10 s; the scheduler itself takes any.
        daemon._scheduler.add_job(
            daemon._cycle,
            "interval",
            args=["salesforce"],
            id="salesforce",
            seconds=0.3,
            next_run_time=datetime.now(UTC),
        )
        with caplog.at_level(logging.INFO):
            daemon._scheduler.start()
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and "salesforce" not in daemon.last:
                    time.sleep(0.1)
                time.sleep(0.2)
            finally:
                daemon._scheduler.shutdown(wait=False)
                app.stop.set()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "maximum number of running instances" in m]
    folded = [m for m in messages if "cycle still running" in m]
    assert len(folded) == 1, messages
    assert folded[0].startswith("salesforce: cycle still running; skipped ")
    assert int(folded[0].split("skipped ")[1].split()[0]) >= 3


def _pings(daemon: Daemon, server: socket.socket, seconds: float) -> int:
    loop = threading.Thread(target=daemon._main_loop, daemon=True)
    loop.start()
    time.sleep(seconds)
    daemon.app.stop.set()
    loop.join(5)
    count = 0
    server.settimeout(0.1)
    try:
        while server.recv(4096) == b"WATCHDOG=1":
            count += 1
    except TimeoutError:
        pass
    return count


def test_the_watchdog_is_pinged_only_while_the_scheduler_lives(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server,
        running_app(write_config(tmp_path, crms=("salesforce",))) as app,
    ):
        server.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})  # 0.2 s
        daemon = Daemon(app, notifier=notifier)
        daemon._scheduler.start(paused=True)
        assert _pings(daemon, server, 1.0) >= 4
        daemon._scheduler.shutdown(wait=False)  # a dead scheduler: systemd must notice
        app.stop.clear()
        assert _pings(daemon, server, 1.0) == 0
        notifier.close()
