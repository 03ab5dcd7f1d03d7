"""Run the emulator standalone: ``python -m connectors.testing.salesforce --port 0 --seed N``.

Prints one JSON line (base_url, token_url, ca_pem_path, client_id, client_secret,
integration_user_id, leads) and serves until SIGTERM/SIGINT. ``--seed N`` creates N synthetic
leads (deterministic per ``--random-seed``), for benchmarks measuring memory out of process.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import EmulatorConfig, SalesforceEmulator, synthetic_leads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.testing.salesforce")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic leads to create")
    parser.add_argument("--random-seed", type=int, default=0, help="seed for the lead generator")
    parser.add_argument("--daily-api-limit", type=int, default=100_000)
    parser.add_argument("--unrestricted-status", action="store_true",
                        help="accept any Status value (unrestricted picklist)")
    args = parser.parse_args(argv)
    config = EmulatorConfig(daily_api_limit=args.daily_api_limit,
                            restricted_status_picklist=not args.unrestricted_status)
    emu = SalesforceEmulator(config, port=args.port).start()
    if args.seed:
        emu.add_leads(synthetic_leads(args.seed, seed=args.random_seed))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"base_url": emu.base_url, "token_url": emu.token_url,
                      "ca_pem_path": emu.ca_pem_path, "client_id": emu.client_id,
                      "client_secret": emu.client_secret,
                      "integration_user_id": emu.integration_user_id,
                      "leads": emu.lead_count}), flush=True)
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
