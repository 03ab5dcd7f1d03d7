"""Shared fixtures: a throwaway PostgreSQL server on loopback, state-store URLs and stores.

Store tests run on SQLite always and on PostgreSQL when server binaries are present
(`make test` installs Debian's package when it can). The server (`bench.pgserver`, which the
benchmarks share) lives in a temporary directory, listens on 127.0.0.1 only, and is stopped at
the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.pgserver import PostgresUnavailable, throwaway_postgres
from syncd.state import StateStore
from tests.native.build import stale


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test compiled modules older than their sources: the old code would run."""
    edited = stale()
    if edited:
        pytest.exit(
            f"{', '.join(edited)} changed after it was compiled, so the tests would import the "
            "old compiled module: run `make native` (make test does), or delete the .so files "
            "next to them to test pure Python",
            returncode=2,
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, or skip with the reason."""
    if os.environ.get("SYNCD_TEST_POSTGRES_URL"):
        yield os.environ["SYNCD_TEST_POSTGRES_URL"]
        return
    server = throwaway_postgres()
    try:
        url = server.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state-store URL on each backend; the PostgreSQL one starts empty for each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    from tests.pgdb import empty_database

    base = request.getfixturevalue("postgres_url")
    yield empty_database(base, f"t{abs(hash(request.node.nodeid)) % 10**10}")


@pytest.fixture
def state_store(store_url: str) -> Iterator[StateStore]:
    """A :class:`StateStore` on each backend (see ``store_url``), closed after the test."""
    store = StateStore(store_url)
    try:
        yield store
    finally:
        store.close()
