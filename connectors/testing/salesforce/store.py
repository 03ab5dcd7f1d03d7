"""The emulated org's data: leads with a (SystemModstamp, Id) index, statuses, campaigns.

Leads are immutable tuples in :data:`schema.LEAD` column order; an update swaps in a new tuple,
so an open query cursor (a list of row references) keeps the values as of its query, like a
server-side snapshot, without copying rows. The sorted index makes the keyset query
``SystemModstamp > :t OR (SystemModstamp = :t AND Id > :id)`` a bisect plus a scan of the
matching range, not a sort of the whole table (crm-api A3.1).
"""

from __future__ import annotations

import bisect
import functools
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connectors.testing.kit import EmulatorClock

from .config import EmulatorConfig
from .ids import IdFactory
from .schema import (
    CAMPAIGN,
    CAMPAIGN_MEMBER,
    LEAD,
    LEAD_HISTORY,
    LEAD_STATUS,
    RECORD_TYPE,
    FieldDef,
    ObjectSchema,
)
from .soql import CompiledQuery, compile_query, format_datetime, parse_datetime_literal

__all__ = ["ApiError", "Org"]

Row = tuple[Any, ...]

_L = {f.name: i for i, f in enumerate(LEAD.fields)}
_ID, _MS, _DEL, _CONV, _STATUS = (
    _L["Id"],
    _L["SystemModstamp"],
    _L["IsDeleted"],
    _L["IsConverted"],
    _L["Status"],
)
_CAMPAIGN_DELETED = CAMPAIGN.index["isdeleted"]
_LMD, _LMB, _MASTER = _L["LastModifiedDate"], _L["LastModifiedById"], _L["MasterRecordId"]
_RT = _L["RecordTypeId"]

#: What an org's trigger reports when its automation exceeds a governor limit mid-batch.
CPU_LIMIT_MESSAGE = (
    "LeadTrigger: execution of AfterUpdate caused by: System.LimitException: "
    "Apex CPU time limit exceeded"
)
_CM = {f.name: i for i, f in enumerate(CAMPAIGN_MEMBER.fields)}


def _order_key(col: int, nones_low: bool) -> Callable[[Row], tuple[bool, Any]]:
    """Sort key of one ORDER BY column, nulls placed as ``NULLS FIRST/LAST`` asks."""

    def key(row: Row) -> tuple[bool, Any]:
        value = row[col]
        return (value is not None) if nones_low else (value is None), value

    return key


class ApiError(Exception):
    """A whole-request error: HTTP status plus Salesforce's ``[{message, errorCode}]`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code}]


def _failure(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
    }


def _rolled_back(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """allOrNone: the records that would have succeeded are rolled back (crm-api A5)."""
    return [
        r
        if not r["success"]
        else _failure(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
        )
        for r in results
    ]


def _to_epoch_seconds(value: object) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return int(value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return int(parse_datetime_literal(str(value).replace(".000+0000", "Z")))


def _to_iso_date(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)[:10]).isoformat()


def to_internal(fdef: FieldDef, value: Any) -> Any:
    """A JSON/Python value -> the stored form for ``fdef``; raises ValueError when it won't fit."""
    if value is None:
        return None
    if fdef.type == "anyType":
        return value  # a LeadHistory value: stored as answered (_history_value)
    kind = fdef.kind
    if kind == "datetime":
        return _to_epoch_seconds(value)
    if kind == "date":
        return _to_iso_date(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ValueError("not an integer")
        return int(value)
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("not a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def to_wire(fdef: FieldDef, value: Any) -> Any:
    """A stored value -> its JSON form in query results."""
    if value is not None and fdef.kind == "datetime":
        return format_datetime(value)
    return value


def to_python(fdef: FieldDef, value: Any) -> Any:
    """A stored value -> a Python value for test assertions (``emu.lead(id)``)."""
    if value is None:
        return None
    if fdef.kind == "datetime":
        return datetime.fromtimestamp(value, tz=UTC)
    if fdef.kind == "date":
        return date.fromisoformat(value)
    return value


def _row_json(schema: ObjectSchema, row: Row) -> dict[str, Any]:
    return {f.name: to_wire(f, row[i]) for i, f in enumerate(schema.fields) if row[i] is not None}


def _row_from_json(schema: ObjectSchema, item: Mapping[str, Any]) -> Row:
    values: list[Any] = [None] * len(schema.fields)
    for i, f in enumerate(schema.fields):
        if item.get(f.name) is not None:
            values[i] = to_internal(f, item[f.name])
    return tuple(values)


@functools.lru_cache(maxsize=8)
def _history_columns(tracked: frozenset[str]) -> tuple[int, ...]:
    """The Lead columns of the tracked fields (API names, any case): Status first."""
    names = {name.lower() for name in tracked}
    cols = [i for i, f in enumerate(LEAD.fields) if f.name.lower() in names]
    return tuple(sorted(cols, key=lambda i: i != _STATUS))


def _history_value(fdef: FieldDef, value: Any) -> Any:
    """A stored value as LeadHistory's OldValue/NewValue answer it. Both are ``anyType``: the
    REST API gives each in its field's JSON type, as a query of the field itself does (a
    number field's as a number, a checkbox's as a boolean, a date as text); LeadHistory
    (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
    sforce_api_objects_leadhistory.htm) lists them as anyType."""
    return to_wire(fdef, value)


@dataclass(slots=True)
class _Locator:
    schema: ObjectSchema
    columns: list[int]
    rows: list[Row]
    created: float
    batch_size: int


class Org:
    """All data of one emulated org. Every public method is atomic (one re-entrant lock)."""

    def __init__(
        self,
        config: EmulatorConfig,
        clock: EmulatorClock,
        ids: IdFactory,
        integration_user_id: str,
        default_user_id: str,
    ) -> None:
        self.config = config
        self.clock = clock
        self.ids = ids
        self.lock = threading.RLock()
        self.integration_user_id = integration_user_id
        self.default_user_id = default_user_id
        self.leads: dict[str, Row] = {}
        self.index: list[tuple[int, str]] = []
        self.deleted_at: dict[str, int] = {}
        self.statuses: list[Row] = []
        self.campaigns: dict[str, Row] = {}
        self.members: dict[str, Row] = {}
        self.member_keys: dict[tuple[str, str], str] = {}
        self.locators: OrderedDict[str, _Locator] = OrderedDict()
        #: LeadHistory rows (changes of tracked fields), oldest first.
        self.history: list[Row] = []
        for order, s in enumerate(config.lead_statuses, start=1):
            self.statuses.append(
                (
                    ids.new("01J"),
                    s.api_name,
                    s.label or s.api_name,
                    s.is_converted,
                    s.is_default,
                    order,
                )
            )
        #: RecordType rows, and the Status values each record type allows (None: all).
        self.record_types: list[Row] = []
        self.record_type_statuses: dict[str, frozenset[str] | None] = {}
        for rt in config.record_types:
            rt_id = ids.new("012")
            self.record_types.append(
                (rt_id, rt.label or rt.developer_name, rt.developer_name, "Lead", True)
            )
            self.record_type_statuses[rt_id] = (
                None if rt.statuses is None else frozenset(rt.statuses)
            )

    def record_type_id(self, developer_name: str) -> str:
        """The id of the record type ``developer_name`` (for tests and seeds)."""
        for row in self.record_types:
            if row[2] == developer_name:
                return str(row[0])
        raise KeyError(f"no Lead record type {developer_name!r} in the emulator")

    def statuses_for(self, record_type_id: str | None) -> list[Row]:
        """LeadStatus rows the record type's Status picklist offers (all without one)."""
        allowed = self.record_type_statuses.get(record_type_id or "")
        return [r for r in self.statuses if allowed is None or r[1] in allowed]

    # -- statuses ---------------------------------------------------------------------------

    @property
    def status_values(self) -> set[str]:
        return {r[1] for r in self.statuses}

    @property
    def default_status(self) -> str:
        for r in self.statuses:
            if r[4]:
                return str(r[1])
        return str(self.statuses[0][1])

    @property
    def converted_status(self) -> str:
        for r in self.statuses:
            if r[3]:
                return str(r[1])
        return "Closed - Converted"

    # -- lead rows and the index ------------------------------------------------------------

    def _put(self, row: Row) -> None:
        rid = row[_ID]
        old = self.leads.get(rid)
        if old is not None:
            self._track(old, row)
        if old is not None:
            key = (old[_MS], rid)
            i = bisect.bisect_left(self.index, key)
            if i < len(self.index) and self.index[i] == key:
                del self.index[i]
        key = (row[_MS], rid)
        if not self.index or key > self.index[-1]:
            self.index.append(key)
        else:
            bisect.insort(self.index, key)
        self.leads[rid] = row

    def _track(self, old: Row, row: Row) -> None:
        """A LeadHistory row for each tracked field the save changed, whoever made it (the
        integration's writes, a rep's edit, a conversion): by the record's last modifier, at
        its modstamp; Status first, then the others in schema order."""
        tracked = self.config.history_tracked_fields
        if not tracked:
            return
        for col in _history_columns(tracked):
            if old[col] != row[col]:
                fdef = LEAD.fields[col]
                self.history.append(
                    (
                        self.ids.new("017"),
                        row[_ID],
                        fdef.name,
                        _history_value(fdef, old[col]),
                        _history_value(fdef, row[col]),
                        row[_LMB],
                        row[_MS],
                        False,
                    )
                )

    def _drop(self, rid: str) -> None:
        row = self.leads.pop(rid)
        key = (row[_MS], rid)
        i = bisect.bisect_left(self.index, key)
        if i < len(self.index) and self.index[i] == key:
            del self.index[i]
        self.deleted_at.pop(rid, None)

    def _require(self, rid: str) -> Row:
        row = self.leads.get(rid)
        if row is None:
            raise KeyError(f"no lead {rid} in the emulator")
        return row

    def _stamp(self, modstamp: datetime | None) -> int:
        return self.clock.now_second() if modstamp is None else int(modstamp.timestamp())

    def add_leads(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        by: str | None = None,
        modstamp: datetime | None = None,
    ) -> list[str]:
        """Insert leads (API field names); ``modstamp`` back-dates them (a late commit)."""
        out: list[str] = []
        with self.lock:
            for rec in records:
                now = self._stamp(modstamp)
                values: list[Any] = [None] * len(LEAD.fields)
                for name, value in rec.items():
                    fdef = LEAD.field(name)
                    if fdef is None:
                        raise KeyError(f"Lead has no field {name!r}")
                    values[LEAD.column(name)] = to_internal(fdef, value)  # type: ignore[index]
                user = by or self.default_user_id
                rid = self.ids.new("00Q")
                values[_ID] = rid
                values[_STATUS] = values[_STATUS] or self.default_status
                defaults = {
                    "OwnerId": user,
                    "CreatedDate": now,
                    "CreatedById": user,
                    "LastModifiedDate": now,
                    "LastModifiedById": user,
                    "IsDeleted": False,
                    "IsConverted": False,
                }
                for name, value in defaults.items():
                    if values[_L[name]] is None:
                        values[_L[name]] = value
                values[_MS] = now
                self._put(tuple(values))
                out.append(rid)
        return out

    def update_lead(
        self, rid: str, fields: Mapping[str, Any], *, by: str, modstamp: datetime | None = None
    ) -> None:
        with self.lock:
            values = list(self._require(rid))
            for name, value in fields.items():
                fdef = LEAD.field(name)
                if fdef is None:
                    raise KeyError(f"Lead has no field {name!r}")
                values[LEAD.column(name)] = to_internal(fdef, value)  # type: ignore[index]
            now = self._stamp(modstamp)
            values[_MS] = values[_LMD] = now
            values[_LMB] = by
            self._put(tuple(values))

    def delete_lead(self, rid: str, *, by: str | None = None) -> None:
        with self.lock:
            self._mark_deleted(rid, by or self.default_user_id, master=None)

    def _mark_deleted(self, rid: str, by: str, master: str | None) -> None:
        values = list(self._require(rid))
        now = self.clock.now_second()
        values[_DEL] = True
        values[_MASTER] = master
        values[_MS] = values[_LMD] = now
        values[_LMB] = by
        self._put(tuple(values))
        self.deleted_at[rid] = now

    def merge_leads(self, master_id: str, victim_id: str, *, by: str | None = None) -> None:
        """The victim is deleted with MasterRecordId set; the master is touched (crm-api A4)."""
        with self.lock:
            user = by or self.default_user_id
            self.update_lead(master_id, {}, by=user)
            self._mark_deleted(victim_id, user, master=master_id)

    def convert_lead(self, rid: str, *, by: str | None = None) -> None:
        with self.lock:
            self.update_lead(
                rid,
                {
                    "IsConverted": True,
                    "Status": self.converted_status,
                    "ConvertedDate": self.clock.now().date(),
                },
                by=by or self.default_user_id,
            )

    def purge_recycle_bin(self) -> int:
        """Remove deleted leads older than the retention; returns how many went."""
        cutoff = self.clock.now_second() - self.config.recycle_bin_days * 86400
        with self.lock:
            gone = [rid for rid, at in self.deleted_at.items() if at < cutoff]
            for rid in gone:
                self._drop(rid)
            return len(gone)

    def lead(self, rid: str) -> dict[str, Any]:
        with self.lock:
            row = self._require(rid)
        return {f.name: to_python(f, row[i]) for i, f in enumerate(LEAD.fields)}

    # -- persistence --------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Leads, campaigns and members in wire form (see :meth:`restore`)."""
        with self.lock:
            return {
                "leads": [_row_json(LEAD, row) for row in self.leads.values()],
                "deleted_at": dict(self.deleted_at),
                "campaigns": [_row_json(CAMPAIGN, row) for row in self.campaigns.values()],
                "members": [_row_json(CAMPAIGN_MEMBER, row) for row in self.members.values()],
                "history": [_row_json(LEAD_HISTORY, row) for row in self.history],
            }

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Replace every lead, campaign and member with those of an :meth:`export`."""
        with self.lock:
            self.leads, self.index, self.deleted_at = {}, [], {}
            for item in doc["leads"]:
                row = _row_from_json(LEAD, item)
                self.ids.observe(row[_ID])
                self._put(row)
            self.deleted_at = {str(k): int(v) for k, v in doc.get("deleted_at", {}).items()}
            self.campaigns = {}
            for item in doc["campaigns"]:
                row = _row_from_json(CAMPAIGN, item)
                self.ids.observe(row[0])
                self.campaigns[row[0]] = row
            self.members, self.member_keys = {}, {}
            for item in doc["members"]:
                row = _row_from_json(CAMPAIGN_MEMBER, item)
                self.ids.observe(row[0])
                self.members[row[0]] = row
                self.member_keys[(row[_CM["CampaignId"]], row[_CM["LeadId"]])] = row[0]
            # Field history as exported (restoring the leads above recorded none: no old rows).
            self.history = [_row_from_json(LEAD_HISTORY, item) for item in doc.get("history", [])]
            for row in self.history:
                self.ids.observe(row[0])

    # -- campaigns ----------------------------------------------------------------------------

    def add_campaign(self, name: str, *, active: bool = True) -> str:
        with self.lock:
            now = self.clock.now_second()
            cid = self.ids.new("701")
            self.campaigns[cid] = (cid, name, active, now, now, False)
            return cid

    def delete_campaign(self, campaign_id: str) -> None:
        """An admin deletes the campaign: it goes to the recycle bin (IsDeleted), and a
        CampaignMember insert naming it fails with ``ENTITY_IS_DELETED``."""
        with self.lock:
            row = self.campaigns[campaign_id]
            self.campaigns[campaign_id] = (*row[:4], self.clock.now_second(), True)

    def undelete_campaign(self, campaign_id: str) -> None:
        """An admin restores the campaign from the recycle bin: the same Id, no longer
        IsDeleted (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_undelete.htm)."""
        with self.lock:
            row = self.campaigns[campaign_id]
            self.campaigns[campaign_id] = (*row[:4], self.clock.now_second(), False)

    def campaign_members(self, campaign_id: str) -> set[str]:
        with self.lock:
            return {lid for (cid, lid) in self.member_keys if cid == campaign_id}

    # -- queries ------------------------------------------------------------------------------

    def _rows(self, schema: ObjectSchema) -> Iterable[Row]:
        if schema is LEAD_STATUS:
            return self.statuses
        if schema is CAMPAIGN:
            return self.campaigns.values()
        if schema is CAMPAIGN_MEMBER:
            return self.members.values()
        if schema is RECORD_TYPE:
            return self.record_types
        if schema is LEAD_HISTORY:
            return self.history
        return self.leads.values()

    def compile(self, soql: str) -> CompiledQuery:
        """Parse and bind ``soql`` as this org runs it; ApiError 400 as Salesforce refuses it."""
        try:
            cq = compile_query(soql)
        except Exception as exc:  # noqa: BLE001 -- SoqlError has a code; anything else is malformed
            code = getattr(exc, "code", "MALFORMED_QUERY")
            raise ApiError(400, code, getattr(exc, "message", str(exc))) from None
        if cq.schema is LEAD:
            for col in cq.columns:
                self._require_lead_field(LEAD.fields[col].name)
        if cq.schema is LEAD_HISTORY and not self.config.lead_history_visible:
            raise ApiError(
                400,
                "INVALID_TYPE",
                "sObject type 'LeadHistory' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
            )
        return cq

    def select(self, cq: CompiledQuery, *, include_deleted: bool) -> list[Row]:
        """The rows ``cq`` matches now: references to immutable tuples, so later updates do not
        change them (a snapshot without copying rows)."""
        with self.lock:
            if include_deleted:
                self.purge_recycle_bin()
            return self._select(cq, include_deleted)

    def query(self, soql: str, *, include_deleted: bool, batch_size: int | None) -> dict[str, Any]:
        """Run a query and return its first page (``totalSize``, ``done``, ``nextRecordsUrl``)."""
        cq = self.compile(soql)
        with self.lock:
            rows = self.select(cq, include_deleted=include_deleted)
            locator = _Locator(
                cq.schema, cq.columns, rows, self.clock.now_epoch(), self._batch(batch_size)
            )
            return self._page(locator, None, 0)

    def query_more(self, locator_id: str, offset: int, batch_size: int | None) -> dict[str, Any]:
        with self.lock:
            loc = self.locators.get(locator_id)
            ttl = self.config.query_locator_ttl_seconds
            if loc is None or self.clock.now_epoch() - loc.created > ttl or offset > len(loc.rows):
                self.locators.pop(locator_id, None)
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            if batch_size is not None:
                loc.batch_size = self._batch(batch_size)
            return self._page(loc, locator_id, offset)

    def expire_query_locators(self) -> None:
        with self.lock:
            self.locators.clear()

    def _batch(self, requested: int | None) -> int:
        # Sforce-Query-Options batchSize: min 200, max 2,000 (crm-api A2).
        if requested is None:
            return self.config.default_batch_size
        return max(200, min(2000, requested))

    def _select(self, cq: CompiledQuery, include_deleted: bool) -> list[Row]:
        schema, pred = cq.schema, cq.predicate
        out: list[Row] = []
        if schema is LEAD:
            lo, hi = cq.modstamp_bounds
            index, leads = self.index, self.leads
            start = 0 if lo is None else bisect.bisect_left(index, (math.floor(lo), ""))
            if cq.keyset_after is not None:
                start = max(start, bisect.bisect_right(index, cq.keyset_after))
            limit = cq.limit if cq.keyset_ordered else None
            for i in range(start, len(index)):
                ms, rid = index[i]
                if hi is not None and ms > hi:
                    break
                row = leads[rid]
                if (include_deleted or not row[_DEL]) and pred(row):
                    out.append(row)
                    if limit is not None and len(out) >= limit:
                        break
            if cq.keyset_ordered:
                return out
        else:
            deleted_col = schema.column("IsDeleted")
            out = [
                r
                for r in self._rows(schema)
                if (include_deleted or deleted_col is None or not r[deleted_col]) and pred(r)
            ]
        for col, desc, nulls_last in reversed(cq.order_by):
            flag_not_none = nulls_last == desc
            out.sort(key=_order_key(col, flag_not_none), reverse=desc)
        return out[: cq.limit] if cq.limit is not None else out

    def _page(self, loc: _Locator, locator_id: str | None, offset: int) -> dict[str, Any]:
        version = self.config.api_versions[0]
        chunk = loc.rows[offset : offset + loc.batch_size]
        fields = [(loc.schema.fields[c].name, loc.schema.fields[c], c) for c in loc.columns]
        id_col = loc.schema.index["id"]  # every object has an Id
        records = []
        for row in chunk:
            rec: dict[str, Any] = {
                "attributes": {
                    "type": loc.schema.name,
                    "url": f"/services/data/v{version}/sobjects/{loc.schema.name}/{row[id_col]}",
                }
            }
            for name, fdef, c in fields:
                rec[name] = to_wire(fdef, row[c])
            records.append(rec)
        nxt = offset + len(chunk)
        page: dict[str, Any] = {
            "totalSize": len(loc.rows),
            "done": nxt >= len(loc.rows),
            "records": records,
        }
        if nxt < len(loc.rows):
            if locator_id is None:
                locator_id = self.ids.new("01g")[:15] + secrets.token_hex(2)[:3].upper()
                self.locators[locator_id] = loc
                while len(self.locators) > self.config.max_open_locators:
                    self.locators.popitem(last=False)
            # queryAll's next URL also says /query/ (crm-api A4); the locator remembers the mode.
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator_id}-{nxt}"
        elif locator_id is not None:
            self.locators.pop(locator_id, None)
        return page

    # -- writes through the API -------------------------------------------------------------

    def update_via_api(
        self,
        records: list[Any],
        *,
        all_or_none: bool,
        user_id: str,
        locks: Any,
        allow_duplicates: bool = False,
    ) -> list[dict[str, Any]]:
        """sObject Collections PATCH (crm-api A5): one SaveResult per record, in input order.

        ``allow_duplicates`` is ``Sforce-Duplicate-Rule-Header: allowSave=true``: duplicate
        rules then let the save through.
        """
        for rec in records:
            if not isinstance(rec, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "records must be JSON objects")
            for name in rec:
                if name not in ("attributes", "id", "Id"):
                    self._require_lead_field(name)
        with self.lock:
            results: list[dict[str, Any]] = []
            staged: list[Row | None] = []
            now = self.clock.now_second()
            limit = self.config.fail_batches_above
            if limit is not None and len(records) > limit:
                # A trigger hit a governor limit: the transaction is rolled back whole and
                # every record reports the trigger's failure.
                return [
                    _failure("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", CPU_LIMIT_MESSAGE)
                    for _ in records
                ]
            for rec in records:
                result, row = self._check_update(rec, now, user_id, locks)
                results.append(result)
                staged.append(row)
            if self.config.duplicate_rules and not allow_duplicates:
                self._apply_duplicate_rules(results, staged)
            if all_or_none and any(not r["success"] for r in results):
                return _rolled_back(results)
            for row in staged:
                if row is not None:
                    self._put(row)
            return results

    def _apply_duplicate_rules(
        self, results: list[dict[str, Any]], staged: list[Row | None]
    ) -> None:
        """Fail each staged row that matches another live lead under an active duplicate rule
        (``DUPLICATES_DETECTED`` with the ``duplicateResult`` the REST API documents)."""
        version = self.config.api_versions[0]
        for rule in self.config.duplicate_rules:
            col = LEAD.column(rule.field)
            if col is None:
                continue
            holders: dict[str, list[str]] = {}
            for rid, row in self.leads.items():
                if not row[_DEL] and isinstance(row[col], str) and row[col]:
                    holders.setdefault(row[col].lower(), []).append(rid)
            for i, new in enumerate(staged):
                if new is None or not isinstance(new[col], str) or not new[col]:
                    continue
                matches = [m for m in holders.get(new[col].lower(), []) if m != new[_ID]]
                if not matches:
                    continue
                staged[i] = None
                results[i] = {
                    "id": new[_ID],
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "DUPLICATES_DETECTED",
                            "message": rule.error_message,
                            "fields": [],
                            "duplicateResult": {
                                "allowSave": False,
                                "duplicateRule": rule.name,
                                "duplicateRuleEntityType": "Lead",
                                "errorMessage": rule.error_message,
                                "matchResults": [
                                    {
                                        "entityType": "Lead",
                                        "errors": [],
                                        "matchEngine": "ExactMatchEngine",
                                        "rule": rule.match_rule,
                                        "size": len(matches),
                                        "success": True,
                                        "matchRecords": [
                                            {
                                                "additionalInformation": [],
                                                "fieldDiffs": [],
                                                "matchConfidence": 100.0,
                                                "record": {
                                                    "attributes": {
                                                        "type": "Lead",
                                                        "url": f"/services/data/v{version}/sobjects/Lead/{m}",
                                                    },
                                                    "Id": m,
                                                },
                                            }
                                            for m in matches
                                        ],
                                    }
                                ],
                            },
                        }
                    ],
                }

    def _check_update(
        self, rec: dict[str, Any], now: int, user_id: str, faults: Any
    ) -> tuple[dict[str, Any], Row | None]:
        if (rec.get("attributes") or {}).get("type") != "Lead":
            return _failure("INVALID_TYPE", "this emulator updates Lead records only"), None
        rid = rec.get("id") or rec.get("Id")
        if not rid:
            return _failure("MISSING_ARGUMENT", "Id not specified in an update call"), None
        row = self.leads.get(rid)
        if row is None:
            return _failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"), None
        if row[_DEL]:
            return _failure("ENTITY_IS_DELETED", "entity is deleted"), None
        if row[_CONV]:
            return _failure("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"), None
        if faults.take_lock(rid):
            lock = f"unable to obtain exclusive access to this record or 1 records: {rid}"
            flow = faults.lock_flow(rid)
            if flow is None:
                return _failure("UNABLE_TO_LOCK_ROW", lock), None
            # A record-triggered flow that failed on a lock fails the save and wraps the lock
            # error in its own (docs/crm-api.md#a10).
            return _failure(
                "CANNOT_EXECUTE_FLOW_TRIGGER",
                f"We can't save this record because the “{flow}” process failed. Give your "
                "Salesforce admin these details. This error occurred when the flow tried to "
                f"update records: UNABLE_TO_LOCK_ROW: {lock}. You can look up ExceptionCode "
                "values in the SOAP API Developer Guide.",
            ), None
        values = list(row)
        failure = self._apply_fields(rec, values)
        if failure is not None:
            return failure, None
        message = faults.validation_message(rid)
        if message is not None:
            return _failure("FIELD_CUSTOM_VALIDATION_EXCEPTION", message), None
        values[_MS] = values[_LMD] = now
        values[_LMB] = user_id
        return {"id": rid, "success": True, "errors": []}, tuple(values)

    def _apply_fields(self, rec: dict[str, Any], values: list[Any]) -> dict[str, Any] | None:
        """Set the record's fields in ``values``; the failure result of the first that cannot be
        written, or None."""
        for name, value in rec.items():
            if name in ("attributes", "id", "Id"):
                continue
            fdef = LEAD.field(name)
            assert fdef is not None
            if not fdef.updateable or fdef.name in self.config.non_updateable_fields:
                return _failure(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {fdef.name}. Please check the "
                    "security settings of this field and verify that it is "
                    "read/write for your profile or permission set.",
                    [fdef.name],
                )
            if fdef.name == "Status" and not self._status_allowed(value, values[_RT]):
                return _failure(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"bad value for restricted picklist field: {value}",
                    ["Status"],
                )
            try:
                values[LEAD.index[name.lower()]] = to_internal(fdef, value)
            except ValueError:
                return _failure(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{fdef.name}: value not of required type: {value!r:.40}",
                    [fdef.name],
                )
        return None

    def _status_allowed(self, value: Any, record_type_id: str | None) -> bool:
        """Whether Status may be set to ``value`` on a record of this type. A record type's
        value set is enforced; the org-wide list only when configured restricted."""
        allowed = self.record_type_statuses.get(record_type_id or "")
        if allowed is not None and value not in allowed:
            return False
        return not self.config.restricted_status_picklist or value in self.status_values

    def insert_via_api(self, records: list[Any], *, all_or_none: bool) -> list[dict[str, Any]]:
        """sObject Collections POST of CampaignMember rows (crm-api A9)."""
        with self.lock:
            now = self.clock.now_second()
            results: list[dict[str, Any]] = []
            staged: list[Row | None] = []
            pending: set[tuple[str, str]] = set()
            for rec in records:
                result, row = self._check_member(rec, now, pending)
                results.append(result)
                staged.append(row)
            if all_or_none and any(not r["success"] for r in results):
                return _rolled_back(results)
            for row in staged:
                if row is not None:
                    self.members[row[0]] = row
                    self.member_keys[(row[_CM["CampaignId"]], row[_CM["LeadId"]])] = row[0]
            return results

    def delete_members_via_api(self, ids: list[str], *, all_or_none: bool) -> list[dict[str, Any]]:
        """sObject Collections DELETE of CampaignMember rows; one DeleteResult per id."""
        with self.lock:
            results: list[dict[str, Any]] = []
            for rid in ids:
                if rid in self.members:
                    results.append({"id": rid, "success": True, "errors": []})
                elif rid.startswith("00v"):
                    results.append(
                        {"id": rid, **_failure("ENTITY_IS_DELETED", "entity is deleted")}
                    )
                else:
                    results.append(
                        {
                            "id": rid,
                            **_failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"),
                        }
                    )
            if all_or_none and any(not r["success"] for r in results):
                return _rolled_back(results)
            for r in results:
                if r["success"]:
                    row = self.members.pop(r["id"])
                    self.member_keys.pop((row[_CM["CampaignId"]], row[_CM["LeadId"]]), None)
            return results

    def _check_member(
        self, rec: Any, now: int, pending: set[tuple[str, str]]
    ) -> tuple[dict[str, Any], Row | None]:
        if (
            not isinstance(rec, dict)
            or (rec.get("attributes") or {}).get("type") != "CampaignMember"
        ):
            return _failure("INVALID_TYPE", "this emulator inserts CampaignMember only"), None
        cid, lid = rec.get("CampaignId"), rec.get("LeadId")
        if cid not in self.campaigns:
            return _failure(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["CampaignId"]
            ), None
        if self.campaigns[cid][_CAMPAIGN_DELETED]:
            # A lookup to a record in the recycle bin (the campaign was deleted).
            return _failure("ENTITY_IS_DELETED", "entity is deleted", ["CampaignId"]), None
        lead = self.leads.get(lid)  # type: ignore[arg-type]
        if lead is None or lead[_DEL]:
            return _failure(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["LeadId"]
            ), None
        key = (cid, lid)
        if key in self.member_keys or key in pending:
            return _failure("DUPLICATE_VALUE", "Already a campaign member."), None
        pending.add(key)  # type: ignore[arg-type]
        mid = self.ids.new("00v")
        return (
            {"id": mid, "success": True, "errors": []},
            (mid, cid, lid, rec.get("Status") or "Sent", now, now, False),
        )

    # -- describe ---------------------------------------------------------------------------

    def _lead_field_absent(self, name: str) -> bool:
        """A custom field the configured org does not have (``lead_custom_fields``)."""
        have = self.config.lead_custom_fields
        return have is not None and name.endswith("__c") and name not in have

    def _require_lead_field(self, name: str) -> None:
        fdef = LEAD.field(name)
        if fdef is None or self._lead_field_absent(fdef.name):
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type Lead")

    def describe_lead(self) -> dict[str, Any]:
        fields = []
        for f in LEAD.fields:
            if self._lead_field_absent(f.name):
                continue
            updateable = f.updateable and f.name not in self.config.non_updateable_fields
            entry: dict[str, Any] = {
                "name": f.name,
                "label": f.name.replace("__c", "").replace("_", " "),
                "type": f.type,
                "updateable": updateable,
                "createable": f.createable and updateable,
                "nillable": f.nillable,
                "length": f.length if f.kind == "string" else 0,
                "custom": f.name.endswith("__c"),
                "restrictedPicklist": False,
                "picklistValues": [],
            }
            if f.name == "Status":
                entry["restrictedPicklist"] = self.config.restricted_status_picklist
                entry["picklistValues"] = [
                    {
                        "active": True,
                        "defaultValue": bool(r[4]),
                        "label": r[2],
                        "value": r[1],
                        "validFor": None,
                    }
                    for r in self.statuses
                ]
            fields.append(entry)
        infos = [
            {
                "available": True,
                "defaultRecordTypeMapping": i == 0,
                "master": False,
                "name": r[1],
                "developerName": r[2],
                "recordTypeId": r[0],
                "active": True,
            }
            for i, r in enumerate(self.record_types)
        ]
        return {
            "name": "Lead",
            "label": "Lead",
            "keyPrefix": "00Q",
            "updateable": True,
            "queryable": True,
            "fields": fields,
            "recordTypeInfos": infos,
        }

    def status_picklist(self, record_type_id: str) -> dict[str, Any]:
        """UI API ``object-info/Lead/picklist-values/{recordTypeId}/Status``."""
        if record_type_id not in self.record_type_statuses:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        rows = self.statuses_for(record_type_id)
        default = next((r[1] for r in rows if r[4]), None)
        return {
            "controllerValues": {},
            "defaultValue": None
            if default is None
            else {"attributes": None, "label": default, "validFor": [], "value": default},
            "eTag": secrets.token_hex(16),
            "url": f"/services/data/v{self.config.api_versions[0]}/ui-api/object-info/"
            f"Lead/picklist-values/{record_type_id}/Status",
            "values": [
                {"attributes": None, "label": r[2], "validFor": [], "value": r[1]} for r in rows
            ],
        }
