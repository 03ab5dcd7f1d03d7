"""One small object per auth mode; each obtains a session id from the org's token URL.

None of these flows returns a refresh token (crm-api A1): on ``INVALID_SESSION_ID`` the connector
simply grants again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import jwt
import requests

from connectors.errors import AuthError, RetriableError

from .config import AuthSettings, ClientCredentialsAuth, JwtBearerAuth, SessionAuth

__all__ = [
    "Authenticator",
    "ClientCredentialsGrant",
    "JwtBearerGrant",
    "StaticSession",
    "Token",
    "authenticator_for",
]

CRM = "salesforce"


@dataclass(frozen=True, slots=True)
class Token:
    """A granted session. ``repr`` never shows the access token."""

    access_token: str = field(repr=False)
    instance_url: str | None
    user_id: str | None  # the integration user, from the identity URL's last segment


class Authenticator(Protocol):
    """Obtains a fresh :class:`Token`."""

    #: The settings an admin should check when the CRM refuses the credentials.
    settings_hint: str

    def grant(self, session: requests.Session, timeout: float) -> Token: ...


def _post_token(
    session: requests.Session,
    url: str,
    data: dict[str, str],
    timeout: float,
    hint: str,
    auth: tuple[str, str] | None = None,
) -> Token:
    try:
        response = session.post(url, data=data, auth=auth, timeout=timeout)
    except requests.exceptions.SSLError:
        raise AuthError(
            f"TLS verification of the Salesforce token URL {url} failed; check "
            "salesforce.connector.ca_bundle and salesforce.connector.token_url",
            crm=CRM,
        ) from None
    except requests.RequestException as exc:
        raise RetriableError(
            f"Salesforce token URL {url} unreachable ({type(exc).__name__}); will retry", crm=CRM
        ) from None
    if response.status_code >= 500 or response.status_code == 420:
        raise RetriableError(
            f"Salesforce token URL {url} answered HTTP {response.status_code}; will retry",
            crm=CRM,
            status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code in (404, 405) or (response.status_code == 200 and not body):
        # No OAuth token endpoint answered (a wrong path, or a web page): the credentials were
        # never judged, so pointing at them would mislead. The endpoint is
        # /services/oauth2/token and answers bad credentials with 400 invalid_client or
        # invalid_grant (help.salesforce.com: "OAuth Endpoints", "OAuth 2.0 Client
        # Credentials Flow for Server-to-Server Integration").
        raise AuthError(
            f"the Salesforce token URL {url} is no OAuth token endpoint (HTTP "
            f"{response.status_code}, no token); check salesforce.connector.token_url: it "
            "ends in /services/oauth2/token",
            crm=CRM,
            status=response.status_code,
        )
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        description = str(body.get("error_description", ""))[:200] if isinstance(body, dict) else ""
        raise AuthError(
            f"Salesforce refused the token grant at {url} (HTTP "
            f"{response.status_code} {error}: {description}); check {hint}",
            crm=CRM,
            status=response.status_code,
            code=error or None,
        )
    identity = str(body.get("id") or "")
    user_id = identity.rstrip("/").rsplit("/", 1)[-1] if "/id/" in identity else None
    return Token(body["access_token"], body.get("instance_url"), user_id)


@dataclass(slots=True)
class ClientCredentialsGrant:
    """``grant_type=client_credentials`` with HTTP Basic client id/secret (crm-api A1)."""

    token_url: str
    settings: ClientCredentialsAuth
    settings_hint: str = (
        "salesforce.connector.auth.client_id and salesforce.connector.auth.client_secret"
    )

    def grant(self, session: requests.Session, timeout: float) -> Token:
        return _post_token(
            session,
            self.token_url,
            {"grant_type": "client_credentials"},
            timeout,
            self.settings_hint,
            auth=(self.settings.client_id, self.settings.client_secret.get_secret_value()),
        )


@dataclass(slots=True)
class JwtBearerGrant:
    """``grant_type=jwt-bearer`` with an RS256 assertion: iss, sub, aud, exp (crm-api A1)."""

    token_url: str
    settings: JwtBearerAuth
    clock: Callable[[], datetime]
    settings_hint: str = (
        "salesforce.connector.auth.client_id, "
        "salesforce.connector.auth.username, "
        "salesforce.connector.auth.private_key and "
        "salesforce.connector.auth.audience"
    )

    def grant(self, session: requests.Session, timeout: float) -> Token:
        now = self.clock()
        claims = {
            "iss": self.settings.client_id,
            "sub": self.settings.username,
            "aud": self.settings.audience,
            "exp": int((now + timedelta(minutes=3)).timestamp()),
        }
        try:
            assertion = jwt.encode(
                claims, self.settings.private_key.get_secret_value(), algorithm="RS256"
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            raise AuthError(
                "salesforce.connector.auth.private_key is not a usable RSA private key (PEM)",
                crm=CRM,
            ) from None
        return _post_token(
            session,
            self.token_url,
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
            timeout,
            self.settings_hint,
        )


@dataclass(slots=True)
class StaticSession:
    """A given session id; "granting" returns it again, so a second 401 is final."""

    settings: SessionAuth
    settings_hint: str = (
        "salesforce.connector.auth.session_id (it cannot be renewed; issue a new one)"
    )

    def grant(self, session: requests.Session, timeout: float) -> Token:
        return Token(self.settings.session_id.get_secret_value(), None, None)


def authenticator_for(
    settings: AuthSettings, token_url: str, clock: Callable[[], datetime]
) -> Authenticator:
    """The authenticator for the configured mode."""
    if isinstance(settings, ClientCredentialsAuth):
        return ClientCredentialsGrant(token_url, settings)
    if isinstance(settings, JwtBearerAuth):
        return JwtBearerGrant(token_url, settings, clock)
    return StaticSession(settings)
