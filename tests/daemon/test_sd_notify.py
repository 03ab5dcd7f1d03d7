"""``syncd run`` under systemd's notify protocol, against a real unix datagram socket."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon.harness import write_config


def test_ready_after_preflight_watchdog_pings_at_the_interval_and_stopping_on_sigterm(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, leads=20)
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(60)
        # WATCHDOG_USEC of 1.2 s: syncd pings at half of it.
        env = {
            **os.environ,
            "NOTIFY_SOCKET": path,
            "WATCHDOG_USEC": "1200000",
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", "run", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        got: list[tuple[float, str]] = []
        try:
            while (
                not any(m.startswith("STATUS=hubspot") for _, m in got)
                or sum(m == "WATCHDOG=1" for _, m in got) < 5
            ):
                got.append((time.monotonic(), server.recv(4096).decode()))
            proc.send_signal(signal.SIGTERM)
            server.settimeout(10)
            while "STOPPING=1" not in [m for _, m in got]:
                got.append((time.monotonic(), server.recv(4096).decode()))
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    messages = [m for _, m in got]
    assert proc.returncode == 0, err
    assert messages[0].startswith("READY=1"), messages
    # The connectors' preflight ran before READY (their check is logged at start-up).
    assert any(m.startswith("STATUS=salesforce: pulled 20") for m in messages), messages
    pings = [t for t, m in got if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Never a gap systemd would act on, and about every 0.6 s on average (receive times jitter
    # on a busy machine, so single gaps are not compared).
    assert max(gaps) < 1.2, gaps
    assert 0.4 < (pings[-1] - pings[0]) / len(gaps) < 0.9, gaps
    assert messages[-1] == "STOPPING=1"
