"""A throwaway PostgreSQL server on loopback, in a temporary directory, stopped on exit.

Used by the ``postgres_url`` fixture (tests/conftest.py) and by the benchmarks that run on
PostgreSQL (bench/report_scale.py). Debian's server binaries (``/usr/lib/postgresql/*/bin``) or
a ``postgres`` on the PATH; as root the server runs as the ``postgres`` system user, since
PostgreSQL refuses to run as root.
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


class PostgresUnavailable(Exception):
    """No server could be started here; the message says why."""


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
def throwaway_postgres(database: str = "syncd_test") -> Iterator[str]:
    """The SQLAlchemy URL of an empty database ``database`` on a fresh server."""
    bindir = _pg_bin()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (make test installs Debian's postgresql)"
        )
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
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "syncd", "--auth=trust", "-E", "UTF8"]
    subprocess.run([*run_as, *initdb], check=True, capture_output=True)
    server = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
    proc = subprocess.Popen(
        [*run_as, *server, "-k", str(tmp), "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
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
                    raise PostgresUnavailable("PostgreSQL did not start") from None
                time.sleep(0.2)
        yield f"postgresql+psycopg://syncd@127.0.0.1:{port}/{database}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
