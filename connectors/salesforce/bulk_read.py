"""Large pulls through Bulk API 2.0 query jobs, streamed one results page at a time.

A pull expected to read more than ``salesforce.bulk_read_threshold`` leads creates one
``queryAll`` job (deleted leads included), waits for it with growing pauses, then reads its CSV
results page by page with the ``Sforce-Locator`` of the page before (docs/crm-api.md A7):
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
and ``query_get_job_results.htm``. Every request goes through the connector's call wrapper, so
a failed request (a 5xx, a dropped connection, an expired session) is retried as any other, and
a results page is asked again with the same locator, which always names the same rows.

Values arrive as CSV text; :func:`csv_record` turns a row back into the values the REST query
answers (null for an empty field, booleans, numbers by the field's describe type), so the
connector maps both the same way.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import (
    ColumnDelimiter,
    LineEnding,
    Operation,
    SFBulk2Handler,
    _Bulk2Client,
)

from connectors.errors import RetriableError
from connectors.kit import Waiter

from .config import SalesforceConfig

__all__ = ["BulkQueryReader", "csv_record", "typed_text"]

log = logging.getLogger("connectors.salesforce")

T = TypeVar("T")
Call = Callable[[str, Callable[[Salesforce], T]], T]

#: Describe types whose CSV text becomes a number or a boolean (as in the REST JSON).
_INTEGER_TYPES = frozenset({"int"})
_FLOAT_TYPES = frozenset({"double", "currency", "percent"})
_BOOLEAN_TYPES = frozenset({"boolean"})
#: System fields read on every lead whose type describe need not be asked for.
SYSTEM_TYPES = {"IsDeleted": "boolean", "IsConverted": "boolean"}


def csv_record(header: list[str], row: list[str], types: Mapping[str, str]) -> dict[str, Any]:
    """One CSV row as the REST query's record: ``""`` is null (Salesforce stores no empty text,
    so the REST answer has null there too), booleans and numbers by describe type; text,
    dates and datetimes stay text (the connector parses those for both paths alike)."""
    out: dict[str, Any] = {}
    for name, text in zip(header, row, strict=True):
        out[name] = None if text == "" else typed_text(text, types.get(name))
    return out


def typed_text(text: str, kind: str | None) -> Any:
    """A value given as text (a query job's CSV, a LeadHistory value as syncd keeps it) as the
    REST JSON gives a field of describe type ``kind``: booleans and numbers typed, the rest
    text. Text that does not parse stays text (the connector's value checks report it)."""
    try:
        if kind in _BOOLEAN_TYPES:
            return text.lower() == "true"
        if kind in _INTEGER_TYPES:
            return int(text)
        if kind in _FLOAT_TYPES:
            return float(text)
    except ValueError:
        pass
    return text


def _lines(text: str) -> Iterator[str]:
    """The page's lines, each ending in its LF (a quoted value's line breaks are joined back by
    the csv reader). Slicing keeps one copy of the page: ``io.StringIO`` would hold it again at
    four bytes a character."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _client(sf: Salesforce) -> _Bulk2Client:
    """simple-salesforce's Bulk API 2.0 client for Lead, on the connector's session."""
    handler = SFBulk2Handler(sf.session_id, sf.bulk2_url, session=sf.session)
    # The high-level query()/query_all() generators cannot ask a page again after a failure
    # and sleep uninterruptibly while polling; their client's per-request methods can be driven
    # one request at a time.
    return handler.Lead._client  # noqa: SLF001


class BulkQueryReader:
    """One ``queryAll`` job: create, wait, then stream its rows as REST-shaped records.

    Args:
        call: the connector's request wrapper (retries, re-login, error translation).
        waiter: waits between looks at the job (cut short by the daemon's stop event).
        clock: tz-aware UTC now.
        config: ``bulk_*`` settings.
        types: Lead field API name -> describe type.
    """

    def __init__(
        self,
        call: Call[Any],
        waiter: Waiter,
        clock: Callable[[], datetime],
        config: SalesforceConfig,
        types: Mapping[str, str],
    ) -> None:
        self._call = call
        self._waiter = waiter
        self._clock = clock
        self._config = config
        self._types = {**types, **SYSTEM_TYPES}
        self.job_id: str | None = None
        self._created = clock()  # when ``start`` created the job
        #: Rows the job found (``numberRecordsProcessed``), once it is complete.
        self.total: int | None = None

    def records(self, soql: str, *, sobject: str = "Lead") -> Iterator[dict[str, Any]]:
        """Every row of ``soql`` (a ``queryAll`` on ``sobject``), one results page in memory
        at a time.

        Raises:
            RetriableError: the job failed, was aborted or did not finish in time (naming it).
            AuthError, BudgetExhausted, ConfigurationError: a request failed.
        """
        self.start(soql, sobject=sobject)
        yield from self.rows()

    def start(self, soql: str, *, sobject: str = "Lead") -> None:
        """Create the job. It runs in the org while the caller goes on (storing the page read
        before it, say); :meth:`rows` looks at it a poll interval after this, not after the
        caller's work."""
        job = self._call(
            f"creation of a Bulk API 2.0 query job on {sobject}",
            lambda sf: _client(sf).create_job(
                Operation.query_all, soql, ColumnDelimiter.COMMA, LineEnding.LF
            ),
        )
        self.job_id = str(job["id"])
        self._created = self._clock()

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row of the job :meth:`start` created, once it is complete (same errors as
        :meth:`records`)."""
        if self.job_id is None:
            raise RuntimeError("BulkQueryReader.rows before start: no job to read")
        job_id = self.job_id
        self._wait_until_complete(job_id, self._created)
        locator = ""
        max_records = self._config.bulk_results_page_size
        page_no = 0
        while True:
            page_no += 1

            what = f"results page {page_no} of Bulk API 2.0 query job {job_id}"

            def read(sf: Salesforce, loc: str = locator, what: str = what) -> Any:
                try:
                    return _client(sf).get_query_results(job_id, loc, max_records)
                except KeyError:  # the client reads Sforce-NumberOfRecords unasked
                    raise _cut_short(what, "no Sforce-NumberOfRecords header") from None

            result = self._call(what, read)
            reader = csv.reader(_lines(str(result["records"])))
            del result["records"]  # the reader holds the page's text alone
            header = next(reader, None)
            rows = 0
            if header is not None:
                for row in reader:
                    rows += 1
                    yield csv_record(header, row, self._types)
            # A page cut short (a proxy, a dropped stream that still ended cleanly) parses as
            # fewer rows; taken whole, the job's read moved the cursor past the rows it lost.
            # Sforce-NumberOfRecords is the number of records in this page
            # (query_get_job_results.htm).
            expected = result.get("number_of_records")
            if isinstance(expected, int) and rows != expected:
                raise _cut_short(what, f"{rows} rows where Sforce-NumberOfRecords says {expected}")
            locator = str(result.get("locator") or "")
            if not locator:
                return

    def _wait_until_complete(self, job_id: str, created: datetime) -> None:
        cfg = self._config
        deadline = created + timedelta(seconds=cfg.bulk_job_timeout_seconds)
        pause = cfg.bulk_poll_seconds
        # The first look comes a poll interval after the job was created: the caller's work
        # since then counts toward it (the job runs meanwhile; no look is added).
        since = (self._clock() - created).total_seconds()
        wait = max(0.0, pause - since)
        what = f"Bulk API 2.0 query job {job_id}"
        while True:
            self._waiter.wait(wait, f"the next look at {what}")
            info = self._call(f"state of {what}", lambda sf: _client(sf).get_job(job_id, True))
            state = str(info.get("state"))
            if state == "JobComplete":
                processed = info.get("numberRecordsProcessed")
                self.total = processed if isinstance(processed, int) else None
                log.info("Salesforce %s complete: %s leads", what, processed)
                return
            if state in ("Failed", "Aborted"):
                reason = str(info.get("errorMessage") or "no errorMessage given")[:300]
                raise RetriableError(
                    f"Salesforce {what} ended {state} ({reason}); the next pull starts a new "
                    "job. If this repeats, see the job under Setup > Bulk Data Load Jobs, or "
                    "set salesforce.bulk_read_threshold to null to read through REST queries",
                    crm="salesforce",
                    code=f"BULK_JOB_{state.upper()}",
                )
            if self._clock() >= deadline:
                self._call(f"abort of {what}", lambda sf: _client(sf).abort_job(job_id, True))
                raise RetriableError(
                    f"Salesforce {what} was not complete after "
                    f"salesforce.bulk_job_timeout_seconds={cfg.bulk_job_timeout_seconds:g} "
                    f"(state {state}); aborted it, the next pull starts a new job",
                    crm="salesforce",
                    code="BULK_JOB_TIMEOUT",
                )
            pause = wait = min(max(pause * 2, 0.5), cfg.bulk_poll_max_seconds)


def _cut_short(what: str, detail: str) -> RetriableError:
    return RetriableError(
        f"Salesforce {what} is not a whole results page ({detail}); the next pull starts a new job",
        crm="salesforce",
        code="BULK_RESULTS_INCOMPLETE",
    )
