"""Logging: readable text on a terminal, one JSON object per line for log shippers.

Nothing syncd logs contains a secret: settings values are never logged, connector errors carry
the CRM's error code and message but never tokens or request bodies.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["setup_logging"]

_EXTRA_KEYS = ("crm", "run_id", "outcome", "lead_id")


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
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(settings: Any, *, quiet: bool = False) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: "
                                               "%(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if quiet else settings.level)
    # The client libraries log full URLs with query strings at DEBUG; keep them quieter.
    for noisy in ("urllib3", "apscheduler", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
