"""Splitting an update batch that the org's automation fails whole (docs/crm-api.md#a15).

Triggers and flows run once per chunk of records, so heavy automation can exceed a governor
limit (Apex CPU time above all) on a 200-record batch and roll the whole batch back: every
record then reports ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`` with the limit in its message.
Row locks taken by the automation can fail every record with ``UNABLE_TO_LOCK_ROW`` alike.
Neither says anything about the records themselves, so the batch is split in halves and each
half sent again, down to single records: the good records are written, and a record that fails
alone keeps its own error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from connectors.base import Outcome, RecordResult

__all__ = ["failed_whole", "write_splitting"]

T = TypeVar("T")

_LIMIT = re.compile(r"LimitException|CPU time|too many|limit exceeded", re.IGNORECASE)


def failed_whole(results: Sequence[RecordResult]) -> bool:
    """Whether every record of a batch of two or more failed alike with a limit error."""
    if len(results) < 2 or any(r.outcome is Outcome.OK for r in results):
        return False
    codes = {r.error_code for r in results}
    if codes == {"UNABLE_TO_LOCK_ROW"}:
        return True
    return codes == {"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"} and all(
        _LIMIT.search(r.message or "") for r in results
    )


def write_splitting(
    items: Sequence[T],
    send: Callable[[Sequence[T]], list[RecordResult]],
    on_split: Callable[[int], None] | None = None,
) -> list[RecordResult]:
    """``send(items)``; when the batch :func:`failed_whole`, send each half the same way.

    Results stay in input order. ``on_split`` is told the size of every batch that was split.
    """
    results = send(items)
    if not failed_whole(results):
        return results
    if on_split is not None:
        on_split(len(items))
    mid = len(items) // 2
    return write_splitting(items[:mid], send, on_split) + write_splitting(
        items[mid:], send, on_split
    )
