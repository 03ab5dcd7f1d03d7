"""Opening the state store at start-up, with one clear line for every way it can fail.

The store is checked before any CRM is contacted: a daemon that could not record what it
pulled or planned must not pull or plan. Problems point at ``state.url`` in the config file
and never show a password.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.settings import Settings
from syncd.state import StateStore, StateStoreError
from syncd.yamlfile import Located

__all__ = [
    "in_memory",
    "open_store",
    "read_only_snapshot",
    "reading_store",
    "state_url",
    "store_problem",
]


def open_store(settings: Settings, *, writable: bool = True) -> StateStore:
    """Open (and create) the state store; with ``writable``, prove a write commits.

    Raises:
        StartupError: the store cannot be opened, created or written, with what to do.
    """
    from syncd.app import StartupError

    url = settings.state.url.get_secret_value()
    try:
        url = state_url(settings)
        if writable:
            store = StateStore(url, auto_upgrade=settings.state.auto_upgrade)
        else:
            store = reading_store(url, auto_upgrade=settings.state.auto_upgrade)
    except StateStoreError as exc:
        raise StartupError([_located(settings, str(exc))]) from None
    except OSError as exc:
        raise StartupError([_located(settings, exc.strerror or str(exc))]) from None
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StartupError([_located(settings, _explain(url, exc))]) from None
    if writable:
        try:
            # A read-only SQLite file (or a database user without write grants) opens fine
            # and fails only at the first write: find out now, not in the first cycle.
            store.set_meta("last_start", datetime.now(UTC).isoformat())
        except SQLAlchemyError as exc:
            store.close()
            raise StartupError(
                [
                    _located(
                        settings,
                        (
                            f"the state store {_safe(url)} refuses writes ({_first_line(exc)}); syncd keeps "
                            "its mirror, cursors and outbox there: make it writable (file permissions, "
                            "database grants) or point state.url elsewhere"
                        ),
                    )
                ]
            ) from None
    return store


def reading_store(url: str, *, auto_upgrade: bool | None) -> StateStore:
    """The store at ``url`` for a command that only reads: a read-only snapshot where
    :func:`read_only_snapshot` gives one (never upgraded), else opened as usual.

    Raises:
        StateStoreError: as ``StateStore`` raises it.
    """
    snapshot = read_only_snapshot(url)
    if snapshot is not None:
        return StateStore(snapshot, auto_upgrade=False)
    return StateStore(url, auto_upgrade=auto_upgrade)


def read_only_snapshot(url: str) -> str | None:
    """For a command that only reads (``status``, ``plan``, ``explain``, ``report``): the URL of
    the SQLite state file opened read-only as it stands, when this process may not write the
    file or its directory (an operator's own account beside the daemon's) and no process has
    it open. Else None: the file is opened as usual.

    SQLite opens a WAL-mode file read-only only while its ``-shm`` index exists or can be
    made (https://sqlite.org/wal.html, "Read-Only Databases"): while a daemon has the file
    open it exists, and the usual open reads it; once the last connection closed, SQLite
    removed it, and a reader that may not create it is refused ("attempt to write a readonly
    database"). No ``-wal`` file means no connection has the file open, so the file alone is
    the whole store: it is read with ``immutable=1`` (https://sqlite.org/uri.html), which
    makes no ``-shm`` and takes no lock. A daemon starting during such a read writes under
    it; the command then reads what it can, or fails with a store error and may be run
    again.
    """
    if not url.startswith("sqlite:///"):
        return None
    rel = url.removeprefix("sqlite:///")
    if not rel or rel.startswith((":memory:", "file:")) or "?" in rel:
        return None
    path = Path(rel)
    if not path.is_file() or Path(f"{path}-wal").exists():
        return None
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    return f"sqlite:///file:{quote(str(path), safe='/')}?mode=ro&immutable=1&uri=true"


def in_memory(url: str) -> bool:
    """Whether ``url`` is an SQLite database in memory (``sqlite://``, ``:memory:``, or a URI
    with ``mode=memory``): gone when the process ends. A URL that does not parse is not."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if not parsed.drivername.startswith("sqlite"):
        return False
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return True
    return database.startswith("file:") and (
        "mode=memory" in database or parsed.query.get("mode") == "memory"
    )


def store_problem(settings: Settings, exc: BaseException) -> Located:
    """The one line for a state store that could not be reached or used (``exc`` raised
    while opening or reading it), as :func:`open_store` says it, password hidden."""
    if isinstance(exc, OSError) and not isinstance(exc, SQLAlchemyError):
        return _located(settings, exc.strerror or str(exc))
    return _located(settings, _explain(settings.state.url.get_secret_value(), exc))


def state_url(settings: Settings) -> str:
    """The state store's URL: a relative SQLite path resolved, and its directory created.

    Raises:
        OSError: the SQLite file's directory cannot be created, or the path is a directory.
        ValueError: the URL's password holds an unencoded '@'.
    """
    url = settings.state.url.get_secret_value()
    if "@" in (_host(url) or ""):
        # The URL parser splits at the first '@', so the rest of the password would be shown
        # (and tried) as the host name.
        raise ValueError(
            "its password or user name holds an '@' that is not percent-encoded; write it as "
            "%40 (and ':' as %3A, '/' as %2F)"
        )
    return _sqlite_path_made(settings, url)


def state_dir(settings: Settings) -> Path:
    """Where relative state paths live: ``state.dir``; systemd's ``$STATE_DIRECTORY`` (the
    first, when it lists several); or, as for every other path in the config, the config
    file's directory."""
    if settings.state.dir is not None:
        return settings.path(settings.state.dir)
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    return settings.path(Path("."))


def _sqlite_path_made(settings: Settings, url: str) -> str:
    """Resolve a relative SQLite path against the state directory (``state.dir``, else
    ``$STATE_DIRECTORY``, else the config file's directory) and create its directory."""
    if not url.startswith("sqlite:///"):
        return url
    rel = url.removeprefix("sqlite:///")
    if not rel or rel.startswith((":memory:", "file:")):
        return url
    path = Path(rel)
    if not path.is_absolute():
        path = state_dir(settings) / path
        url = f"sqlite:///{path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            f"cannot create the directory {path.parent} for the SQLite state file "
            f"({exc.strerror}); create it, fix its permissions or point state.url "
            "elsewhere"
        ) from None
    if path.is_dir():
        raise OSError(
            f"the SQLite state file {path} is a directory; point state.url at a file path"
        )
    return url


def _explain(url: str, exc: BaseException) -> str:
    if isinstance(exc, (ArgumentError, ValueError)):
        return (
            f"not a usable database URL ({_first_line(exc)}); use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        )
    if isinstance(exc, ImportError):
        return (
            f"no database driver for '{_safe(url)}' ({_first_line(exc)}); use sqlite:/// "
            "or postgresql+psycopg://"
        )
    if url.startswith("sqlite"):
        return (
            f"cannot open the SQLite state file of {_safe(url)} ({_first_line(exc)}); "
            "check that the path is a writable file, or point state.url elsewhere"
        )
    return (
        f"cannot reach the state store {_safe(url)} ({_first_line(exc)}); start the "
        "database, check state.url, or check the network to it"
    )


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "state.url"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _located(settings: Settings, message: str) -> Located:
    # A driver's error text could quote the URL: the password never reaches the user.
    url = settings.state.url.get_secret_value()
    for form in sorted(_password_forms(url), key=len, reverse=True):
        message = _hidden(message, form)
    return settings.located(("state", "url"), f"state.url: {message}")


def _password_forms(url: str) -> set[str]:
    """Every way ``url``'s passwords may be quoted: after the user name or as a query parameter
    (``?password=...``, which libpq takes too), decoded and percent-encoded ('p@ss', 'p%40ss')."""
    forms: set[str] = set()
    try:
        parts = urlsplit(url)
        written = [parts.password or ""] + [
            value
            for name, _, value in (item.partition("=") for item in parts.query.split("&"))
            if "password" in unquote(name).lower()
        ]
    except ValueError:  # an unbalanced '[' in the host
        written = []
    for raw in [*written, _password(url) or ""]:
        forms.add(raw)
        for plain in (unquote(raw), unquote_plus(raw)):
            # SQLAlchemy shows a query value with quote_plus ('p%40ss+w0rd' for 'p@ss w0rd').
            forms |= {plain, quote(plain, safe=""), quote(plain), quote_plus(plain)}
    return forms - {""}


#: A password at least this long is hidden wherever it appears: no word of a driver's message
#: contains it by chance. A shorter one ('a', 'pw', '1234') is hidden only where it stands
#: alone, between characters that are not ASCII letters or digits (as it does in a URL, a DSN's
#: ``password=...`` or quotes): hidden inside every word, a one-letter password turned "cannot
#: reach the state store" into "c***nnot re***ch the st***te store", and the message was lost.
#: A short password stays a weak password; this only keeps the error about it readable.
_HIDDEN_ANYWHERE_FROM = 8


def _hidden(message: str, secret: str) -> str:
    """``message`` with ``secret`` replaced by ``***`` (see ``_HIDDEN_ANYWHERE_FROM``)."""
    if len(secret) >= _HIDDEN_ANYWHERE_FROM:
        return message.replace(secret, "***")
    alone = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
    return re.sub(alone, "***", message)


def _host(url: str) -> str | None:
    try:
        return make_url(url).host
    except (ArgumentError, ValueError):
        return None


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None
