"""Run the Salesforce emulator as a process (see :mod:`connectors.testing` for the admin API).

``python -m connectors.testing.salesforce --port 0 --leads 500 --seed 7 --fault-rate 0.3``
prints one JSON line when ready (url, base_url, token_url, ca_pem_path, client_id,
client_secret, integration_user_id, rep_user_id, campaigns, leads) and serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from connectors.testing.kit import EmulatorClock
from connectors.testing.kit.cli import (
    add_common_options,
    fault_plan,
    restore_state,
    serve_until_signalled,
)
from connectors.testing.leads import generate_leads, generate_scale_leads

from . import EmulatorConfig, SalesforceEmulator

_SCALE = 20_000  # beyond this many leads, the fast generator (less realism)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.testing.salesforce", description=(__doc__ or "").splitlines()[0]
    )
    add_common_options(parser)
    parser.add_argument("--daily-api-limit", type=int, default=100_000)
    parser.add_argument(
        "--unrestricted-status",
        action="store_true",
        help="accept any Status value (unrestricted picklist)",
    )
    args = parser.parse_args(argv)
    plan = fault_plan(parser, args)
    config = EmulatorConfig(
        daily_api_limit=args.daily_api_limit,
        restricted_status_picklist=not args.unrestricted_status,
    )
    now = datetime.now(UTC).replace(microsecond=0)
    clock = EmulatorClock(frozen_at=now if args.simulated_clock else None)
    emu = SalesforceEmulator(config, host=args.host, port=args.port, clock=clock, faults=plan)
    if not restore_state(parser, emu, args.state_file):
        generate = generate_leads if args.leads <= _SCALE else generate_scale_leads
        emu.seed_leads(generate(args.leads, seed=args.seed, now=now))
        for name in ("Newsletter", "Webinar"):
            emu.add_campaign(name)
    emu.start()
    return serve_until_signalled(emu, emu.admin_info(), args.state_file)


if __name__ == "__main__":
    sys.exit(main())
