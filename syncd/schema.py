"""Brings a state store to the schema this syncd needs, through Alembic, without losing a row.

Four cases, decided before anything else touches the database:

* **empty**: create every table at the newest revision (nothing to lose, so always allowed);
* **at the newest revision**: nothing to do;
* **behind** (an older syncd made it, including a 0.1 database made before Alembic, which has
  the 0.1 tables and no ``alembic_version``; it is stamped at ``0001`` first): upgrade in place
  when ``auto_upgrade`` allows, otherwise refuse with the command that does it;
* **ahead or unknown** (a newer syncd made it, or tables syncd does not recognise): refuse.

Why automatic upgrades are on for SQLite and off for PostgreSQL by default: a SQLite file belongs
to the one daemon that opens it, and the upgrade runs under SQLite's write lock. A PostgreSQL
database is shared by replicas and watched by a DBA; DDL takes locks that stall the running
leader, and an upgrade wants a backup first -- so it is an explicit step (``syncd db upgrade``,
e.g. a Kubernetes Job before the rollout). Concurrent upgraders serialise on a transaction-level
advisory lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["SchemaError", "SchemaStatus", "ensure_schema", "schema_status", "upgrade"]

log = logging.getLogger("syncd.schema")
# Alembic logs every plugin it sets up at INFO, when first imported; syncd says in one line what
# it migrated. (Alembic is imported where used, after this.)
logging.getLogger("alembic").setLevel(logging.WARNING)

_MIGRATIONS = Path(__file__).parent / "migrations"
#: The tables syncd 0.1 created (before Alembic); a database with exactly these is a 0.1 store.
_V01_TABLES = frozenset({"lead", "cursor", "outbox", "audit", "run", "meta"})
_V01_REVISION = "0001"
#: Any constant; the key of the advisory lock upgraders of one PostgreSQL database share.
_PG_UPGRADE_LOCK = 0x73796E6364  # "syncd"


class SchemaError(Exception):
    """The state store's schema cannot be used by this syncd; the message says what to do."""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the database's revision (None: empty, or a 0.1 store)
    head: str  # the revision this syncd needs
    legacy: bool  # a 0.1 store made before Alembic
    empty: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def _script() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def _status(conn: Connection) -> SchemaStatus:
    from alembic.runtime.migration import MigrationContext

    head = _script().get_current_head()
    assert head is not None  # the package ships its migrations
    current = MigrationContext.configure(conn).get_current_revision()
    tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
    legacy = current is None and _V01_TABLES.issubset(tables)
    if current is None and tables and not legacy:
        raise SchemaError(
            f"the state store holds tables syncd does not know ({', '.join(sorted(tables))}) "
            "and no schema revision; point state.url at syncd's own database"
        )
    if current is not None and current not in {rev.revision for rev in _script().walk_revisions()}:
        # Every caller refuses it: `db current` must not advise an upgrade, nor `db upgrade`
        # fail inside Alembic, on a store a newer syncd made.
        raise SchemaError(
            f"the state store ({_where(conn.engine)}) is at schema revision {current}, "
            "made by a newer syncd; run that version, or point state.url at another "
            "database"
        )
    return SchemaStatus(current, head, legacy, empty=not tables)


def schema_status(engine: Engine) -> SchemaStatus:
    with engine.connect() as conn:
        return _status(conn)


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> SchemaStatus:
    """Make the database usable by this syncd, or raise :class:`SchemaError` saying why not."""
    if engine.dialect.name == "sqlite":
        # Read first, unlocked: a store already at the newest revision needs no write lock
        # (a read-only file serves `syncd status`).
        status = schema_status(engine)
        if status.up_to_date:
            return status
    with engine.begin() as conn:
        _lock(conn)
        status = _status(conn)
        if status.up_to_date:
            return status
        if not (status.empty or auto_upgrade):
            raise SchemaError(
                f"the state store ({_where(engine)}) is at schema revision "
                f"{status.current or _V01_REVISION + ' (syncd 0.1)'}; this syncd needs "
                f"{status.head}. Back it up, then run `syncd db upgrade -c CONFIG` (or set "
                "state.auto_upgrade: true)"
            )
        _upgrade(conn, status)
    return schema_status(engine)


def upgrade(engine: Engine) -> tuple[SchemaStatus, SchemaStatus]:
    """Upgrade to the newest revision whatever ``auto_upgrade`` says; (before, after)."""
    with engine.begin() as conn:
        _lock(conn)
        before = _status(conn)
        if not before.up_to_date:
            _upgrade(conn, before)
    return before, schema_status(engine)


def _upgrade(conn: Connection, status: SchemaStatus) -> None:
    if not status.empty:
        log.warning(
            "upgrading the state store's schema from %s to %s",
            "0.1" if status.legacy else status.current,
            status.head,
        )
    from alembic import command

    cfg = _config(conn)
    if status.legacy:
        command.stamp(cfg, _V01_REVISION)
    command.upgrade(cfg, "head")


def _lock(conn: Connection) -> None:
    """Serialise upgraders of one database, so that the second reads the revision the first
    committed (two daemons started together on a new store both found it empty, and the
    second's Alembic run failed on the first's tables)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
    elif conn.dialect.name == "sqlite":
        # Python's sqlite3 opens no transaction before a read or DDL, so each CREATE would
        # commit on its own; BEGIN IMMEDIATE takes SQLite's write lock now (others wait up to
        # the busy timeout) and makes the whole upgrade one transaction.
        # https://www.sqlite.org/lang_transaction.html
        conn.exec_driver_sql("BEGIN IMMEDIATE")
