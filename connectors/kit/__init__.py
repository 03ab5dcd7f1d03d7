"""What every connector shares: retry settings and the one retry wrapper with interruptible
waits, error tables, the paging helper, and quarantine of CRM values syncd cannot use.

Each connector keeps only what is specific to its CRM (endpoints, wire formats, which HTTP
status or error code means what, as a table) and builds on these pieces.
"""

from connectors.kit.errors import ErrorTable
from connectors.kit.paging import advance_cursor, nothing_new_page
from connectors.kit.retry import RetrySettings, Waiter, call_with_retry
from connectors.kit.values import MAX_TEXT_CHARS, Quarantine

__all__ = [
    "MAX_TEXT_CHARS",
    "ErrorTable",
    "Quarantine",
    "RetrySettings",
    "Waiter",
    "advance_cursor",
    "call_with_retry",
    "nothing_new_page",
]
