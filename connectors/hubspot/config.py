"""Settings of one HubSpot account for :class:`connectors.hubspot.HubSpotConnector`."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.kit.fields import FieldTypeName, merge_fields
from connectors.kit.retry import RetrySettings
from connectors.kit.urls import web_url

__all__ = ["DEFAULT_FIELDS", "RETRY_DEFAULTS", "HubSpotConfig", "OAuthAuth", "PrivateAppAuth"]

#: canonical lead field (rules.fields) -> HubSpot contact property
DEFAULT_FIELDS: dict[str, str] = {
    "status": "hs_lead_status",
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "title": "jobtitle",
    "company": "company",
    "industry": "industry",
    "country": "country",
    "employees": "numemployees",
    "annual_revenue": "annualrevenue",
    "lead_source": "hs_analytics_source",
    "created_at": "createdate",
    "last_activity_at": "notes_last_updated",
    "owner": "hubspot_owner_id",
    "budget": "bant_budget",
    "authority": "bant_authority",
    "need": "bant_need",
    "timeline": "bant_timeline",
    "lifecycle_stage": "lifecyclestage",
}

TOKEN_PATH = "/oauth/v1/token"

#: HubSpot's retry defaults; keys a ``retry:`` block leaves out take these values.
RETRY_DEFAULTS: dict[str, float] = {
    "attempts": 4,
    "initial_backoff_seconds": 0.5,
    "max_backoff_seconds": 30.0,
    "jitter_seconds": 0.0,
}
#: Flat retry keys of earlier versions -> their place in ``retry``.
LEGACY_RETRY_KEYS = {
    "max_attempts": "attempts",
    "retry_initial_seconds": "initial_backoff_seconds",
    "retry_max_seconds": "max_backoff_seconds",
}


class PrivateAppAuth(BaseModel):
    """A private ("legacy") app's static access token (crm-api C1)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["private_app"] = "private_app"
    access_token: SecretStr = Field(description="Private app access token (pat-...).")


class OAuthAuth(BaseModel):
    """An OAuth app: access tokens are obtained and renewed with the refresh-token grant."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["oauth"] = "oauth"
    client_id: str = Field(description="OAuth app client id.")
    client_secret: SecretStr = Field(description="OAuth app client secret.")
    refresh_token: SecretStr = Field(description="Refresh token granted to the app.")
    token_url: str = Field(
        default="https://api.hubapi.com/oauth/v1/token",
        description="Token endpoint; must end with /oauth/v1/token.",
    )
    refresh_margin_seconds: float = Field(
        default=120.0, ge=0, description="Refresh this long before the access token expires."
    )

    @field_validator("token_url")
    @classmethod
    def _token_path(cls, value: str) -> str:
        # http:// is allowed: the emulator serves the tests' OAuth on loopback.
        value = web_url(value, https_only=False, example="https://api.hubapi.com" + TOKEN_PATH)
        if not value.rstrip("/").endswith(TOKEN_PATH):
            raise ValueError(f"token_url must end with {TOKEN_PATH} (got {value!r})")
        return value.rstrip("/")

    @property
    def token_host(self) -> str:
        """The scheme+host part the hubspot-api-client OAuth API is pointed at."""
        return self.token_url[: -len(TOKEN_PATH)]


class HubSpotConfig(BaseModel):
    """One HubSpot account: where, how to authenticate, what to map and how fast to go.

    Retries are set in a ``retry:`` block shaped as Salesforce's (``attempts``,
    ``initial_backoff_seconds``, ``max_backoff_seconds``, ``jitter_seconds``). The flat keys of
    earlier versions are still accepted and moved into it: ``max_attempts`` -> ``retry.attempts``,
    ``retry_initial_seconds`` -> ``retry.initial_backoff_seconds``, ``retry_max_seconds`` ->
    ``retry.max_backoff_seconds``; giving one both ways is an error.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default="https://api.hubapi.com",
        description="API root; the emulator's base_url in tests and the demo.",
    )
    auth: Annotated[PrivateAppAuth | OAuthAuth, Field(discriminator="type")] = Field(
        description="Credentials: a private app token or an OAuth refresh token."
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Per-request timeout (connect + read)."
    )
    page_size: int = Field(
        default=200,
        ge=1,
        le=200,
        description="Search page size; HubSpot allows up to 200 (crm-api C2).",
    )
    overlap_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Re-read this far behind the cursor: covers search index lag (crm-api C2).",
    )
    lag_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Read only changes at least this old (upper bound = min(until, now - lag)).",
    )
    fields: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FIELDS),
        description="Canonical lead field -> HubSpot property name; extends the defaults (an "
        "entry mapped to null removes one).",
    )
    field_types: dict[str, FieldTypeName] = Field(
        default_factory=dict,
        description="Types of custom canonical fields (standard ones are built in).",
    )
    newsletters: dict[str, str] = Field(
        default_factory=dict,
        description="Newsletter name -> ILS list id (MANUAL or SNAPSHOT list, crm-api C6).",
    )
    allow_add_status_options: bool = Field(
        default=False,
        description="Let start-up add missing hs_lead_status options (merged, never replaced): "
        "check() lists them, prepare() adds them once every CRM accepted the rules.",
    )
    ten_second_limit: int = Field(
        default=100,
        ge=1,
        description="Calls per rolling 10 s for this app (tier table, crm-api C7); the "
        "X-HubSpot-RateLimit-Max header lowers it when smaller.",
    )
    ten_second_headroom: int = Field(
        default=5, ge=0, description="Calls kept free in the 10 s window for other clients."
    )
    # 4.75/s: 95 % of HubSpot's 5/s with 10 ms between calls to spare, enough for the jitter
    # between when a call leaves here and when HubSpot counts it (docs/benchmarks.md §3: zero
    # 429s at this rate; 4/s capped a backfill at 80 % of what the limit allows).
    search_per_second: float = Field(
        default=4.75, gt=0, description="Search calls per second; HubSpot allows 5 (crm-api C2)."
    )
    daily_limit: int | None = Field(
        default=None,
        ge=1,
        description="Most calls per day this connector may make (its share of the account's "
        "daily limit); None: only HubSpot's DAILY 429 stops it.",
    )
    daily_reset_timezone: str = Field(
        default="UTC", description="Time zone whose midnight resets the daily limit (crm-api C7)."
    )
    archived_scan_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Scan archived contacts at most this often, so an idle cycle costs one call; "
        "read the contact properties again this often, to find mapped ones archived since.",
    )
    retry: RetrySettings = Field(
        default_factory=lambda: RetrySettings.model_validate(RETRY_DEFAULTS),
        description="Retries of transient failures (5xx, resets, timeouts, 429s): attempts, "
        "initial_backoff_seconds, max_backoff_seconds, jitter_seconds.",
    )

    @field_validator("base_url")
    @classmethod
    def _api_root(cls, value: str) -> str:
        # http:// is allowed: the emulator serves the demo and the tests on loopback.
        return web_url(value, https_only=False, example="https://api.hubapi.com")

    @field_validator("daily_reset_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as America/New_York or "
                "Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _headroom_below_limit(self) -> HubSpotConfig:
        # The pacer keeps at least one call a window, so a headroom as large as the limit
        # would not fail: it would slow every cycle to one call per ten seconds.
        if self.ten_second_headroom >= self.ten_second_limit:
            raise ValueError(
                f"ten_second_headroom ({self.ten_second_headroom}) leaves none of "
                f"ten_second_limit ({self.ten_second_limit}) for syncd; keep it below the limit"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _retry_block(cls, data: Any) -> Any:
        """Fill ``retry`` with HubSpot's defaults and move the legacy flat keys into it."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = data.get("retry")
        if given is not None and not isinstance(given, dict):
            return data  # a RetrySettings instance, or a type error pydantic reports
        retry = {**RETRY_DEFAULTS, **(given or {})}
        for old, new in LEGACY_RETRY_KEYS.items():
            if old in data:
                if given and new in given:
                    raise ValueError(
                        f"{old} and retry.{new} both given; keep retry.{new} "
                        f"({old} is its old name)"
                    )
                retry[new] = data.pop(old)
        data["retry"] = retry
        return data

    @field_validator("fields", mode="before")
    @classmethod
    def _extend_defaults(cls, value: object) -> object:
        return merge_fields(DEFAULT_FIELDS, value)

    @field_validator("base_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.rstrip("/")
