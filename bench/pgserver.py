"""A throwaway PostgreSQL server on loopback, for the tests (``tests/conftest.py``) and the bench.

The server lives in a temporary directory, listens on 127.0.0.1 only, runs with ``fsync=off``
(nothing in it needs to survive) and is stopped and removed when the block ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresUnavailable", "throwaway_postgres"]


class PostgresUnavailable(RuntimeError):
    """No server could be started here; the message says why and what to install."""


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "postgres").exists():
            return Path(candidate)
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def throwaway_postgres(
    database: str = "syncd_test", *, statement_log: Path | None = None
) -> Iterator[str]:
    """Start a fresh server with one empty ``database``; yield its SQLAlchemy URL.

    ``statement_log``: the server logs every statement with its duration to this file
    (``log_min_duration_statement=0``), for counting what a cycle sends.

    Raises:
        PostgresUnavailable: no server binaries, root without a ``postgres`` user, or the
            server did not accept connections within 30 s.
    """
    bindir = _pg_bin()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (make test installs Debian's postgresql)"
        )
    # PostgreSQL refuses to run as root; run it as the `postgres` system user when we are root.
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root and no 'postgres' user to run the server as"
            ) from None
        run_as = ["runuser", "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
    if run_as:
        shutil.chown(tmp, "postgres")
    data = tmp / "data"
    port = _free_port()
    proc: subprocess.Popen[bytes] | None = None
    log_file = open(statement_log, "ab") if statement_log else None  # noqa: SIM115
    try:
        done = subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "syncd",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-300:]}")
        proc = subprocess.Popen(
            [
                *run_as,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(tmp),
                "-c",
                "fsync=off",
                *(["-c", "log_min_duration_statement=0"] if statement_log else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file or subprocess.DEVNULL,
        )
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user="syncd", dbname="postgres", autocommit=True
                ) as conn:
                    conn.execute(f"CREATE DATABASE {database}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise PostgresUnavailable("PostgreSQL did not start within 30 s") from None
                time.sleep(0.2)
        yield f"postgresql+psycopg://syncd@127.0.0.1:{port}/{database}"
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_file is not None:
            log_file.close()
        shutil.rmtree(tmp, ignore_errors=True)
