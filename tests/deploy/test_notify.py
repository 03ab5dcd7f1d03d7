"""syncd.notify speaks systemd's notify protocol to a real unix datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from syncd.notify import Notifier


def test_notifications_arrive_as_key_value_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(2)
        notifier = Notifier(
            {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
        )
        notifier.ready("first preflight passed")
        notifier.watchdog()
        notifier.status("salesforce: pulled 3\nwritten 2")
        notifier.stopping()
        got = [server.recv(4096).decode() for _ in range(4)]
        notifier.close()
    assert got == [
        "READY=1\nSTATUS=first preflight passed",
        "WATCHDOG=1",
        "STATUS=salesforce: pulled 3 written 2",
        "STOPPING=1",
    ]
    assert notifier.watchdog_interval == 5.0


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready()
    notifier.watchdog()


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier(
        {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval is None
