"""Settings of one emulated Salesforce org."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LEAD_STATUSES",
    "DuplicateRuleDef",
    "EmulatorConfig",
    "LeadStatusDef",
    "RecordTypeDef",
]


@dataclass(frozen=True, slots=True)
class LeadStatusDef:
    """One row of the LeadStatus object (crm-api A8)."""

    api_name: str
    label: str | None = None
    is_converted: bool = False
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class DuplicateRuleDef:
    """An active Lead duplicate rule whose matching rule compares one field exactly
    (case-insensitive), blocking on create and edit unless the request allows the save."""

    name: str = "Standard_Lead_Duplicate_Rule"
    match_rule: str = "Standard_Lead_Match_Rule_v1_0"
    field: str = "Email"
    error_message: str = (
        "You're creating a duplicate record. We recommend you use an existing record instead."
    )


@dataclass(frozen=True, slots=True)
class RecordTypeDef:
    """A Lead record type and the Status values its picklist allows (None: all of them)."""

    developer_name: str
    statuses: tuple[str, ...] | None = None
    label: str | None = None


DEFAULT_LEAD_STATUSES: tuple[LeadStatusDef, ...] = (
    LeadStatusDef("Open - Not Contacted", is_default=True),
    LeadStatusDef("Working - Contacted"),
    LeadStatusDef("MQL"),
    LeadStatusDef("SAL"),
    LeadStatusDef("SQL"),
    LeadStatusDef("Nurture"),
    LeadStatusDef("Unqualified"),
    LeadStatusDef("Archived"),
    LeadStatusDef("Closed - Converted", is_converted=True),
    LeadStatusDef("Closed - Not Converted"),
)


@dataclass(slots=True)
class EmulatorConfig:
    """How the emulated org behaves. Every point docs/crm-api.md marks Unconfirmed is a knob."""

    api_versions: tuple[str, ...] = ("59.0",)
    """API versions served under ``/services/data/vXX.X/``."""
    lead_statuses: tuple[LeadStatusDef, ...] = DEFAULT_LEAD_STATUSES
    """The Lead Status picklist (LeadStatus rows, in SortOrder)."""
    restricted_status_picklist: bool = False
    """Reject Status values not in ``lead_statuses``. Off by default: the standard Lead Status
    field cannot be a restricted picklist in a real org, so an unknown or inactive value is
    saved as given (docs/crm-api.md#a8)."""
    retired_below: float = 31.0
    """API versions below this answer 410 GONE, as retired versions do (docs/crm-api.md#a12);
    others not in ``api_versions`` answer 404."""
    duplicate_rules: tuple[DuplicateRuleDef, ...] = ()
    """Active Lead duplicate rules (docs/crm-api.md#a13); none by default."""
    record_types: tuple[RecordTypeDef, ...] = ()
    """Lead record types, each with its allowed Status values (docs/crm-api.md#a14)."""
    fail_batches_above: int | None = None
    """Org automation that exceeds a limit on updates of more than this many records: every
    record of such a Collections call fails with ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY``
    (Apex CPU time limit exceeded); None: never (docs/crm-api.md#a15)."""
    history_tracked_fields: frozenset[str] = frozenset({"Status"})
    """Lead fields (API names) with field history tracking on: every change of one adds a
    LeadHistory row (``Field`` its API name, ``Tier__c`` for a custom field; OldValue, NewValue
    each in its field's type, CreatedById, CreatedDate). Tracking is per field in Setup
    (https://help.salesforce.com/s/articleView?id=sf.tracking_field_history.htm); the default
    is an org whose admin turned it on for Status alone. An untracked field has no rows (a
    query naming it answers none); ``frozenset()`` is an org that never enabled it."""
    lead_history_visible: bool = True
    """The integration user may read LeadHistory. False, as for a user whose profile does not
    grant it, every LeadHistory query fails as Salesforce answers an sObject the user cannot
    see: 400 ``INVALID_TYPE``."""
    non_updateable_fields: frozenset[str] = frozenset()
    """Lead fields the integration user may not update (field-level security)."""
    lead_custom_fields: frozenset[str] | None = None
    """The custom (``__c``) Lead fields this org has; None: every one the schema knows. The
    others are absent as on a real org: describe leaves them out, a query or update naming
    one fails with INVALID_FIELD. ``frozenset()`` is an org without the BANT fields."""
    daily_api_limit: int = 100_000
    """Calls allowed per day; reported in ``Sforce-Limit-Info`` (crm-api A11)."""
    api_usage_start: int = 0
    """Calls already used when the emulator starts."""
    session_ttl_seconds: float | None = None
    """Tokens expire this long (emulator clock) after issue; None: never."""
    session_max_calls: int | None = None
    """Tokens expire after this many API calls; None: never."""
    default_batch_size: int = 2000
    """Records per query page without ``Sforce-Query-Options`` (crm-api A2)."""
    query_locator_ttl_seconds: float = 2 * 24 * 3600
    """Query cursors live this long (crm-api A2: two days since v56.0)."""
    max_open_locators: int = 1000
    """Open query cursors kept; the oldest are dropped beyond this (keeps memory bounded)."""
    recycle_bin_days: float = 15
    """Deleted leads stay visible to queryAll this long, then are purged (crm-api A4)."""
    bulk_query_run_seconds: float = 1.0
    """Seconds (emulator clock) a Bulk API 2.0 query job answers ``InProgress`` after its
    creation before it is ``JobComplete``: jobs finish after processing time, not after a
    number of looks (docs/crm-api.md A7)."""
    max_collection_records: int = 200
    """sObject Collections ceiling (crm-api A5)."""
    jwt_public_key_pem: bytes | None = None
    """Public key that verifies JWT bearer assertions; None disables the flow."""
    usernames: dict[str, str] = field(default_factory=dict)
    """Extra username -> user id pairs accepted as JWT ``sub`` (the integration user is added)."""
    journal_limit: int = 100_000
    """Journal entries kept (oldest dropped) so long benchmark runs stay bounded."""
    request_timeout_seconds: float = 30
    """Idle keep-alive connections are closed after this long."""
