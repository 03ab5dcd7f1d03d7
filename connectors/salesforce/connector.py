"""The Salesforce connector: pulls leads through one ``queryAll`` stream (5 query pages chained a
Composite call, :mod:`.query_chain`; a Bulk API 2.0 query job when the pull is large,
:mod:`.bulk_read`), writes through sObject Collections, all through the real simple-salesforce
client.

Auth is done here, not by simple-salesforce: the connector grants a token at the configured
token URL and builds ``Salesforce(instance_url=..., session_id=...)`` ("direct" mode, crm-api B1).
In that mode simple-salesforce never refreshes a session (crm-api B5), so a 401
``INVALID_SESSION_ID`` is handled here: grant again, retry once, and a second 401 is an
:class:`~connectors.errors.AuthError`. Transient failures (5xx, 420, resets, timeouts) get one
retry layer (tenacity, exponential backoff with jitter); there is no urllib3 ``Retry`` on the
session.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from simple_salesforce.format import format_soql

from connectors.base import (
    ApiQuota,
    Connector,
    ConnectorStats,
    CrmField,
    Cursor,
    FieldWrites,
    HistoryEntry,
    LeadChange,
    NewsletterAdds,
    Outcome,
    Page,
    Preflight,
    RecordResult,
    RemoteLead,
    WriteCollection,
    WrittenThenRead,
    overlap_start,
)
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConfigurationError,
    ConnectorError,
    FatalError,
    RetriableError,
)
from connectors.kit import Quarantine, Waiter, advance_cursor, call_with_retry, nothing_new_page
from connectors.kit.errors import ANY, ErrorTable
from connectors.kit.server_clock import answer_date, crm_behind
from connectors.kit.values import text_problem

from .auth import Authenticator, Token, authenticator_for
from .batching import failed_whole, write_splitting
from .bulk_read import SYSTEM_TYPES, BulkQueryReader, typed_text
from .composite import (
    HISTORY_REFERENCE,
    MAX_COLLECTIONS,
    Subrequest,
    SubrequestAnswer,
    composite_body,
    subrequest_answers,
    subrequest_error,
)
from .config import SalesforceConfig
from .query_chain import ChainAnswer, chain_body, chain_pages
from .results import RECORD_OUTCOMES, classify_save_result
from .soql import (
    SYSTEM_FIELDS,
    format_wire_datetime,
    lead_stream_query,
    parse_date,
    parse_datetime,
)

__all__ = ["SalesforceConnector"]

log = logging.getLogger("connectors.salesforce")

T = TypeVar("T")
CRM = "salesforce"

#: sObject Collections take at most 200 records per call (crm-api A5).
COLLECTION_LIMIT = 200

#: Types of standard Lead fields whose JSON values need parsing; describe() refines this.
_STANDARD_TYPES = {
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
    "LastActivityDate": "date",
    "ConvertedDate": "date",
}

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
#: REQUEST_LIMIT_EXCEEDED for concurrent requests says so in its message, e.g.
#: "ConcurrentRequests (Concurrent API Requests) Limit exceeded."; the daily one says
#: "TotalRequests Limit exceeded." (docs/crm-api.md#a11).
_CONCURRENT = re.compile(r"Concurrent", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Transient(RetriableError):
    """Internal: a failure the retry layer retries (other RetriableErrors are not retried here,
    e.g. an expired query locator, which only a new pull can fix)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(reason, retry_after=retry_after, crm=CRM, status=status, code=code)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What a failed request means: the error to raise and what the admin should do."""

    error: type[ConnectorError]
    advice: str = ""


_RETRY = _Meaning(_Transient)
_FIELDS = _Meaning(
    ConfigurationError,
    "check salesforce.fields and salesforce.provenance against the org's Lead fields",
)
_AUTH = _Meaning(AuthError, "check the integration user's permissions and {auth}")

#: Whole-request failures by (HTTP status, errorCode), see
#: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm.
#: Server errors, maintenance (503 with an HTML body) and 420 edge routing are retried.
_REQUEST_ERRORS: ErrorTable[_Meaning] = ErrorTable(
    {
        (420, ANY): _RETRY,
        (500, ANY): _RETRY,
        (502, ANY): _RETRY,
        (503, ANY): _RETRY,
        (504, ANY): _RETRY,
        # The org's daily allowance is spent: retrying only burns more.
        (403, "REQUEST_LIMIT_EXCEEDED"): _Meaning(BudgetExhausted, "daily API limit exceeded"),
        (ANY, "INVALID_QUERY_LOCATOR"): _Meaning(
            RetriableError, "the query cursor expired; the next pull restarts from the saved cursor"
        ),
        (ANY, "MALFORMED_QUERY"): _FIELDS,
        (ANY, "INVALID_FIELD"): _FIELDS,
        (ANY, "INVALID_TYPE"): _FIELDS,
        (404, ANY): _Meaning(
            ConfigurationError,
            "resource not found; check salesforce.instance_url and salesforce.api_version",
        ),
        (401, ANY): _AUTH,
        (403, ANY): _AUTH,
    },
    default=_Meaning(FatalError),
)


#: How Salesforce names the field in an INVALID_FIELD answer to a query (crm-api A10).
_NO_SUCH_COLUMN = re.compile(r"No such column '([^']+)'")


def _text(value: Any) -> str | None:
    """A LeadHistory OldValue/NewValue (``anyType``: in the field's JSON type, a number
    field's a number) as :class:`HistoryEntry` keeps values: text, booleans as a query job's
    CSV writes them."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: LeadHistory's columns, as every history read selects them.
_HISTORY_FROM = (
    "SELECT LeadId, Field, OldValue, NewValue, CreatedById, CreatedDate FROM LeadHistory"
)
#: LeadHistory's Status rows: the race check's query and first sight's when no other field's
#: history is read.
_HISTORY_SELECT = f"{_HISTORY_FROM} WHERE Field = 'Status'"
#: A Lead field's API name, fit for a SOQL literal as it is (custom ones end in ``__c``).
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: LeadHistory ``Field`` -> canonical name, of the Status rows alone.
_STATUS_ONLY: Mapping[str, str] = {"Status": "status"}
#: Rows per query page of the org's whole history: the most ``batchSize`` allows (crm-api A2).
_HISTORY_PAGE = 2000


def _next_page(url: str, **kwargs: Any) -> Callable[[Salesforce], dict[str, Any]]:
    """The call reading the query page at ``url``, bound now (the callers build it in a loop)."""
    return lambda sf: sf.query_more(url, identifier_is_url=True, **kwargs)


def _error_code(exc: SalesforceError) -> tuple[str | None, str]:
    """(errorCode, message) from Salesforce's ``[{message, errorCode}]`` body, if it is one."""
    # simple-salesforce annotates ``content`` as bytes, but it stores the parsed JSON body there.
    content: object = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return (
            str(content[0].get("errorCode") or "") or None,
            str(content[0].get("message") or "")[:300],
        )
    return None, ""


#: Describe types -> the rule language's value types (others are text).
_SF_KINDS = {
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "integer",
    "boolean": "boolean",
    "datetime": "datetime",
    "date": "datetime",
}


class SalesforceConnector(Connector):
    """One Salesforce org, read and written through simple-salesforce over HTTPS.

    Args:
        config: connection settings.
        clock: returns the current tz-aware UTC time (injected for tests).
        sleep: how retry waits sleep (injected for tests); None waits in real time, cut short
            by the event given to :meth:`bind_stop`.
    """

    kind = "salesforce"
    max_batch_size: int = COLLECTION_LIMIT  # lowered per instance by salesforce.batch_size
    max_membership_batch = COLLECTION_LIMIT
    status_history_batch = COLLECTION_LIMIT
    history_of_rule_fields = True

    def __init__(
        self,
        config: SalesforceConfig,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._waiter = Waiter(sleep)
        self._http = requests.Session()
        # simple-salesforce never passes verify= per request, and REQUESTS_CA_BUNDLE / proxy
        # variables would override the session otherwise (crm-api B2).
        self._http.trust_env = False
        self._http.verify = str(config.ca_bundle) if config.ca_bundle else True
        self._http.hooks["response"].append(self._observe_response)
        self._auth: Authenticator = authenticator_for(config.auth, config.token_url, clock)
        self._token: Token | None = None
        self._sf: Salesforce | None = None
        self._usage: tuple[int, int] | None = None
        #: How far Salesforce's clock runs behind the host's, by the last answer's Date.
        self._crm_behind = timedelta(0)
        self._field_types: dict[str, str] = dict(_STANDARD_TYPES)
        #: Mapped canonical fields the org lacks (found by ``check``); pulls leave them out.
        self._absent: set[str] = set()
        #: ... of which those a pull's query found deleted or hidden after ``check`` found
        #: them (canonical -> API name): ``fields_gone``.
        self._gone: dict[str, str] = {}
        self.max_batch_size = config.batch_size
        # Composite carries up to 5 collections in one counted call (crm-api A6).
        self.max_collections_per_call = MAX_COLLECTIONS if config.composite else 1
        # ... or 4 and the query of people's status edits, the race check (crm-api A6).
        self.collections_with_history = MAX_COLLECTIONS - 1 if config.composite else 0
        # Query pages chained 5 a call through Composite (query_chain); off once refused.
        self._chain_reads = config.composite
        # The edits query the next pull's first page carries (read_edits_beside_pull): from
        # when, and the LeadHistory fields it reads.
        self._edits_beside: datetime | None = None
        self._edits_fields: Mapping[str, str] = _STATUS_ONLY
        self._edits_read: WrittenThenRead | None = None
        # Set when a collection of the current call was split and sent again on its own.
        self._resent_outside_call = False
        # Status value -> record types whose Status picklist lacks it (read by check()).
        self._refused_by_record_type: dict[str, list[str]] = {}
        self.stats = ConnectorStats()
        self.last_pull_was_full_reconcile = False

    # -- public API -----------------------------------------------------------------------------

    def api_quota(self) -> ApiQuota | None:
        """The org's daily API calls (used, limit) from the last ``Sforce-Limit-Info``."""
        return ApiQuota(*self._usage) if self._usage else None

    @property
    def clock_behind(self) -> timedelta:
        """From the last answer's ``Date`` header (``connectors.kit.server_clock``)."""
        return self._crm_behind

    def bind_stop(self, stop: threading.Event) -> None:
        self._waiter.bind(stop)

    @property
    def integration_user_id(self) -> str | None:
        """The user the token maps to (from the token response's identity URL)."""
        return self._token.user_id if self._token else None

    def check(self, *, statuses: set[str], fields: set[str], newsletters: set[str]) -> Preflight:
        """Read LeadStatus, describe Lead and look up campaigns; list every problem.

        Only GET calls are made: nothing is written.
        """
        problems: list[str] = []
        rows = self._query_records(
            "SELECT ApiName, MasterLabel, IsConverted, IsDefault, SortOrder FROM LeadStatus "
            "ORDER BY SortOrder",
            "query of LeadStatus",
        )
        available = {str(r["ApiName"]) for r in rows}
        converted = {str(r["ApiName"]) for r in rows if r.get("IsConverted")}
        missing_statuses = statuses - available
        missing_fields: set[str] = set()
        for status in sorted(missing_statuses):
            problems.append(
                f"Lead status {status!r} used by the rules does not exist in this Salesforce "
                f"org (it has: {', '.join(sorted(available))}); add it under Setup > Lead "
                "Status or change the rules"
            )
        for status in sorted(statuses & converted):
            problems.append(
                f"Lead status {status!r} is a converted status: Salesforce sets it only by lead "
                "conversion, so syncd cannot write it; change the rules"
            )

        describe = self._call(
            "describe of Lead",
            lambda sf: sf.restful("sobjects/Lead/describe", timeout=self._config.timeout_seconds),
        )
        by_name = {str(f["name"]): f for f in (describe or {}).get("fields", [])}
        self._field_types.update({n: str(f.get("type")) for n, f in by_name.items()})
        mapping = self._config.fields
        # A mapped field the org lacks is data, not a problem by itself: the app knows which
        # rules read it (start-up fails naming them) and warns about the others. Pulls leave
        # absent fields out, so a query never fails with INVALID_FIELD on them.
        self._absent = {c for c, api in mapping.items() if api not in by_name}
        # Still gone to fields_gone: a rule reload this check refuses keeps the rules reading it.
        self._gone = {c: api for c, api in self._gone.items() if c in self._absent}
        missing_fields |= self._absent
        kinds = {
            c: _SF_KINDS.get(str(by_name[api].get("type")), "string")
            for c, api in mapping.items()
            if api in by_name
        }
        for canonical in sorted(self._absent & (fields | {"status"})):
            problems.append(
                f"Lead has no field {mapping[canonical]!r} (mapped from {canonical!r} in "
                f"salesforce.fields), which syncd writes; fix the mapping or create the field"
            )
        writable = {c for c, api in mapping.items() if by_name.get(api, {}).get("updateable")}
        for canonical in sorted(fields):
            written = mapping.get(canonical)
            if written is None:
                missing_fields.add(canonical)
                problems.append(
                    f"field {canonical!r} written by the rules has no Salesforce "
                    "mapping; add it to salesforce.fields"
                )
            elif written in by_name and canonical not in writable:
                problems.append(
                    f"Lead.{written} ({canonical!r}) is not updateable by the integration user; "
                    "grant edit access to it (field-level security) or stop writing it in the "
                    "rules"
                )

        warnings, refused = self._check_record_types(describe, statuses & available)
        self._check_campaigns(newsletters, problems)
        return Preflight(
            statuses=available,
            writable_fields=writable,
            problems=problems,
            missing_statuses=missing_statuses,
            missing_fields=missing_fields,
            field_kinds=kinds,
            warnings=warnings,
            partly_refused_statuses=refused,
        )

    def _check_campaigns(self, newsletters: set[str], problems: list[str]) -> None:
        """Every newsletter the rules use has a Campaign Id that exists and is visible."""
        campaign_ids: dict[str, str] = {}
        for name in sorted(newsletters):
            cid = self._config.newsletters.get(name)
            if cid is None:
                problems.append(
                    f"newsletter {name!r} used by the rules has no Campaign Id; add "
                    "it to salesforce.newsletters"
                )
            else:
                campaign_ids[name] = cid
        if campaign_ids:
            found = self._query_records(
                format_soql(
                    "SELECT Id, Name, IsActive FROM Campaign WHERE Id IN {ids}",
                    ids=sorted(set(campaign_ids.values())),
                ),
                "query of Campaign",
            )
            present = {str(r["Id"])[:15] for r in found}
            for name, cid in sorted(campaign_ids.items()):
                if cid[:15] not in present:
                    problems.append(
                        f"Campaign {cid} (newsletter {name!r}) does not exist or is "
                        "not visible to the integration user; fix "
                        "salesforce.newsletters"
                    )

    def _check_record_types(
        self, describe: Any, statuses: set[str]
    ) -> tuple[list[str], dict[str, list[str]]]:
        """Which target statuses some Lead record types do not allow (docs/crm-api.md#a14).

        Record types come from describe's ``recordTypeInfos`` (the master type, which allows
        every value, is skipped); each one's Status values from the UI API's
        ``picklist-values/{recordTypeId}/Status``. A status refused by some record types still
        works on the others, so this is a warning, not a start-up problem; writes to leads of
        those types fail per record and say so.
        """
        infos = [
            i
            for i in (describe or {}).get("recordTypeInfos") or []
            if isinstance(i, Mapping)
            and not i.get("master")
            and i.get("active", True)
            and i.get("recordTypeId")
        ]
        refused: dict[str, list[str]] = {}
        for info in infos:
            rt_id, name = (
                str(info["recordTypeId"]),
                str(info.get("developerName") or info.get("name") or ""),
            )
            path = f"ui-api/object-info/Lead/picklist-values/{rt_id}/Status"

            def read(sf: Salesforce, path: str = path) -> Any:
                return sf.restful(path, timeout=self._config.timeout_seconds)

            picklist = self._call(f"Status values of record type {name}", read)
            allowed = {
                str(v.get("value"))
                for v in (picklist or {}).get("values") or []
                if isinstance(v, Mapping)
            }
            for status in sorted(statuses - allowed):
                refused.setdefault(status, []).append(name)
        self._refused_by_record_type = refused
        warnings = [
            f"Lead status {status!r} is not allowed for record types "
            f"{', '.join(types)}: writing it to leads of those types fails per record "
            "(INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST); add it to their Lead Status "
            "values or keep the rules off them"
            for status, types in sorted(refused.items())
        ]
        return warnings, refused

    def reconcile_required(self, since: Cursor | None) -> bool:
        """Whether a pull from ``since`` must be a full reconcile.

        queryAll shows deleted leads only while they sit in the recycle bin (``delete_log_days``,
        crm-api A4). A cursor last *read* longer ago than that may have missed purged deletions
        (how old its newest lead is does not matter: a quiet org's cursor stays on an old lead
        but is read every cycle), so
        :meth:`iter_pages` then reads every lead from the beginning instead (live ones, plus
        deleted ones still in the bin, flagged ``deleted``). The daemon, after consuming that
        whole stream, marks every Salesforce lead of its mirror that was *not* yielded as
        deleted. ``last_pull_was_full_reconcile`` tells afterwards which kind of pull ran.
        """
        if since is None:
            return False
        read_at = since.read_at or since.modified_at
        return self._clock() - read_at > timedelta(days=self._config.delete_log_days)

    def iter_pages(self, since: Cursor | None, *, until: datetime) -> Iterator[Page]:
        """Yield leads changed after ``since`` up to ``until`` in (SystemModstamp, Id) order.

        One ``queryAll`` stream (deletes and merges arrive in it, flagged ``deleted``), paged
        lazily through ``nextRecordsUrl``, 5 pages chained in a Composite call (one counted
        call, :mod:`.query_chain`, crm-api A18) and handed over a page at a time. The read
        starts ``overlap_seconds`` before the cursor (late commits, crm-api A3.2) and ends at
        ``min(until, now - lag_seconds)``. A page's
        cursor never moves behind ``since``. Empty pulls yield no page. See
        :meth:`reconcile_required` for cursors older than the recycle bin. A pull whose first
        page reports more than ``bulk_read_threshold`` leads continues after the first call's
        pages as one Bulk API 2.0 ``queryAll`` job over the same window instead, when that
        costs fewer calls (:meth:`_bulk_pages`, crm-api A7).

        Raises:
            RetriableError, AuthError, BudgetExhausted, ConfigurationError: the request failed.
        """
        cfg = self._config
        # SystemModstamp is Salesforce's clock (crm-api A3): the read's start, which the next
        # overlap reaches back from, and the lag are reckoned on it when it runs behind the
        # host's. By the host's alone, a clock more than overlap_seconds behind started the
        # next re-read past the late commits it is there for.
        started = self._clock() - self._crm_behind
        upper = min(until, started - timedelta(seconds=cfg.lag_seconds))
        full = self.reconcile_required(since)
        self.last_pull_was_full_reconcile = full
        if full:
            read_at = since.read_at or since.modified_at  # type: ignore[union-attr]
            log.warning(
                "Salesforce cursor was last read at %s, longer ago than "
                "salesforce.delete_log_days=%d; running a full reconcile",
                read_at.isoformat(),
                cfg.delete_log_days,
            )
            since = None
        start = overlap_start(since, timedelta(seconds=cfg.overlap_seconds))
        soql = lead_stream_query(
            self._read_fields().values(),
            since=None if start else since,
            start=start,
            until=upper,
            overlap_cursor=since,
            me=self.integration_user_id,
        )
        headers = {"Sforce-Query-Options": f"batchSize={cfg.page_size}"}
        edits_since, self._edits_beside = self._edits_beside, None
        try:
            batch = self._first_read(soql, headers, edits_since)
        except ConfigurationError as exc:
            self._note_gone_column(str(exc))
            raise
        # A lead whose SystemModstamp cannot be parsed keeps the position of the one before it.
        position = start or (since.modified_at if since else datetime(1970, 1, 1, tzinfo=UTC))
        total = batch[0].get("totalSize")  # of the whole query, not of this page
        threshold = cfg.bulk_read_threshold
        read = sum(len(page.get("records", [])) for page in batch)
        if (
            threshold is not None
            and isinstance(total, int)
            and total > threshold
            and not batch[-1].get("done", True)
            and self._bulk_is_cheaper(total - read)
        ):
            # A large read (first sync, full reconcile, a mass update): one query job reads
            # the rest in a few calls instead of a query page per 2,000 leads (crm-api A7).
            # The pages that measured it are kept; the job reads only the leads after them.
            log.info(
                "Salesforce pull of about %d leads (more than salesforce.bulk_read_threshold="
                "%d, and fewer calls by job): reading the rest through a Bulk API 2.0 job",
                total,
                threshold,
            )
            first = [r for page in batch for r in page.get("records", [])]
            del batch
            yield from self._probe_then_bulk(first, total, since, start, upper, position, started)
            return
        while True:
            # One call's pages (up to 10,000 leads) are held; each is handed over alone.
            batch.reverse()
            next_url = None
            while batch:
                result = batch.pop()
                leads = []
                plan = self._reading_plan()
                for record in result.get("records", []):
                    lead = self._to_remote(record, position, plan)
                    position = lead.modified_at
                    leads.append(lead)
                if leads:
                    yield Page(
                        leads,
                        advance_cursor(leads, since, started),
                        total=total if isinstance(total, int) else None,
                    )
                next_url = result.get("nextRecordsUrl")
                if result.get("done", True) or not next_url:
                    if not leads:
                        empty = nothing_new_page(since, started)
                        if empty is not None:
                            yield empty
                    return
            batch = self._next_read(str(next_url), headers)

    def _first_read(
        self, soql: str, headers: Mapping[str, str], edits_since: datetime | None
    ) -> list[dict[str, Any]]:
        """The pull's first pages: the ``queryAll`` and up to 4 chained next pages in one
        Composite request (with the query of people's edits since ``edits_since`` taking one
        of the 5 query slots when asked, :meth:`read_edits_beside_pull`), or the first page
        alone when Composite reads are off or refused, or when its first subrequest failed
        (the edits are then not read beside it, and the daemon reads them on its own)."""
        if self._chain_reads:
            url = f"/services/data/v{self._config.api_version}/queryAll?{urlencode({'q': soql})}"
            extra: list[dict[str, Any]] = []
            if edits_since is not None:
                extra.append(
                    {
                        "method": "GET",
                        "url": f"/services/data/v{self._config.api_version}/query?"
                        + urlencode({"q": self._edits_query(edits_since, self._edits_fields)}),
                        "referenceId": HISTORY_REFERENCE,
                    }
                )
            what = "query of Lead" + (" and people's status edits" if extra else "")
            chained = self._chained_read(what, url, headers, extra)
            if chained is not None:
                if edits_since is not None:
                    status, body = chained.extra.get(HISTORY_REFERENCE, (0, None))
                    self._edits_read = self._history_answer(
                        [], SubrequestAnswer(status, body), self._edits_fields
                    )
                if chained.pages:
                    return chained.pages
        timeout = self._config.timeout_seconds
        page: dict[str, Any] = self._call(
            "query of Lead",
            lambda sf: sf.query(soql, include_deleted=True, headers=headers, timeout=timeout),
        )
        return [page]

    def _next_read(
        self,
        next_url: str,
        headers: Mapping[str, str],
        what: str = "query of Lead",
        *,
        include_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        """The pages from ``next_url`` on: up to 5 chained in one Composite request, or the
        page alone (plain, as the retry layer reads it) when Composite reads are off or
        refused, or when its first subrequest failed (an expired locator then fails as a
        plain read fails)."""
        if self._chain_reads:
            chained = self._chained_read(f"{what} (next pages)", next_url, headers, [])
            if chained is not None and chained.pages:
                return chained.pages
        timeout = self._config.timeout_seconds
        page: dict[str, Any] = self._call(
            f"{what} (next page)",
            _next_page(next_url, include_deleted=include_deleted, headers=headers, timeout=timeout),
        )
        return [page]

    def _chained_read(
        self,
        what: str,
        url: str,
        headers: Mapping[str, str],
        extra: Sequence[Mapping[str, Any]],
    ) -> ChainAnswer | None:
        """One Composite request of query pages chained from ``url`` (:mod:`.query_chain`);
        None when the org refused the Composite request itself (reads go on page by page
        from then on)."""
        pages = MAX_COLLECTIONS - len(extra)
        body = chain_body(url, headers, pages=pages, extra=extra)
        timeout = self._config.timeout_seconds
        try:
            answer = self._call(
                what, lambda sf: sf.restful("composite", method="POST", json=body, timeout=timeout)
            )
        except FatalError as exc:
            # Only an answer refusing the request (say an org or API version without
            # Composite) turns chaining off; auth, TLS and a retired version fail plain reads
            # alike.
            if isinstance(exc, AuthError) or exc.status is None or exc.status == 410:
                raise
            self._chain_reads = False
            log.warning(
                "Salesforce refused a Composite request of query pages (%s); reading query "
                "pages one call each from now on",
                exc,
            )
            return None
        return chain_pages(answer, pages)

    def _bulk_pages(
        self,
        reader: BulkQueryReader,
        since: Cursor | None,
        position: datetime,
        started: datetime,
        *,
        already: int = 0,
    ) -> Iterator[Page]:
        """The pull through the Bulk API 2.0 ``queryAll`` job ``reader`` started, in pages of
        ``page_size`` (``already``: leads the pull yielded before the job, counted in each
        page's total).

        The job's rows come in no cursor order, so only the last page carries a cursor: the
        greatest (SystemModstamp, Id) the job read, where the query stream would have ended
        (the next pull re-reads its overlap window behind it, crm-api A3.2). A pull stopped
        before the end keeps the cursor it started from and reads again.
        """
        size = self._config.page_size
        leads: list[RemoteLead] = []
        newest: Cursor | None = None
        plan = self._reading_plan()
        for record in reader.rows():
            lead = self._to_remote(record, position, plan)
            position = lead.modified_at
            leads.append(lead)
            if newest is None or lead.cursor > newest:
                newest = lead.cursor
            if len(leads) >= size:
                yield Page(leads, None, total=_plus(reader.total, already))
                leads = []
        if newest is None:  # the job found nothing after all (purged meanwhile)
            empty = nothing_new_page(since, started)
            if empty is not None:
                yield empty
            return
        end = Cursor(newest.modified_at, newest.record_id, read_at=started)
        if since is not None and since > end:
            end = Cursor(since.modified_at, since.record_id, read_at=started)
        yield Page(leads, end, total=_plus(reader.total, already))

    def _probe_then_bulk(
        self,
        first: list[dict[str, Any]],
        total: int,
        since: Cursor | None,
        start: datetime | None,
        upper: datetime,
        position: datetime,
        started: datetime,
    ) -> Iterator[Page]:
        """The first REST pages' leads, then one query job over the leads after their last
        (the keyset ``SystemModstamp, Id`` the pages were read in), so no lead is read twice."""
        probe = []
        for record in first:
            lead = self._to_remote(record, position)
            position = lead.modified_at
            probe.append(lead)
        bulk_soql = lead_stream_query(
            self._read_fields().values(),
            since=None if start else since,
            start=start,
            until=upper,
            overlap_cursor=since,
            me=self.integration_user_id,
            ordered=False,
        )
        if probe:
            last = probe[-1].cursor
            bulk_soql += format_soql(
                " AND (SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {id}))",
                t=_as_utc(last.modified_at),
                id=last.record_id,
            )
        # The job is created before the probe's page is handed over: it runs in the org while
        # the page is stored, and its first look waits only what is left of the interval.
        self._learn_field_types()
        reader = BulkQueryReader(
            self._call, self._waiter, self._clock, self._config, self._field_types
        )
        reader.start(bulk_soql)
        after = since
        size = self._config.page_size
        for at in range(0, len(probe), size):  # a page at a time, as the stream hands them
            chunk = probe[at : at + size]
            after = advance_cursor(chunk, after, started)
            yield Page(chunk, after, total=total)
        already = len(probe)
        del probe
        yield from self._bulk_pages(reader, after, position, started, already=already)

    def _bulk_is_cheaper(self, rest: int) -> bool:
        """Whether one query job reads ``rest`` more leads in fewer counted calls than REST
        query pages (5 chained a call through Composite, :mod:`.query_chain`): create, one look
        (a job usually completes within the first poll interval) and a results request per
        ``bulk_results_page_size``."""
        cfg = self._config
        rest_calls = -(-rest // (cfg.page_size * self._pages_per_call))
        job = 2 + max(1, -(-rest // cfg.bulk_results_page_size))
        return job < rest_calls

    @property
    def _pages_per_call(self) -> int:
        """Query pages one counted call reads: 5 chained through Composite, else 1."""
        return MAX_COLLECTIONS if self._chain_reads else 1

    def _learn_field_types(self) -> None:
        """Describe Lead once when a mapped field's type is unknown (``check`` did not run):
        the CSV of a query job gives numbers and booleans as text, typed by describe."""
        wanted = set(self._read_fields().values()) - set(SYSTEM_TYPES)
        if wanted <= set(self._field_types):
            return
        describe = self._call(
            "describe of Lead",
            lambda sf: sf.restful("sobjects/Lead/describe", timeout=self._config.timeout_seconds),
        )
        fields = (describe or {}).get("fields", [])
        self._field_types.update({str(f["name"]): str(f.get("type")) for f in fields})

    def write_batch(self, changes: Sequence[LeadChange]) -> list[RecordResult]:
        """PATCH up to ``batch_size`` leads through sObject Collections, ``allOrNone: false``
        (crm-api A5).

        Each SaveResult maps to a :class:`RecordResult` in input order (see
        :func:`~connectors.salesforce.results.classify_save_result`). A batch the org's
        automation fails whole with a limit error is split in halves and sent again, down to
        single records (:mod:`connectors.salesforce.batching`).

        Raises:
            ValueError: more than ``max_batch_size`` changes (a bug in the caller).
            ConfigurationError: a field without a Salesforce mapping.
            RetriableError, AuthError, BudgetExhausted: the whole request failed.
        """
        if not changes:
            return []
        if len(changes) > self.max_batch_size:
            raise ValueError(
                f"write_batch got {len(changes)} changes; this Salesforce "
                f"connector sends at most {self.max_batch_size} "
                "(salesforce.batch_size)"
            )

        results = write_splitting(list(changes), self._send_update, self._log_split)
        return self._annotated(changes, self._counted(results))

    def _update_records(self, changes: Sequence[LeadChange]) -> list[dict[str, Any]]:
        return [
            {
                "attributes": {"type": "Lead"},
                "id": c.lead_id,
                **{self._api_name(k): self._wire_value(v) for k, v in c.fields.items()},
                **{k: self._wire_value(v) for k, v in c.crm_fields.items()},
            }
            for c in changes
        ]

    def _update_headers(self) -> dict[str, str]:
        headers = {"Sforce-Auto-Assign": "TRUE" if self._config.auto_assign else "FALSE"}
        if self._config.duplicate_rule_allow_save is not None:
            allow = "true" if self._config.duplicate_rule_allow_save else "false"
            headers["Sforce-Duplicate-Rule-Header"] = f"allowSave={allow}"
        return headers

    def _send_update(self, changes: Sequence[LeadChange]) -> list[RecordResult]:
        records = self._update_records(changes)
        headers = self._update_headers()
        results = self._call(
            f"update of {len(records)} leads",
            lambda sf: sf.restful(
                "composite/sobjects",
                method="PATCH",
                json={"allOrNone": False, "records": records},
                headers=headers,
                timeout=self._config.timeout_seconds,
            ),
        )
        return self._map_results(results, [c.lead_id for c in changes], "update", count=False)

    def write_collections(self, collections: Sequence[WriteCollection]) -> list[list[RecordResult]]:
        """Field updates and CampaignMember inserts, up to 5 collections in ONE Composite
        request (one counted API call), ``allOrNone`` false at every level (crm-api A6).

        Each subrequest's SaveResults map as a standalone Collections answer does; a
        subrequest refused whole fails each of its records with the subrequest's error,
        ``RETRY`` when it is transient. With ``salesforce.composite: false``, or a single
        collection, each collection is a Collections call of its own.

        Raises:
            ValueError: more collections than ``max_collections_per_call`` or an oversized one.
            ConfigurationError: a field without a mapping, a newsletter without a Campaign.
            RetriableError, AuthError, BudgetExhausted: the whole request failed.
        """
        if self.max_collections_per_call == 1 or len(collections) <= 1:
            return super().write_collections(collections)
        if len(collections) > self.max_collections_per_call:
            raise ValueError(
                f"write_collections got {len(collections)} collections; a Salesforce "
                f"Composite request carries at most {self.max_collections_per_call}"
            )
        subrequests = [self._subrequest(c) for c in collections]
        body = composite_body(self._config.api_version, subrequests)
        records = sum(len(s.body["records"]) for s in subrequests)
        answer = self._call(
            f"composite write of {len(subrequests)} collections ({records} records)",
            lambda sf: sf.restful(
                "composite", method="POST", json=body, timeout=self._config.timeout_seconds
            ),
        )
        return [
            self._collection_results(c, a)
            for c, a in zip(collections, subrequest_answers(answer, len(subrequests)), strict=True)
        ]

    def write_collections_then_history(
        self, collections: Sequence[WriteCollection], since: datetime, *, also: Sequence[str] = ()
    ) -> WrittenThenRead:
        """Up to 4 collections and, last in the same Composite request, the query of people's
        status edits since ``since`` (:meth:`edits_since`, with the rows of the fields of
        ``also`` in the same query): subrequests run in order, so it
        sees every edit that landed before these writes, and the race check costs no counted
        call (crm-api A6). Rows past the query's first page (more than 2,000) are read by
        ordinary, counted query-more calls.

        A refused query (no permission on LeadHistory: 400 ``INVALID_TYPE``) leaves
        ``refused`` saying why; a transient failure, or a collection resent outside the call
        (split after a whole-batch limit error), leaves the history None for a read of its own.

        Raises:
            ValueError: more than ``collections_with_history`` collections or an oversized one.
            ConfigurationError: a field without a mapping, a newsletter without a Campaign.
            RetriableError, AuthError, BudgetExhausted: the whole request failed.
        """
        if not 1 <= len(collections) <= self.collections_with_history:
            raise ValueError(
                f"write_collections_then_history got {len(collections)} collections; a "
                f"Salesforce Composite request carries 1 to {self.collections_with_history} "
                "with a history query"
            )
        subrequests = [self._subrequest(c) for c in collections]
        fields = self._history_fields(also)
        body = composite_body(
            self._config.api_version, subrequests, then_query=self._edits_query(since, fields)
        )
        records = sum(len(s.body["records"]) for s in subrequests)
        answer = self._call(
            f"composite write of {len(subrequests)} collections ({records} records) and "
            "people's status edits",
            lambda sf: sf.restful(
                "composite", method="POST", json=body, timeout=self._config.timeout_seconds
            ),
        )
        *writes, read = subrequest_answers(answer, len(subrequests), then_query=True)
        self._resent_outside_call = False
        results = [self._collection_results(c, a) for c, a in zip(collections, writes, strict=True)]
        if self._resent_outside_call:
            return WrittenThenRead(results, None)
        return self._history_answer(results, read, fields)

    def read_edits_beside_pull(self, since: datetime, *, also: Sequence[str] = ()) -> None:
        """Have the next pull's first query page carry the query of people's status edits since
        ``since`` (and of the fields of ``also``) in the same Composite request (one counted
        call for both, crm-api A6); its answer is :meth:`edits_beside_pull` once the pull has
        started."""
        self._edits_beside = since if self.collections_with_history else None
        self._edits_fields = self._history_fields(also) if self._edits_beside else _STATUS_ONLY
        self._edits_read = None

    def edits_beside_pull(self) -> WrittenThenRead | None:
        """The edits the latest pull's first page read beside it (results empty); None when
        it did not (no pull page was asked, or the page went alone)."""
        answer, self._edits_read = self._edits_read, None
        return answer

    def edits_since(self, since: datetime, *, also: Sequence[str] = ()) -> list[HistoryEntry]:
        """People's status edits since ``since``: LeadHistory's Status rows by anyone but the
        integration user (usually none, so one query page), oldest first per lead. The rows of
        the mapped fields of ``also`` come in the same query (``Field IN (...)``, as
        :meth:`status_history`); an untracked field has none."""
        fields = self._history_fields(also)
        rows = self._query_records(self._edits_query(since, fields), "people's status edits")
        entries = [self._history_entry(r, fields) for r in rows]
        entries.sort(key=lambda e: (e.lead_id, e.at))
        return entries

    def _edits_query(self, since: datetime, fields: Mapping[str, str] = _STATUS_ONLY) -> str:
        """Rows of ``fields`` (``_history_fields``) since ``since``, without the integration
        user's own: syncd's writes would make it a page per 2,000 writes, where people's edits
        are a handful (CreatedById and CreatedDate filter LeadHistory:
        https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_leadhistory.htm)."""
        soql = f"{_history_select(fields)} AND CreatedDate >= {{since}}"
        # CreatedDate is Salesforce's clock, ``since`` the host's: with Salesforce's behind, a
        # person's edit just after syncd's read is stamped before ``since`` by that much.
        since = _as_utc(since) - self._crm_behind
        me = self.integration_user_id
        if me:
            return format_soql(f"{soql} AND CreatedById != {{me}}", since=_as_utc(since), me=me)
        return format_soql(soql, since=_as_utc(since))

    def _history_answer(
        self,
        results: list[list[RecordResult]],
        read: SubrequestAnswer,
        fields: Mapping[str, str] = _STATUS_ONLY,
    ) -> WrittenThenRead:
        """The writes' results with the edits query subrequest's rows (and later pages) of
        ``fields``."""
        if read.status != 200 or not isinstance(read.body, Mapping):
            code, message = subrequest_error(read.body)
            if code is not None:
                self.stats.errors[code] += 1
            # A lost session or a limit passes; the history is then read on its own.
            transient = (
                code in (None, "REQUEST_LIMIT_EXCEEDED", "INVALID_SESSION_ID") or read.status >= 500
            )
            if transient:
                return WrittenThenRead(results, None)
            return WrittenThenRead(
                results,
                None,
                refused=f"Salesforce refused the LeadHistory query (HTTP {read.status} {code}: "
                f"{message}); grant the integration user Read on Lead field history",
            )
        what = "people's status edits (further pages)"
        timeout = self._config.timeout_seconds
        page: Mapping[str, Any] = read.body
        rows = list(page.get("records", []))
        try:
            while not page.get("done", True) and page.get("nextRecordsUrl"):
                page = self._call(what, _next_page(str(page["nextRecordsUrl"]), timeout=timeout))
                rows.extend(page.get("records", []))
        except ConnectorError:
            # The writes stand whatever became of this read; the daemon reads it on its own.
            return WrittenThenRead(results, None)
        try:
            entries = [self._history_entry(r, fields) for r in rows]
        except (KeyError, TypeError, ValueError):
            return WrittenThenRead(results, None)  # unreadable rows never undo the writes
        entries.sort(key=lambda e: (e.lead_id, e.at))
        return WrittenThenRead(results, entries)

    def _subrequest(self, collection: WriteCollection) -> Subrequest:
        if isinstance(collection, FieldWrites):
            if len(collection.changes) > self.max_batch_size:
                raise ValueError(
                    f"a field collection of {len(collection.changes)} changes; this Salesforce "
                    f"connector sends at most {self.max_batch_size} (salesforce.batch_size)"
                )
            return Subrequest(
                "PATCH",
                {"allOrNone": False, "records": self._update_records(collection.changes)},
                self._update_headers(),
            )
        records = self._member_records(collection.newsletter, collection.lead_ids)
        return Subrequest("POST", {"allOrNone": False, "records": records}, {})

    def _collection_results(
        self, collection: WriteCollection, answer: SubrequestAnswer
    ) -> list[RecordResult]:
        if isinstance(collection, NewsletterAdds):
            ids = list(collection.lead_ids)
            if answer.status != 200:
                return self._counted(self._refused(answer, ids, "CampaignMember insert"))
            return self._map_results(
                answer.body,
                ids,
                "membership",
                duplicate_is_success=True,
                campaign=self._campaign_label(collection.newsletter),
            )
        changes = collection.changes
        ids = [c.lead_id for c in changes]
        if answer.status != 200:
            return self._annotated(
                changes, self._counted(self._refused(answer, ids, "Lead update"))
            )
        results = self._map_results(answer.body, ids, "update", count=False)
        if failed_whole(results):
            # The org's automation failed the whole collection with a limit error: send it
            # again in halves as standalone calls, as write_batch does (crm-api A15).
            self._log_split(len(changes))
            self._resent_outside_call = True
            mid = len(changes) // 2
            results = write_splitting(
                list(changes[:mid]), self._send_update, self._log_split
            ) + write_splitting(list(changes[mid:]), self._send_update, self._log_split)
        return self._annotated(changes, self._counted(results))

    def _refused(
        self, answer: SubrequestAnswer, ids: Sequence[str], what: str
    ) -> list[RecordResult]:
        """Every record of a subrequest Salesforce refused whole, failed with its error."""
        code, message = subrequest_error(answer.body)
        status = answer.status
        concurrent = code == "REQUEST_LIMIT_EXCEEDED" and bool(_CONCURRENT.search(message))
        meaning = _REQUEST_ERRORS.lookup(status, code)
        # A field the org no longer has (deleted after start-up checked it) refuses the whole
        # subrequest: the changes wait for the admin, as they do when the same refusal ends a
        # plain Collections call, instead of failing each record for good.
        configuration = meaning is _FIELDS
        transient = (
            concurrent
            or configuration
            or meaning.error is _Transient
            or (code is not None and RECORD_OUTCOMES.lookup(code=code) is Outcome.RETRY)
        )
        text = f"Salesforce refused the {what} subrequest (HTTP {status}" + (
            f" {code}: {message})" if code else ")"
        )
        if configuration:
            text += f"; {meaning.advice}"
        return [
            RecordResult(lid, Outcome.RETRY if transient else Outcome.FAILED, code, text)
            for lid in ids
        ]

    def _log_split(self, size: int) -> None:
        log.warning(
            "Salesforce failed a whole batch of %d leads with a limit error (org "
            "automation); sending it again in halves. Lower salesforce.batch_size "
            "if this recurs",
            size,
        )

    def _counted(self, results: list[RecordResult]) -> list[RecordResult]:
        for r in results:
            if r.error_code:
                self.stats.record_errors[r.error_code] += 1
        return results

    def _annotated(
        self, changes: Sequence[LeadChange], results: list[RecordResult]
    ) -> list[RecordResult]:
        """Say when a refused status is one that some record types do not allow."""
        out = []
        for change, result in zip(changes, results, strict=True):
            status = change.fields.get("status")
            if (
                result.error_code != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
                or status is None
                or str(status) not in (result.message or "")  # another picklist's value
            ):
                out.append(result)
                continue
            types = self._refused_by_record_type.get(str(status))
            if types:
                why = (
                    f"record types {', '.join(types)} do not allow status {status!r} (Setup > "
                    "Object Manager > Lead > Record Types > Lead Status); start-up warned about it"
                )
            else:
                # Lead Status itself is never restricted (docs/crm-api.md#a8): most likely the
                # lead's record type lost the value after start-up read the record types.
                why = (
                    f"the lead's record type does not allow status {status!r} (or a restricted "
                    "status picklist lacks it); add it in Setup > Object Manager > Lead > Record "
                    "Types > Lead Status, or change the rule"
                )
            out.append(
                RecordResult(
                    result.lead_id,
                    result.outcome,
                    result.error_code,
                    f"{result.message}; {why}",
                )
            )
        return out

    def add_to_newsletter(self, newsletter: str, lead_ids: Sequence[str]) -> list[RecordResult]:
        """Insert CampaignMember rows; an existing member (DUPLICATE_VALUE) is ``OK`` (crm-api A9).

        Raises:
            ConfigurationError: ``newsletter`` is not in ``salesforce.newsletters``.
            RetriableError, AuthError, BudgetExhausted: the whole request failed.
        """
        if not lead_ids:
            return []
        campaign_id = self._campaign_of(newsletter, lead_ids, "add_to_newsletter")
        records = self._member_records(newsletter, lead_ids)
        results = self._call(
            f"add of {len(records)} leads to campaign {campaign_id}",
            lambda sf: sf.restful(
                "composite/sobjects",
                method="POST",
                json={"allOrNone": False, "records": records},
                timeout=self._config.timeout_seconds,
            ),
        )
        return self._map_results(
            results,
            list(lead_ids),
            "membership",
            duplicate_is_success=True,
            campaign=self._campaign_label(newsletter),
        )

    def _member_records(self, newsletter: str, lead_ids: Sequence[str]) -> list[dict[str, Any]]:
        campaign_id = self._campaign_of(newsletter, lead_ids, "add_to_newsletter")
        extra = (
            {"Status": self._config.campaign_member_status}
            if self._config.campaign_member_status
            else {}
        )
        return [
            {
                "attributes": {"type": "CampaignMember"},
                "CampaignId": campaign_id,
                "LeadId": lid,
                **extra,
            }
            for lid in lead_ids
        ]

    def remove_from_newsletter(
        self, newsletter: str, lead_ids: Sequence[str]
    ) -> list[RecordResult]:
        """Delete the leads' CampaignMember rows; a lead that is no member is ``OK``.

        Two calls per batch: a query of the member ids by CampaignId and LeadId, then one
        sObject Collections DELETE (``composite/sobjects?ids=...&allOrNone=false``, at most 200
        ids: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
        resources_composite_sobjects_collections_delete.htm).

        Raises:
            ConfigurationError: ``newsletter`` is not in ``salesforce.newsletters``.
            RetriableError, AuthError, BudgetExhausted: a whole request failed.
        """
        if not lead_ids:
            return []
        campaign_id = self._campaign_of(newsletter, lead_ids, "remove_from_newsletter")
        quoted = ", ".join(f"'{_soql_id(lid)}'" for lid in lead_ids)
        rows = self._query_records(
            f"SELECT Id, LeadId FROM CampaignMember WHERE CampaignId = '{_soql_id(campaign_id)}'"
            f" AND LeadId IN ({quoted})",
            f"query of members of campaign {campaign_id}",
        )
        member_of = {str(r["LeadId"]): str(r["Id"]) for r in rows}
        # Ids compare on their 15-character form: the query may answer 18-character ids.
        by_prefix = {lid[:15]: mid for lid, mid in member_of.items()}
        members = {lid: by_prefix.get(lid[:15]) for lid in lead_ids}
        to_delete = [(lid, mid) for lid, mid in members.items() if mid is not None]
        results = {lid: RecordResult(lid, Outcome.OK) for lid in lead_ids}
        if to_delete:
            ids = ",".join(mid for _, mid in to_delete)
            answer = self._call(
                f"removal of {len(to_delete)} leads from campaign {campaign_id}",
                lambda sf: sf.restful(
                    f"composite/sobjects?ids={ids}&allOrNone=false",
                    method="DELETE",
                    timeout=self._config.timeout_seconds,
                ),
            )
            # A member deleted meanwhile (ENTITY_IS_DELETED) is as good as removed.
            mapped = self._map_results(
                answer,
                [lid for lid, _ in to_delete],
                "membership removal",
                duplicate_is_success=False,
            )
            for r in mapped:
                gone = r.error_code in ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")
                results[r.lead_id] = RecordResult(r.lead_id, Outcome.OK) if gone else r
        return [results[lid] for lid in lead_ids]

    def describe_crm_fields(self, names: Sequence[str]) -> dict[str, CrmField]:
        """From the Lead describe: existence, ``updateable`` and ``length`` of text fields."""
        describe = self._call(
            "describe of Lead",
            lambda sf: sf.restful("sobjects/Lead/describe", timeout=self._config.timeout_seconds),
        )
        by_name = {str(f["name"]).lower(): f for f in (describe or {}).get("fields", [])}
        out: dict[str, CrmField] = {}
        for name in names:
            f = by_name.get(name.lower())  # API names are case-insensitive
            if f is None:
                out[name] = CrmField(name, exists=False)
                continue
            length = int(f.get("length") or 0)
            out[name] = CrmField(name, True, bool(f.get("updateable")), length or None)
        return out

    def read_leads(self, lead_ids: Sequence[str]) -> list[RemoteLead]:
        """One SOQL query by Id per 200 leads (the URL stays well within its limit)."""
        fields = ", ".join(dict.fromkeys([*SYSTEM_FIELDS, *self._read_fields().values()]))
        now = self._clock()
        out: list[RemoteLead] = []
        for start in range(0, len(lead_ids), COLLECTION_LIMIT):
            chunk = lead_ids[start : start + COLLECTION_LIMIT]
            quoted = ", ".join(f"'{_soql_id(lid)}'" for lid in chunk)
            records = self._query_records(
                f"SELECT {fields} FROM Lead WHERE Id IN ({quoted})", f"read of {len(chunk)} leads"
            )
            out.extend(self._to_remote(r, now) for r in records)
        return out

    def status_history(
        self, lead_ids: Sequence[str], *, also: Sequence[str] = ()
    ) -> list[HistoryEntry]:
        """LeadHistory's Status rows: one SOQL query per 200 leads. An org without field
        history tracking on Lead Status has none (https://help.salesforce.com/s/articleView?
        id=sf.tracking_field_history.htm). The rows of the mapped fields of ``also`` come in
        the same query (``Field IN ('Status', ...)``), their entries named by canonical field;
        tracking is per field, so an untracked one simply has no rows."""
        fields = self._history_fields(also)
        select = _history_select(fields)
        out: list[HistoryEntry] = []
        for start in range(0, len(lead_ids), COLLECTION_LIMIT):
            chunk = lead_ids[start : start + COLLECTION_LIMIT]
            quoted = ", ".join(f"'{_soql_id(lid)}'" for lid in chunk)
            records = self._query_records(
                f"{select} AND LeadId IN ({quoted})",
                f"status history of {len(chunk)} leads",
            )
            out.extend(self._history_entry(r, fields) for r in records)
        out.sort(key=lambda e: (e.lead_id, e.at))
        return out

    def _history_fields(self, also: Sequence[str]) -> Mapping[str, str]:
        """LeadHistory's ``Field`` -> canonical name, of the Status and of the mapped fields of
        ``also`` the org has (``Field`` is a restricted picklist: a field the org lacks is
        not asked for). ``Field`` names a field by its API name, a custom one's with ``__c``
        (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/
        object_reference/sforce_api_objects_leadhistory.htm)."""
        out = dict(_STATUS_ONLY)
        taken = {api.lower() for api in out}
        mapped = self._read_fields()
        for canonical in also:
            api = mapped.get(canonical)
            if api is not None and _API_NAME.fullmatch(api) and api.lower() not in taken:
                out[api] = canonical
                taken.add(api.lower())
        return out

    def org_status_history(
        self, *, leads: int, also: Sequence[str] = ()
    ) -> Iterator[list[HistoryEntry]] | None:
        """Every LeadHistory Status row of the org (crm-api A16), with the rows of ``also`` as
        :meth:`status_history` reads them, when that is fewer calls than ``status_history`` of
        ``leads`` leads (one per 200): REST query pages of 2,000 rows a
        call, or, above ``bulk_read_threshold`` rows and when it costs fewer calls than those
        pages, one Bulk API 2.0 query job (crm-api A7).
        The first REST page is read here: its ``totalSize`` says what each way costs, and None
        is answered (that one call spent) when reading per lead is cheaper."""
        per_lead = -(-leads // COLLECTION_LIMIT)
        if per_lead <= 1:
            return None
        cfg = self._config
        timeout = cfg.timeout_seconds
        what = "status history of the org"
        headers = {"Sforce-Query-Options": f"batchSize={_HISTORY_PAGE}"}
        fields = self._history_fields(also)
        select = _history_select(fields)
        first = self._call(what, lambda sf: sf.query(select, headers=headers, timeout=timeout))
        total = first.get("totalSize")
        if not isinstance(total, int):
            return None
        # The first page is paid for; a job reads every row again (create, about two looks
        # at it, its results pages), REST pages go on from the first (5 chained a call).
        cost = -(-(-(-total // _HISTORY_PAGE) - 1) // self._pages_per_call)
        job = 3 + -(-total // cfg.bulk_results_page_size)
        bulk = (
            cfg.bulk_read_threshold is not None and total > cfg.bulk_read_threshold and job < cost
        )
        if bulk:
            cost = job
        if cost > per_lead:
            log.info(
                "Salesforce status history: %d rows in the org, more calls than reading the "
                "history of %d new leads by lead; reading it by lead",
                total,
                leads,
            )
            return None
        if bulk:
            return self._bulk_history(select, fields)
        return self._history_pages(first, what, headers, fields)

    def _bulk_history(self, select: str, fields: Mapping[str, str]) -> Iterator[list[HistoryEntry]]:
        """The org's history rows of ``fields`` (``select``) through one Bulk API 2.0 job, in
        pages of 2,000 rows. The
        job is ``queryAll``: rows of leads in the recycle bin come too, and are never asked
        for (first sight skips deleted leads)."""
        reader = BulkQueryReader(self._call, self._waiter, self._clock, self._config, {})
        page: list[HistoryEntry] = []
        for record in reader.records(select, sobject="LeadHistory"):
            page.append(self._history_entry(record, fields))
            if len(page) >= _HISTORY_PAGE:
                yield page
                page = []
        if page:
            yield page

    def _history_pages(
        self,
        result: dict[str, Any],
        what: str,
        headers: dict[str, str],
        fields: Mapping[str, str],
    ) -> Iterator[list[HistoryEntry]]:
        """The first page's rows, then the next pages', 5 chained a call (:meth:`_next_read`),
        a page at a time."""
        batch = [result]
        while True:
            batch.reverse()
            while batch:
                result = batch.pop()
                yield [self._history_entry(r, fields) for r in result.get("records", [])]
                if result.get("done", True) or not result.get("nextRecordsUrl"):
                    return
            url = str(result["nextRecordsUrl"])
            batch = self._next_read(url, headers, what, include_deleted=False)

    def _history_entry(
        self, record: Mapping[str, Any], fields: Mapping[str, str] = _STATUS_ONLY
    ) -> HistoryEntry:
        """One LeadHistory row of one of ``fields`` (``_history_fields``: the Status unless
        named); by the integration user or by a person (Salesforce does not tell automation
        apart)."""
        user = self.integration_user_id
        by = record.get("CreatedById")
        ours = user is not None and by is not None and str(by)[:15] == user[:15]
        return HistoryEntry(
            lead_id=str(record["LeadId"]),
            field=_history_field(fields, record),
            from_value=_text(record.get("OldValue")),
            to_value=_text(record.get("NewValue")),
            at=parse_datetime(str(record["CreatedDate"])),
            actor="integration" if ours else "person",
            actor_id=None if by is None else str(by),
        )

    def history_value(self, field: str, text: str | None) -> Any:
        """A LeadHistory value of ``field`` typed by the field's describe type, as a pull's
        query answers it (a Number field's as a number): a write of text to a number field
        fails (crm-api A16). Dates and datetimes as a pull parses them."""
        api = self._config.fields.get(field)
        if text is None or api is None:
            return text
        kind = self._field_types.get(api)
        if kind in ("date", "datetime"):
            parse = parse_date if kind == "date" else parse_datetime
            try:
                return parse(text)
            except ValueError:
                return text
        return typed_text(text, kind)

    def _campaign_label(self, newsletter: str) -> str:
        return f"Campaign {self._config.newsletters.get(newsletter)} (newsletter {newsletter!r})"

    def _campaign_of(self, newsletter: str, lead_ids: Sequence[str], what: str) -> str:
        """The Campaign Id behind ``newsletter``, once the batch is known to fit one call."""
        if len(lead_ids) > COLLECTION_LIMIT:
            raise ValueError(
                f"{what} got {len(lead_ids)} leads; Salesforce "
                f"collections take at most {COLLECTION_LIMIT}"
            )
        campaign_id = self._config.newsletters.get(newsletter)
        if campaign_id is None:
            raise ConfigurationError(
                f"newsletter {newsletter!r} has no Campaign Id; add it to salesforce.newsletters",
                crm=CRM,
            )
        return campaign_id

    def close(self) -> None:
        self._http.close()

    # -- reading --------------------------------------------------------------------------------

    def _query_records(self, soql: str, what: str) -> list[dict[str, Any]]:
        """A small query read to the end (LeadStatus, Campaign)."""
        timeout = self._config.timeout_seconds
        result = self._call(what, lambda sf: sf.query(soql, timeout=timeout))
        records = list(result.get("records", []))
        while not result.get("done", True) and result.get("nextRecordsUrl"):
            url = result["nextRecordsUrl"]
            result = self._call(what, _next_page(url, timeout=timeout))
            records.extend(result.get("records", []))
        return records

    def _to_remote(
        self,
        record: Mapping[str, Any],
        position: datetime,
        plan: Sequence[_ReadField] | None = None,
    ) -> RemoteLead:
        """One query record as a lead; values syncd cannot use are nulled and reported.

        ``plan``: :meth:`_reading_plan`, worked out once for a page of records.
        """
        quarantine = Quarantine()
        fields = {
            canonical: _parse_value(quarantine, canonical, api, kind, record.get(api))
            for canonical, api, kind in (plan if plan is not None else self._reading_plan())
        }
        modified = quarantine.parse(
            "modified_at", record.get("SystemModstamp"), parse_datetime, what="SystemModstamp"
        )
        user = self.integration_user_id
        by = record.get("LastModifiedById")
        # Ids compare on their 15-character case-sensitive form (the 18-char suffix is a
        # checksum).
        by_integration = None if user is None or by is None else str(by)[:15] == user[:15]
        lead_id = record.get("Id")
        if not lead_id:  # every queried record carries its Id: this answer is not whole
            raise RetriableError(
                "Salesforce answered a Lead record without its Id; the pull is retried",
                crm="salesforce",
                code="RECORD_WITHOUT_ID",
            )
        return RemoteLead(
            id=str(lead_id),
            modified_at=modified or position,
            fields=fields,
            deleted=bool(record.get("IsDeleted")),
            converted=bool(record.get("IsConverted")),
            modified_by_integration=by_integration,
            modified_by=None if by is None else str(by),
            problems=quarantine.problems,
        )

    def fields_gone(self, needed: Collection[str] = ()) -> dict[str, str]:
        """Mapped Lead fields a pull's query found deleted or hidden (INVALID_FIELD, crm-api
        A10) after :meth:`check` found them; pulls leave them out from then on.

        While one of ``needed`` (fields the rules read) is gone, Lead is described again
        (one call, instead of the pull the daemon then skips), so that syncd resumes as soon
        as the field is back.
        """
        if not set(needed) & set(self._gone):
            return dict(self._gone)
        describe = self._call(
            "describe of Lead",
            lambda sf: sf.restful("sobjects/Lead/describe", timeout=self._config.timeout_seconds),
        )
        have = {str(f["name"]) for f in (describe or {}).get("fields", [])}
        back = {c for c, api in self._gone.items() if api in have}
        self._absent -= back
        self._gone = {c: api for c, api in self._gone.items() if c not in back}
        return dict(self._gone)

    def _note_gone_column(self, message: str) -> None:
        """A query refused with Salesforce's "No such column 'X'" naming a mapped field:
        the field was deleted, or hidden from the integration user, since ``check``."""
        found = _NO_SUCH_COLUMN.search(message)
        if found is None:
            return
        for canonical, api in self._config.fields.items():
            if api.lower() == found.group(1).lower() and canonical not in self._absent:
                self._absent.add(canonical)
                self._gone[canonical] = api

    def field_mapping(self) -> dict[str, str]:
        return dict(self._config.fields)

    def _read_fields(self) -> dict[str, str]:
        """The mapping pulls read: every mapped field the org has (as far as known)."""
        return {c: api for c, api in self._config.fields.items() if c not in self._absent}

    def _reading_plan(self) -> list[_ReadField]:
        """(canonical name, API name, Salesforce type) of every field a pull reads."""
        return [(c, api, self._field_types.get(api)) for c, api in self._read_fields().items()]

    # -- writing --------------------------------------------------------------------------------

    def _api_name(self, canonical: str) -> str:
        api = self._config.fields.get(canonical)
        if api is None:
            raise ConfigurationError(
                f"field {canonical!r} has no Salesforce mapping; add it to salesforce.fields",
                crm=CRM,
            )
        return api

    @staticmethod
    def _wire_value(value: Any) -> Any:
        if isinstance(value, datetime):
            return format_wire_datetime(value)
        return value

    def _map_results(
        self,
        results: Any,
        ids: list[str],
        what: str,
        *,
        duplicate_is_success: bool = False,
        campaign: str | None = None,
        count: bool = True,
    ) -> list[RecordResult]:
        if not isinstance(results, list) or len(results) != len(ids):
            got = len(results) if isinstance(results, list) else type(results).__name__
            raise RetriableError(
                f"Salesforce {what} call answered {got} results for {len(ids)} "
                "records; the batch outcome is unknown, retry it",
                crm=CRM,
            )
        mapped = [
            classify_save_result(
                r, lid, duplicate_is_success=duplicate_is_success, campaign=campaign
            )
            for r, lid in zip(results, ids, strict=True)
        ]
        return self._counted(mapped) if count else mapped

    # -- calling Salesforce ---------------------------------------------------------------------

    def _observe_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests hook: read ``Sforce-Limit-Info`` from every response, errors included,
        and Salesforce's clock from its ``Date`` (``connectors.kit.server_clock``)."""
        m = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if m:
            self._usage = (int(m.group(1)), int(m.group(2)))
        answered = answer_date(response.headers)
        if answered is not None:
            self._crm_behind = crm_behind(self._clock(), answered)

    def _check_budget(self, what: str) -> None:
        if self._usage is None:
            return
        used, limit = self._usage
        share = self._config.max_daily_api_share
        if limit > 0 and used / limit >= share:
            self.stats.budget_stops += 1
            resume = self._clock() + timedelta(seconds=self._config.budget_pause_seconds)
            raise BudgetExhausted(
                f"Salesforce daily API use is {used}/{limit}, at or past "
                f"salesforce.max_daily_api_share={share}; {what} not sent, pausing until "
                f"{resume.isoformat()}",
                resume_at=resume,
                crm=CRM,
            )

    def _login(self) -> Salesforce:
        try:
            token = self._auth.grant(self._http, self._config.timeout_seconds)
        except RetriableError as exc:
            raise _Transient(str(exc), status=exc.status) from None
        self._token = token
        self._sf = Salesforce(
            instance_url=self._config.instance_url,
            session_id=token.access_token,
            session=self._http,
            version=self._config.api_version,
        )
        return self._sf

    def _call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        attempts = self._config.retry.attempts

        def exhausted(exc: _Transient) -> RetriableError:
            return RetriableError(
                f"Salesforce {what} failed {attempts} times ({exc.reason}); try again later",
                crm=CRM,
                status=exc.status,
                code=exc.code,
                retry_after=exc.retry_after,
            )

        return call_with_retry(
            lambda: self._attempt(what, fn),
            settings=self._config.retry,
            waiter=self._waiter,
            stats=self.stats,
            retry_on=_Transient,
            describe=lambda: f"Salesforce {what}",
            log=log,
            exhausted=exhausted,
        )

    def _attempt(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        self._waiter.check(f"Salesforce {what}")
        self._check_budget(what)
        sf = self._sf or self._login()
        try:
            return self._invoke(what, fn, sf)
        except SalesforceExpiredSession:
            # Direct-session mode has no refresh in simple-salesforce (crm-api B5): grant a new
            # token and retry the call once.
            self.stats.reauths += 1
            log.info("Salesforce session expired during %s; granting a new token", what)
            sf = self._login()
            try:
                return self._invoke(what, fn, sf)
            except SalesforceExpiredSession:
                raise AuthError(
                    f"Salesforce rejected a freshly granted session during {what} "
                    f"(INVALID_SESSION_ID twice); check {self._auth.settings_hint}",
                    crm=CRM,
                    status=401,
                    code="INVALID_SESSION_ID",
                ) from None

    def _invoke(self, what: str, fn: Callable[[Salesforce], T], sf: Salesforce) -> T:
        self.stats.calls += 1
        try:
            return fn(sf)
        except SalesforceExpiredSession:
            self.stats.errors["INVALID_SESSION_ID"] += 1
            raise
        except SalesforceError as exc:
            raise self._translate(what, exc) from None
        except requests.exceptions.SSLError:
            self.stats.errors["TLS"] += 1
            raise FatalError(
                f"TLS verification of {self._config.instance_url} failed during "
                f"{what}; check salesforce.ca_bundle and salesforce.instance_url",
                crm=CRM,
            ) from None
        except requests.RequestException as exc:
            kind = type(exc).__name__
            self.stats.errors[kind] += 1
            raise _Transient(kind) from None

    def _translate(self, what: str, exc: SalesforceError) -> ConnectorError:
        """The connector error a failed request means (see ``_REQUEST_ERRORS``)."""
        status = exc.status
        code, message = _error_code(exc)
        self.stats.errors[code or str(status)] += 1
        detail = f"HTTP {status}" + (f" {code}: {message}" if code else "")
        if code == "REQUEST_LIMIT_EXCEEDED" and _CONCURRENT.search(message):
            # Too many long-running requests at once: gone in seconds, unlike the daily
            # allowance; wait briefly and retry (docs/crm-api.md#a11).
            return _Transient(
                f"{detail}; too many concurrent long-running requests in the org",
                status=status,
                code=code,
                retry_after=self._config.concurrent_limit_backoff_seconds,
            )
        if status == 410:
            return self._retired_version(what, detail)
        meaning = _REQUEST_ERRORS.lookup(status, code)
        if meaning.error is _Transient:
            return _Transient(detail, status=status, code=code)
        advice = meaning.advice.format(auth=self._auth.settings_hint)
        text = f"Salesforce refused {what} ({detail})" + (f"; {advice}" if advice else "")
        if meaning.error is BudgetExhausted:
            self.stats.budget_stops += 1
            resume = self._clock() + timedelta(seconds=self._config.budget_pause_seconds)
            return BudgetExhausted(
                f"{text}; pausing until {resume.isoformat()}",
                resume_at=resume,
                crm=CRM,
                status=status,
                code=code,
            )
        return meaning.error(text, crm=CRM, status=status, code=code)

    def _retired_version(self, what: str, detail: str) -> ConfigurationError:
        """410 GONE: the configured API version is retired (docs/crm-api.md#a12). Name the
        versions the org serves, read from the unauthenticated ``GET /services/data/``."""
        version = self._config.api_version
        served = ""
        try:
            reply = self._http.get(
                f"{self._config.instance_url.rstrip('/')}/services/data/",
                timeout=self._config.timeout_seconds,
            )
            versions = sorted(
                (
                    str(v["version"])
                    for v in reply.json()
                    if isinstance(v, Mapping) and v.get("version")
                ),
                key=float,
            )
            if versions:
                served = f" (this org serves {versions[0]} to {versions[-1]})"
        except (requests.RequestException, ValueError, TypeError, KeyError):
            pass  # the advice stands without the range
        return ConfigurationError(
            f"Salesforce refused {what} ({detail}): API version {version} is retired; set "
            f"salesforce.api_version to a supported version{served}",
            crm=CRM,
            status=410,
            code="GONE",
        )


def _plus(total: int | None, already: int) -> int | None:
    return None if total is None else total + already


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _history_select(fields: Mapping[str, str]) -> str:
    """The LeadHistory query of the rows of ``fields`` (``_history_fields``), its WHERE
    clause open for more conditions: ``Field = 'Status'`` alone when no other field is asked."""
    if len(fields) == 1:
        return _HISTORY_SELECT
    names = ", ".join("'" + api + "'" for api in fields)
    return f"{_HISTORY_FROM} WHERE Field IN ({names})"


def _history_field(fields: Mapping[str, str], record: Mapping[str, Any]) -> str:
    """The canonical name of a LeadHistory row's ``Field`` (API names compare without case);
    a row of a field not asked for keeps its API name, so it is never taken for a status."""
    name = str(record.get("Field") or "Status")
    found = fields.get(name)
    if found is None:
        found = next((c for api, c in fields.items() if api.lower() == name.lower()), name)
    return found


def _soql_id(value: str) -> str:
    """A record id fit for a SOQL literal: ids are alphanumeric, anything else is refused."""
    if not value.isalnum():
        raise ValueError(f"{value!r} is not a Salesforce record id")
    return value


#: (canonical name, API name, Salesforce type or None) of a field a pull reads.
_ReadField = tuple[str, str, str | None]


def _parse_value(
    quarantine: Quarantine, canonical: str, api: str, kind: str | None, value: Any
) -> Any:
    if kind == "datetime":
        return quarantine.parse(canonical, value, parse_datetime, what=f"{api} datetime")
    if kind == "date":
        return quarantine.parse(canonical, value, parse_date, what=f"{api} date")
    if value is None or (type(value) is str and text_problem(value) is None):
        return value  # what most values are, and always storable (Quarantine.keep)
    return quarantine.keep(canonical, value, value)
