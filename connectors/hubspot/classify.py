"""HubSpot error responses -> :mod:`connectors.errors` (what the daemon should do next).

Each hubspot-api-client package has its own ``ApiException`` class (crm-api D5), so callers catch
the tuple :data:`API_EXCEPTIONS`. Bodies are parsed leniently: "fields ... should all be treated
as optional in any error parsing" (crm-api C8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hubspot.crm.contacts
import hubspot.crm.lists
import hubspot.crm.properties

from connectors.errors import AuthError, ConnectorError, FatalError, RetriableError
from connectors.kit.errors import ANY, ErrorTable

__all__ = [
    "API_EXCEPTIONS",
    "HubSpotRequestError",
    "error_body",
    "invalid_properties",
    "retry_after",
    "tls_failure",
]

API_EXCEPTIONS: tuple[type[Exception], ...] = (
    hubspot.crm.contacts.ApiException,
    hubspot.crm.lists.ApiException,
    hubspot.crm.properties.ApiException,
)


def tls_failure(exc: AttributeError) -> str | None:
    """The TLS error behind ``exc``, when ``exc`` is hubspot-api-client failing to build its
    own error for one: its rest.py turns the TLS failure into an ApiException(status=0) without
    a body, which its api_client then decodes (``e.body.decode``). None for any other."""
    cause = exc.__context__
    reason = str(getattr(cause, "reason", None) or "")
    if type(cause).__name__ != "ApiException" or not reason.startswith("SSLError"):
        return None
    return reason.splitlines()[-1][:300]


class HubSpotRequestError(FatalError):
    """A 4xx HubSpot answered for a whole request; ``body`` is kept for the connector only."""

    def __init__(self, message: str, *, body: Mapping[str, Any], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.body = dict(body)


def error_body(exc: Exception) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _short(text: object, limit: int = 300) -> str:
    shown = str(text or "")
    return shown if len(shown) <= limit else shown[:limit] + "..."


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What a failed request means: the error to raise and how to say it."""

    error: type[ConnectorError]
    text: str  # formatted with where, status, category, message


_RETRY = _Meaning(RetriableError, "{where} failed with HTTP {status}; will retry")

#: Whole-request failures by HTTP status (429s are handled before, by rate-limit policy).
#: https://developers.hubspot.com/docs/api/error-handling
_REQUEST_ERRORS: ErrorTable[_Meaning] = ErrorTable(
    {
        (401, ANY): _Meaning(
            AuthError,
            "{where} was refused (401 {category}); check the auth "
            "settings (access token or OAuth client and refresh token)",
        ),
        (403, ANY): _Meaning(
            AuthError,
            "{where} is forbidden (403 {category}); grant the app the "
            "scopes crm.objects.contacts.read/write, crm.schemas.contacts.read/write "
            "and crm.lists.read/write",
        ),
        # No HTTP status: the client refused the answer (a value its models do not allow).
        (0, ANY): _Meaning(
            RetriableError, "{where} answered with a body the client could not read; will retry"
        ),
        (408, ANY): _RETRY,
        (423, ANY): _RETRY,
    },
    classes={5: _RETRY},
    default=_Meaning(
        HubSpotRequestError, "{where} was rejected (HTTP {status} {category}): {message}"
    ),
)


def classify(exc: Exception, operation: str) -> ConnectorError:
    """Map a non-429, non-refreshable HubSpot error to a connector error (``_REQUEST_ERRORS``)."""
    status = getattr(exc, "status", None) or 0
    body = error_body(exc)
    category = body.get("category")
    meaning = _REQUEST_ERRORS.lookup(status, category)
    text = meaning.text.format(
        where=f"HubSpot {operation}",
        status=status,
        category=category or "",
        message=_short(body.get("message")),
    )
    if meaning.error is HubSpotRequestError:
        return HubSpotRequestError(text, body=body, crm="hubspot", status=status, code=category)
    return meaning.error(text, crm="hubspot", status=status, code=category)


def invalid_properties(message: str) -> list[dict[str, Any]]:
    """The per-property problems HubSpot serialises as JSON inside ``message`` (crm-api C5).

    ``Property values were not valid: [{"isValid":false,"message":"...","error":"INVALID_OPTION",
    "name":"hs_lead_status"}]`` -> that list; [] when the message holds no such array.
    """
    start = message.find("[")
    if start < 0:
        return []
    try:
        items = json.loads(message[start:])
    except ValueError:
        # Trailing text after the array: decode just the array.
        try:
            items, _ = json.JSONDecoder().raw_decode(message[start:])
        except ValueError:
            return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
