"""Knobs of the HubSpot emulator: limits, documented quirks and the [unverified] behaviours.

Defaults follow HubSpot's public API documentation (https://developers.hubspot.com/docs/api/crm/
understanding-the-crm, https://developers.hubspot.com/docs/api/usage-details). Where HubSpot does
not document a behaviour ([unverified] below), the emulator offers both variants here so the
connector is tested against each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_LEAD_STATUSES", "EmulatorConfig"]

#: hs_lead_status internal values (crm-api C5).
DEFAULT_LEAD_STATUSES: tuple[str, ...] = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)


@dataclass
class EmulatorConfig:
    """Behaviour of one emulated HubSpot account. Mutable: tests may change it while serving."""

    # --- rate limits (crm-api C7) ---
    ten_second_limit: int = 100  # per app, rolling 10 s window (Free/Starter tier)
    search_per_second: int = 5  # search has its own bucket (crm-api C2)
    daily_limit: int = 250_000  # per account; resets at midnight UTC here (real: account tz)
    send_retry_after: bool = True  # "A Retry-After header may be present" (crm-api C7)
    # Whether search responses carry X-HubSpot-RateLimit-* headers is [unverified] (crm-api C7).
    rate_limit_headers_on_search: bool = False

    # --- search (crm-api C2) ---
    search_max_limit: int = 200
    search_max_results: int = 10_000  # paging past this gives 400
    index_lag_seconds: float = 0.0  # fresh writes invisible to search for this long

    # --- batch endpoints (crm-api C4) ---
    batch_max_inputs: int = 100
    # Batch read with propertiesWithHistory answers at most this many inputs (crm-api C4) and
    # this many past values per property, newest first. HubSpot documents that the history it
    # returns is bounded without naming the bound in the API reference; 20 is an assumption.
    history_batch_max_inputs: int = 50
    history_max_values: int = 20
    # The HubSpot user id a rep's edit (sourceType CRM_UI) is attributed to (updatedByUserId).
    rep_user_id: str = "9001"
    list_page_max: int = 100  # GET /crm/v3/objects/contacts (crm-api C3)
    # One invalid option in a batch update: 207 with per-record errors, or a whole-batch 400
    # whose message embeds the per-property JSON (crm-api C4/C5, F2 [unverified] which one).
    batch_update_error_mode: Literal["multi_status", "whole_batch"] = "multi_status"
    # In whole-batch mode, name the failing record ids in the body (context.ids and an "id" key
    # per entry inside the message JSON). [unverified] whether HubSpot does; False exercises the
    # client's bisect fallback.
    validation_400_names_records: bool = True

    # --- properties (crm-api C5, F3) ---
    extra_status_options: list[str] = field(default_factory=list)
    # PATCH options: "replace" drops options missing from the body (assumed, crm-api C5/F3).
    options_patch_semantics: Literal["replace", "merge"] = "replace"
    status_options_read_only: bool = False

    # --- lifecycle stage (docs/crm-api.md#c9) ---
    # Through the API, lifecyclestage only moves forward in the stage order: a backward value
    # is not applied (the request still succeeds) unless the property was cleared first.
    lifecycle_forward_only: bool = True
    lifecycle_order: tuple[str, ...] = (
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    )

    # --- auth (crm-api C1) ---
    access_token_ttl_seconds: int = 1800
