"""The ``syncd`` console script (and ``python -m syncd``): signals while the command line is
still being imported.

Importing ``syncd.cli`` (typer, pydantic, SQLAlchemy and the rest) and loading the config
take a second or two; a signal in that time would otherwise end the process before ``cli.main``
could act on it. Ctrl-C then ends with exit 130, as an interrupted command does, and prints
nothing: nothing was done yet. A SIGTERM (a systemd stop, a Kubernetes pod deleted just after
it started) is noted here and handed to ``cli.main``: ``syncd run`` stops cleanly with exit 0,
as a SIGTERM at any later moment does; another command ends as an interrupted one (143).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

_terminated: list[int] = []


def _note(signum: int, _frame: Any) -> None:
    _terminated.append(signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _note)
    try:
        from syncd.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    # The list itself, read once cli.main has its own handler in place: a SIGTERM noted between
    # this line and that one would otherwise be lost, and `syncd run` would not stop.
    cli_main(terminated=_terminated)


if __name__ == "__main__":
    main()
