"""In-memory contacts, their search index and lists, built to stay fast at 100k contacts.

The search index is a sorted list of ``(lastmodifieddate_ms, id)`` keys plus an id-sorted list,
so a window query is two bisects and a slice, never a sort per request. It is a separate,
delayed copy of the contact data because HubSpot search is eventually consistent (crm-api C2):
writes reach it ``index_lag_seconds`` after they happen.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.testing.hubspot.properties import (
    DATETIME_PROPERTIES,
    MERGED_IDS,
    NUMBER_PROPERTIES,
)

__all__ = [
    "MERGE_SOURCE",
    "Contact",
    "ContactStore",
    "HistoryEntry",
    "MergeError",
    "Snapshot",
    "iso_ms",
    "parse_time_ms",
]

#: The sourceType of the history entry a merge adds when the merged record keeps the primary's
#: value but the secondary's was set later. HubSpot documents that a merged record's history
#: holds both records' values, not the sourceType of such an entry: "MERGE" is [unverified].
MERGE_SOURCE = "MERGE"


class MergeError(ValueError):
    """A merge HubSpot refuses (an id that is unknown, archived, already merged, or the same
    id twice); the server answers it as a 400 ``VALIDATION_ERROR``."""


def iso_ms(ms: int) -> str:
    """HubSpot's datetime rendering: ISO 8601, milliseconds, ``Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time_ms(value: Any) -> int:
    """Epoch ms from an int, a digit string (ms epoch) or an ISO 8601 string."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    value: str
    timestamp_ms: int
    # INTEGRATION (API writes), CRM_UI (a rep), IMPORT (seeded), AUTOMATION_PLATFORM (a workflow)
    source_type: str


@dataclass(slots=True)
class Contact:
    id: int
    props: dict[str, str]  # replaced on every write, never mutated: index snapshots share it
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    #: Past values of the properties changed since creation, oldest first. A property's list
    #: is made at its first change, holding its creation value then (``born_ms``,
    #: ``born_source``), so a contact nobody touched since its import costs no list at all.
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    born_ms: int = 0
    born_source: str = "IMPORT"

    def history_of(self, name: str) -> list[HistoryEntry]:
        """``name``'s past values, oldest first, as HubSpot keeps them for every property: the
        creation value alone when it never changed, none when it never had one."""
        entries = self.history.get(name)
        if entries is not None:
            return entries
        value = self.props.get(name)
        return [] if value is None else [HistoryEntry(value, self.born_ms, self.born_source)]

    def value(self, name: str) -> str | None:
        if name == "hs_object_id":
            return str(self.id)
        if name == "lastmodifieddate":
            return iso_ms(self.updated_ms)
        if name == "createdate":
            return iso_ms(self.created_ms)
        return self.props.get(name)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the search index knows of one contact."""

    id: int
    updated_ms: int
    created_ms: int
    props: dict[str, str]

    def raw(self, name: str) -> Any:
        if name == "hs_object_id":
            return self.id
        if name == "lastmodifieddate":
            return self.updated_ms
        if name == "createdate":
            return self.created_ms
        return self.props.get(name)

    def value(self, name: str) -> str | None:
        raw = self.raw(name)
        if raw is None:
            return None
        if name in ("lastmodifieddate", "createdate"):
            return iso_ms(raw)
        return str(raw)


class ContactStore:
    """Contacts by id, plus the lagging search index. All methods are thread-safe."""

    def __init__(self, now_ms: Callable[[], int], lag_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._lag_ms = lag_ms
        self.lock = threading.RLock()
        self.contacts: dict[int, Contact] = {}
        self._next_id = 1001
        # search index
        self._lm_keys: list[tuple[int, int]] = []
        self._ids: list[int] = []
        self._snap: dict[int, Snapshot] = {}
        self._pending: deque[tuple[int, int, Snapshot | None]] = deque()
        #: original id -> the id of the record it was merged into (that one may have been
        #: merged again: :meth:`routed` follows the chain).
        self.merged_into: dict[int, int] = {}

    # ------------------------------------------------------------------ writes
    def add(self, records: Iterable[dict[str, Any]], *, source: str = "IMPORT") -> list[str]:
        with self.lock:
            now = self._now_ms()
            ids: list[str] = []
            bulk: list[Snapshot] = []
            for record in records:
                props = {k: _normalise(k, v) for k, v in record.items() if v is not None}
                updated = (
                    parse_time_ms(props.pop("lastmodifieddate"))
                    if ("lastmodifieddate" in props)
                    else now
                )
                created = (
                    parse_time_ms(props.pop("createdate"))
                    if "createdate" in props
                    else (min(now, updated))
                )
                props.pop("hs_object_id", None)
                contact = Contact(
                    self._next_id, props, created, updated, born_ms=updated, born_source=source
                )
                self._next_id += 1
                self.contacts[contact.id] = contact
                ids.append(str(contact.id))
                bulk.append(self._snapshot(contact))
            if self._lag_ms() <= 0:
                # One sort for the whole load instead of an insort per contact.
                for snap in bulk:
                    self._snap[snap.id] = snap
                self._lm_keys.extend((s.updated_ms, s.id) for s in bulk)
                self._lm_keys.sort()
                self._ids.extend(s.id for s in bulk)
                self._ids.sort()
            else:
                for snap in bulk:
                    self._queue(snap.id, snap, now)
            return ids

    def update(self, contact_id: int, props: dict[str, Any], *, source: str) -> Contact:
        """Write properties; bumps lastmodifieddate when a value changed."""
        with self.lock:
            contact = self.contacts[contact_id]
            now = self._now_ms()
            new_props = dict(contact.props)
            changed = False
            for name, value in props.items():
                text = "" if value is None else _normalise(name, value)
                old = new_props.get(name)
                if text == "":
                    if name in new_props:
                        del new_props[name]
                        changed = True
                elif old != text:
                    new_props[name] = text
                    changed = True
                if old != (text or None):
                    entries = contact.history.get(name)
                    if entries is None:  # its first change: the creation value goes first
                        entries = contact.history[name] = list(contact.history_of(name))
                    entries.append(HistoryEntry(text, now, source))
            if changed:
                contact.props = new_props
                contact.updated_ms = now
                self._queue(contact.id, self._snapshot(contact), now)
            return contact

    def set_history(self, contact_id: int, name: str, entries: list[HistoryEntry]) -> None:
        """Replace a property's past values (oldest first) with ``entries``: a seeded contact's
        past, as a portal that had it for a while would answer it. The last entry must be
        the current value; reads still answer at most ``history_max_values`` of them."""
        with self.lock:
            contact = self.contacts[contact_id]
            if entries and entries[-1].value != contact.props.get(name, ""):
                raise ValueError(
                    f"contact {contact_id}: the newest history value of {name} must be its "
                    f"current value {contact.props.get(name)!r}, not {entries[-1].value!r}"
                )
            contact.history[name] = list(entries)

    def archive(self, contact_id: int) -> None:
        with self.lock:
            contact = self.contacts[contact_id]
            if contact.archived:
                return
            now = self._now_ms()
            contact.archived, contact.archived_ms, contact.updated_ms = True, now, now
            self._queue(contact.id, None, now)

    def merge(self, primary_id: int, other_id: int, *, source: str = "CRM_UI") -> Contact:
        """Merge two live contacts into a new one, as HubSpot does since 2023 (crm-api C12): a
        new id; the primary's values win, a property only the other has keeps its value; both
        histories; both old ids route to the new record (:meth:`routed`);
        ``hs_merged_object_ids`` lists every id merged into it. ``source`` is who merged
        (``CRM_UI`` a person, ``INTEGRATION`` the API): the sourceType of the merged record's
        values that have no past of their own (``hs_merged_object_ids``)."""
        with self.lock:
            if primary_id == other_id:
                raise MergeError(f"cannot merge contact {primary_id} with itself")
            for role, cid in (("primaryObjectId", primary_id), ("objectIdToMerge", other_id)):
                if self.live(cid) is None:
                    why = (
                        "was merged into another contact"
                        if cid in self.merged_into
                        else "is archived"
                        if cid in self.contacts
                        else "does not exist"
                    )
                    raise MergeError(f"{role} {cid} {why}; give the id of a live contact")
            primary, other = self.contacts[primary_id], self.contacts[other_id]
            now = self._now_ms()
            props = {**other.props, **primary.props}
            merged_ids = {primary_id, other_id}
            for c in (primary, other):
                merged_ids.update(_merged_ids(c.props.get(MERGED_IDS)))
            props[MERGED_IDS] = ";".join(str(i) for i in sorted(merged_ids))
            contact = Contact(
                self._next_id,
                props,
                min(primary.created_ms, other.created_ms),
                now,
                born_ms=now,
                born_source=source,
            )
            self._next_id += 1
            names = {*primary.props, *primary.history, *other.props, *other.history}
            names.discard(MERGED_IDS)
            for name in names:
                # Oldest first; on a tie the primary's entry comes last (sorted is stable), as
                # its value is the one the merged record keeps.
                entries = sorted(
                    [*other.history_of(name), *primary.history_of(name)],
                    key=lambda h: h.timestamp_ms,
                )
                current = props.get(name, "")
                if entries and entries[-1].value != current:
                    # The other's value was set after the primary's (or the primary has none):
                    # the merge sets the kept value now, so the newest entry is the current
                    # value (set_history's rule).
                    entries.append(HistoryEntry(current, now, MERGE_SOURCE))
                if entries:
                    contact.history[name] = entries
            self.contacts[contact.id] = contact
            for old in (primary_id, other_id):
                self.merged_into[old] = contact.id
                self._queue(old, None, now)  # gone from search, yet not archived
            self._queue(contact.id, self._snapshot(contact), now)
            return contact

    def live(self, contact_id: int) -> Contact | None:
        """The contact with this id unless it is archived or was merged away."""
        contact = self.contacts.get(contact_id)
        if contact is None or contact.archived or contact_id in self.merged_into:
            return None
        return contact

    def routed(self, contact_id: int) -> Contact | None:
        """The live contact, or the merged record an original id points to (after any number
        of merges), or None: what HubSpot answers for a read or write of that id."""
        with self.lock:
            seen = 0
            while contact_id in self.merged_into and seen <= len(self.merged_into):
                contact_id = self.merged_into[contact_id]
                seen += 1
            return self.live(contact_id)

    # ------------------------------------------------------------------ search index
    @staticmethod
    def _snapshot(contact: Contact) -> Snapshot:
        return Snapshot(contact.id, contact.updated_ms, contact.created_ms, contact.props)

    def _queue(self, contact_id: int, snap: Snapshot | None, now: int) -> None:
        self._pending.append((now + self._lag_ms(), contact_id, snap))
        self._apply_pending()

    def _apply_pending(self) -> None:
        now = self._now_ms()
        while self._pending and self._pending[0][0] <= now:
            _, contact_id, snap = self._pending.popleft()
            old = self._snap.pop(contact_id, None)
            if old is not None:
                i = bisect.bisect_left(self._lm_keys, (old.updated_ms, old.id))
                del self._lm_keys[i]
                j = bisect.bisect_left(self._ids, old.id)
                del self._ids[j]
            if snap is not None:
                self._snap[contact_id] = snap
                bisect.insort(self._lm_keys, (snap.updated_ms, snap.id))
                bisect.insort(self._ids, snap.id)

    def search(
        self,
        groups: list[list[dict[str, Any]]],
        sort: tuple[str, bool] | None,
        after: int,
        limit: int,
    ) -> tuple[int, list[Snapshot]]:
        """Run a search; ``sort`` is (property, ascending). Returns (total, page)."""
        with self.lock:
            self._apply_pending()
            if len(groups) == 1:
                plan = self._indexed_plan(groups[0], sort)
                if plan is not None:
                    keys, residual = plan
                    if not residual:
                        return len(keys), [self._snap[k] for k in keys[after : after + limit]]
                    matches = [k for k in keys if _matches(self._snap[k], residual)]
                    return len(matches), [self._snap[k] for k in matches[after : after + limit]]
            # General path (several OR groups or unindexed sorts): fine for small portals.
            hits = [
                s for s in self._snap.values() if not groups or any(_matches(s, g) for g in groups)
            ]
            name, ascending = sort or ("hs_object_id", True)
            hits.sort(key=lambda s: (_sort_key(s.raw(name), name), s.id), reverse=not ascending)
            return len(hits), hits[after : after + limit]

    def _indexed_plan(
        self,
        filters: list[dict[str, Any]],
        sort: tuple[str, bool] | None,
    ) -> tuple[list[int], list[dict[str, Any]]] | None:
        """Ids in sort order from the sorted indexes, plus filters the index did not apply."""
        lm = [f for f in filters if f["propertyName"] == "lastmodifieddate" and _is_range(f)]
        oid = [f for f in filters if f["propertyName"] == "hs_object_id" and _is_range(f)]
        rest = [f for f in filters if f not in lm and f not in oid]
        name, ascending = sort or ("hs_object_id", True)
        lm_lo, lm_hi = _bounds(lm)
        id_lo, id_hi = _bounds(oid)
        if name == "lastmodifieddate" or (name == "hs_object_id" and lm and lm_lo == lm_hi):
            # Keys sharing one lastmodifieddate are already in id order.
            lo = bisect.bisect_left(self._lm_keys, (lm_lo, -1))
            hi = bisect.bisect_right(self._lm_keys, (lm_hi, float("inf")))
            if lm_lo == lm_hi:
                lo = bisect.bisect_left(self._lm_keys, (lm_lo, id_lo), lo, hi)
                hi = bisect.bisect_right(self._lm_keys, (lm_hi, id_hi), lo, hi)
                rest_ids: list[dict[str, Any]] = []
            else:
                rest_ids = oid
            keys = [k[1] for k in self._lm_keys[lo:hi]]
            residual = rest + rest_ids
        elif name == "hs_object_id":
            lo = bisect.bisect_left(self._ids, id_lo)
            hi = bisect.bisect_right(self._ids, id_hi)
            keys = self._ids[lo:hi]
            residual = rest + lm
        else:
            return None
        if not ascending:
            keys = keys[::-1]
        return keys, residual

    # ------------------------------------------------------------------ listing
    def page_by_id(
        self, *, archived: bool, after: int, limit: int
    ) -> tuple[list[Contact], int | None]:
        """Contacts (archived or live) with id > after, in id order; (page, next after)."""
        with self.lock:
            ids = sorted(
                i
                for i, c in self.contacts.items()
                if c.archived == archived and i > after and i not in self.merged_into
            )
            page = [self.contacts[i] for i in ids[:limit]]
            return page, (page[-1].id if len(ids) > limit else None)

    def iter_all(self) -> Iterator[Contact]:
        return iter(list(self.contacts.values()))

    # ------------------------------------------------------------------ persistence
    def export(self) -> dict[str, Any]:
        """Every contact with its history, as JSON (see :meth:`restore`)."""
        with self.lock:
            return {
                "next_id": self._next_id,
                "contacts": [
                    {
                        "id": c.id,
                        "props": c.props,
                        "created_ms": c.created_ms,
                        "updated_ms": c.updated_ms,
                        "archived": c.archived,
                        "archived_ms": c.archived_ms,
                        "born_ms": c.born_ms,
                        "born_source": c.born_source,
                        "history": {
                            name: [[h.value, h.timestamp_ms, h.source_type] for h in entries]
                            for name, entries in c.history.items()
                        },
                    }
                    for c in self.contacts.values()
                ],
                "merged_into": {str(old): new for old, new in self.merged_into.items()},
            }

    def restore(self, doc: dict[str, Any]) -> None:
        """Replace every contact with those of an :meth:`export`; the index is rebuilt."""
        with self.lock:
            self.contacts = {}
            for item in doc["contacts"]:
                c = Contact(
                    int(item["id"]),
                    {str(k): str(v) for k, v in item["props"].items()},
                    int(item["created_ms"]),
                    int(item["updated_ms"]),
                    bool(item["archived"]),
                    item.get("archived_ms"),
                    born_ms=int(item.get("born_ms", item["created_ms"])),
                    born_source=str(item.get("born_source", "IMPORT")),
                )
                c.history = {
                    name: [HistoryEntry(str(v), int(t), str(src)) for v, t, src in h]
                    for name, h in (item.get("history") or {}).items()
                }
                self.contacts[c.id] = c
            self.merged_into = {
                int(old): int(new) for old, new in (doc.get("merged_into") or {}).items()
            }
            self._next_id = max([int(doc.get("next_id", 1001)), *[i + 1 for i in self.contacts]])
            self._pending.clear()
            live = [
                self._snapshot(c) for c in self.contacts.values() if self.live(c.id) is not None
            ]
            self._snap = {snap.id: snap for snap in live}
            self._lm_keys = sorted((snap.updated_ms, snap.id) for snap in live)
            self._ids = sorted(snap.id for snap in live)


def _merged_ids(value: str | None) -> list[int]:
    """The ids in an ``hs_merged_object_ids`` value ("1001;1002")."""
    return [int(part) for part in (value or "").split(";") if part.strip().isdigit()]


def _normalise(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in DATETIME_PROPERTIES and value != "":
        return iso_ms(parse_time_ms(value))
    if isinstance(value, datetime):
        return iso_ms(parse_time_ms(value.isoformat()))
    return str(value)


_RANGE_OPS = {"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"}
_INF = 2**62


def _is_range(f: dict[str, Any]) -> bool:
    return f.get("operator") in _RANGE_OPS


def _bounds(filters: list[dict[str, Any]]) -> tuple[int, int]:
    """Inclusive integer bounds from EQ/GT/GTE/LT/LTE/BETWEEN filters on one property."""
    lo, hi = -1, _INF
    for f in filters:
        op, name = f["operator"], f["propertyName"]
        v = _as_int(name, f.get("value"))
        if op == "EQ":
            lo, hi = max(lo, v), min(hi, v)
        elif op == "GT":
            lo = max(lo, v + 1)
        elif op == "GTE":
            lo = max(lo, v)
        elif op == "LT":
            hi = min(hi, v - 1)
        elif op == "LTE":
            hi = min(hi, v)
        elif op == "BETWEEN":
            lo, hi = max(lo, v), min(hi, _as_int(name, f.get("highValue")))
    return lo, hi


def _as_int(name: str, value: Any) -> int:
    if name == "hs_object_id":
        return int(float(value))
    return parse_time_ms(value)


def _sort_key(raw: Any, name: str) -> tuple[int, Any]:
    if raw is None:
        return (1, 0)
    if name in NUMBER_PROPERTIES or name in DATETIME_PROPERTIES:
        return (0, _typed(name, raw))
    return (0, str(raw).lower())


def _typed(name: str, raw: Any) -> Any:
    if name in DATETIME_PROPERTIES:
        return parse_time_ms(raw)
    if name in NUMBER_PROPERTIES:
        return float(raw)
    return str(raw).lower()


def _matches(snap: Snapshot, filters: list[dict[str, Any]]) -> bool:
    for f in filters:
        name, op = f["propertyName"], f["operator"]
        raw = snap.raw(name)
        present = raw is not None and raw != ""
        if op == "HAS_PROPERTY":
            ok = present
        elif op == "NOT_HAS_PROPERTY":
            ok = not present
        elif not present:
            ok = op in ("NEQ", "NOT_IN")
        else:
            have = _typed(name, raw)
            if op in ("IN", "NOT_IN"):
                wanted = {_typed(name, v) for v in f.get("values") or []}
                ok = (have in wanted) == (op == "IN")
            elif op == "BETWEEN":
                ok = _typed(name, f["value"]) <= have <= _typed(name, f["highValue"])
            else:
                want = _typed(name, f.get("value"))
                ok = {
                    "EQ": have == want,
                    "NEQ": have != want,
                    "LT": have < want,
                    "LTE": have <= want,
                    "GT": have > want,
                    "GTE": have >= want,
                }.get(op, False)
        if not ok:
            return False
    return True
