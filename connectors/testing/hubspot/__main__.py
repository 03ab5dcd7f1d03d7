"""Run the HubSpot emulator standalone.

``python -m connectors.testing.hubspot --port 0 --seed 7`` prints one JSON line (base_url,
tokens, list ids) and serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from connectors.testing.hubspot.config import EmulatorConfig
from connectors.testing.hubspot.demo_data import demo_contacts
from connectors.testing.hubspot.server import HubSpotEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.testing.hubspot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the demo contacts")
    parser.add_argument("--contacts", type=int, default=200, help="demo contacts to create")
    parser.add_argument("--index-lag", type=float, default=0.0,
                        help="seconds before writes become visible to search")
    parser.add_argument("--spread-seconds", type=float, default=0.0,
                        help="stamp the seeded contacts this far apart, ending a minute ago, as "
                             "in a portal in use (0: all at one millisecond, a mass import)")
    args = parser.parse_args(argv)

    emu = HubSpotEmulator(EmulatorConfig(index_lag_seconds=args.index_lag), port=args.port)
    contacts = demo_contacts(args.contacts, args.seed)
    if args.spread_seconds:
        now = emu.clock.now_ms()
        step = int(args.spread_seconds * 1000)
        for i, record in enumerate(contacts):
            record["lastmodifieddate"] = now - 60_000 - (len(contacts) - i) * step
    emu.add_contacts(contacts)
    newsletter = emu.add_list("Newsletter", "MANUAL")
    emu.start()
    print(json.dumps({
        "base_url": emu.base_url, "access_token": emu.access_token,
        "oauth_client_id": emu.oauth_client_id, "oauth_client_secret": emu.oauth_client_secret,
        "refresh_token": emu.refresh_token, "lists": {"Newsletter": newsletter},
    }), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
