"""Bulk API 2.0 query jobs of the emulated org: create, job info, CSV results, abort, delete.

Follows the public reference (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/
api_asynch/query_create_job.htm, ``query_get_job_info.htm``, ``query_get_job_results.htm``,
``query_abort_job.htm``, ``query_delete_job.htm``):

* ``POST jobs/query`` with ``operation`` (``query`` or ``queryAll``), ``query``, ``contentType``
  (``CSV``), ``columnDelimiter`` and ``lineEnding`` answers the job in state ``UploadComplete``.
* The job's result is the set of rows the query matches when it is first looked at (a
  snapshot of row references; later edits do not show). As on Salesforce, the job completes
  after processing time, not after a number of looks: it answers ``InProgress`` until
  ``run_seconds`` (emulator clock) after its creation, then ``JobComplete`` (or ``Failed``
  with ``errorMessage`` when :meth:`BulkQueryJobs.fail_jobs` says so); so a first look after
  the client's poll interval usually finds a small job done.
* ``GET jobs/query/{id}/results?locator=&maxRecords=`` answers one page of CSV (every value
  quoted, a header row on every page) with ``Sforce-Locator`` (``null`` on the last page) and
  ``Sforce-NumberOfRecords``. A locator names a position: the same locator answers the same
  rows again. Only the requested page is rendered, never the whole result.
* ``queryAll`` includes deleted leads still in the recycle bin (``IsDeleted`` true); ``query``
  does not.

Every one of these requests is an ordinary REST request under ``/services/data``, so the server
counts each against the daily API limit and journals it like any other (docs/crm-api.md A7).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .schema import FieldDef
from .soql import CompiledQuery
from .store import ApiError, Org

__all__ = ["BulkQueryJobs", "QueryJob", "ResultsPage"]

Row = tuple[Any, ...]

#: ``columnDelimiter`` values -> the character (query_create_job.htm).
DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
#: Rows per results page without ``maxRecords``: the server "uses a default value based on the
#: service" (query_get_job_results.htm); a bound keeps one answer from holding a whole result.
DEFAULT_MAX_RECORDS = 50_000
_TERMINAL = ("JobComplete", "Failed", "Aborted")


@dataclass(slots=True)
class QueryJob:
    id: str
    operation: str
    soql: str
    object_name: str
    api_version: str
    compiled: CompiledQuery
    delimiter_name: str
    line_ending_name: str
    delimiter: str
    line_ending: str
    created: float  # emulator clock, epoch seconds
    created_by: str
    columns: list[tuple[str, FieldDef, int]]
    state: str = "UploadComplete"
    rows: list[Row] | None = None  # the snapshot, once the job ran
    error_message: str | None = None
    modified: float = 0.0


@dataclass(frozen=True, slots=True)
class ResultsPage:
    body: bytes
    locator: str  # "null" on the last page
    records: int


def _csv_value(fdef: FieldDef, value: Any) -> str:
    """A stored value as Bulk API 2.0 CSV writes it: null is empty, booleans ``true``/``false``,
    datetimes ``2024-01-01T12:00:00.000Z``."""
    if value is None:
        return ""
    kind = fdef.kind
    if kind == "datetime":
        return datetime.fromtimestamp(int(value), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if kind == "boolean" or isinstance(value, bool):  # a LeadHistory value may be one
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


class BulkQueryJobs:
    """The org's query jobs (bounded: the oldest are forgotten beyond ``max_jobs``)."""

    def __init__(
        self, org: Org, user_id: str, *, run_seconds: float = 1.0, max_jobs: int = 1000
    ) -> None:
        self._org = org
        self._user_id = user_id
        self.run_seconds = run_seconds
        self._max_jobs = max_jobs
        self._jobs: OrderedDict[str, QueryJob] = OrderedDict()
        self._lock = threading.Lock()
        self._failure: str | None = None

    def fail_jobs(self, message: str | None) -> None:
        """Jobs that run from now on end ``Failed`` with ``message`` (None: they succeed)."""
        self._failure = message

    # -- endpoints ------------------------------------------------------------------------------

    def create(self, doc: Any, api_version: str) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        operation = doc.get("operation")
        if operation not in ("query", "queryAll"):
            raise ApiError(
                400, "INVALIDJOB", f"Invalid operation: {operation!r}; use query or queryAll"
            )
        soql = doc.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise ApiError(400, "INVALIDJOB", "query: required field missing")
        content_type = doc.get("contentType", "CSV")
        if content_type != "CSV":
            raise ApiError(400, "INVALIDJOB", f"Invalid contentType: {content_type}; use CSV")
        delimiter_name = str(doc.get("columnDelimiter", "COMMA"))
        line_ending_name = str(doc.get("lineEnding", "LF"))
        delimiter = DELIMITERS.get(delimiter_name)
        line_ending = LINE_ENDINGS.get(line_ending_name)
        if delimiter is None or line_ending is None:
            raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        cq = self._org.compile(soql)
        now = self._org.clock.now_epoch()
        job = QueryJob(
            id=self._org.ids.new("750"),
            operation=operation,
            soql=soql,
            object_name=cq.schema.name,
            api_version=api_version,
            compiled=cq,
            delimiter_name=delimiter_name,
            line_ending_name=line_ending_name,
            delimiter=delimiter,
            line_ending=line_ending,
            created=now,
            created_by=self._user_id,
            columns=[(cq.schema.fields[c].name, cq.schema.fields[c], c) for c in cq.columns],
            modified=now,
        )
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._max_jobs:
                self._jobs.popitem(last=False)
        return self._info(job)

    def info(self, job_id: str, api_version: str) -> dict[str, Any]:
        job = self._job(job_id, api_version)
        with self._lock:
            self._advance(job)
        return self._info(job)

    def list(self) -> dict[str, Any]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {"done": True, "records": [self._info(j) for j in jobs], "nextRecordsUrl": None}

    def abort(self, job_id: str, doc: Any, api_version: str) -> dict[str, Any]:
        if not isinstance(doc, dict) or doc.get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", "a query job can only be set to Aborted")
        job = self._job(job_id, api_version)
        with self._lock:
            if job.state in _TERMINAL:
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Job {job.id} is {job.state} and cannot be aborted"
                )
            job.state, job.rows = "Aborted", None
            job.modified = self._org.clock.now_epoch()
        return self._info(job)

    def delete(self, job_id: str, api_version: str) -> None:
        job = self._job(job_id, api_version)
        with self._lock:
            if job.state not in ("UploadComplete", *_TERMINAL):
                raise ApiError(
                    400, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}; abort it first"
                )
            self._jobs.pop(job.id, None)

    def results(
        self, job_id: str, api_version: str, locator: str | None, max_records: int | None
    ) -> ResultsPage:
        job = self._job(job_id, api_version)
        if job.state != "JobComplete" or job.rows is None:
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}; results need JobComplete"
            )
        rows = job.rows
        offset = 0 if not locator else _offset(locator)
        if offset > len(rows):
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
        size = DEFAULT_MAX_RECORDS if max_records is None else max(1, max_records)
        chunk = rows[offset : offset + size]
        out = io.StringIO()
        writer = csv.writer(
            out, delimiter=job.delimiter, lineterminator=job.line_ending, quoting=csv.QUOTE_ALL
        )
        writer.writerow([name for name, _, _ in job.columns])
        for row in chunk:
            writer.writerow([_csv_value(fdef, row[c]) for _, fdef, c in job.columns])
        nxt = offset + len(chunk)
        return ResultsPage(
            out.getvalue().encode("utf-8"),
            _locator(nxt) if nxt < len(rows) else "null",
            len(chunk),
        )

    # -- internals ------------------------------------------------------------------------------

    def _job(self, job_id: str, api_version: str) -> QueryJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {job_id}")
        if job.api_version != api_version:
            # "Use the same API version ... Otherwise, the call returns a 409 error."
            raise ApiError(
                409,
                "INVALIDJOBSTATE",
                f"Job {job.id} was created with API version {job.api_version}; use it",
            )
        return job

    def _advance(self, job: QueryJob) -> None:
        """The job's state at a look: the first takes its snapshot; it is complete once
        ``run_seconds`` have passed since its creation, however often it was looked at."""
        if job.state in _TERMINAL:
            return
        now = self._org.clock.now_epoch()
        if job.state == "UploadComplete":
            job.rows = self._org.select(job.compiled, include_deleted=job.operation == "queryAll")
            job.state, job.modified = "InProgress", now
        if now < job.created + self.run_seconds:
            return
        if self._failure is not None:
            job.state, job.rows, job.error_message = "Failed", None, self._failure
        else:
            job.state = "JobComplete"
        job.modified = now

    def _info(self, job: QueryJob) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object_name,
            "createdById": job.created_by,
            "createdDate": _stamp(job.created),
            "systemModstamp": _stamp(job.modified),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.api_version),
            "jobType": "V2Query",
            "lineEnding": job.line_ending_name,
            "columnDelimiter": job.delimiter_name,
        }
        if job.state != "UploadComplete":
            done = job.state == "JobComplete" and job.rows is not None
            info.update(
                numberRecordsProcessed=len(job.rows or ()) if done else 0,
                retries=0,
                totalProcessingTime=0,
            )
        if job.error_message is not None:
            info["errorMessage"] = job.error_message
        return info


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
