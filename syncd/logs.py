"""Logging: readable text on a terminal, one JSON object per line for log shippers.

Nothing syncd logs contains a secret: settings values are never logged, connector errors carry
the CRM's error code and message but never tokens or request bodies.

With ``log.format: json`` every line the process writes is a JSON object: records carry their
fields (``crm``, ``run_id``, ``lead_id``, ...) as keys, an exception is ``exc_type``,
``exc_message`` and ``traceback`` (a string), and Python warnings and uncaught exceptions in
any thread go through the same handler. The ``crm`` and ``run_id`` of the cycle a thread is
running are added to every record it logs (:func:`cycle_context`), so a connector's retry
lines say which cycle they belong to without the connector knowing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

__all__ = ["cycle_context", "json_mode", "setup_logging"]

#: Record attributes copied into a JSON line when a record has them.
_EXTRA_KEYS = (
    "crm",
    "run_id",
    "outcome",
    "lead_id",
    "field",
    "before",
    "after",
    "rule",
    "done",
    "total",
    "percent",
    "rate",
    "skipped",
    "problem",
)

_cycle: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "syncd_cycle", default=None
)
_state = {"json": False}


def json_mode() -> bool:
    """Whether the process logs JSON (so the CLI reports errors as records too)."""
    return _state["json"]


@contextmanager
def cycle_context(crm: str, run_id: str) -> Iterator[None]:
    """Tag every record logged in this context (this thread, this cycle) with crm and run id."""
    token = _cycle.set({"crm": crm, "run_id": run_id})
    try:
        yield
    finally:
        _cycle.reset(token)


class _CycleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _cycle.get()
        if context:
            for key, value in context.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["exc_type"] = type(exc).__name__
            entry["exc_message"] = str(exc)
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now: a progress bar's redirect keeps lines above
    the bar instead of through it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def setup_logging(settings: Any, *, quiet: bool = False) -> None:
    """Configure the root logger once per process."""
    handler = _StderrHandler()
    _state["json"] = settings.format == "json"
    if _state["json"]:
        handler.setFormatter(JsonFormatter())
        _route_uncaught_exceptions()
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(_CycleFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if quiet else settings.level)
    logging.captureWarnings(True)  # warnings.warn() as records, not bare stderr lines
    # The client libraries log full URLs with query strings at DEBUG; keep them quieter.
    for noisy in ("urllib3", "apscheduler", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _route_uncaught_exceptions() -> None:
    """An exception nobody caught is a JSON record too, not a traceback printed raw."""
    log = logging.getLogger("syncd")

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            log.critical(
                "uncaught %s in thread %s: %s",
                args.exc_type.__name__,
                args.thread.name if args.thread else "?",
                args.exc_value,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )

    sys.excepthook = hook
    threading.excepthook = thread_hook
