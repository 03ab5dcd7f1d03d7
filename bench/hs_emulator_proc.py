"""A HubSpot emulator process for the throughput benchmark: ``python -m bench.hs_emulator_proc N``.

Like ``python -m connectors.hubspot.emulator --contacts N`` (same demo contacts, same default
limits: 100 per 10 s, search 5/s), except that the contacts were last modified over the past
days, ten seconds apart, as in a portal in use; the standalone emulator stamps every seeded
contact with one millisecond, a mass-import tie that makes any client page the tie group by id.
Prints one JSON line (base_url, access_token, lists) and serves until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from connectors.hubspot.emulator.demo_data import demo_contacts
from connectors.hubspot.emulator.server import HubSpotEmulator


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1000
    emu = HubSpotEmulator()
    now = emu.clock.now_ms()
    contacts = demo_contacts(n, 5)
    for i, record in enumerate(contacts):
        record["lastmodifieddate"] = now - 60_000 - (n - i) * 10_000
    emu.add_contacts(contacts)
    newsletter = emu.add_list("Newsletter", "MANUAL")
    emu.start()
    print(json.dumps({"base_url": emu.base_url, "access_token": emu.access_token,
                      "lists": {"Newsletter": newsletter}}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
