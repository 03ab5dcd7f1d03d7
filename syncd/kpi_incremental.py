"""One CRM's funnel report kept current by what changed since, not recomputed.

The report (:mod:`syncd.report`) is a sum over leads: each lead's transitions in the window (and,
for a lead that entered SAL, its last activity and owner) give a contribution that
``FunnelAccumulator.add`` adds. :class:`FunnelState` keeps that sum after one full read and, at
each refresh, re-reads only the leads whose contribution may have changed, subtracts what they gave
at the last refresh and adds what they give now. A lead's contribution changes only when

* the ledger has a row of it with an id above the last refresh's mark (a new transition, or
  a backfilled old one);
* one of its rows crossed a boundary that moves with the clock: the window's start (the row
  is no longer read), the report's time (a row dated ahead of the clock enters the period),
  or the stale threshold (``now - stale_after``): each found by one range read of the
  ledger's ``at`` index, ``[old boundary, new boundary)``;
* it is in SAL, untouched and not yet past the follow-up SLA, and the SLA's deadline passed
  (a heap of those deadlines, in business hours of the calendar: :func:`sla_deadline`);
* a pull stored its mirror row again (``lead.pulled_at`` after the newest the last refresh
  saw, on the ``ix_lead_pulled`` index): its last activity may have moved its first touch. (A
  pull stamped no later than that, by a clock set back, goes unseen until a full refresh.)

A HubSpot merge moves the originals' ledger rows to the merged lead, ids kept
(``StateStore.rekey_history``): the next refresh is then a full one (why:
:meth:`FunnelState.refresh`).

What a lead gave at the last refresh is not kept: it is computed again from the same inputs,
the lead's rows up to the last mark from the last window's start (re-read with its new rows)
and its last activity then, kept only for the leads whose follow-up counted it (for any other
lead the sums are those of no activity at all). Memory holds, besides the sums: those
activities, the open breaches (lead -> SAL time), the SLA deadlines of SALs still within it,
the owners of the open breaches last listed, and the time-in-stage, first-touch and
SAL-to-close values counted by their resolution (:class:`_Bag`; their exact values too while
there are few). Measured at 1M leads with 5M ledger rows: see ``bench/kpi_refresh.py``.

The result is the full recompute's, exactly: counts are sums; percentiles come from the same
multiset of values (exact up to ``EXACT_MAX`` values, then by resolution, as
:class:`syncd.distribution.Distribution` gives them); the open breaches kept are the oldest,
ties broken by the ledger's lead order as a single pass meets them (the database's collation
on PostgreSQL; SQLite's is binary); owners are the mirror's. ``Report.durations_days`` holds
the time-in-stage bags (percentiles and count as the full report's; ``max`` is of the values,
or of their resolution steps once counted: only ``syncd report``'s charts read it).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, func, select

from rules.calendar import Calendar
from syncd.business_clock import aware, clock_for, touch_at
from syncd.distribution import EXACT_MAX, Distribution
from syncd.report import (
    OPEN_BREACHES_KEPT,
    SUMMED_COUNTERS,
    FunnelAccumulator,
    LeadInfo,
    OpenBreach,
    Report,
    ReportOptions,
    Transition,
)
from syncd.report_read import json_text, lead_info, read_inputs
from syncd.state import ledger_rekeys

__all__ = ["FunnelState", "sla_deadline"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IN_CHUNK = 500  # lead ids per IN (...) list: within SQLite's variable limit
_ORDER_MAX = 30_000  # lead ids one ordering read takes (SQLite allows 32,766 parameters)
#: Exact values are dropped past this many (memory); a bag that later shrinks to EXACT_MAX
#: or fewer without them makes the next refresh a full one.
_EXACT_KEEP = 2 * EXACT_MAX
_BLOCK_BITS = 10
#: Past this share of the window's leads to compute again, a refresh reads the window instead
#: (measured: an incremental refresh costs about 3.5 times a full one per lead).
_INCREMENTAL_SHARE = 0.25


class NeedsFullRefresh(Exception):
    """The kept state cannot give an exact result: recompute from the ledger."""


class _Bag(Distribution):
    """A multiset of values that can also lose values, with Distribution's percentiles."""

    __slots__ = ("_block_counts", "_blocks", "_exact_counts", "_key_counts", "_keys", "_size")

    def __init__(self, resolution: float) -> None:
        super().__init__(resolution)
        self._exact_counts: dict[float, int] | None = {}
        self._key_counts: dict[int, int] = {}
        self._keys: list[int] = []  # sorted; a key whose count fell to 0 stays (cheap)
        # Counts per block of 2**_BLOCK_BITS keys: a percentile walks the blocks, then the
        # keys of one block, not every minute of 90 days.
        self._block_counts: dict[int, int] = {}
        self._blocks: list[int] = []  # sorted
        self._size = 0

    @property
    def resolution(self) -> float:
        return self._resolution

    def add(self, value: float) -> None:
        self.put(value, 1)

    def put(self, value: float, sign: int) -> None:
        self._size += sign
        key = round(value / self._resolution)
        counts = self._key_counts
        count = counts.get(key)
        if count is None:
            bisect.insort(self._keys, key)
            counts[key] = sign
        else:
            counts[key] = count + sign
        block = key >> _BLOCK_BITS
        blocks = self._block_counts
        count = blocks.get(block)
        if count is None:
            bisect.insort(self._blocks, block)
            blocks[block] = sign
        else:
            blocks[block] = count + sign
        exact = self._exact_counts
        if exact is not None:
            left = exact.get(value, 0) + sign
            if left:
                exact[value] = left
            else:
                del exact[value]
            if self._size > _EXACT_KEEP:
                self._exact_counts = None

    def merge(self, other: Distribution) -> None:
        raise NotImplementedError("a kept funnel's bag is updated value by value")

    def __len__(self) -> int:
        return self._size

    @property
    def exact(self) -> bool:
        return self._size <= EXACT_MAX

    @property
    def max(self) -> float | None:
        if self._size == 0:
            return None
        if self._exact_counts is not None:
            return max(self._exact_counts)
        top = next(k for k in reversed(self._keys) if self._key_counts[k] > 0)
        return top * self._resolution

    def percentile(self, q: float) -> float | None:
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        wanted = list(qs)
        n = self._size
        if n == 0:
            return [None] * len(wanted)
        ranks = [max(1, math.ceil(q / 100 * n)) for q in wanted]
        found: dict[int, float] = {}
        pending = sorted(set(ranks))
        seen = 0
        if n <= EXACT_MAX:
            if self._exact_counts is None:
                raise NeedsFullRefresh("time-in-stage values were counted, now needed exactly")
            for value, count in sorted(self._exact_counts.items()):
                seen += count
                while pending and seen >= pending[0]:
                    found[pending.pop(0)] = value
                if not pending:
                    break
            return [found.get(r) for r in ranks]
        counts, keys, resolution = self._key_counts, self._keys, self._resolution
        for block in self._blocks:
            in_block = self._block_counts[block]
            if not pending or seen + in_block < pending[0]:
                seen += in_block
                continue
            low = bisect.bisect_left(keys, block << _BLOCK_BITS)
            high = bisect.bisect_left(keys, (block + 1) << _BLOCK_BITS)
            for key in keys[low:high]:
                seen += counts[key]
                while pending and seen >= pending[0]:
                    found[pending.pop(0)] = key * resolution
            if not pending:
                break
        return [found.get(r) for r in ranks]


class _Signed(Distribution):
    """Hands each value an accumulator adds to a :class:`_Bag`, with a sign."""

    __slots__ = ("_bag", "_sign")

    def __init__(self, bag: _Bag, sign: int) -> None:
        super().__init__(bag.resolution)
        self._bag = bag
        self._sign = sign

    def add(self, value: float) -> None:
        self._bag.put(value, self._sign)


class _FollowUps:
    """What the kept state needs of the follow-ups an accumulator decides, per lead: the last
    activity of the leads whose follow-up it decided, their open breach, and the SALs still
    inside the SLA (their deadline to watch)."""

    __slots__ = ("calendar", "days", "opened", "touched", "waiting")

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.touched: dict[str, datetime | date] = {}
        self.opened: dict[str, datetime] = {}
        self.waiting: list[tuple[str, datetime]] = []
        self.days: dict[date, date] = {}  # one object per activity date

    def followed_up(
        self, lead: LeadInfo, sal_at: datetime, *, breach_opened: bool, undecided: bool
    ) -> None:
        activity = lead.last_activity_at
        if activity is not None and touch_at(activity, sal_at, self.calendar):
            # Only such a lead's sums depend on its activity (otherwise they are those of no
            # activity at all): what to subtract once a pull replaced it.
            if not isinstance(activity, datetime):
                activity = self.days.setdefault(activity, activity)
            self.touched[lead.lead_id] = activity
        if breach_opened:
            self.opened[lead.lead_id] = sal_at
        elif undecided:  # untouched, no later transition, within the SLA
            self.waiting.append((lead.lead_id, sal_at))


def _tracking(
    options: ReportOptions, bags: Sequence[_Bag], sign: int
) -> tuple[FunnelAccumulator, _FollowUps]:
    """An accumulator whose values go to ``bags`` with ``sign``, and what it notes per lead."""
    acc = FunnelAccumulator.new(options)
    notes = _FollowUps(options.calendar)
    acc.watcher = notes
    n = len(options.stages)
    acc.durations = [_Signed(bag, sign) for bag in bags[:n]]
    acc.first_touch_hours = _Signed(bags[n], sign)
    acc.sal_to_close = _Signed(bags[n + 1], sign)
    return acc, notes


def _apply(total: FunnelAccumulator, part: FunnelAccumulator, sign: int) -> None:
    """``total`` += sign * ``part``'s counters (its values went to the bags as it added)."""
    for mine, theirs in (
        (total.any_order, part.any_order),
        (total.in_order, part.in_order),
        (total.reached_later, part.reached_later),
        (total.stale, part.stale),
    ):
        for k, value in enumerate(theirs):
            mine[k] += sign * value
    for name in SUMMED_COUNTERS:
        setattr(total, name, getattr(total, name) + sign * getattr(part, name))
    days = total.breaches_by_day
    for day, count in part.breaches_by_day.items():
        left = days.get(day, 0) + sign * count
        if left:
            days[day] = left
        else:
            days.pop(day, None)


def sla_deadline(options: ReportOptions, sal_at: datetime) -> datetime:
    """The first instant (to the microsecond) at which an untouched SAL entered at ``sal_at``
    is more than ``options.sla_hours`` business hours old (the report's open breach test)."""
    clock = clock_for(options.calendar)
    limit = options.sla_hours
    low = sal_at + timedelta(hours=limit)  # business hours never run faster than the clock
    if clock.hours(sal_at, low) > limit:
        return low
    step = timedelta(days=1)
    high = low + step
    while clock.hours(sal_at, high) <= limit:
        low, step = high, step * 2
        high = low + step
        if step > timedelta(days=4000):  # no working time at all: never
            return datetime.max.replace(tzinfo=UTC)
    # Invariant: hours(low) <= limit < hours(high); bisect to one microsecond.
    while high - low > timedelta(microseconds=1):
        mid = low + (high - low) / 2
        if clock.hours(sal_at, mid) > limit:
            high = mid
        else:
            low = mid
    return high


def _owner(infos: Mapping[str, LeadInfo], lead_id: str) -> str | None:
    info = infos.get(lead_id)
    return None if info is None else info.owner


def _settings_key(options: ReportOptions) -> ReportOptions:
    """What of the options is settings (the times blanked): a change means a full refresh."""
    return replace(options, since=_EPOCH, until=_EPOCH, now=_EPOCH)


@dataclass(slots=True)
class Refreshed:
    """What one refresh did (for tests and the bench)."""

    report: Report
    full: bool
    leads: int  # leads whose contribution was computed again (all read, for a full one)


class FunnelState:
    """One CRM's report over the last window, kept by :meth:`refresh`."""

    def __init__(
        self,
        engine: Engine,
        crm: str,
        status_maps: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.engine = engine
        self.crm = crm
        self.status_maps = status_maps
        self._options: ReportOptions | None = None
        self._mark = 0
        self._total: FunnelAccumulator | None = None
        self._bags: list[_Bag] = []
        #: Per lead whose follow-up counted its last activity: that activity.
        self._activity: dict[str, datetime | date] = {}
        #: Per lead with an open SLA breach: when it entered SAL (its owner is read at the end).
        self._open: dict[str, datetime] = {}
        #: The oldest open breaches, sorted: every (since, lead) up to ``_cut`` (None: all).
        #: Refreshes keep it as breaches open and close; rebuilt from ``_open`` when short.
        self._oldest: list[tuple[datetime, str]] | None = None
        self._cut: tuple[datetime, str] | None = None
        #: The owners of the open breaches the last report listed (at most
        #: OPEN_BREACHES_KEPT), as the mirror had them: read again once a pull stored the lead.
        self._owners: dict[str, str | None] = {}
        self._deadlines: list[tuple[datetime, str]] = []  # a heap
        #: The mirror's newest ``lead.pulled_at`` the last refresh saw.
        self._pulled: datetime | None = None
        #: Leads with rows in the window (their number: what a full read would sum).
        self._leads = 0
        #: The CRM's ledger re-key count (``syncd.state.ledger_rekeys``) the kept sums are of.
        self._rekeys = 0

    def refresh(self, options: ReportOptions, mark: int) -> Refreshed:
        """The report for ``options`` (its window ending at ``options.now``) over the ledger
        rows with ids up to ``mark``. A store error propagates and leaves the kept state as
        it was; a change of the report settings recomputes from the ledger, and so does a
        merge that moved ledger rows from one lead to another since the last refresh.

        Why a full read after a merge, not an incremental one: the state does not keep what
        each lead gave; it computes it again from the lead's rows up to the last mark. A merge
        moves the originals' rows to the merged lead with their ids (and so below the mark),
        so that computation would give the originals nothing to subtract and the merged lead
        rows it never counted; which of the merged lead's rows were whose at the last refresh
        is in no table. Keeping that (a log of moved rows) for an event this rare is not worth
        its cost: a full read takes seconds at a million leads, and ``syncd.kpi`` spaces the
        refresh after it like any other full one."""
        rekeys = self._rekeys_now()
        old = self._options
        if (
            old is None
            or _settings_key(old) != _settings_key(options)
            or options.now < old.now  # the clock went back
            or mark < self._mark  # the ledger lost rows (a store replaced)
            or rekeys != self._rekeys  # rows moved between leads (a merge), ids kept
        ):
            return self._full(options, mark, rekeys)
        try:
            leads = self._incremental(old, options, mark)
            return Refreshed(self._result(options), False, leads)
        except NeedsFullRefresh:
            return self._full(options, mark, rekeys)

    def _rekeys_now(self) -> int:
        """The CRM's ledger re-key count, read before the ledger: a merge stored after this
        read makes the next refresh a full one again."""
        with self.engine.connect() as conn:
            return ledger_rekeys(conn, self.crm)

    # -- the full read --------------------------------------------------------------------

    def _full(self, options: ReportOptions, mark: int, rekeys: int) -> Refreshed:
        if options.cohort:
            raise ValueError("the kept funnel is the period's, not a cohort's")
        n = len(options.stages)
        bags = [_Bag(1 / 1440) for _ in range(n)] + [_Bag(1 / 60), _Bag(1 / 1440)]
        total = FunnelAccumulator.new(options)
        part, notes = _tracking(options, bags, 1)
        leads = 0
        pulled = self._newest_pull()
        for lead, history in read_inputs(
            self.engine, self.status_maps, crm=self.crm, since=options.since, max_id=mark
        ):
            part.add(lead, history)
            leads += 1
        _apply(total, part, 1)
        # Only now, the reads having succeeded, does the kept state change.
        self._total, self._bags, self._options, self._mark = total, bags, options, mark
        self._pulled = pulled
        self._leads = leads
        self._rekeys = rekeys
        self._activity = notes.touched
        self._open = notes.opened
        self._oldest = None
        self._owners = {}
        self._deadlines = [(sla_deadline(options, at), lead) for lead, at in notes.waiting]
        heapq.heapify(self._deadlines)
        return Refreshed(self._result(options), True, leads)

    # -- the incremental one --------------------------------------------------------------

    def _incremental(self, old: ReportOptions, new: ReportOptions, mark: int) -> int:
        total = self._total
        assert total is not None
        due: set[str] = set()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= new.now:
            due.add(heapq.heappop(deadlines)[1])
        try:
            affected, pulled = self._affected(old, new, mark)
            affected |= due
            if len(affected) > _INCREMENTAL_SHARE * self._leads:
                # Each lead costs two sums and a read here, one streamed sum in a full read:
                # past this share of the window's leads the full read is the cheaper.
                raise NeedsFullRefresh("a large share of the leads changed")
            rows = self._histories(affected, old.since, mark)
            infos = self._infos(affected)
        except BaseException:
            for lead in due:  # not recomputed: their deadline still stands
                heapq.heappush(deadlines, (new.now, lead))
            raise
        # Every read done: from here on nothing can fail half-way for the store's sake. Should
        # anything else fail half-way, the next refresh is a full one.
        self._options = None
        minus, _ = _tracking(old, self._bags, -1)
        plus, noted = _tracking(new, self._bags, 1)
        crm = self.crm
        for lead_id in sorted(affected):
            history = rows.get(lead_id, [])
            before = [t for row_id, t in history if row_id <= self._mark and t.at >= old.since]
            after = [t for row_id, t in history if row_id <= mark and t.at >= new.since]
            if before:
                was = LeadInfo(crm, lead_id, last_activity_at=self._activity.get(lead_id))
                minus.add(was, before)
                self._leads -= 1
            if after:
                plus.add(infos.get(lead_id) or LeadInfo(crm, lead_id), after)
                self._leads += 1
            self._activity.pop(lead_id, None)
            since = self._open.pop(lead_id, None)
            if since is not None:
                self._unlist(since, lead_id)
            self._owners.pop(lead_id, None)
        _apply(total, minus, -1)
        _apply(total, plus, 1)
        self._activity.update(noted.touched)
        self._open.update(noted.opened)
        for lead_id, since in noted.opened.items():
            self._list(since, lead_id)
        for lead_id, at in noted.waiting:
            heapq.heappush(deadlines, (sla_deadline(new, at), lead_id))
        self._options, self._mark, self._pulled = new, mark, pulled
        return len(affected)

    def _affected(
        self, old: ReportOptions, new: ReportOptions, mark: int
    ) -> tuple[set[str], datetime | None]:
        """The leads whose contribution may differ between ``old`` and ``new``, and the
        newest ``pulled_at`` of the mirror (the next refresh reads the leads stored after)."""
        from syncd.state import LeadRow, StatusHistoryRow

        h = StatusHistoryRow.__table__
        lt = LeadRow.__table__
        crm = self.crm
        found: set[str] = set()
        stale = old.stale_after
        # ``field || ''``, ``crm || ''``: SQLite (no statistics) would otherwise walk the
        # (field, to_value, at) or (crm, lead_id, at) index over every row of the CRM instead
        # of the id or ``at`` range.
        is_status = h.c.field.op("||")("") == "status"
        of_crm = h.c.crm.op("||")("") == crm
        with self.engine.connect() as conn:
            # New rows (ids are the ledger's primary key: one range).
            if mark > self._mark:
                q = select(h.c.lead_id).where(
                    h.c.id > self._mark, h.c.id <= mark, of_crm, is_status
                )
                found.update(r[0] for r in conn.execute(q))
            # Rows that crossed a boundary moving with the clock (the ``at`` index).
            for low, high in (
                (old.since, new.since),  # out of the window
                (old.now, new.now),  # into the period (rows dated ahead of the clock)
                (old.now - stale, new.now - stale),  # the lead's last change became stale
            ):
                if high <= low:
                    continue
                q = select(h.c.lead_id).where(
                    h.c.at >= low,
                    h.c.at < high,
                    of_crm,
                    is_status,
                    h.c.id <= mark,
                )
                found.update(r[0] for r in conn.execute(q))
            # Leads whose mirror row a pull stored again since the newest stamp the last
            # refresh saw (the pull's own clock, whatever this one's): their activity.
            q = select(lt.c.lead_id, lt.c.pulled_at).where(lt.c.crm == crm)
            if self._pulled is not None:
                q = q.where(lt.c.pulled_at > self._pulled)
            pulled = self._pulled
            for lead_id, at in conn.execute(q):
                found.add(lead_id)
                pulled = at if pulled is None or at > pulled else pulled
        return found, pulled

    def _newest_pull(self) -> datetime | None:
        """The mirror's newest ``pulled_at`` of the CRM (one probe of ``ix_lead_pulled``)."""
        from syncd.state import LeadRow

        lt = LeadRow.__table__
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(lt.c.pulled_at)).where(lt.c.crm == self.crm))
            newest: datetime | None = value.scalar()
        return None if newest is None else aware(newest)

    def _histories(
        self, leads: set[str], since: datetime, mark: int
    ) -> dict[str, list[tuple[int, Transition]]]:
        """Each lead's status rows from ``since`` with ids up to ``mark``, in time order."""
        from syncd.state import StatusHistoryRow

        h = StatusHistoryRow.__table__
        mapping = self.status_maps.get(self.crm, {})
        out: dict[str, list[tuple[int, Transition]]] = {}
        ordered = sorted(leads)
        # ``field || ''``: as report_read.read_inputs, so SQLite walks (crm, lead_id, at).
        is_status = h.c.field.op("||")("") == "status"
        with self.engine.connect() as conn:
            for start in range(0, len(ordered), _IN_CHUNK):
                q = select(h.c.lead_id, h.c.id, h.c.at, h.c.from_value, h.c.to_value).where(
                    h.c.crm == self.crm,
                    h.c.lead_id.in_(ordered[start : start + _IN_CHUNK]),
                    is_status,
                    h.c.at >= since,
                    h.c.id <= mark,
                )
                for lead_id, row_id, at, from_value, to_value in conn.execute(q):
                    to = to_value or ""
                    from_status = (
                        None if from_value is None else mapping.get(from_value, from_value)
                    )
                    transition = Transition(aware(at), mapping.get(to, to), from_status)
                    out.setdefault(lead_id, []).append((row_id, transition))
        for rows in out.values():
            rows.sort(key=lambda r: (r[1].at, r[0]))  # the report's order: (at, id)
        return out

    def _infos(self, leads: set[str]) -> dict[str, LeadInfo]:
        from syncd.state import LeadRow

        lt = LeadRow.__table__
        engine = self.engine
        ordered = sorted(leads)
        out: dict[str, LeadInfo] = {}
        with engine.connect() as conn:
            for start in range(0, len(ordered), _IN_CHUNK):
                q = select(
                    lt.c.lead_id,
                    lt.c.status,
                    *(
                        json_text(engine, lt.c.fields, key)
                        for key in ("owner", "lead_source", "activity")
                    ),
                ).where(lt.c.crm == self.crm, lt.c.lead_id.in_(ordered[start : start + _IN_CHUNK]))
                for lead_id, status, owner, source, activity in conn.execute(q):
                    key = (self.crm, lead_id)
                    out[lead_id] = lead_info(key, status, owner, source, activity, self.status_maps)
        return out

    # -- the report -------------------------------------------------------------------------

    def _result(self, options: ReportOptions) -> Report:
        total = self._total
        assert total is not None
        total.options = options
        n = len(options.stages)
        total.durations = list(self._bags[:n])
        total.first_touch_hours = self._bags[n]
        total.sal_to_close = self._bags[n + 1]
        total.open_breaches = self._open_breaches(options)
        total.open_breach_count = len(self._open)
        return total.result("all")

    def _open_breaches(self, options: ReportOptions) -> list[tuple[float, int, OpenBreach]]:
        """The oldest open breaches, as a single pass keeps them: (age, order, breach)."""
        clock = clock_for(options.calendar)
        now = options.now
        # Age falls as the SAL gets later: the oldest are the first by ``since``; past the
        # kept number, only those tied with the last kept one's age can still be kept.
        candidates: list[tuple[float, str, datetime]] = []
        # The kept list first; else the 2 x OPEN_BREACHES_KEPT oldest; else all of them.
        sizes = [2 * OPEN_BREACHES_KEPT, len(self._open)]
        for size in ([0] if self._oldest is not None else []) + sizes:
            if size or self._oldest is None:
                self._oldest = heapq.nsmallest(size, ((v, k) for k, v in self._open.items()))
                self._cut = self._oldest[-1] if len(self._oldest) < len(self._open) else None
            candidates = []
            proven = self._cut is None  # the list holds every open breach
            for since, lead_id in self._oldest:
                age = round(clock.hours(since, now), 2)
                if (
                    len(candidates) >= OPEN_BREACHES_KEPT
                    and age < candidates[OPEN_BREACHES_KEPT - 1][0]
                ):
                    proven = True
                    break
                candidates.append((age, lead_id, since))
            if proven:
                break  # else ties (or closed breaches) reach past the list: take more
        tied: dict[float, int] = {}
        for c in candidates:
            tied[c[0]] = tied.get(c[0], 0) + 1
        # Ties: broken by the order a pass meets the leads.
        order = self._lead_order([c[1] for c in candidates if tied[c[0]] > 1])
        kept = heapq.nlargest(
            OPEN_BREACHES_KEPT, candidates, key=lambda c: (c[0], order.get(c[1], 0))
        )
        # The owner as the mirror has it now, as a full read would take it (kept from the
        # last report for the leads no pull stored since).
        owners = self._owners
        unknown = {lead_id for _, lead_id, _ in kept if lead_id not in owners}
        infos = self._infos(unknown) if unknown else {}
        owners = {lead_id: owners.get(lead_id) for _, lead_id, _ in kept} | {
            lead_id: _owner(infos, lead_id) for lead_id in unknown
        }
        self._owners = owners
        return [
            (age, order.get(lead_id, 0), OpenBreach(self.crm, lead_id, owners[lead_id], since, age))
            for age, lead_id, since in kept
        ]

    def _list(self, since: datetime, lead_id: str) -> None:
        """A breach opened: into the oldest list if it falls within it."""
        key = (since, lead_id)
        if self._oldest is not None and (self._cut is None or key <= self._cut):
            bisect.insort(self._oldest, key)

    def _unlist(self, since: datetime, lead_id: str) -> None:
        key = (since, lead_id)
        if self._oldest is not None and (self._cut is None or key <= self._cut):
            at = bisect.bisect_left(self._oldest, key)
            if at < len(self._oldest) and self._oldest[at] == key:
                del self._oldest[at]

    def _lead_order(self, leads: list[str]) -> dict[str, int]:
        """The leads' ranks in the ledger's (crm, lead_id) order, as the database sorts."""
        from syncd.state import StatusHistoryRow

        h = StatusHistoryRow.__table__
        if not leads:
            return {}
        if self.engine.dialect.name == "sqlite":  # BINARY collation: UTF-8 bytes, code points
            return {lead_id: rank for rank, lead_id in enumerate(sorted(leads))}
        if len(leads) > _ORDER_MAX:  # one statement's parameters
            raise NeedsFullRefresh("more tied open breaches than one ordered read takes")
        q = (
            select(h.c.lead_id)
            .where(h.c.crm == self.crm, h.c.lead_id.in_(leads))
            .group_by(h.c.lead_id)
            .order_by(h.c.lead_id)
        )
        with self.engine.connect() as conn:
            ranked = [r[0] for r in conn.execute(q)]
        return {lead_id: rank for rank, lead_id in enumerate(ranked)}
