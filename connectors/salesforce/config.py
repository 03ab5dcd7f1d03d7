"""Settings of one Salesforce connection (pydantic v2; unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.kit.fields import FieldTypeName, merge_fields
from connectors.kit.retry import RetrySettings
from connectors.kit.urls import web_url

__all__ = [
    "DEFAULT_FIELDS",
    "AuthSettings",
    "ClientCredentialsAuth",
    "JwtBearerAuth",
    "RetrySettings",
    "SalesforceConfig",
    "SessionAuth",
]

_MODEL = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

#: Canonical lead field name -> Salesforce Lead API name.
DEFAULT_FIELDS: dict[str, str] = {
    "status": "Status",
    "email": "Email",
    "first_name": "FirstName",
    "last_name": "LastName",
    "title": "Title",
    "company": "Company",
    "industry": "Industry",
    "country": "Country",
    "employees": "NumberOfEmployees",
    "annual_revenue": "AnnualRevenue",
    "lead_source": "LeadSource",
    "created_at": "CreatedDate",
    "last_activity_at": "LastActivityDate",
    "owner": "OwnerId",
    "budget": "Budget__c",
    "authority": "Authority__c",
    "need": "Need__c",
    "timeline": "Timeline__c",
}


class ClientCredentialsAuth(BaseModel):
    """OAuth 2.0 client credentials against the org's My Domain (crm-api A1, recommended)."""

    model_config = _MODEL
    type: Literal["client_credentials"] = "client_credentials"
    """Selects this auth mode."""
    client_id: str
    """Consumer key of the connected app (with a "run as" integration user)."""
    client_secret: SecretStr
    """Consumer secret of the connected app."""


class JwtBearerAuth(BaseModel):
    """OAuth 2.0 JWT bearer: an RS256 assertion signed with the connected app's key (crm-api A1)."""

    model_config = _MODEL
    type: Literal["jwt_bearer"] = "jwt_bearer"
    """Selects this auth mode."""
    client_id: str
    """Consumer key of the connected app (the JWT ``iss``)."""
    username: str
    """Salesforce username of the integration user (the JWT ``sub``)."""
    private_key: SecretStr
    """PEM private key whose certificate is uploaded to the connected app."""
    audience: str = "https://login.salesforce.com"
    """JWT ``aud``: login.salesforce.com, test.salesforce.com or the My Domain URL."""


class SessionAuth(BaseModel):
    """A ready-made session id (e.g. from a dev tool); cannot be renewed by syncd."""

    model_config = _MODEL
    type: Literal["session"] = "session"
    """Selects this auth mode."""
    session_id: SecretStr
    """The access token / session id, sent as ``Authorization: Bearer``."""


AuthSettings = Annotated[
    ClientCredentialsAuth | JwtBearerAuth | SessionAuth, Field(discriminator="type")
]


class SalesforceConfig(BaseModel):
    """Everything the Salesforce connector needs; secrets are ``SecretStr``."""

    model_config = _MODEL
    instance_url: str
    """The org's REST base, e.g. ``https://acme.my.salesforce.com``."""
    token_url: str
    """The org's My Domain token URL, e.g. ``https://acme.my.salesforce.com/services/oauth2/token``
    (client credentials do not work on login.salesforce.com, crm-api A1)."""
    api_version: str = Field("59.0", pattern=r"^\d+\.\d$")
    """REST API version, without the leading ``v`` (crm-api B1)."""
    auth: AuthSettings
    """How syncd authenticates: ``client_credentials``, ``jwt_bearer`` or ``session``."""
    ca_bundle: Path | None = None
    """CA bundle (PEM) that verifies the server; None uses the system store."""
    timeout_seconds: float = Field(30, gt=0)
    """Timeout of every HTTP call (connect and read)."""
    page_size: int = Field(2000, ge=200, le=2000)
    """Query batch size sent as ``Sforce-Query-Options: batchSize`` (200..2000, crm-api A2)."""
    overlap_seconds: float = Field(300, ge=0)
    """Re-read this far before the cursor, for rows committed late with an earlier
    SystemModstamp (crm-api A3.2). 0 resumes exactly after the cursor."""
    lag_seconds: float = Field(5, ge=0)
    """Never read changes newer than now minus this, so in-flight transactions settle first."""
    fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FIELDS))
    """Canonical lead field name -> Lead API field name. Entries given here extend the
    defaults; an entry mapped to null (or ``""``) removes a default."""
    field_types: dict[str, FieldTypeName] = Field(default_factory=dict)
    """Rule-language types of custom canonical fields (``string`` when not given)."""
    newsletters: dict[str, str] = Field(default_factory=dict)
    """Newsletter name (as the rules say it) -> Campaign Id."""
    campaign_member_status: str | None = None
    """CampaignMember Status for added leads; None uses the campaign's default."""
    auto_assign: bool = False
    """Run lead assignment rules on update (``Sforce-Auto-Assign``); off so syncd never
    reassigns owners."""
    duplicate_rule_allow_save: bool | None = None
    """``Sforce-Duplicate-Rule-Header: allowSave=...``; None sends no header (org default)."""
    max_daily_api_share: float = Field(0.8, gt=0, le=1)
    """Stop this connector's work when used/limit of the daily API calls reaches this share."""
    budget_pause_seconds: int = Field(3600, ge=60)
    """How long to pause after the daily budget is spent (the window is a rolling 24 h)."""
    delete_log_days: int = Field(15, ge=1)
    """Days deleted leads stay visible to queryAll (recycle bin, crm-api A4); a cursor not read for
    longer than this triggers a full reconcile."""
    batch_size: int = Field(200, ge=1, le=200)
    """Records per sObject Collections update (1..200). Lower it for orgs whose triggers and
    flows hit governor limits on 200-record batches; a batch that still fails whole with a
    limit error is split in halves and retried (docs/crm-api.md#a15)."""
    composite: bool = True
    """Send field updates and CampaignMember inserts of a cycle through the Composite
    resource, up to 5 collections (1,000 records) per counted API call (docs/crm-api.md#a6);
    false sends each collection as a call of its own."""
    concurrent_limit_backoff_seconds: float = Field(10, gt=0, le=600)
    """Wait before retrying after ``REQUEST_LIMIT_EXCEEDED`` for *concurrent* long-running
    requests (a short condition, unlike the daily limit, docs/crm-api.md#a11)."""
    bulk_read_threshold: int | None = Field(0, ge=0)
    """A pull expected to read more leads than this (the ``totalSize`` of its first REST query
    page) reads the rest through a Bulk API 2.0 ``queryAll`` job instead of query pages
    (docs/crm-api.md A7) when the job costs fewer counted calls (create, one look, one results
    page per ``bulk_results_page_size``) than the remaining REST pages; the first page's leads
    are kept and the job reads only those after them. 0 (the default) lets the cost alone
    decide: a job from about 8,000 leads at ``page_size`` 2,000. Raise it to keep pulls of up
    to that many leads on query pages, which stream without waiting for a job; null always
    reads through REST queries."""
    bulk_results_page_size: int = Field(50_000, ge=100, le=1_000_000)
    """Leads per Bulk API 2.0 results request (``maxRecords``); one counted call each. syncd
    holds one such page at a time."""
    bulk_poll_seconds: float = Field(2, ge=0, le=600)
    """First wait before reading a query job's state; each later wait doubles, up to
    ``bulk_poll_max_seconds`` (every look at the job is a counted call)."""
    bulk_poll_max_seconds: float = Field(30, ge=0, le=3600)
    """Longest wait between two looks at a running query job."""
    bulk_job_timeout_seconds: float = Field(3600, gt=0)
    """A query job not complete this long after its creation is aborted; the pull fails and the
    next one starts again."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry and backoff for transient failures (the same shape as HubSpot's ``retry``)."""

    @field_validator("fields", mode="before")
    @classmethod
    def _extend_defaults(cls, value: object) -> object:
        return merge_fields(DEFAULT_FIELDS, value)

    @model_validator(mode="after")
    def _first_poll_within_the_longest(self) -> SalesforceConfig:
        # The waits double from the first up to the longest: a first wait above it would be
        # cut to the longest at once, not what the setting says.
        if self.bulk_poll_seconds > self.bulk_poll_max_seconds:
            raise ValueError(
                f"bulk_poll_seconds ({self.bulk_poll_seconds:g}) is above "
                f"bulk_poll_max_seconds ({self.bulk_poll_max_seconds:g}), the longest wait "
                "between two looks at a query job; lower it or raise the longest"
            )
        return self

    @field_validator("instance_url", "token_url")
    @classmethod
    def _https(cls, value: str, info: ValidationInfo) -> str:
        # The REST API and the OAuth endpoints are served over TLS only (the token and the
        # session id travel in every request), and the org's My Domain is the host.
        example = "https://acme.my.salesforce.com"
        if info.field_name == "token_url":
            example += "/services/oauth2/token"
        return web_url(value, https_only=True, example=example)
