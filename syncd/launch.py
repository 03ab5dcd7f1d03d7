"""The ``syncd`` console script: Ctrl-C while the command line is still being imported.

Importing ``syncd.cli`` (typer, pydantic, SQLAlchemy and the rest) takes about a second; a
Ctrl-C in it would end in a ``KeyboardInterrupt`` traceback, before ``cli.main`` could catch
anything. Here it ends with exit 130, as an interrupted command does, and prints nothing:
nothing was done yet. (A SIGTERM
then ends the process as Python's default does, silently; ``cli.main`` takes it over.)
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    try:
        from syncd.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    cli_main()


if __name__ == "__main__":
    main()
