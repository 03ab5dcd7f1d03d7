"""An empty database on the tests' PostgreSQL server, for a test that needs one of its own."""

from __future__ import annotations

import sqlalchemy

__all__ = ["empty_database"]


def empty_database(server_url: str, name: str, *, force: bool = False) -> str:
    """Drop ``name`` if it exists (``force``: closing its connections first), create it empty,
    and return its URL (``server_url`` with the database name replaced)."""
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {name}{' WITH (FORCE)' if force else ''}"
            )
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
