"""What both emulator commands share: the options, the fault plan, serving until a signal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
from typing import Any

from .faults import FAULT_KINDS, FaultPlan
from .server import EmulatorServer

__all__ = ["add_common_options", "fault_plan", "restore_state", "serve_until_signalled"]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--leads", type=int, default=200, help="leads to seed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lead generator")
    parser.add_argument(
        "--state-file",
        default=None,
        help="resume from this file if it exists (instead of seeding leads); "
        "on SIGTERM/SIGINT write the state there (the GET "
        "/__emulator__/state document plus a 'snapshot' to resume from)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of API requests that hit a random fault (0..1)",
    )
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated fault kinds (of {','.join(FAULT_KINDS)})",
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--slow-seconds", type=float, default=1.0, help="delay of a 'slow' fault")
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=35.0,
        help="how long a 'timeout' fault holds the answer (beyond the client's timeout)",
    )
    parser.add_argument(
        "--simulated-clock",
        action="store_true",
        help="freeze the clock; it moves only by POST /__emulator__/clock",
    )


def fault_plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FaultPlan:
    """The plan the options ask for; a bad option ends the command with a usage error."""
    try:
        return FaultPlan(
            rate=args.fault_rate,
            kinds=args.fault_kinds.split(","),
            seed=args.fault_seed,
            slow_seconds=args.slow_seconds,
            timeout_seconds=args.timeout_seconds,
        )
    except ValueError as e:
        parser.error(str(e))
        raise  # parser.error exits; this keeps type checkers informed


def restore_state(
    parser: argparse.ArgumentParser, emulator: EmulatorServer, state_file: str | None
) -> bool:
    """Resume ``emulator`` from ``state_file`` when it exists; False when there is none."""
    if not state_file or not os.path.exists(state_file):
        return False
    try:
        with open(state_file, encoding="utf-8") as fh:
            emulator.restore(json.load(fh)["snapshot"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.error(
            f"cannot resume from the state file {state_file} ({type(e).__name__}: {e}); "
            "it is not a state this emulator wrote: delete it to start fresh"
        )
    return True


def serve_until_signalled(
    emulator: EmulatorServer, ready: dict[str, Any], state_file: str | None
) -> int:
    """Print ``ready`` as one JSON line, serve until SIGTERM/SIGINT, then stop (writing the
    state file if asked)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps(ready), flush=True)
    stop.wait()
    try:
        if state_file:
            _write_atomically(
                state_file, {**emulator.admin_state(), "snapshot": emulator.snapshot()}
            )
    finally:
        emulator.stop()
    return 0


def _write_atomically(path: str, doc: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".emulator-state-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        print(f"could not write the state file {path}: {e}", file=sys.stderr)
