"""The HubSpot connector: contacts in, lead status and newsletter lists out, over
hubspot-api-client.

Every call goes through :meth:`HubSpotConnector._call`: daily budget check, client-side pacing,
token, the call with a timeout, header bookkeeping, error classification, and one retry layer
(tenacity). The API objects are built once and reused: each discovery access otherwise builds a
new connection pool (crm-api D1).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties import OptionInput, PropertyUpdate

from connectors.base import (
    ApiQuota,
    Connector,
    ConnectorStats,
    CrmField,
    Cursor,
    HistoryActorKind,
    HistoryEntry,
    LeadChange,
    Outcome,
    Page,
    Preflight,
    RecordResult,
    RemoteLead,
    overlap_start,
)
from connectors.errors import (
    BudgetExhausted,
    ConfigurationError,
    ConnectorError,
    FatalError,
    RateLimited,
    RetriableError,
)
from connectors.hubspot.auth import token_source
from connectors.hubspot.classify import (
    API_EXCEPTIONS,
    HubSpotRequestError,
    classify,
    error_body,
    invalid_properties,
    retry_after,
    tls_failure,
)
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.json_answers import (
    BatchUpdateAnswer,
    HistoryValue,
    SearchAnswer,
    read_answer,
    read_batch_update,
    read_history,
)
from connectors.hubspot.pacing import DailyBudget, SearchPacer, TenSecondWindow
from connectors.hubspot.reader import Filter, RawContact, SearchPage, iter_search_windows
from connectors.hubspot.values import format_value, parse_fields, parse_time, to_ms
from connectors.kit import Quarantine, Waiter, advance_cursor, call_with_retry, nothing_new_page
from connectors.kit.errors import ANY, ErrorTable
from connectors.kit.server_clock import answer_date, crm_behind, read_started

__all__ = ["HubSpotConnector"]

_HUBSPOT_TEXT_MAX = 65_536  # characters in a single-line text property value

log = logging.getLogger("connectors.hubspot")

SEARCH_MAX_RESULTS = 10_000  # crm-api C2
ARCHIVED_PAGE_SIZE = 100  # GET /crm/v3/objects/contacts page maximum (crm-api C3)
#: The ids merged into a contact (a calculated property every account has): a merge makes a new
#: contact of the two, and the originals leave search without being archived (crm-api C12).
MERGED_IDS = "hs_merged_object_ids"


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: Per-record outcomes of a 207 batch answer by error category; others are retried.
_BATCH_OUTCOMES: ErrorTable[Outcome] = ErrorTable(
    {
        (ANY, "VALIDATION_ERROR"): Outcome.FAILED,
        (ANY, "OBJECT_NOT_FOUND"): Outcome.FAILED,
        (ANY, "INVALID_PROPERTY"): Outcome.FAILED,
    },
    default=Outcome.RETRY,
)


@dataclass(frozen=True)
class _Apis:
    search: Any
    basic: Any
    batch: Any
    properties: Any
    lists: Any
    memberships: Any

    def all(self) -> tuple[Any, ...]:
        return (self.search, self.basic, self.batch, self.properties, self.lists, self.memberships)


#: Property types -> the rule language's value types (others are text).
_HS_KINDS = {"number": "number", "bool": "boolean", "datetime": "datetime", "date": "datetime"}


class HubSpotConnector(Connector):
    """One HubSpot account (contacts as leads).

    Args:
        config: account settings.
        clock: current time (tz-aware UTC); drives pacing, token expiry and the daily reset.
        sleep: how to wait (seconds); tests pass a simulated clock's advance. None waits in
            real time, cut short by the event given to :meth:`bind_stop`.
    """

    kind: ClassVar[str] = "hubspot"
    max_batch_size: int = 100  # object batch endpoints (crm-api C4)
    # The lists spec documents no per-request cap for memberships/add (crm-api C6); 100 keeps
    # requests the size of object batches.
    max_membership_batch: ClassVar[int] = 100
    status_history_batch: ClassVar[int] = 50  # = HISTORY_BATCH, contacts a call with history
    # A first sync's history (one call per 50 contacts) would take the general budget from
    # under the search pages: 50,000 contacts, 1,000 calls, 105 s at 100 per 10 s.
    history_after_pull: ClassVar[bool] = True
    # HubSpot keeps every contact property's history, answered for any property named in
    # propertiesWithHistory (docs/crm-api.md#c10): every field a rule sets rides in the reads.
    history_of_rule_fields: ClassVar[bool] = True

    def __init__(
        self,
        config: HubSpotConfig,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._waiter = Waiter(sleep)
        self.stats = ConnectorStats()
        self.last_pull_was_full_reconcile = False  # archived contacts are listed instead
        self._tokens = token_source(config.auth, clock=clock, timeout=config.timeout_seconds)
        # retry=False turns off urllib3's own retries: tenacity below is the only retry layer
        # (crm-api D4). host= redirects every API package (crm-api D2).
        client = HubSpot(host=config.base_url, retry=False)
        self._apis = _Apis(
            search=client.crm.contacts.search_api,
            basic=client.crm.contacts.basic_api,
            batch=client.crm.contacts.batch_api,
            properties=client.crm.properties.core_api,
            lists=client.crm.lists.lists_api,
            memberships=client.crm.lists.memberships_api,
        )
        # The request models syncd builds share the client's configuration: a model built
        # without one makes its own (Configuration.get_default_copy: a logger set-up and a CPU
        # count each), 0.1 ms for every contact of a batch.
        self._models = client.crm.contacts.batch_api.api_client.configuration
        self._token_in_use: str | None = None
        # Pacing waits go through the waiter too, so a stop request cuts them short.
        self._search_pacer = SearchPacer(config.search_per_second, clock, self._waiter.wait)
        self._window = TenSecondWindow(
            config.ten_second_limit, config.ten_second_headroom, clock, self._waiter.wait
        )
        self._budget = DailyBudget(config.daily_limit, config.daily_reset_timezone, clock)
        self._last_archived_scan: datetime | None = None
        # The properties as :meth:`check` or :meth:`fields_gone` last read them (syncd reads
        # mapped ones that existed then), when, and the mapped ones gone since.
        self._props_read_at: datetime | None = None
        self._props_known: set[str] = set()
        self._gone: dict[str, str] = {}
        # The last read that found every known property, and where the next pull must start
        # at the latest once one came back (see _note_properties).
        self._props_whole_at: datetime | None = None
        self._reread_from: datetime | None = None
        self._pull_total: int | None = None  # what the current pull's first search counted
        self._search_answered: datetime | None = None  # its Date header (HubSpot's clock)
        #: How far HubSpot's clock runs behind the host's, by the last answer's Date.
        self._crm_behind = timedelta(0)
        self._props = sorted(set(config.fields.values()))
        self._props_asked = frozenset(self._props)
        # Mapped properties a read contact lacked since the properties were last read. HubSpot
        # answers a requested property the account has with null when the contact has no
        # value, and leaves out one the account lacks (crm-api C11): such a contact makes the
        # next fields_gone read the properties at once, not at the interval's end.
        self._absent_seen: set[str] = set()
        # Of those, the ones that read found listed (left out for another reason, e.g. hidden
        # from syncd's user): they bring no read forward again until the next one.
        self._absent_listed: set[str] = set()
        # lifecyclestage values HubSpot answered for the batch being written (_check_stages).
        self._written_stages: dict[str, str | None] = {}

    # ------------------------------------------------------------------ Connector API
    def api_quota(self) -> ApiQuota | None:
        """The account's daily calls as HubSpot's headers last reported them, else this
        connector's own ``daily_limit`` budget; None when neither is known."""
        return self._budget.quota()

    def bind_stop(self, stop: threading.Event) -> None:
        self._waiter.bind(stop)

    def check(self, *, statuses: set[str], fields: set[str], newsletters: set[str]) -> Preflight:
        """Read contact properties and lists; list every problem. Only reads.

        Status options the rules need but HubSpot lacks are ``missing_statuses``; with
        ``allow_add_status_options`` (and options that are not read-only) they are counted as
        accepted and listed in ``setup``, for :meth:`prepare` to add.
        """
        problems: list[str] = []
        setup: list[str] = []
        missing_fields: set[str] = set()
        data, _, _ = self._call(
            "general",
            "read contact properties",
            self._apis.properties.get_all_with_http_info,
            "contacts",
        )
        props = {p.name: p for p in data.results}
        # A property archived since an earlier check stays gone to fields_gone: a rule reload
        # this check refuses leaves the running rules reading it.
        self._props_known |= set(props)
        self._note_properties(set(props), self._clock())

        options, missing = self._check_status_property(
            statuses, props, problems, setup, missing_fields
        )
        writable: set[str] = set()
        for canonical, prop_name in self.config.fields.items():
            meta = props[prop_name].modification_metadata if prop_name in props else None
            if prop_name in props and not (meta is not None and meta.read_only_value):
                writable.add(canonical)
        # Mapped properties the account lacks are data (the app names the rules that read
        # them); searches leave them out.
        missing_fields |= self._leave_out_absent(set(props))
        kinds = {
            c: _HS_KINDS.get(str(props[prop].type), "string")
            for c, prop in self.config.fields.items()
            if prop in props
        }
        for canonical in sorted(fields):
            written = self.config.fields.get(canonical)
            if written is None:
                missing_fields.add(canonical)
                problems.append(
                    f"Field {canonical!r} has no HubSpot property mapping (add it under fields)"
                )
            elif written not in props:
                missing_fields.add(canonical)
                problems.append(f"HubSpot has no contact property {written!r} (fields.{canonical})")
            elif canonical not in writable:
                problems.append(
                    f"HubSpot contact property {written!r} (fields.{canonical}) is read-only"
                )

        for newsletter in sorted(newsletters):
            problem = self._check_list(newsletter)
            if problem:
                problems.append(problem)
        return Preflight(
            statuses=options,
            writable_fields=writable,
            problems=problems,
            missing_statuses=set(missing),
            missing_fields=missing_fields,
            setup=setup,
            field_kinds=kinds,
        )

    def field_mapping(self) -> dict[str, str]:
        return dict(self.config.fields)

    def fields_gone(self, needed: Collection[str] = ()) -> dict[str, str]:
        """Mapped properties :meth:`check` found that the account no longer has (archived or
        deleted since), canonical name -> property.

        HubSpot leaves a property that a search or listing names but the account lacks out of
        the answer, without an error (docs/crm-api.md#c11), so only the properties API says
        one is gone. It is read again (one call) at most every
        ``archived_scan_interval_seconds``, the archived scan's cadence; and every time while
        one of ``needed`` (fields the rules read) was gone at the last read, so that syncd
        resumes as soon as it is restored (the daemon's cycle makes no other call meanwhile).
        """
        now = self._clock()
        last = self._props_read_at
        if last is None:
            # Never checked (no start-up check ran): the check to come reads them.
            return {}
        due = (now - last).total_seconds() >= self.config.archived_scan_interval_seconds
        doubt = bool(self._absent_seen - self._absent_listed - set(self._gone.values()))
        if not due and not doubt and not set(needed) & set(self._gone):
            return dict(self._gone)
        data, _, _ = self._call(
            "general",
            "read contact properties",
            self._apis.properties.get_all_with_http_info,
            "contacts",
        )
        have = {p.name for p in data.results}
        self._note_properties(have, now)
        self._absent_listed = self._absent_seen & have
        self._absent_seen = set()
        return dict(self._gone)

    def _note_properties(self, have: set[str], now: datetime) -> None:
        """Record a read of the account's properties (``have``) made at ``now``.

        Contacts pulled while a property was gone but not yet found gone were mirrored without
        its value; once it is back (with its values: an archived property is restored whole),
        the next pull reads again from the last read that found every property.
        """
        gone = self._lost(have)
        if set(self._gone) - set(gone) and self._props_whole_at is not None:
            self._reread_from = min(self._reread_from or now, self._props_whole_at)
        if not gone:
            self._props_whole_at = now
        self._props_read_at, self._gone = now, gone

    def _lost(self, have: set[str]) -> dict[str, str]:
        """Mapped properties a check found that ``have`` (the account's now) lacks."""
        return {
            canonical: prop
            for canonical, prop in self.config.fields.items()
            if prop in self._props_known and prop not in have
        }

    def _leave_out_absent(self, existing: set[str]) -> set[str]:
        """Mapped canonical fields whose property the account lacks; searches skip them."""
        absent = {c for c, prop in self.config.fields.items() if prop not in existing}
        self._props = sorted({p for c, p in self.config.fields.items() if c not in absent})
        self._props_asked = frozenset(self._props)
        return absent

    def _check_status_property(
        self,
        statuses: set[str],
        props: dict[str, Any],
        problems: list[str],
        setup: list[str],
        missing_fields: set[str],
    ) -> tuple[set[str], list[str]]:
        """The status options HubSpot has (plus those ``prepare`` will add), and the missing ones.

        Problems, setup steps and missing fields are appended to the lists given."""
        status_prop = self.config.fields.get("status")
        options: set[str] = set()
        missing: list[str] = []
        if status_prop is None:
            missing_fields.add("status")
            problems.append(
                "No HubSpot property is mapped to the canonical field 'status' "
                "(set fields.status, usually hs_lead_status)"
            )
        elif status_prop not in props:
            missing_fields.add("status")
            problems.append(f"HubSpot has no contact property {status_prop!r} (fields.status)")
        else:
            prop = props[status_prop]
            options = {o.value for o in prop.options or []}
            missing = sorted(statuses - options)
            meta = prop.modification_metadata
            if missing and not self.config.allow_add_status_options:
                problems += [
                    f"HubSpot property {status_prop} has no option {v!r}; add it in "
                    "HubSpot or set allow_add_status_options"
                    for v in missing
                ]
            elif missing and meta is not None and meta.read_only_options:
                problems.append(
                    f"HubSpot property {status_prop} has read-only options; cannot add {missing}"
                )
            elif missing:
                options |= set(missing)
                setup.append(f"add options {missing} to HubSpot property {status_prop}")

        return options, missing

    def prepare(self, preflight: Preflight) -> None:
        """Add the status options ``check`` found missing (only with
        ``allow_add_status_options``); the whole option list is sent, existing options kept.

        Raises:
            ConfigurationError: HubSpot did not add them.
        """
        status_prop = self.config.fields.get("status")
        if not (
            preflight.setup
            and preflight.missing_statuses
            and status_prop
            and self.config.allow_add_status_options
        ):
            return
        prop, _, _ = self._call(
            "general",
            f"read contact property {status_prop}",
            self._apis.properties.get_by_name_with_http_info,
            "contacts",
            status_prop,
        )
        missing = sorted(preflight.missing_statuses - {o.value for o in prop.options or []})
        if not missing:
            return
        problem = self._add_status_options(status_prop, prop, missing)
        if problem:
            raise ConfigurationError(problem, crm="hubspot")
        log.info("HubSpot property %s: added options %s", status_prop, missing)

    def iter_pages(self, since: Cursor | None, *, until: datetime) -> Iterator[Page]:
        started = self._clock()
        hi = min(until, started - timedelta(seconds=self.config.lag_seconds))
        if self._archived_scan_due(started):
            yield from self._archived_pages(since, started)
        # Re-read behind the cursor only where the search index may have lagged at the last
        # read (crm-api C2: search is eventually consistent); otherwise resume at the cursor.
        start = overlap_start(since, timedelta(seconds=self.config.overlap_seconds))
        reread = self._reread_from  # cleared once this pull has read everything
        if since is not None and reread is not None:
            start = min(
                start or since.modified_at, reread - timedelta(seconds=self.config.overlap_seconds)
            )
        lo_ms = 0 if since is None else to_ms(start if start is not None else since.modified_at)
        resume_id = (
            int(since.record_id)
            if since is not None and start is None and since.record_id.isdigit()
            else None
        )
        hi_ms = to_ms(hi)
        if hi_ms < lo_ms:
            return
        moved = False
        self._pull_total = None  # set by the pull's first search
        self._search_answered = None  # and when HubSpot answered it, by HubSpot's clock
        for batch in iter_search_windows(
            self._search_page,
            lo_ms=lo_ms,
            hi_ms=hi_ms,
            page_size=self.config.page_size,
            max_results=SEARCH_MAX_RESULTS,
            resume_id=resume_id,
        ):
            leads = sorted((self._lead(c) for c in batch), key=lambda lead: lead.cursor)
            moved = True
            yield Page(
                leads, advance_cursor(leads, since, self._read_at(started)), total=self._pull_total
            )
        empty = None if moved else nothing_new_page(since, self._read_at(started))
        if empty is not None:
            yield empty
        if self._reread_from == reread:
            self._reread_from = None

    @property
    def clock_behind(self) -> timedelta:
        """From the last answer's ``Date`` header (``connectors.kit.server_clock``)."""
        return self._crm_behind

    def _read_at(self, started: datetime) -> datetime:
        """When this pull's read began, to compare with ``lastmodifieddate``: HubSpot stamps by
        its own clock, so with that clock behind the host's by more than ``overlap_seconds`` a
        re-read reaching back from the host's time starts past a contact search had not shown
        yet (crm-api C2), and the cursor had passed it for good. HubSpot's time comes from the
        first search's ``Date`` header (``connectors.kit.server_clock``)."""
        return read_started(started, self._search_answered)

    def write_batch(self, changes: Sequence[LeadChange]) -> list[RecordResult]:
        if len(changes) > self.max_batch_size:
            raise ValueError(
                f"write_batch takes at most {self.max_batch_size} changes "
                f"(got {len(changes)}); split the batch"
            )
        results: dict[int, RecordResult] = {}
        sendable: list[tuple[int, LeadChange]] = []
        for i, change in enumerate(changes):
            unmapped = sorted(set(change.fields) - set(self.config.fields))
            if unmapped:
                results[i] = RecordResult(
                    change.lead_id,
                    Outcome.FAILED,
                    "UNMAPPED_FIELD",
                    f"fields {unmapped} have no HubSpot property mapping",
                )
            else:
                sendable.append((i, change))
        cleared: dict[int, frozenset[str]] = {}
        if any(c.clear_first for _, c in sendable):
            sendable = self._clear_first(sendable, results, cleared)
        if sendable:
            self._write(sendable, results)
        out = [results[i] for i in range(len(changes))]
        for i, fields in cleared.items():
            out[i] = replace(out[i], cleared=fields)
        return self._counted(self._check_stages(changes, out))

    def _list_of(self, newsletter: str, lead_ids: Sequence[str], what: str) -> str:
        """The list id behind ``newsletter``, once the batch is known to fit one call."""
        if len(lead_ids) > self.max_membership_batch:
            raise ValueError(
                f"{what} takes at most {self.max_membership_batch} ids (got {len(lead_ids)})"
            )
        list_id = self.config.newsletters.get(newsletter)
        if list_id is None:
            raise ConfigurationError(
                f"Newsletter {newsletter!r} is not configured for HubSpot; "
                "add it under newsletters (name: ILS list id)",
                crm="hubspot",
            )
        return list_id

    def add_to_newsletter(self, newsletter: str, lead_ids: Sequence[str]) -> list[RecordResult]:
        list_id = self._list_of(newsletter, lead_ids, "add_to_newsletter")
        if not lead_ids:
            return []
        try:
            data, _, _ = self._call(
                "general",
                f"add to list {list_id}",
                self._add_members,
                list_id=list_id,
                request_body=[str(i) for i in lead_ids],
            )
        except HubSpotRequestError as e:
            raise ConfigurationError(
                f"HubSpot refused adding members to list {list_id} (newsletter {newsletter!r}, "
                f"HTTP {e.status}); it must exist and be a MANUAL or SNAPSHOT list",
                crm="hubspot",
                status=e.status,
                code=e.code,
            ) from None
        missing = set(data.record_ids_missing or [])
        # Ids already in the list are ignored by HubSpot, i.e. in place: OK (crm-api C6).
        return self._counted(
            [
                RecordResult(
                    i, Outcome.FAILED, "OBJECT_NOT_FOUND", "contact does not exist or is archived"
                )
                if i in missing
                else RecordResult(i, Outcome.OK)
                for i in map(str, lead_ids)
            ]
        )

    def remove_from_newsletter(
        self, newsletter: str, lead_ids: Sequence[str]
    ) -> list[RecordResult]:
        """Remove contacts from the newsletter's list; a contact that is no member is ``OK``.

        One ``PUT /crm/v3/lists/{listId}/memberships/remove`` per batch
        (https://developers.hubspot.com/docs/api/crm/lists): ids not in the list are ignored
        by HubSpot, i.e. already removed.
        """
        list_id = self._list_of(newsletter, lead_ids, "remove_from_newsletter")
        if not lead_ids:
            return []
        try:
            self._call(
                "general",
                f"remove from list {list_id}",
                self._remove_members,
                list_id=list_id,
                request_body=[str(i) for i in lead_ids],
            )
        except HubSpotRequestError as e:
            raise ConfigurationError(
                f"HubSpot refused removing members from list {list_id} (newsletter "
                f"{newsletter!r}, HTTP {e.status}); it must exist and be a MANUAL or SNAPSHOT "
                "list",
                crm="hubspot",
                status=e.status,
                code=e.code,
            ) from None
        # A contact that is gone is no member either: removed is what was asked for.
        return [RecordResult(i, Outcome.OK) for i in map(str, lead_ids)]

    def describe_crm_fields(self, names: Sequence[str]) -> dict[str, CrmField]:
        """From the contact properties: existence and whether the value is read-only.

        HubSpot text properties hold up to 65,536 characters
        (https://knowledge.hubspot.com/properties/property-field-types-in-hubspot).
        """
        data, _, _ = self._call(
            "general",
            "read contact properties",
            self._apis.properties.get_all_with_http_info,
            "contacts",
        )
        props = {p.name: p for p in data.results}
        out: dict[str, CrmField] = {}
        for name in names:
            prop = props.get(name)
            if prop is None:
                out[name] = CrmField(name, exists=False)
                continue
            meta = prop.modification_metadata
            read_only = meta is not None and bool(meta.read_only_value)
            text = prop.type == "string"
            out[name] = CrmField(name, True, not read_only, _HUBSPOT_TEXT_MAX if text else None)
        return out

    def read_leads(self, lead_ids: Sequence[str]) -> list[RemoteLead]:
        """One batch read (``POST /crm/v3/objects/contacts/batch/read``) per 100 contacts."""
        out: list[RemoteLead] = []
        for start in range(0, len(lead_ids), self.max_batch_size):
            chunk = lead_ids[start : start + self.max_batch_size]
            body = BatchReadInputSimplePublicObjectId(
                inputs=[
                    SimplePublicObjectId(id=str(i), local_vars_configuration=self._models)
                    for i in chunk
                ],
                properties=[*self._props, MERGED_IDS],
                properties_with_history=[],
                local_vars_configuration=self._models,
            )
            data, _, _ = self._call(
                "general",
                f"read of {len(chunk)} contacts",
                self._apis.batch.read_with_http_info,
                batch_read_input_simple_public_object_id=body,
            )
            for obj in data.results or []:
                props = obj.properties or {}
                modified = _modified_at(props.get("lastmodifieddate"), obj.updated_at)
                out.append(self._lead(RawContact(str(obj.id), to_ms(modified), props)))
        return out

    def status_history(
        self, lead_ids: Sequence[str], *, also: Sequence[str] = ()
    ) -> list[HistoryEntry]:
        """The status property's past values: one batch read with ``propertiesWithHistory``
        per 50 contacts (the cap with history, docs/crm-api.md#c4). HubSpot returns a bounded
        number of past values, newest first; the oldest one kept has no known ``from_value``.
        The mapped properties of ``also`` (any field a rule sets: the lifecycle stage, a custom
        property) ride in the same reads: ``propertiesWithHistory`` is a list of properties,
        answered per contact by name (docs/crm-api.md#c10). Their values come as text. An id
        merged into another contact gives nothing (its answer is the merged contact's,
        docs/crm-api.md#c12)."""
        status = self.config.fields.get("status")
        if status is None:
            return []
        props = {status: "status"}
        for canonical in also:
            prop = self.config.fields.get(canonical)
            if prop is not None:
                props.setdefault(prop, canonical)
        out: list[HistoryEntry] = []
        for start in range(0, len(lead_ids), HISTORY_BATCH):
            chunk = lead_ids[start : start + HISTORY_BATCH]
            body = BatchReadInputSimplePublicObjectId(
                inputs=[
                    SimplePublicObjectId(id=str(i), local_vars_configuration=self._models)
                    for i in chunk
                ],
                properties=[],
                properties_with_history=list(props),
                local_vars_configuration=self._models,
            )
            answer: dict[str, dict[str, list[HistoryValue]]]
            answer, _, _ = self._call(
                "general",
                f"status history of {len(chunk)} contacts",
                self._history_json,
                list(props),
                batch_read_input_simple_public_object_id=body,
            )
            asked = {str(i) for i in chunk}
            for contact_id, by_prop in answer.items():
                if contact_id not in asked:
                    # An original id of a merge answers the merged contact (crm-api C12): its
                    # history, both originals', is read when it is itself asked for (syncd reads
                    # it when it first sees it), never under an original's name.
                    continue
                for prop, canonical in props.items():
                    out.extend(_transitions(contact_id, canonical, by_prop.get(prop) or []))
        return out

    def _history_json(
        self,
        props: Sequence[str],
        *,
        batch_read_input_simple_public_object_id: BatchReadInputSimplePublicObjectId,
        _request_timeout: float,
    ) -> tuple[dict[str, dict[str, list[HistoryValue]]], int, Mapping[str, str]]:
        """One batch read with history through the client, read as JSON (``json_answers``)."""
        response = self._apis.batch.read_with_http_info(
            batch_read_input_simple_public_object_id=batch_read_input_simple_public_object_id,
            _preload_content=False,
            _request_timeout=_request_timeout,
        )
        return read_history(response, props)

    def _counted(self, results: list[RecordResult]) -> list[RecordResult]:
        for r in results:
            if r.outcome is not Outcome.OK and r.error_code:
                self.stats.record_errors[r.error_code] += 1
        return results

    def close(self) -> None:
        for api in self._apis.all():
            api.api_client.rest_client.pool_manager.clear()

    @property
    def api_objects(self) -> tuple[Any, ...]:
        """The cached hubspot-api-client API objects (one connection pool each)."""
        return self._apis.all()

    # ------------------------------------------------------------------ calls
    def _call(
        self,
        bucket: Literal["search", "general"],
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """One logical request: retried on transient failures, paced, budgeted."""
        return call_with_retry(
            lambda: self._call_once(bucket, operation, fn, *args, **kwargs),
            settings=self.config.retry,
            waiter=self._waiter,
            stats=self.stats,
            retry_on=RetriableError,
            describe=lambda: f"HubSpot {operation}",
            log=log,
        )

    def _call_once(
        self, bucket: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[Any, int, Mapping[str, str]]:
        refreshed = False
        while True:
            self._waiter.check(f"HubSpot {operation}")
            try:
                self._budget.check()
            except BudgetExhausted:
                self.stats.budget_stops += 1
                raise
            pacer = self._search_pacer if bucket == "search" else self._window
            before = pacer.waited
            try:
                pacer.acquire()
            finally:
                self.stats.paced_seconds += pacer.waited - before
            self._use_token(self._tokens.token())
            self.stats.calls += 1
            self._budget.spend()
            try:
                data, status, headers = fn(
                    *args, _request_timeout=self.config.timeout_seconds, **kwargs
                )
            except API_EXCEPTIONS as e:
                headers = getattr(e, "headers", None) or {}
                self._observe(bucket, headers)
                status = getattr(e, "status", 0)
                if status == 401 and self._tokens.can_refresh and not refreshed:
                    # Once per request: a second 401 means the credentials are bad.
                    self._use_token(self._tokens.refresh())
                    self._count_reauths()
                    refreshed = True
                    continue
                if status == 429:
                    raise self._rate_limited(e, bucket, operation) from None
                error = classify(e, operation)
                self.stats.errors[error.code or str(error.status)] += 1
                raise error from None
            except urllib3.exceptions.HTTPError as e:
                # Timeouts, resets, refused connections (crm-api D5: not ApiException).
                self.stats.errors[type(e).__name__] += 1
                raise RetriableError(
                    f"HubSpot {operation} failed ({type(e).__name__}); will retry", crm="hubspot"
                ) from None
            except AttributeError as e:
                tls = tls_failure(e)
                if tls is None:
                    raise
                self.stats.errors["SSLError"] += 1
                raise FatalError(
                    f"HubSpot {operation}: TLS with {self.config.base_url} failed ({tls}); "
                    "check hubspot.connector.base_url (http:// where the server speaks no TLS) "
                    "and that this machine trusts the server's certificate (a proxy's CA)",
                    crm="hubspot",
                ) from None
            self._count_reauths()
            self._observe(bucket, headers)
            answered = answer_date(headers)
            if answered is not None:
                self._crm_behind = crm_behind(self._clock(), answered)
            return data, status, headers

    def _count_reauths(self) -> None:
        # The first OAuth token is a refresh grant too; only later ones are re-authentications.
        self.stats.reauths = max(self._tokens.refreshes - 1, 0)

    def _use_token(self, token: str) -> None:
        if token != self._token_in_use:
            for api in self._apis.all():
                api.api_client.configuration.access_token = token
            self._token_in_use = token

    def _observe(self, bucket: str, headers: Mapping[str, str]) -> None:
        if bucket != "search":
            self._window.observe(headers)
        self._budget.observe(headers)

    def _rate_limited(self, exc: Exception, bucket: str, operation: str) -> ConnectorError:
        body = error_body(exc)
        policy = str(body.get("policyName") or ("SECONDLY" if bucket == "search" else "UNKNOWN"))
        self.stats.rate_limited[policy] += 1
        if policy == "DAILY":
            self.stats.budget_stops += 1
            resume_at = self._budget.exhaust()
            return BudgetExhausted(
                f"HubSpot daily API limit reached during {operation}; "
                f"resuming at {resume_at:%Y-%m-%d %H:%M} UTC",
                resume_at=resume_at,
                crm="hubspot",
                status=429,
                code=policy,
            )
        wait = retry_after(getattr(exc, "headers", None))
        if bucket == "search":
            wait = wait if wait is not None else 1.0
            self._search_pacer.defer(wait)
        else:
            wait = wait if wait is not None else TenSecondWindow.WINDOW  # wait out the window
            self._window.defer(wait)
        return RateLimited(
            f"HubSpot rate limit {policy} hit during {operation}; retrying in {wait:g}s",
            retry_after=wait,
            crm="hubspot",
            status=429,
            code=policy,
        )

    # ------------------------------------------------------------------ reading
    def _search_page(
        self, groups: list[list[Filter]], sort: Filter, after: str | None
    ) -> SearchPage:
        # ``groups`` are OR'ed, the filters within one group AND'ed.
        request = PublicObjectSearchRequest(
            filter_groups=[{"filters": g} for g in groups],
            sorts=[sort],
            properties=[*self._props, MERGED_IDS],
            limit=self.config.page_size,
            after=after,
            local_vars_configuration=self._models,
        )
        answer: SearchAnswer
        answer, _, headers = self._call(
            "search", "contact search", self._search_json, public_object_search_request=request
        )
        if self._search_answered is None:
            self._search_answered = answer_date(headers)
        if self._pull_total is None and answer.total is not None:
            # The first window spans the whole pull: its total is the pull's (later windows
            # restart past the 10,000 cap and count only what is left).
            self._pull_total = answer.total
        return SearchPage(answer.contacts, answer.next_after, answer.total)

    def _search_json(
        self, *, public_object_search_request: PublicObjectSearchRequest, _request_timeout: float
    ) -> tuple[SearchAnswer, int, Mapping[str, str]]:
        """One search through the client, its answer read as JSON (``json_answers``)."""
        response = self._apis.search.do_search_with_http_info(
            public_object_search_request=public_object_search_request,
            _preload_content=False,
            _request_timeout=_request_timeout,
        )
        return read_answer(response)

    def history_value(self, field: str, text: str | None) -> Any:
        """A property's past value (HubSpot keeps text) typed as a pull types the field
        (``field_types``): the mirror then holds what a pull would. HubSpot takes either form
        on a write (a number property accepts ``"75"``, crm-api C10)."""
        if text is None:
            return None
        return parse_fields({"value": text}, {field: "value"}, self.config.field_types)[field]

    def _lead(self, contact: RawContact) -> RemoteLead:
        if not contact.properties.keys() >= self._props_asked:
            self._absent_seen.update(self._props_asked - contact.properties.keys())
        quarantine = Quarantine()
        fields = parse_fields(
            contact.properties, self.config.fields, self.config.field_types, quarantine
        )
        merged = contact.properties.get(MERGED_IDS)
        return RemoteLead(
            id=contact.id,
            modified_at=datetime.fromtimestamp(contact.modified_ms / 1000, tz=UTC),
            fields=fields,
            problems=quarantine.problems,
            merged_ids=_merged_ids(str(merged), contact.id) if merged else (),
        )

    def _archived_scan_due(self, now: datetime) -> bool:
        last = self._last_archived_scan
        return last is None or (now - last).total_seconds() >= (
            self.config.archived_scan_interval_seconds
        )

    def _archived_pages(self, since: Cursor | None, started: datetime) -> Iterator[Page]:
        """Archived contacts as deleted leads (search never returns them).

        The listing has no time filter (crm-api C3), so it is scanned in full, at most every
        ``archived_scan_interval_seconds``, keeping contacts archived since the previous scan
        (or, after a restart, since the cursor minus one interval). Their pages carry the
        incoming cursor: archive times say nothing about the modification-time cursor.
        """
        overlap = timedelta(seconds=self.config.overlap_seconds)
        if self._last_archived_scan is not None:
            floor: datetime | None = self._last_archived_scan - overlap
        elif since is not None:
            floor = (
                since.modified_at
                - overlap
                - timedelta(seconds=self.config.archived_scan_interval_seconds)
            )
        else:
            floor = None
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": ARCHIVED_PAGE_SIZE,
                "archived": True,
                "properties": self._props,
            }
            if after:
                kwargs["after"] = after
            data, _, _ = self._call(
                "general",
                "archived contact listing",
                self._apis.basic.get_page_with_http_info,
                **kwargs,
            )
            leads = []
            for obj in data.results or []:
                stamp = obj.archived_at or obj.updated_at
                archived_at = stamp.astimezone(UTC) if stamp else started
                if floor is None or archived_at >= floor:
                    quarantine = Quarantine()
                    fields = parse_fields(
                        obj.properties or {},
                        self.config.fields,
                        self.config.field_types,
                        quarantine,
                    )
                    leads.append(
                        RemoteLead(
                            id=str(obj.id),
                            modified_at=archived_at,
                            fields=fields,
                            deleted=True,
                            problems=quarantine.problems,
                        )
                    )
            if leads:
                yield Page(sorted(leads, key=lambda lead: lead.cursor), since)
            after = data.paging.next.after if data.paging and data.paging.next else None
            if not after:
                break
        self._last_archived_scan = started

    # ------------------------------------------------------------------ writing
    def _write(self, items: list[tuple[int, LeadChange]], results: dict[int, RecordResult]) -> None:
        """Batch update; on a whole-batch 400, fail the named records and resend the rest."""
        inputs = [
            SimplePublicObjectBatchInput(
                id=c.lead_id,
                properties={
                    **{self.config.fields[k]: format_value(v) for k, v in c.fields.items()},
                    **{k: format_value(v) for k, v in c.crm_fields.items()},
                },
                local_vars_configuration=self._models,
            )
            for _, c in items
        ]
        answer: BatchUpdateAnswer
        try:
            answer, status, _ = self._call(
                "general",
                "contact batch update",
                self._batch_update,
                batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
                    inputs=inputs, local_vars_configuration=self._models
                ),
            )
        except HubSpotRequestError as e:
            if e.status != 400:
                raise
            self._split_after_400(items, results, e.body)
            return
        failed: dict[str, RecordResult] = {}
        unnamed: list[str] = []  # errors that name no contact
        for err in answer.errors if status == 207 else []:
            code, message = _explain(err.category, err.message)
            outcome, message = _property_gone(
                code, _BATCH_OUTCOMES.lookup(code=err.category), message
            )
            for lead_id in err.ids:
                failed[lead_id] = RecordResult(lead_id, outcome, code, message)
            if not err.ids:
                unnamed.append(f"{code}: {message}")
        # A 207 lists the contacts it updated in ``results``: one it names neither there nor
        # in an error was not confirmed, and taken as written its unchanged status read as a
        # person's edit on the next pull. It is sent again (and fails visibly if it goes on).
        updated = {contact_id for contact_id, _ in answer.results} if status == 207 else None
        for i, change in items:
            result = failed.get(change.lead_id)
            if result is None and updated is not None and change.lead_id not in updated:
                result = RecordResult(
                    change.lead_id,
                    Outcome.RETRY,
                    "UNCONFIRMED",
                    "HubSpot's partial answer (207) named this contact neither updated nor "
                    "failed" + (f"; its errors: {'; '.join(unnamed)[:300]}" if unnamed else ""),
                )
            results[i] = result or RecordResult(change.lead_id, Outcome.OK)
        stage_prop = self.config.fields.get("lifecycle_stage")
        if stage_prop is not None and any("lifecycle_stage" in c.fields for _, c in items):
            for contact_id, props in answer.results:
                if stage_prop in props:
                    self._written_stages[contact_id] = props[stage_prop] or None

    def _batch_update(self, **kwargs: Any) -> tuple[BatchUpdateAnswer, int, Mapping[str, str]]:
        """One batch update through the client, its answer read as JSON (``json_answers``):
        the documented ``BatchResponse`` listing the contacts as updated
        (https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-update).

        Another 2xx body (cut short, a proxy's page) says nothing of what landed: taken as
        every record written, the next pull took the unchanged status for a person's edit. It
        is retried as a lost answer is (setting the same values again is harmless)."""
        response = self._apis.batch.update_with_http_info(_preload_content=False, **kwargs)
        return read_batch_update(response)

    def _add_members(self, **kwargs: Any) -> tuple[Any, int, Mapping[str, str]]:
        return self._memberships(self._apis.memberships.add_with_http_info, "add", **kwargs)

    def _remove_members(self, **kwargs: Any) -> tuple[Any, int, Mapping[str, str]]:
        return self._memberships(self._apis.memberships.remove_with_http_info, "remove", **kwargs)

    def _memberships(
        self, fn: Callable[..., Any], what: str, **kwargs: Any
    ) -> tuple[Any, int, Mapping[str, str]]:
        """One list membership change whose answer is the documented
        ``MembershipsUpdateResponse`` (the ids added, missing, removed:
        https://developers.hubspot.com/docs/api-reference/crm-lists-v3/memberships/put-crm-v3-lists-listId-memberships-add).
        Another body passed as every contact added (or removed), and the change was never
        sent again; it is retried as a lost answer is (the change is idempotent)."""
        data, status, headers = fn(**kwargs)
        answered = ("records_ids_added", "record_ids_missing", "record_ids_removed")
        if not any(isinstance(getattr(data, name, None), list) for name in answered):
            raise RetriableError(
                f"HubSpot list membership {what} answered with a body that is not what the "
                "API documents; will retry",
                crm="hubspot",
            )
        return data, status, headers

    def _clear_first(
        self,
        items: list[tuple[int, LeadChange]],
        results: dict[int, RecordResult],
        cleared: dict[int, frozenset[str]],
    ) -> list[tuple[int, LeadChange]]:
        """Clear the fields a declared backward move must clear, in a request of its own
        (HubSpot applies a backward lifecyclestage only to an empty property,
        docs/crm-api.md#c9). Returns the items to set next: those whose clear failed keep
        that failure and are not set."""
        clears = [
            (i, LeadChange(c.lead_id, dict.fromkeys(c.clear_first)))
            for i, c in items
            if c.clear_first
        ]
        outcome: dict[int, RecordResult] = {}
        self._write(clears, outcome)
        rest = []
        for i, change in items:
            result = outcome.get(i)
            if result is not None and result.outcome is not Outcome.OK:
                results[i] = result
                continue
            if change.clear_first:
                cleared[i] = frozenset(change.clear_first)
            rest.append((i, change))
        return rest

    def _check_stages(
        self, changes: Sequence[LeadChange], results: list[RecordResult]
    ) -> list[RecordResult]:
        """A lifecycle stage HubSpot answered 200 for but did not apply (a backward move of
        a property not cleared first) fails visibly instead of passing as written."""
        field = "lifecycle_stage"
        out = []
        for change, result in zip(changes, results, strict=True):
            wanted = change.fields.get(field)
            got = self._written_stages.get(change.lead_id, wanted)
            if result.outcome is Outcome.OK and wanted is not None and got != wanted:
                result = RecordResult(  # noqa: PLW2901 - the same record, judged again
                    change.lead_id,
                    Outcome.FAILED,
                    "LIFECYCLE_NOT_APPLIED",
                    f"HubSpot kept lifecyclestage '{got}' instead of '{wanted}': it moves only "
                    "forward unless cleared first; declare the move in lifecycle.backward",
                )
            out.append(result)
        self._written_stages.clear()
        return out

    def _split_after_400(
        self,
        items: list[tuple[int, LeadChange]],
        results: dict[int, RecordResult],
        body: Mapping[str, Any],
    ) -> None:
        message = str(body.get("message") or "")
        problems = invalid_properties(message)
        named: dict[str, dict[str, Any]] = {}
        for p in problems:
            if p.get("id") is not None:
                named.setdefault(str(p["id"]), p)
        for lead_id in (body.get("context") or {}).get("ids") or []:
            named.setdefault(str(lead_id), {})
        batch_ids = {c.lead_id for _, c in items}
        if named and set(named) <= batch_ids and set(named) != batch_ids:
            rest = []
            for i, change in items:
                if change.lead_id in named:
                    p = named[change.lead_id]
                    code = p.get("error") or str(body.get("category"))
                    outcome, text = _property_gone(
                        code, Outcome.FAILED, p.get("message") or message
                    )
                    results[i] = RecordResult(change.lead_id, outcome, code, text)
                else:
                    rest.append((i, change))
            self._write(rest, results)
        elif len(items) == 1:
            i, change = items[0]
            code, text = _explain(body.get("category"), message)
            outcome, text = _property_gone(code, Outcome.FAILED, text)
            results[i] = RecordResult(change.lead_id, outcome, code, text)
        else:
            # The body does not say which inputs are bad: bisect (log2(n) extra calls per bad one).
            mid = len(items) // 2
            self._write(items[:mid], results)
            self._write(items[mid:], results)

    # ------------------------------------------------------------------ preflight helpers
    def _add_status_options(self, name: str, prop: Any, missing: list[str]) -> str | None:
        """PATCH the property with its options plus ``missing``; a problem, or None."""
        meta = prop.modification_metadata
        if meta is not None and meta.read_only_options:
            return f"HubSpot property {name} has read-only options; cannot add {missing}"
        existing = list(prop.options or [])
        order = max((o.display_order or 0 for o in existing), default=-1) + 1
        # Send the whole list: PATCH options may replace rather than merge (crm-api C5, F3).
        options = [
            OptionInput(
                label=o.label,
                value=o.value,
                display_order=o.display_order,
                hidden=bool(o.hidden),
                description=o.description,
            )
            for o in existing
        ]
        options += [
            OptionInput(
                label=v.replace("_", " ").title(), value=v, display_order=order + n, hidden=False
            )
            for n, v in enumerate(missing)
        ]
        data, _, _ = self._call(
            "general",
            f"add options to property {name}",
            self._apis.properties.update_with_http_info,
            "contacts",
            name,
            PropertyUpdate(options=options),
        )
        values = {o.value for o in data.options or []}
        still = sorted(set(missing) - values)
        return f"HubSpot did not add options {still} to {name}" if still else None

    def _check_list(self, newsletter: str) -> str | None:
        list_id = self.config.newsletters.get(newsletter)
        if list_id is None:
            return (
                f"Newsletter {newsletter!r} has no HubSpot list configured "
                "(newsletters: name -> ILS list id)"
            )
        try:
            data, _, _ = self._call(
                "general",
                f"read list {list_id}",
                self._apis.lists.get_by_id_with_http_info,
                list_id=list_id,
            )
        except HubSpotRequestError as e:
            return (
                f"HubSpot list {list_id} for newsletter {newsletter!r} cannot be read "
                f"(HTTP {e.status}); check the ILS list id"
            )
        processing = data.list.processing_type
        if processing not in ("MANUAL", "SNAPSHOT"):
            return (
                f"HubSpot list {list_id} ({data.list.name!r}) for newsletter {newsletter!r} "
                f"is {processing}; members can only be added to MANUAL or SNAPSHOT lists"
            )
        return None


def _property_gone(code: str, outcome: Outcome, message: str) -> tuple[Outcome, str]:
    """A write naming a property HubSpot no longer has (archived or deleted after start-up
    checked it) waits for the admin, with what to do, instead of failing each contact's
    change for good: the same write succeeds once the property is back."""
    if code != "PROPERTY_DOESNT_EXIST":
        return outcome, message
    return Outcome.RETRY, (
        f"{message}: the contact property was archived or deleted after start-up checked it; "
        "restore it in HubSpot, or fix hubspot.fields or hubspot.provenance (the changes wait, "
        "retried with backoff)"
    )


def _explain(category: Any, message: Any) -> tuple[str, str]:
    """(error code, message) for one record, preferring the inner per-property problem."""
    text = str(message or "")
    problems = invalid_properties(text) if "not valid" in text else []
    if problems:
        first = problems[0]
        return str(first.get("error") or category), str(first.get("message") or text)
    return str(category or "ERROR"), text


def _merged_ids(value: str, own_id: str) -> tuple[str, ...]:
    """The other ids in an ``hs_merged_object_ids`` value (``"1001;1002"``)."""
    return tuple(i for i in (part.strip() for part in value.split(";")) if i and i != own_id)


def _modified_at(stamp: str | None, updated_at: datetime | None) -> datetime:
    """A contact's ``lastmodifieddate``, else its ``updatedAt``; never raises on bad data."""
    if stamp:
        try:
            return parse_time(stamp)
        except (ValueError, OverflowError, OSError):
            pass
    return (updated_at or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)


#: Batch read answers at most 50 contacts when it returns property history (docs/crm-api.md#c4).
HISTORY_BATCH = 50


def _transitions(lead_id: str, field: str, values: Sequence[HistoryValue]) -> list[HistoryEntry]:
    """One property's past values (newest first, as answered) as transitions, oldest first;
    values of one millisecond keep the answer's order."""
    out: list[HistoryEntry] = []
    before: str | None = None
    for v in sorted(reversed(values), key=lambda v: v.timestamp):
        after = v.value or None  # "" is a cleared property
        if after != before:
            out.append(_history_entry(lead_id, before, after, v, field=field))
        before = after
    return out


def _history_entry(
    lead_id: str, before: str | None, after: str | None, v: HistoryValue, *, field: str = "status"
) -> HistoryEntry:
    """One past value (hubspot-api-client ``ValueWithTimestamp``) as a transition: a UI edit is
    a person's, an integration's write syncd's (or another app's), anything else (imports,
    workflows, forms) the CRM's automation."""
    source = str(v.source_type or "")
    actor: HistoryActorKind
    if source == "INTEGRATION":
        actor = "integration"
    elif source == "CRM_UI":
        actor = "person"
    elif source:
        actor = "automation"
    else:
        actor = "unknown"
    user = v.updated_by_user_id
    at = v.timestamp if v.timestamp.tzinfo else v.timestamp.replace(tzinfo=UTC)
    return HistoryEntry(
        lead_id,
        field,
        before,
        after,
        at.astimezone(UTC),
        actor,
        None if user is None else str(user),
    )
