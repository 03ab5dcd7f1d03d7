"""Error tables: HTTP status and CRM error code -> what the error means.

Both connectors decide what a failed request or a failed record means by looking it up in a
table (an :class:`ErrorTable`), not by a chain of ifs, so every mapping is visible in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

__all__ = ["ANY", "ErrorTable"]

V = TypeVar("V")

#: Matches any status or any code in a table key.
ANY = None


class ErrorTable(Generic[V]):
    """Looks up ``(status, code)``; the most specific entry wins.

    Order: ``(status, code)``, ``(ANY, code)``, ``(status, ANY)``, then the status class
    (``5`` for every 5xx) in ``classes``, then ``default``.
    """

    def __init__(
        self,
        entries: Mapping[tuple[int | None, str | None], V],
        *,
        default: V,
        classes: Mapping[int, V] | None = None,
    ) -> None:
        self._entries = dict(entries)
        self._classes = dict(classes or {})
        self.default = default

    def lookup(self, status: int | None = None, code: str | None = None) -> V:
        for key in ((status, code), (ANY, code), (status, ANY)):
            if key in self._entries and (key[0] is not None or key[1] is not None):
                return self._entries[key]
        if status is not None and status // 100 in self._classes:
            return self._classes[status // 100]
        return self.default
