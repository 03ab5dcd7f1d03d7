"""systemd's notify protocol (``Type=notify``), without a dependency.

systemd sets ``NOTIFY_SOCKET`` for a ``Type=notify`` service; the daemon sends datagrams such as
``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` to it (sd_notify(3):
https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html). ``WATCHDOG_USEC`` says
how often the watchdog expects a ping; syncd pings at half that. Outside systemd (no
``NOTIFY_SOCKET``) every call is a no-op, so the daemon needs no mode switch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("syncd.notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@", meaning a leading NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        applies = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval: float | None = int(usec) / 2e6 if applies else None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str | int) -> None:
        """Send ``KEY=value`` lines (``send(READY=1, STATUS="...")``); never raises."""
        if not self._address:
            return
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(message, self._address)
        except OSError as exc:  # systemd gone or socket unusable: the daemon keeps running
            log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        self.send(READY=1, **({"STATUS": status} if status else {}))

    def watchdog(self) -> None:
        self.send(WATCHDOG=1)

    def status(self, text: str) -> None:
        self.send(STATUS=text.replace("\n", " "))

    def stopping(self) -> None:
        self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
