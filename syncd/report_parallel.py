"""The funnel report over the store in parts: lead ranges read and summed by worker processes
side by side, the partial sums merged in lead order.

A report is one pass over the ledger ordered by lead, and almost all of its time is Python
per lead (a million leads: tens of seconds of one core). The leads are split by (crm,
lead_id) into ranges of about equal size, each read and summed on its own (this process takes
the first range, worker processes the others), and the partial sums merged in range order:
every count is a sum, every distribution merges into what one pass gives
(:meth:`syncd.distribution.Distribution.merge`), and open breaches keep their order of
encounter, so the report is the single pass's, number for number. Memory stays flat: each
process holds one lead's history and its own bounded sums.

Small stores (under :data:`PARALLEL_MIN_LEADS` leads), in-memory SQLite and one core read in
one pass: starting a worker costs more than it saves there.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Engine, create_engine, func, literal_column, select
from sqlalchemy.pool import NullPool

from syncd.report import (
    GroupBy,
    Partial,
    Report,
    ReportOptions,
    accumulate,
    finish,
    merge,
)
from syncd.report_read import LeadRange, read_inputs

__all__ = [
    "PARALLEL_MIN_LEADS",
    "Job",
    "ReportWorkerError",
    "compute_from_store",
    "default_workers",
    "run_job",
    "split_leads",
]

#: Below this many leads in the mirror a report is read in one pass.
PARALLEL_MIN_LEADS = 50_000
#: More processes than this gain nothing measurable on the report's sizes (and each holds a
#: connection).
MAX_WORKERS = 8


def default_workers() -> int:
    """One process per core this process may run on, at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def compute_from_store(
    engine: Engine,
    status_maps: Mapping[str, Mapping[str, str]],
    options: ReportOptions,
    by: GroupBy | None = None,
    *,
    workers: int | None = None,
) -> list[Report]:
    """The report over the whole store (as ``compute(read_inputs(engine, status_maps), ...)``),
    in ``workers`` parts side by side (None: :func:`default_workers`, one part when the store
    is small)."""
    parts = default_workers() if workers is None else max(1, workers)
    url = engine.url
    if parts > 1 and engine.dialect.name == "sqlite" and url.database in (None, "", ":memory:"):
        parts = 1  # an in-memory database is this process's only
    if parts > 1 and workers is None and _lead_count(engine) < PARALLEL_MIN_LEADS:
        parts = 1
    ranges = split_leads(engine, parts) if parts > 1 else [(None, None)]
    if len(ranges) == 1:
        return finish(accumulate(read_inputs(engine, status_maps), options, by))
    address = url.render_as_string(hide_password=False)
    # Worker processes are fresh interpreters running syncd.report_worker, not forks (no copy
    # of this process's connections or locks) nor multiprocessing spawns (those re-run the
    # caller's main module); each reads its range and sends back its sums.
    started = [_start(address, status_maps, options, by, r) for r in ranges[1:]]
    try:
        result = accumulate(read_inputs(engine, status_maps, lead_range=ranges[0]), options, by)
        for worker in started:
            result = merge(result, _collect(worker))
    finally:
        for worker in started:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return finish(result)


class ReportWorkerError(RuntimeError):
    """A worker process of the report failed; ``str()`` says how (its last error line)."""


def _start(
    address: str,
    status_maps: Mapping[str, Mapping[str, str]],
    options: ReportOptions,
    by: GroupBy | None,
    lead_range: LeadRange,
) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "syncd.report_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdin is not None
    # The task is small (options, maps, a range): it fits the pipe, the write does not wait.
    job = Job(address, {k: dict(v) for k, v in status_maps.items()}, options, by, lead_range)
    worker.stdin.write(pickle.dumps(job))
    worker.stdin.close()
    worker.stdin = None  # sent: communicate() must not flush it again
    return worker


def _collect(worker: subprocess.Popen[bytes]) -> Partial:
    out, errors = worker.communicate()
    if worker.returncode != 0:
        lines = errors.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {worker.returncode}"
        raise ReportWorkerError(f"a report worker process failed: {last}")
    # Our own child's output, written by syncd.report_worker: trusted like this process.
    partial: Partial = pickle.loads(out)
    return partial


def split_leads(engine: Engine, parts: int) -> list[LeadRange]:
    """Up to ``parts`` consecutive ranges of (crm, lead_id) covering every key, with about as
    many mirror leads in each (the ledger's rows follow its leads; a ledger row whose lead the
    mirror no longer has still falls in exactly one range)."""
    from syncd.state import LeadRow

    lt = LeadRow.__table__
    total = _lead_count(engine)
    bounds: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for k in range(1, parts):
            # The key at that rank along the primary key (an index walk, no sort).
            row = conn.execute(
                select(lt.c.crm, lt.c.lead_id)
                .order_by(lt.c.crm, lt.c.lead_id)
                .offset(total * k // parts)
                .limit(1)
            ).first()
            if row is not None:
                key = (str(row[0]), str(row[1]))
                if not bounds or key > bounds[-1]:
                    bounds.append(key)
    edges: list[tuple[str, str] | None] = [None, *bounds, None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _lead_count(engine: Engine) -> int:
    from syncd.state import LeadRow

    with engine.connect() as conn:
        value = conn.execute(
            select(func.count(literal_column("1"))).select_from(LeadRow.__table__)
        ).scalar()
    return int(value or 0)


class Job(NamedTuple):
    """What a worker process computes (sent to it pickled on its stdin)."""

    address: str  # the store's URL, password included: it goes down a pipe, never to a log
    status_maps: dict[str, dict[str, str]]
    options: ReportOptions
    by: GroupBy | None
    lead_range: LeadRange


def run_job(job: Job) -> Partial:
    """One range's sums (in a worker process: its own engine, one connection)."""
    engine = create_engine(job.address, poolclass=NullPool)
    try:
        leads = read_inputs(engine, job.status_maps, lead_range=job.lead_range)
        return accumulate(leads, job.options, job.by)
    finally:
        engine.dispose()
