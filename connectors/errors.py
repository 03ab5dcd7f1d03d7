"""Errors a connector raises for a whole request, grouped by what the daemon should do next.

::

    ConnectorError
    ├── RetriableError(retry_after)      try again after a delay (5xx, 420, timeouts, resets)
    │   └── RateLimited(retry_after)     the CRM's short window is full (HubSpot TEN_SECONDLY)
    ├── Interrupted                  the daemon is stopping: a retry or pacing wait was cut
    │                                    short; nothing more was sent
    ├── BudgetExhausted(resume_at)       the daily quota is spent (or past the configured share):
    │                                    stop this connector's work until resume_at
    └── FatalError                       retrying will not help; an admin must act
        ├── AuthError                    credentials refused twice; names the setting to check
        └── ConfigurationError           the CRM lacks what the config or rules need

Per-record failures are not exceptions: see :class:`connectors.base.RecordResult`.
Messages say what failed, where and what to do; they never carry tokens, secrets, whole
request bodies or whole lead payloads.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AuthError",
    "BudgetExhausted",
    "ConfigurationError",
    "ConnectorError",
    "FatalError",
    "Interrupted",
    "RateLimited",
    "RetriableError",
]


class ConnectorError(Exception):
    """Base of every whole-request connector failure.

    ``status`` is the HTTP status of the last attempt's answer (None: no answer). A request
    retried after an attempt that got no answer may have been applied by that attempt,
    whatever the last one answered: ``unanswered_attempts`` counts them (set by the retry layer,
    ``connectors.kit.retry``).
    """

    def __init__(
        self, message: str, *, crm: str = "", status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.crm = crm
        self.status = status
        self.code = code
        self.unanswered_attempts = 0

    @property
    def unanswered(self) -> bool:
        """This attempt got no answer from the CRM itself: none at all (a timeout, a reset), or
        a gateway's 502/504, behind which the CRM may have applied the request."""
        return self.status is None or self.status in (502, 504)


class RetriableError(ConnectorError):
    """Transient: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The CRM's short rate window is full; wait ``retry_after`` seconds."""


class Interrupted(ConnectorError):
    """The daemon asked to stop while the connector waited to retry or to pace a request."""


class BudgetExhausted(ConnectorError):
    """The daily API budget is spent; this connector pauses until ``resume_at``."""

    def __init__(self, message: str, *, resume_at: datetime | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.resume_at = resume_at


class FatalError(ConnectorError):
    """Retrying will not help; an admin must change something."""


class AuthError(FatalError):
    """The CRM refused the credentials."""


class ConfigurationError(FatalError):
    """The CRM lacks a status, field, campaign or list that the config or rules need."""
