"""The funnel report: stage counts, conversion, acceptance, follow-up SLA, time in stage.

Pure over rows: :func:`compute` takes the ledger's status transitions (already mapped from the
CRM's values to rule statuses) grouped by lead and in time order, plus each lead's owner,
source and last activity, and returns a :class:`Report`. Reading the rows from the store, in
bounded chunks, is :func:`syncd.report_read.read_inputs`; rendering is :mod:`syncd.report_render`.

The definitions printed with every report are :data:`DEFINITIONS`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple, Protocol

from rules.calendar import Calendar
from syncd.business_clock import BusinessClock, aware, clock_for, touch_at
from syncd.distribution import Distribution

__all__ = [
    "DEFINITIONS",
    "OPEN_BREACHES_KEPT",
    "SUMMED_COUNTERS",
    "FollowUpWatcher",
    "FunnelAccumulator",
    "LeadInfo",
    "Partial",
    "Report",
    "ReportOptions",
    "Transition",
    "accumulate",
    "compute",
    "finish",
    "merge",
    "percentile",
]

Acceptance = Literal["accepted_over_decided", "within_sla_over_mqls"]
GroupBy = Literal["crm", "owner", "source"]

DEFINITIONS: dict[str, str] = {
    "period": "transitions with since <= at < until count; history before the period is "
    "used only to decide in-order passage.",
    "cohort": "the leads that entered the first stage in the period, followed to the "
    "report's time.",
    "any_order": "a lead counts at a stage if it entered that stage (HubSpot: 'all "
    "contacts that entered any stage').",
    "in_order": "a lead counts at a stage only if it entered every earlier stage, one after "
    "the other in time, before it (HubSpot: 'contacts that went through each stage in order').",
    "next_step": "leads at this stage / leads at the stage before.",
    "cumulative": "leads at this stage / leads at the first stage.",
    "skipped": "transitions into a stage from further back than the stage before it.",
    "regressions": "transitions into a stage earlier than the furthest one the lead reached.",
    "accepted_over_decided": "SAL entries / (SAL entries + moves from MQL to a rejected status).",
    "within_sla_over_mqls": "MQL entries that reached SAL within the acceptance window "
    "(business hours) / MQL entries.",
    "first_touch": "business hours from entering SAL to the first activity after it: the "
    "lead's last activity if it is after the SAL (a date-only activity on the SAL's day "
    "counts as at once), else the lead's next transition.",
    "sla_breach": "first touch later than the SLA, or no touch and more than the SLA passed; "
    "breach rate = breaches / SAL entries whose outcome is known.",
    "open_breach": "a lead still in SAL, untouched, past the SLA (age in business hours).",
    "time_in_stage": "wall-clock days from entering a stage to the lead's next transition "
    "(leads still in the stage are not counted); percentiles by nearest rank.",
    "drop_off": "share of the leads entering a stage that reached no later stage.",
    "sal_to_close": "wall-clock days from the first SAL to entering the last stage.",
    "stale": "leads whose status is a stage before the last one and that have not changed "
    "for longer than the stale threshold, as of the report's time (whatever the period).",
}


def _rebuilt(value: object) -> tuple[object, tuple[object, ...]]:
    """pickle's recipe for a frozen dataclass of this module: its class called with its fields.

    Compiled (``[tool.syncd] compiled``), such a class refuses the dataclass's own
    ``__setstate__`` (it assigns each field, and the class is frozen); the report's worker
    processes send them pickled (:mod:`syncd.report_parallel`)."""
    return type(value), tuple(getattr(value, f.name) for f in fields(value))  # type: ignore[arg-type]


class Transition(NamedTuple):
    """One status change of one lead, in rule statuses (a tuple: millions are made per report,
    and a tuple is made three times faster than a frozen dataclass)."""

    at: datetime
    to_status: str
    from_status: str | None = None


@dataclass(frozen=True, slots=True)
class LeadInfo:
    """What the report needs of a lead besides its transitions (from the mirror)."""

    crm: str
    lead_id: str
    owner: str | None = None
    source: str | None = None
    last_activity_at: datetime | date | None = None
    status: str | None = None  # the current rule status

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _rebuilt(self)


@dataclass(frozen=True, slots=True)
class ReportOptions:
    since: datetime
    until: datetime
    now: datetime
    stages: tuple[str, ...] = ("New", "MQL", "SAL", "SQL", "Converted")
    rejected: tuple[str, ...] = ("Unqualified", "Nurture")
    accepted_stage: str = "SAL"
    mql_stage: str = "MQL"
    acceptance: Acceptance = "accepted_over_decided"
    acceptance_target: float = 0.9
    accept_within_hours: float = 16.0
    sla_hours: float = 16.0
    stale_after: timedelta = timedelta(days=30)
    cohort: bool = False
    calendar: Calendar = field(default_factory=Calendar)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _rebuilt(self)


@dataclass(slots=True)
class StageRow:
    stage: str
    any_order: int = 0
    in_order: int = 0
    next_step_any: float | None = None
    next_step_in_order: float | None = None
    cumulative_any: float | None = None
    cumulative_in_order: float | None = None
    drop_off: float | None = None
    p50_days: float | None = None
    p75_days: float | None = None
    p90_days: float | None = None
    n_durations: int = 0
    stale: int = 0


@dataclass(frozen=True, slots=True)
class OpenBreach:
    crm: str
    lead_id: str
    owner: str | None
    since: datetime
    age_business_hours: float

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _rebuilt(self)


@dataclass(slots=True)
class Report:
    """One group's numbers (the whole scope when ungrouped)."""

    group: str
    stages: list[StageRow]
    skipped: int = 0
    regressions: int = 0
    acceptance: Acceptance = "accepted_over_decided"
    acceptance_numerator: int = 0
    acceptance_denominator: int = 0
    acceptance_rate: float | None = None
    acceptance_target: float = 0.9
    acceptance_below_target: bool = False
    sal_entries: int = 0
    sla_decided: int = 0
    sla_breaches: int = 0
    sla_breach_rate: float | None = None
    first_touch_p50_hours: float | None = None
    #: The oldest :data:`OPEN_BREACHES_KEPT` open breaches, oldest first; all are counted in
    #: ``open_breach_count`` (a backlog of a million would otherwise be held and printed).
    open_breaches: list[OpenBreach] = field(default_factory=list)
    open_breach_count: int = 0
    breaches_by_day: dict[str, int] = field(default_factory=dict)
    sal_to_close_p50_days: float | None = None
    sal_to_close_p90_days: float | None = None
    sal_to_close_n: int = 0
    #: Time in stage per stage, for the charts (bounded memory: syncd.distribution).
    durations_days: dict[str, Distribution] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100): the smallest value with at least q % of the
    values at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class FollowUpWatcher(Protocol):
    """Told of every SAL follow-up an accumulator decides: what the KPIs kept between refreshes
    (:mod:`syncd.kpi_incremental`) note per lead to update their sums later."""

    def followed_up(
        self, lead: LeadInfo, sal_at: datetime, *, breach_opened: bool, undecided: bool
    ) -> None:
        """``breach_opened``: the lead is now an open breach; ``undecided``: untouched, no later
        transition and still within the SLA (neither met nor breached yet)."""


@dataclass(slots=True)
class FunnelAccumulator:
    """Running sums for one group while leads stream past."""

    options: ReportOptions
    any_order: list[int]
    in_order: list[int]
    reached_later: list[int]
    durations: list[Distribution]
    stale: list[int]
    skipped: int = 0
    regressions: int = 0
    accepted: int = 0
    rejected: int = 0
    mqls: int = 0
    mqls_accepted_in_time: int = 0
    sal_entries: int = 0
    sla_decided: int = 0
    sla_breaches: int = 0
    first_touch_hours: Distribution = field(default_factory=lambda: Distribution(1 / 60))
    open_breaches: list[tuple[float, int, OpenBreach]] = field(default_factory=list)  # a heap
    open_breach_count: int = 0
    breaches_by_day: dict[str, int] = field(default_factory=dict)
    sal_to_close: Distribution = field(default_factory=lambda: Distribution(_MINUTE_DAYS))
    index: dict[str, int] = field(default_factory=dict)
    watcher: FollowUpWatcher | None = None
    clock: BusinessClock = field(init=False)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # The clock is rebuilt from the options' calendar; the same recipe whether the module
        # is compiled or not, so the report's processes agree on it either way.
        return _accumulator, (tuple(getattr(self, f.name) for f in fields(self) if f.init),)

    @classmethod
    def new(cls, options: ReportOptions) -> FunnelAccumulator:
        n = len(options.stages)
        durations = [Distribution(_MINUTE_DAYS) for _ in range(n)]
        acc = cls(options, [0] * n, [0] * n, [0] * n, durations, [0] * n)
        acc.index = {s: i for i, s in enumerate(options.stages)}
        acc.clock = clock_for(options.calendar)
        return acc

    def add(self, lead: LeadInfo, history: Sequence[Transition]) -> None:  # noqa: C901
        # Hot: called once per lead and group, a million times for a million leads. Options
        # and counters are read into locals once (attribute lookups were a third of it).
        o = self.options
        stages = o.stages
        index = self.index
        if o.cohort:
            first = [t for t in history if t.to_status == stages[0]]
            if not first or not (o.since <= aware(first[0].at) < o.until):
                return
        mql, accepted_stage, rejected = o.mql_stage, o.accepted_stage, o.rejected
        last_stage = len(stages) - 1
        any_order, in_order, durations = self.any_order, self.in_order, self.durations
        counted_any = 0  # bit k: stage k counted for this lead (any order)
        counted_in_order = 0
        in_order_next = 0  # the stage the in-order walk waits for
        furthest = -1
        position = -1
        first_sal: datetime | None = None
        n = len(history)
        ats = [t.at if t.at.tzinfo is not None else t.at.replace(tzinfo=UTC) for t in history]
        if o.cohort:
            now = o.now
            scopes = [at <= now for at in ats]
        else:
            since, until = o.since, o.until
            scopes = [since <= at < until for at in ats]
        # The furthest stage reached after each transition (drop-off), in one backward pass.
        later_max = [-1] * (n + 1)
        for j in range(n - 1, -1, -1):
            reached = index.get(history[j].to_status, -1)
            later_max[j] = reached if reached > later_max[j + 1] else later_max[j + 1]
        for i in range(n):
            t = history[i]
            at = ats[i]
            to = t.to_status
            k = index.get(to)
            scoped = scopes[i]
            # Rejections and acceptance decisions.
            if scoped and t.from_status == mql and to in rejected:
                self.rejected += 1
            if k is None:
                continue
            bit = 1 << k
            if k == in_order_next:
                in_order_next += 1
                if scoped and not counted_in_order & bit:
                    counted_in_order |= bit
                    in_order[k] += 1
            if scoped:
                if not counted_any & bit:
                    counted_any |= bit
                    any_order[k] += 1
                    if later_max[i + 1] > k:
                        self.reached_later[k] += 1
                if k < furthest:
                    self.regressions += 1
                elif k > furthest and k > position + 1:
                    self.skipped += 1
                if i + 1 < n:
                    durations[k].add((ats[i + 1] - at).total_seconds() / 86400)
                if to == accepted_stage:
                    self.accepted += 1
                    self.follow_up(lead, at, ats[i + 1] if i + 1 < n else None)
                if to == mql:
                    self.mqls += 1
                    sal = next(
                        (j for j in range(i + 1, n) if history[j].to_status == accepted_stage),
                        None,
                    )
                    if sal is not None:
                        waited = self.clock.hours(at, ats[sal])
                        if waited <= o.accept_within_hours:
                            self.mqls_accepted_in_time += 1
            if to == accepted_stage and first_sal is None:
                first_sal = at
            if k == last_stage and first_sal is not None and scoped:
                self.sal_to_close.add((at - first_sal).total_seconds() / 86400)
            if k > furthest:
                furthest = k
            position = k
        # Stale: the current status is a stage before the last, unchanged too long.
        if n:
            k = index.get(history[-1].to_status)
            stale = o.now - ats[-1] > o.stale_after
            if k is not None and k < last_stage and stale:
                self.stale[k] += 1

    def follow_up(self, lead: LeadInfo, sal_at: datetime, next_at: datetime | None) -> None:
        watcher = self.watcher
        if watcher is None:
            self._decide(lead, sal_at, next_at)
            return
        opened, decided = self.open_breach_count, self.sla_decided
        self._decide(lead, sal_at, next_at)
        watcher.followed_up(
            lead,
            sal_at,
            breach_opened=self.open_breach_count > opened,
            undecided=self.sla_decided == decided,
        )

    def _decide(self, lead: LeadInfo, sal_at: datetime, next_at: datetime | None) -> None:
        o = self.options
        self.sal_entries += 1
        touched = touch_at(lead.last_activity_at, sal_at, o.calendar)
        if next_at is not None and (touched is None or next_at < touched):
            touched = next_at
        if touched is not None:
            hours = self.clock.hours(sal_at, touched)
            self.first_touch_hours.add(hours)
            self.sla_decided += 1
            if hours > o.sla_hours:
                self._breach(sal_at)
            return
        age = self.clock.hours(sal_at, o.now)
        if age > o.sla_hours:
            self.sla_decided += 1
            self._breach(sal_at)
            if next_at is None:
                self.open_breach_count += 1
                breach = OpenBreach(lead.crm, lead.lead_id, lead.owner, sal_at, round(age, 2))
                entry = (breach.age_business_hours, self.open_breach_count, breach)
                if len(self.open_breaches) < OPEN_BREACHES_KEPT:
                    heapq.heappush(self.open_breaches, entry)
                else:  # keep the oldest: drop the youngest of those kept
                    heapq.heappushpop(self.open_breaches, entry)

    def _breach(self, sal_at: datetime) -> None:
        self.sla_breaches += 1
        day = sal_at.date().isoformat()
        self.breaches_by_day[day] = self.breaches_by_day.get(day, 0) + 1

    def merge(self, later: FunnelAccumulator) -> None:
        """Add the sums of ``later``, an accumulator over leads that stream after this one's
        (a report computed in parts by lead range): the result is the single pass's."""
        for mine, theirs in (
            (self.any_order, later.any_order),
            (self.in_order, later.in_order),
            (self.reached_later, later.reached_later),
            (self.stale, later.stale),
        ):
            for k, value in enumerate(theirs):
                mine[k] += value
        for dist, other in zip(self.durations, later.durations, strict=True):
            dist.merge(other)
        for name in SUMMED_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(later, name))
        self.first_touch_hours.merge(later.first_touch_hours)
        self.sal_to_close.merge(later.sal_to_close)
        for day, count in later.breaches_by_day.items():
            self.breaches_by_day[day] = self.breaches_by_day.get(day, 0) + count
        # Open breaches: the tie-break number is the order of encounter, so ``later``'s are
        # numbered after this one's; the oldest kept are then those a single pass keeps.
        offset = self.open_breach_count
        shifted = [(age, seq + offset, b) for age, seq, b in later.open_breaches]
        kept = heapq.nlargest(OPEN_BREACHES_KEPT, self.open_breaches + shifted)
        heapq.heapify(kept)
        self.open_breaches = kept
        self.open_breach_count += later.open_breach_count

    def result(self, group: str) -> Report:
        o = self.options
        rows: list[StageRow] = []
        for k, stage in enumerate(o.stages):
            row = StageRow(stage, self.any_order[k], self.in_order[k])
            if k > 0:
                row.next_step_any = _ratio(self.any_order[k], self.any_order[k - 1])
                row.next_step_in_order = _ratio(self.in_order[k], self.in_order[k - 1])
            row.cumulative_any = _ratio(self.any_order[k], self.any_order[0])
            row.cumulative_in_order = _ratio(self.in_order[k], self.in_order[0])
            if k < len(o.stages) - 1 and self.any_order[k]:
                row.drop_off = 1 - self.reached_later[k] / self.any_order[k]
            values = self.durations[k]
            row.p50_days, row.p75_days, row.p90_days = (
                _round(v) for v in values.percentiles((50, 75, 90))
            )
            row.n_durations = len(values)
            row.stale = self.stale[k]
            rows.append(row)
        if o.acceptance == "accepted_over_decided":
            num, den = self.accepted, self.accepted + self.rejected
        else:
            num, den = self.mqls_accepted_in_time, self.mqls
        rate = _ratio(num, den)
        return Report(
            group=group,
            stages=rows,
            skipped=self.skipped,
            regressions=self.regressions,
            acceptance=o.acceptance,
            acceptance_numerator=num,
            acceptance_denominator=den,
            acceptance_rate=rate,
            acceptance_target=o.acceptance_target,
            acceptance_below_target=rate is not None and rate < o.acceptance_target,
            sal_entries=self.sal_entries,
            sla_decided=self.sla_decided,
            sla_breaches=self.sla_breaches,
            sla_breach_rate=_ratio(self.sla_breaches, self.sla_decided),
            first_touch_p50_hours=_round(self.first_touch_hours.percentile(50)),
            open_breaches=[
                b for _, _, b in sorted(self.open_breaches, key=lambda e: (-e[0], e[1]))
            ],
            open_breach_count=self.open_breach_count,
            breaches_by_day=dict(sorted(self.breaches_by_day.items())),
            sal_to_close_p50_days=_round(self.sal_to_close.percentile(50)),
            sal_to_close_p90_days=_round(self.sal_to_close.percentile(90)),
            sal_to_close_n=len(self.sal_to_close),
            durations_days={s: self.durations[k] for k, s in enumerate(o.stages)},
        )


#: The plain counters of :class:`FunnelAccumulator` (summed when parts of a report are merged).
SUMMED_COUNTERS = (
    "skipped",
    "regressions",
    "accepted",
    "rejected",
    "mqls",
    "mqls_accepted_in_time",
    "sal_entries",
    "sla_decided",
    "sla_breaches",
)

#: Open breaches a report lists (the oldest); alerts and the table show these, the count is
#: of all.
OPEN_BREACHES_KEPT = 1000

_MINUTE_DAYS = 1 / 1440  # a minute, in days: the resolution of durations past exact counting


def _accumulator(values: tuple[object, ...]) -> FunnelAccumulator:
    acc = FunnelAccumulator(*values)  # type: ignore[arg-type]
    acc.clock = clock_for(acc.options.calendar)
    return acc


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _group_key(lead: LeadInfo, by: GroupBy | None) -> str:
    if by is None:
        return "all"
    value = {"crm": lead.crm, "owner": lead.owner, "source": lead.source}[by]
    return value or "(none)"


def compute(
    leads: Iterable[tuple[LeadInfo, Sequence[Transition]]],
    options: ReportOptions,
    by: GroupBy | None = None,
) -> list[Report]:
    """The report over ``leads`` (each with its transitions in time order): the total first,
    then one per group of ``by`` in name order."""
    return finish(accumulate(leads, options, by))


class Partial(NamedTuple):
    """A report's running sums over some leads, before percentiles and ratios: the whole
    scope's and one per group. Partials over consecutive lead ranges merge (:func:`merge`)."""

    total: FunnelAccumulator
    groups: dict[str, FunnelAccumulator]


def accumulate(
    leads: Iterable[tuple[LeadInfo, Sequence[Transition]]],
    options: ReportOptions,
    by: GroupBy | None = None,
) -> Partial:
    """The running sums over ``leads`` (see :func:`compute`)."""
    total = FunnelAccumulator.new(options)
    groups: dict[str, FunnelAccumulator] = {}
    for lead, history in leads:
        total.add(lead, history)
        if by is not None:
            key = _group_key(lead, by)
            groups.setdefault(key, FunnelAccumulator.new(options)).add(lead, history)
    return Partial(total, groups)


def merge(first: Partial, later: Partial) -> Partial:
    """``first`` with ``later`` added; ``later``'s leads must all stream after ``first``'s
    (the order decides which open breaches are kept on a tie)."""
    first.total.merge(later.total)
    for key, acc in later.groups.items():
        mine = first.groups.get(key)
        if mine is None:
            first.groups[key] = acc
        else:
            mine.merge(acc)
    return first


def finish(partial: Partial) -> list[Report]:
    """The reports: the total first, then one per group in name order."""
    groups = partial.groups
    return [partial.total.result("all")] + [groups[k].result(k) for k in sorted(groups)]
