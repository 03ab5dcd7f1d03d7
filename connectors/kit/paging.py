"""Cursor bookkeeping every incremental pull shares."""

from __future__ import annotations

from datetime import datetime

from connectors.base import Cursor, Page, RemoteLead

__all__ = ["advance_cursor", "nothing_new_page"]


def advance_cursor(leads: list[RemoteLead], since: Cursor | None, read_at: datetime) -> Cursor:
    """The cursor after ``leads`` (in cursor order), never behind ``since``.

    Overlap re-reads yield leads behind the cursor; they must not move it back.
    """
    last = leads[-1].cursor
    if since is not None and since > last:
        last = since
    return Cursor(last.modified_at, last.record_id, read_at=read_at)


def nothing_new_page(since: Cursor | None, read_at: datetime) -> Page | None:
    """The empty page a pull yields when it found nothing after ``since``.

    It still records when this read happened (``read_at``), so the next pull need not re-read
    the overlap window behind the cursor again, and a quiet CRM is not mistaken for a cursor
    that was not read for a long time.
    """
    if since is None:
        return None
    return Page([], Cursor(since.modified_at, since.record_id, read_at=read_at))
