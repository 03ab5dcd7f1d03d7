"""Access tokens for HubSpot calls: a private app's static token or OAuth refresh-token grants.

OAuth access tokens live ``expires_in`` seconds (default 1800); they are renewed shortly before
expiry and once more when HubSpot answers 401 anyway (clock skew, revocation). HubSpot warns that
401s are not the signal to refresh (crm-api C1), hence the proactive refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import hubspot.oauth
import urllib3
from hubspot import HubSpot

from connectors.errors import AuthError, RetriableError
from connectors.hubspot.classify import tls_failure
from connectors.hubspot.config import OAuthAuth, PrivateAppAuth

__all__ = ["OAuthTokens", "PrivateAppToken", "TokenSource", "token_source"]


class TokenSource(Protocol):
    can_refresh: bool
    refreshes: int

    def token(self) -> str:
        """A token valid for the next call (may refresh first)."""

    def refresh(self) -> str:
        """Get a new token now (after a 401)."""


class PrivateAppToken:
    """A static private-app token; a 401 cannot be cured by refreshing."""

    can_refresh = False

    def __init__(self, auth: PrivateAppAuth) -> None:
        self._token = auth.access_token.get_secret_value()
        self.refreshes = 0

    def token(self) -> str:
        return self._token

    def refresh(self) -> str:
        raise AuthError(
            "HubSpot refused the private app token; check "
            "hubspot.connector.auth.access_token and the app's scopes",
            crm="hubspot",
            status=401,
        )


class OAuthTokens:
    """Refresh-token grant against ``POST /oauth/v1/token`` through hubspot-api-client."""

    can_refresh = True

    def __init__(self, auth: OAuthAuth, *, clock: Callable[[], datetime], timeout: float) -> None:
        self._auth, self._clock, self._timeout = auth, clock, timeout
        # Built once (crm-api D1); retry=False: our own retry layer is the only one (crm-api D4).
        self._api = HubSpot(host=auth.token_host, retry=False).oauth.tokens_api
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self.refreshes = 0

    def token(self) -> str:
        margin = timedelta(seconds=self._auth.refresh_margin_seconds)
        if (
            self._token is None
            or self._expires_at is None
            or (self._clock() >= self._expires_at - margin)
        ):
            return self.refresh()
        return self._token

    def refresh(self) -> str:
        try:
            resp = self._api.create(
                grant_type="refresh_token",
                client_id=self._auth.client_id,
                client_secret=self._auth.client_secret.get_secret_value(),
                refresh_token=self._auth.refresh_token.get_secret_value(),
                _request_timeout=self._timeout,
            )
        except hubspot.oauth.ApiException as e:
            if e.status and 400 <= e.status < 500:
                raise AuthError(
                    f"HubSpot refused the OAuth refresh (HTTP {e.status}); check "
                    "hubspot.connector.auth.client_id, hubspot.connector.auth.client_secret and "
                    "hubspot.connector.auth.refresh_token",
                    crm="hubspot",
                    status=e.status,
                ) from None
            raise RetriableError(
                f"HubSpot token endpoint failed (HTTP {e.status}); will retry",
                crm="hubspot",
                status=e.status,
            ) from None
        except urllib3.exceptions.HTTPError as e:
            raise RetriableError(
                f"HubSpot token endpoint unreachable ({type(e).__name__}); will retry",
                crm="hubspot",
            ) from None
        except AttributeError as e:
            tls = tls_failure(e)
            if tls is None:
                raise
            raise AuthError(
                f"TLS with the HubSpot token URL {self._auth.token_url} failed ({tls}); check "
                "hubspot.connector.auth.token_url and that this machine trusts the server's "
                "certificate (a proxy's CA)",
                crm="hubspot",
            ) from None
        self.refreshes += 1
        self._token = resp.access_token
        self._expires_at = self._clock() + timedelta(seconds=resp.expires_in or 1800)
        return self._token


def token_source(
    auth: PrivateAppAuth | OAuthAuth, *, clock: Callable[[], datetime], timeout: float
) -> TokenSource:
    if isinstance(auth, PrivateAppAuth):
        return PrivateAppToken(auth)
    return OAuthTokens(auth, clock=clock, timeout=timeout)
