"""One writer per connector: a lease in the state store, a fencing token, a hot standby.

Two processes writing one connector send every change twice and mistake each other's stale
reads for a person's edits. So every process that writes a connector's mirror or outbox (the
daemon's cycles, ``sync --once``, ``plan --pull``) first takes that connector's **lease**; any
other process waits as a standby, or refuses.

**The lease row** (table ``lease``, one row per connector name, an opaque string of up to 64
characters) names the holder (host, pid, a random id per process), when it took the lease, when
the lease expires, and a **fencing token** raised by one at every change of holder. The holder
renews the expiry from a heartbeat thread (``renew_every``, default ttl/3), so a long cycle never
loses its lease for being long. A standby takes a lease whose expiry has passed; stopping
(SIGTERM) expires it at once, so the standby takes over at its next try.

**Why a row with an expiry and not a PostgreSQL advisory lock.** A session advisory lock lives
on one server connection; behind a transaction-pooling proxy (PgBouncer ``pool_mode =
transaction``) consecutive transactions of one client run on different server connections, so
the lock would be taken on one connection and checked or released on another, and would
outlive the process on a pooled connection. A row read and written in ordinary transactions
works through any pool. Expiry is judged by the database's clock (``clock_timestamp()``), never
by the hosts' clocks, which may disagree.

**SQLite** adds an OS file lock (``fcntl.flock`` on ``<database>.lease-<name>.lock`` beside the
database, held on a dedicated file descriptor while leading; the kernel drops it when the
process dies): while a leader lives no other process can lead, even if its renewals stall and
the row expires. The row still carries the token and the holder shown to operators, and its
expiry must pass before a standby takes over from a dead leader.

**Why a dead leader's lease must run out.** A batch the leader sent just before it died may still
be applied by the CRM after it died. Each send renews the lease to a whole ttl and at least the
connector's request timeout (keep the ttl above it: a retry inside the connector is covered by
the heartbeat's ttl only), so by the time a standby may take over, that request has been
answered or abandoned, and the new leader's first pull sees its effect instead of sending the
same changes again.

**Watching.** A renewal's statement may also return a column the pipeline asks for
(:meth:`Lease.watch`): whether a ``syncd retry`` request waits for this connector. A leader's
idle cycles read nothing from the store (``syncd.idle_memo``), so the heartbeat is where they
learn of it, at no extra round trip on PostgreSQL.

**Fencing.** Every transaction that stores pulled pages or records a batch's results checks the
token (:meth:`Lease.check`, which locks the row, so a takeover waits for the commit), and
a batch is sent only after a transaction renewed the lease under the same token
(:meth:`Lease.before_send`): the lease then has a whole ttl left, extended by the heartbeat while
the CRM answers. A process whose token was replaced raises :class:`LeaseLost`: the cycle ends,
its run row says so, and the process becomes a standby. It can therefore never record or send
another batch, nor store a page read before the new holder's writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from syncd.settings import Settings
from syncd.state import LeaseRow, StateStore

__all__ = [
    "Holder",
    "Identity",
    "Lease",
    "LeaseLost",
    "connector_lease",
    "current_holder",
    "recorded_holder",
    "this_process",
]

log = logging.getLogger("syncd.lease")

_TABLE = LeaseRow.__table__  # type: ignore[attr-defined]


class LeaseLost(Exception):
    """This process no longer holds the connector's lease; it must stop writing it."""


@dataclass(frozen=True, slots=True)
class Identity:
    host: str
    pid: int
    process_id: str  # random: a pid reused on another host or after a restart is not us


_IDENTITY: Identity | None = None


def this_process() -> Identity:
    """The holder identity of this process (hostname, pid and a random id)."""
    global _IDENTITY  # noqa: PLW0603 - one identity per process, made on first use
    if _IDENTITY is None or _IDENTITY.pid != os.getpid():  # a forked child is another holder
        _IDENTITY = Identity(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])
    return _IDENTITY


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease, as the lease row says."""

    connector: str
    host: str
    pid: int
    process_id: str
    since: datetime  # UTC
    expires_at: datetime  # UTC
    token: int

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since:%Y-%m-%d %H:%M:%S} UTC"


class Lease:
    """The lease of one connector for this process.

    ``cover`` is the longest one request to the CRM may take (the connector's timeout): a send
    extends the lease to at least that. ``on_change`` is called (from the heartbeat thread)
    whenever this process becomes the leader or stops being it.
    """

    def __init__(
        self,
        store: StateStore,
        connector: str,
        *,
        ttl: timedelta,
        renew_every: timedelta,
        cover: timedelta = timedelta(0),
        identity: Identity | None = None,
        on_change: Callable[[Lease], None] | None = None,
        announce: int = logging.INFO,
    ) -> None:
        if not connector or len(connector) > 64:
            raise ValueError(f"connector name {connector!r} must have 1 to 64 characters")
        self.store = store
        self.connector = connector
        self.ttl = ttl
        self.renew_every = renew_every
        self.cover = cover  # how long one request to the CRM may take (its timeout)
        self.identity = identity or this_process()
        self.on_change = on_change
        # The level of "now leads" / "released": news in a daemon, noise in a one-shot command.
        self.announce = announce
        self.token: int | None = None  # set while leading
        self.since: datetime | None = None
        self.last_holder: Holder | None = None  # the other holder, as last seen while standby
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_path = _lock_file(store, connector)
        self._postgres = store.engine.dialect.name == "postgresql"
        self._valid_until = 0.0  # monotonic: beyond this an unrenewed lease may be someone's
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._standby = False
        #: A column each renewal's statement also returns, and who is told its value (watch).
        self._watch: tuple[ColumnElement[Any], Callable[[Any], None]] | None = None

    # ---- state -------------------------------------------------------------------------

    def watch(self, column: ColumnElement[Any], on_value: Callable[[Any], None]) -> None:
        """Have every renewal's statement also return ``column`` and pass its value to
        ``on_value`` (on the heartbeat thread): a leader whose idle cycles read nothing learns
        of a request queued for it (``syncd.retry_requests``) without a statement of its own."""
        self._watch = (column, on_value)

    @property
    def leader(self) -> bool:
        return self.token is not None

    def _now(self, conn: Connection) -> datetime:
        """The database's clock: every holder judges expiry by the same clock.

        ``clock_timestamp()``, not ``now()``: the latter is the transaction's start.
        """
        if self._postgres:
            value: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
            return value.astimezone(UTC)
        return datetime.now(UTC)  # SQLite: one host, one clock

    def holder(self) -> Holder | None:
        """The holder the lease row names, if any (it may have expired)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(_TABLE).where(_TABLE.c.connector == self.connector)).first()
        return _holder(row) if row is not None else None

    # ---- acquire, renew, release -------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired; True when this process now leads."""
        with self._lock:
            if self.leader:
                return self.renew()
            seen = self.last_holder
            try:
                if not self._take_file_lock():
                    self.last_holder = self.holder()
                    taken = False
                else:
                    taken = self._take_row()
            except SQLAlchemyError as exc:
                log.warning(
                    "%s: could not read the lease (%s); trying again in %.1fs",
                    self.connector,
                    type(exc).__name__,
                    self.renew_every.total_seconds(),
                )
                taken = False
            if not taken:
                self._drop_file_lock()
                if _token(self.last_holder) != _token(seen):  # another holder took over
                    self._changed()
                return False
        log.log(
            self.announce,
            "%s: this process (host %s, pid %d) now leads; fencing token %d",
            self.connector,
            self.identity.host,
            self.identity.pid,
            self.token,
        )
        self._changed()
        return True

    def _take_row(self) -> bool:
        started = time.monotonic()
        me = self.identity
        with self.store.begin(bookkeeping=True) as conn:
            now = self._now(conn)
            stmt = select(_TABLE).where(_TABLE.c.connector == self.connector)
            row = conn.execute(stmt.with_for_update() if self._postgres else stmt).first()
            values = {
                "host": me.host,
                "pid": me.pid,
                "process_id": me.process_id,
                "acquired_at": now,
                "renewed_at": now,
                "expires_at": now + self.ttl,
            }
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(_TABLE).values(connector=self.connector, token=1, **values)
                        )
                except IntegrityError:  # another process inserted it first
                    return False
                token = 1
            else:
                if _utc(row.expires_at) > now:
                    self.last_holder = _holder(row)
                    return False
                token = row.token + 1
                done = conn.execute(
                    update(_TABLE)
                    .where(_TABLE.c.connector == self.connector, _TABLE.c.token == row.token)
                    .values(token=token, **values)
                ).rowcount
                if done != 1:
                    return False
        self.token, self.since, self.last_holder = token, now, None
        self._valid_until = started + self.ttl.total_seconds()
        return True

    def renew(self) -> bool:
        """Extend the lease by a ttl; False (and standby) when another process took it.

        A database error keeps the lease until a ttl since the last renewal has passed.
        """
        with self._lock:
            try:
                return self._extend()
            except SQLAlchemyError as exc:
                if time.monotonic() < self._valid_until:
                    log.warning(
                        "%s: lease renewal failed (%s); retrying",
                        self.connector,
                        type(exc).__name__,
                    )
                    return True
                self._lose(f"it could not be renewed for {self.ttl} ({type(exc).__name__})")
                return False

    def _extend(self, length: timedelta | None = None) -> bool:
        """One renewal transaction under our token (caller holds ``_lock``).

        The expiry becomes at least now + ``length`` (default: the ttl); a renewal never
        shortens an expiry a send extended to cover its request.
        """
        if not self.leader:
            return False
        started = time.monotonic()
        watch = self._watch
        with self.store.begin(bookkeeping=True) as conn:
            now = self._now(conn)
            until = now + (length or self.ttl)
            renewal = (
                update(_TABLE)
                .where(
                    _TABLE.c.connector == self.connector,
                    _TABLE.c.token == self.token,
                    _TABLE.c.process_id == self.identity.process_id,
                )
                .values(
                    renewed_at=now,
                    expires_at=case(
                        (_TABLE.c.expires_at > until, _TABLE.c.expires_at), else_=until
                    ),
                )
            )
            watched = None
            if watch is not None and conn.dialect.update_returning:  # in the renewal itself
                rows = conn.execute(renewal.returning(watch[0])).all()
                done, watched = len(rows), rows[0][0] if rows else None
            else:
                done = conn.execute(renewal).rowcount
                if watch is not None and done == 1:  # SQLite before 3.35: no RETURNING
                    watched = conn.execute(select(watch[0])).scalar()
        if done != 1:
            self._lose("another process took the lease")
            return False
        self._valid_until = started + self.ttl.total_seconds()
        if watch is not None:
            watch[1](watched)
        return True

    def release(self) -> None:
        """Give the lease up now (expire it), so a standby takes over at its next try."""
        with self._lock:
            if self.leader:
                try:
                    with self.store.begin(bookkeeping=True) as conn:
                        now = self._now(conn)
                        conn.execute(
                            update(_TABLE)
                            .where(
                                _TABLE.c.connector == self.connector, _TABLE.c.token == self.token
                            )
                            .values(expires_at=now)
                        )
                    log.log(self.announce, "%s: lease released", self.connector)
                except SQLAlchemyError as exc:
                    log.warning(
                        "%s: could not release the lease (%s); it expires within %s",
                        self.connector,
                        type(exc).__name__,
                        self.ttl,
                    )
                self.token = None
            self._drop_file_lock()

    def _lose(self, why: str) -> None:
        holder = None
        with contextlib.suppress(SQLAlchemyError):
            holder = self.holder()
        self.token = None
        self.last_holder = holder
        self._drop_file_lock()
        log.warning(
            "%s: lease lost: %s%s; this process stops writing and waits as a standby",
            self.connector,
            why,
            f" ({holder.describe()})" if holder else "",
        )
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("%s: lease listener failed", self.connector)

    # ---- fencing -----------------------------------------------------------------------

    def check(self, conn: Connection) -> None:
        """Inside a writing transaction: raise :class:`LeaseLost` unless our token stands.

        The check is a no-op write of the lease row, so the row stays locked until the
        transaction ends: a takeover waits for this commit, and the commit can never land after
        it (on SQLite a plain read would not even open the transaction: pysqlite begins one only
        at the first write).
        """
        token = self.token
        if token is None:
            raise self._lost_error()
        held = conn.execute(
            update(_TABLE)
            .where(
                _TABLE.c.connector == self.connector,
                _TABLE.c.token == token,
                _TABLE.c.process_id == self.identity.process_id,
            )
            .values(token=_TABLE.c.token)
        ).rowcount
        if held != 1:
            # Not blocking: the heartbeat may hold the lock while it waits for this very
            # transaction's database lock; it then finds the loss itself.
            if self._lock.acquire(blocking=False):
                try:
                    if self.token == token:
                        self._lose("its fencing token was replaced")
                finally:
                    self._lock.release()
            else:
                with contextlib.suppress(SQLAlchemyError):
                    self.last_holder = self.holder()
            raise self._lost_error()

    def before_send(self) -> None:
        """Before a batch goes to the CRM: renew under our token, or raise :class:`LeaseLost`.

        After the renewal the lease has a whole ttl left, and at least ``cover`` (the connector's
        request timeout), so a standby cannot take over while this request may still be applied;
        the heartbeat extends it while the CRM answers. A failed renewal stops sending at once.
        """
        if not self.leader or not self._renew_now():
            raise self._lost_error()

    def verify(self) -> None:
        """Raise :class:`LeaseLost` unless the lease row still carries our token.

        ``check`` is one statement, and alone it needs no transaction around it: on PostgreSQL
        one round trip instead of three (``BEGIN``, the check, ``COMMIT``)."""
        with self.store.writing_one(bookkeeping=True) as conn:
            self.check(conn)

    def _renew_now(self) -> bool:
        with self._lock:
            try:
                return self._extend(max(self.ttl, self.cover))
            except SQLAlchemyError as exc:
                log.warning(
                    "%s: lease renewal before a send failed (%s); not sending",
                    self.connector,
                    type(exc).__name__,
                )
                return False

    def _lost_error(self) -> LeaseLost:
        holder = self.last_holder
        return LeaseLost(
            f"{self.connector}: this process no longer holds the lease"
            + (f"; {holder.describe()} holds it" if holder else "")
            + "; it stopped writing and waits as a standby"
        )

    # ---- heartbeat ---------------------------------------------------------------------

    def start(self, *, standby: bool) -> None:
        """Renew while leading, every ``renew_every``, on a thread of its own.

        With ``standby`` the thread also tries to take the lease while another process holds it
        (the daemon); without, a lost lease stays lost (``sync --once``).
        """
        self._standby = standby
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{self.connector}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._closing.wait(self.renew_every.total_seconds()):
            if self.leader:
                self.renew()
            elif self._standby:
                self.try_acquire()

    def close(self) -> None:
        """Stop the heartbeat and release the lease."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_every.total_seconds() + 30)
        self.release()

    def wait_acquire(self, stop: threading.Event | None = None) -> bool:
        """Try until this process leads (True) or ``stop`` is set (False)."""
        stop = stop or threading.Event()
        while not self.try_acquire():
            if stop.wait(self.renew_every.total_seconds()):
                return False
        return True

    # ---- SQLite file lock --------------------------------------------------------------

    def _take_file_lock(self) -> bool:
        if self._lock_path is None or self._lock_fd is not None:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _drop_file_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def current_holder(store: StateStore, connector: str) -> Holder | None:
    """Who holds ``connector``'s lease now (None when nobody does); reads only."""
    holder = recorded_holder(store, connector)
    if holder is None or holder.expires_at <= datetime.now(UTC):
        return None
    return holder


def recorded_holder(store: StateStore, connector: str) -> Holder | None:
    """The holder ``connector``'s lease row names, expired or not (None: never taken)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(_TABLE).where(_TABLE.c.connector == connector)).first()
    return _holder(row) if row is not None else None


def connector_lease(
    store: StateStore,
    settings: Settings,
    name: str,
    on_change: Callable[[Lease], None] | None = None,
    announce: int = logging.INFO,
) -> Lease:
    """The lease of connector ``name`` as the settings describe it (ttl, renewal, timeout)."""
    timeout = (settings.connectors()[name].connector or {}).get("timeout_seconds", 30)
    cover = timedelta(seconds=timeout) if isinstance(timeout, (int, float)) else timedelta(0)
    if settings.lease.ttl < cover:
        log.warning(
            "%s: lease.ttl (%s) is shorter than the connector's request timeout (%s): "
            "each send holds the lease for the timeout, and a standby takes over that "
            "much later after a crash; raise lease.ttl",
            name,
            settings.lease.ttl,
            cover,
        )
    return Lease(
        store,
        name,
        ttl=settings.lease.ttl,
        renew_every=settings.lease.renewal,
        cover=cover,
        on_change=on_change,
        announce=announce,
    )


def _token(holder: Holder | None) -> int | None:
    return holder.token if holder is not None else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _holder(row: Row[Any]) -> Holder:
    return Holder(
        connector=row.connector,
        host=row.host,
        pid=row.pid,
        process_id=row.process_id,
        since=_utc(row.acquired_at),
        expires_at=_utc(row.expires_at),
        token=row.token,
    )


def _lock_file(store: StateStore, connector: str) -> Path | None:
    """The lock file beside a SQLite database file; None for other databases or in memory."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", connector)
    if safe != connector:  # "salesforce/emea" and "salesforce_emea" must not share a file
        safe += "-" + uuid.uuid5(uuid.NAMESPACE_URL, connector).hex[:8]
    return Path(url.database).with_name(f"{Path(url.database).name}.lease-{safe}.lock")
