"""Run the HubSpot emulator as a process (see :mod:`connectors.testing` for the admin API).

``python -m connectors.testing.hubspot --port 0 --leads 500 --seed 7 --fault-rate 0.3`` prints
one JSON line when ready (url, base_url, access_token, OAuth client id/secret, refresh_token,
lists, leads) and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from connectors.testing.hubspot.config import DEFAULT_LEAD_STATUSES, EmulatorConfig
from connectors.testing.hubspot.seed import DEFAULT_STATUS_VALUES
from connectors.testing.hubspot.server import HubSpotEmulator
from connectors.testing.kit import EmulatorClock
from connectors.testing.kit.cli import (
    add_common_options,
    fault_plan,
    restore_state,
    serve_until_signalled,
)
from connectors.testing.leads import generate_leads, generate_scale_leads

_SCALE = 20_000  # beyond this many leads, the fast generator (less realism)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.testing.hubspot", description=(__doc__ or "").splitlines()[0]
    )
    add_common_options(parser)
    parser.add_argument("--contacts", type=int, default=None, help="alias of --leads")
    parser.add_argument(
        "--index-lag",
        type=float,
        default=0.0,
        help="seconds before writes become visible to search",
    )
    parser.add_argument(
        "--spread-seconds",
        type=float,
        default=0.0,
        help="stamp the seeded contacts this far apart, ending a minute ago, as "
        "in a portal in use (0: each when its status was set)",
    )
    args = parser.parse_args(argv)
    plan = fault_plan(parser, args)
    count = args.contacts if args.contacts is not None else args.leads
    extra = sorted(set(DEFAULT_STATUS_VALUES.values()) - set(DEFAULT_LEAD_STATUSES))
    now = datetime.now(UTC).replace(microsecond=0)
    clock = EmulatorClock(frozen_at=now if args.simulated_clock else None)
    emu = HubSpotEmulator(
        EmulatorConfig(index_lag_seconds=args.index_lag, extra_status_options=extra),
        host=args.host,
        port=args.port,
        clock=clock,
        faults=plan,
    )
    if not restore_state(parser, emu, args.state_file):
        generate = generate_leads if count <= _SCALE else generate_scale_leads
        leads = list(generate(count, seed=args.seed, now=now))
        if args.spread_seconds:
            step = args.spread_seconds
            start = now.timestamp() - 60 - len(leads) * step
            leads = [
                {**lead, "_status_changed_at": datetime.fromtimestamp(start + i * step, tz=UTC)}
                for i, lead in enumerate(leads)
            ]
        emu.seed_leads(leads)
        for name in ("Newsletter", "Webinar"):
            emu.add_list(name, "MANUAL")
    emu.start()
    return serve_until_signalled(emu, emu.admin_info(), args.state_file)


if __name__ == "__main__":
    sys.exit(main())
