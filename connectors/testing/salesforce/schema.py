"""The emulated org's object schemas: field names, API types and who may update them.

Rows are stored as tuples in schema column order (compact enough for a million leads); values
are kept in query-friendly forms: datetimes as int epoch seconds (Salesforce stamps whole
seconds, crm-api A3.3), dates as ``YYYY-MM-DD`` strings, booleans, ints, floats, strings or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CAMPAIGN",
    "CAMPAIGN_MEMBER",
    "LEAD",
    "LEAD_HISTORY",
    "LEAD_STATUS",
    "RECORD_TYPE",
    "SCHEMAS",
    "FieldDef",
    "ObjectSchema",
]


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str  # describe type: id, string, email, picklist, reference, datetime, date, int, ...
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    length: int = 255

    @property
    def kind(self) -> str:
        """How values of this field are stored and compared."""
        if self.type in ("datetime", "date", "boolean", "int"):
            return self.type
        if self.type in ("double", "currency", "percent"):
            return "double"
        return "string"


@dataclass(slots=True)
class ObjectSchema:
    name: str
    key_prefix: str
    fields: list[FieldDef]
    index: dict[str, int] = field(default_factory=dict)  # lower-case name -> column

    def __post_init__(self) -> None:
        self.index = {f.name.lower(): i for i, f in enumerate(self.fields)}

    def column(self, name: str) -> int | None:
        return self.index.get(name.lower())

    def field(self, name: str) -> FieldDef | None:
        col = self.column(name)
        return None if col is None else self.fields[col]


def _sys(name: str, type_: str) -> FieldDef:
    return FieldDef(name, type_, updateable=False, createable=False)


LEAD = ObjectSchema(
    "Lead",
    "00Q",
    [
        _sys("Id", "id"),
        FieldDef("FirstName", "string", length=40),
        FieldDef("LastName", "string", nillable=False, length=80),
        FieldDef("Email", "email", length=80),
        FieldDef("Title", "string", length=128),
        FieldDef("Company", "string", nillable=False),
        FieldDef("Industry", "picklist"),
        FieldDef("Country", "string", length=80),
        FieldDef("NumberOfEmployees", "int"),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("LeadSource", "picklist"),
        FieldDef("Status", "picklist", nillable=False),
        FieldDef("OwnerId", "reference"),
        _sys("CreatedDate", "datetime"),
        _sys("CreatedById", "reference"),
        _sys("LastActivityDate", "date"),
        _sys("LastModifiedDate", "datetime"),
        _sys("LastModifiedById", "reference"),
        _sys("SystemModstamp", "datetime"),
        _sys("IsDeleted", "boolean"),
        _sys("IsConverted", "boolean"),
        _sys("ConvertedDate", "date"),
        _sys("MasterRecordId", "reference"),
        FieldDef("Budget__c", "string"),
        FieldDef("Authority__c", "string"),
        FieldDef("Need__c", "string"),
        FieldDef("Timeline__c", "string"),
        # Added at the end, so the columns above keep their positions in stored rows and
        # snapshots.
        FieldDef("RecordTypeId", "reference"),
        # Provenance fields an admin creates for syncd (README: "Provenance written back").
        FieldDef("syncd_Rule__c", "string", length=255),
        FieldDef("syncd_Reason__c", "string", length=255),
        FieldDef("syncd_Changed_At__c", "datetime"),
        FieldDef("syncd_Run__c", "string", length=32),
        FieldDef("MQL_Date__c", "datetime"),
        FieldDef("SAL_Date__c", "datetime"),
        # Custom fields an org may have or not (``EmulatorConfig.lead_custom_fields`` picks them):
        # a number and a picklist, so rules on typed custom fields can be tested end to end.
        FieldDef("Lead_Score__c", "double"),
        FieldDef("Tier__c", "picklist"),
    ],
)

LEAD_STATUS = ObjectSchema(
    "LeadStatus",
    "01J",
    [
        _sys("Id", "id"),
        _sys("ApiName", "string"),
        _sys("MasterLabel", "string"),
        _sys("IsConverted", "boolean"),
        _sys("IsDefault", "boolean"),
        _sys("SortOrder", "int"),
    ],
)

CAMPAIGN = ObjectSchema(
    "Campaign",
    "701",
    [
        _sys("Id", "id"),
        FieldDef("Name", "string"),
        FieldDef("IsActive", "boolean"),
        _sys("CreatedDate", "datetime"),
        _sys("SystemModstamp", "datetime"),
        _sys("IsDeleted", "boolean"),
    ],
)

CAMPAIGN_MEMBER = ObjectSchema(
    "CampaignMember",
    "00v",
    [
        _sys("Id", "id"),
        FieldDef("CampaignId", "reference", updateable=False),
        FieldDef("LeadId", "reference", updateable=False),
        FieldDef("Status", "picklist"),
        _sys("CreatedDate", "datetime"),
        _sys("SystemModstamp", "datetime"),
        _sys("IsDeleted", "boolean"),
    ],
)

RECORD_TYPE = ObjectSchema(
    "RecordType",
    "012",
    [
        _sys("Id", "id"),
        _sys("Name", "string"),
        _sys("DeveloperName", "string"),
        _sys("SobjectType", "string"),
        _sys("IsActive", "boolean"),
    ],
)

# Field history of tracked Lead fields (https://developer.salesforce.com/docs/atlas.en-us.
# object_reference.meta/object_reference/sforce_api_objects_leadhistory.htm); OldValue and
# NewValue are anyType: each value in its field's type.
LEAD_HISTORY = ObjectSchema(
    "LeadHistory",
    "017",
    [
        _sys("Id", "id"),
        _sys("LeadId", "reference"),
        _sys("Field", "picklist"),
        _sys("OldValue", "anyType"),
        _sys("NewValue", "anyType"),
        _sys("CreatedById", "reference"),
        _sys("CreatedDate", "datetime"),
        _sys("IsDeleted", "boolean"),
    ],
)

SCHEMAS: dict[str, ObjectSchema] = {
    s.name.lower(): s
    for s in (LEAD, LEAD_STATUS, CAMPAIGN, CAMPAIGN_MEMBER, RECORD_TYPE, LEAD_HISTORY)
}
