"""The CRM's clock as its answers tell it: the HTTP ``Date`` header.

An origin server with a clock sends ``Date`` on every answer, to the second (RFC 9110 §6.6.1,
https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1). The CRM stamps changes by that clock
(HubSpot ``lastmodifieddate``, Salesforce ``SystemModstamp``), which can run minutes off the
host's; a time compared with those stamps must not be read from the host's clock alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["answer_date", "crm_behind", "read_started"]

#: ``Date`` drops the fraction of its second: the CRM's time was at most this much later.
DATE_RESOLUTION = timedelta(seconds=1)
#: The most a CRM's clock is taken to run behind: a ``Date`` further off is a proxy's or a
#: broken header, and would hold every pull's window that far back.
MAX_BEHIND = timedelta(hours=1)


def answer_date(headers: Mapping[str, str] | None) -> datetime | None:
    """The answer's ``Date`` (UTC), or None when it has none or it cannot be read."""
    if not headers:
        return None
    text = headers.get("Date") or headers.get("date")
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def read_started(host_start: datetime, answered: datetime | None) -> datetime:
    """When a read began, as a time to compare with the CRM's stamps: the host's start, or the
    CRM's time when it answered if that is earlier (its clock runs behind). A CRM clock ahead of
    the host's changes nothing: the host's start is then the earlier, and the safer, bound."""
    if answered is None:
        return host_start
    return host_start - crm_behind(host_start, answered)


def crm_behind(host_now: datetime, answered: datetime) -> timedelta:
    """How far the CRM's clock runs behind the host's, from an answer's ``Date`` read at
    ``host_now``: never more than it is (the answer's travel time and ``Date``'s dropped
    fraction only shorten it), zero when the CRM's runs ahead, at most ``MAX_BEHIND``."""
    return min(MAX_BEHIND, max(timedelta(0), host_now - (answered + DATE_RESOLUTION)))
