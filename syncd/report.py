"""The funnel report: stage counts, conversion, acceptance, follow-up SLA, time in stage.

Pure over rows: :func:`compute` takes the ledger's status transitions (already mapped from the
CRM's values to rule statuses) grouped by lead and in time order, plus each lead's owner,
source and last activity, and returns a :class:`Report`. Reading the rows from the store, in
bounded chunks, is :func:`read_inputs`; rendering is :mod:`syncd.report_render`.

The definitions printed with every report are :data:`DEFINITIONS`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, String, select, type_coerce

from rules.calendar import Calendar
from syncd.distribution import Distribution

__all__ = [
    "DEFINITIONS",
    "LeadInfo",
    "Report",
    "ReportOptions",
    "Transition",
    "business_hours_between",
    "compute",
    "percentile",
    "read_inputs",
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
    open_breaches: list[OpenBreach] = field(default_factory=list)
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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def business_hours_between(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Working hours of ``calendar`` between two instants (0 when ``end`` <= ``start``).

    The first and last days are measured against the working hours; the whole days between
    them are counted (a week at a time), not walked: an open breach months old costs no more
    than a fresh one."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return 0.0
    zone, day_seconds = _zone_and_day(calendar)
    first = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    seconds = 0.0
    for day in (first,) if first == last else (first, last):
        if calendar.is_workday(day):
            opens = datetime.combine(day, calendar.start, tzinfo=zone)
            closes = datetime.combine(day, calendar.end, tzinfo=zone)
            lo, hi = max(opens, start), min(closes, end)
            if hi > lo:
                seconds += (hi - lo).total_seconds()
    if (last - first).days > 1:
        between = _workdays_between(calendar, first + _DAY, last - _DAY)
        seconds += between * day_seconds
    return seconds / 3600


_DAY = timedelta(days=1)


@functools.lru_cache(maxsize=8)
def _zone_and_day(calendar: Calendar) -> tuple[tzinfo, float]:
    zone: tzinfo = UTC if calendar.timezone == "UTC" else ZoneInfo(calendar.timezone)
    return zone, calendar.day_length.total_seconds()


def _workdays_between(calendar: Calendar, lo: date, hi: date) -> int:
    """Working days from ``lo`` to ``hi``, both included (0 when ``hi`` < ``lo``)."""
    if hi < lo:
        return 0
    days = (hi - lo).days + 1
    weeks, rest = divmod(days, 7)
    count = weeks * len(calendar.workdays)
    for offset in range(rest):
        if (lo + timedelta(days=weeks * 7 + offset)).isoweekday() in calendar.workdays:
            count += 1
    return count - sum(
        1 for h in calendar.holidays if lo <= h <= hi and h.isoweekday() in calendar.workdays
    )


def _touch_at(activity: datetime | date | None, sal_at: datetime, cal: Calendar) -> datetime | None:
    """When the activity counts as the first touch after ``sal_at`` (None: not after it)."""
    if activity is None:
        return None
    if not isinstance(activity, datetime):  # a date: the day of the SAL counts as at once
        sal_day = cal.local_date(sal_at)
        if activity < sal_day:
            return None
        if activity == sal_day:
            return sal_at
        zone = UTC if cal.timezone == "UTC" else ZoneInfo(cal.timezone)
        return datetime.combine(activity, time(0), tzinfo=zone)
    touched = _aware(activity)
    return touched if touched >= sal_at else None


@dataclass(slots=True)
class _Acc:
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
    open_breaches: list[OpenBreach] = field(default_factory=list)
    breaches_by_day: dict[str, int] = field(default_factory=dict)
    sal_to_close: Distribution = field(default_factory=lambda: Distribution(_MINUTE_DAYS))
    index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls, options: ReportOptions) -> _Acc:
        n = len(options.stages)
        durations = [Distribution(_MINUTE_DAYS) for _ in range(n)]
        acc = cls(options, [0] * n, [0] * n, [0] * n, durations, [0] * n)
        acc.index = {s: i for i, s in enumerate(options.stages)}
        return acc

    def in_scope(self, at: datetime) -> bool:
        o = self.options
        if o.cohort:
            return _aware(at) <= o.now
        return o.since <= _aware(at) < o.until

    def add(self, lead: LeadInfo, history: Sequence[Transition]) -> None:  # noqa: C901
        o = self.options
        stages = o.stages
        index = self.index
        cal = o.calendar
        if o.cohort:
            first = [t for t in history if t.to_status == stages[0]]
            if not first or not (o.since <= _aware(first[0].at) < o.until):
                return
        counted_any: set[int] = set()
        counted_in_order: set[int] = set()
        in_order_next = 0  # the stage the in-order walk waits for
        furthest = -1
        position = -1
        first_sal: datetime | None = None
        n = len(history)
        ats = [t.at if t.at.tzinfo is not None else t.at.replace(tzinfo=UTC) for t in history]
        if o.cohort:
            scopes = [at <= o.now for at in ats]
        else:
            scopes = [o.since <= at < o.until for at in ats]
        # The furthest stage reached after each transition (drop-off), in one backward pass.
        later_max = [-1] * (n + 1)
        for j in range(n - 1, -1, -1):
            reached = index.get(history[j].to_status, -1)
            later_max[j] = reached if reached > later_max[j + 1] else later_max[j + 1]
        for i, t in enumerate(history):
            at = ats[i]
            nxt = history[i + 1] if i + 1 < n else None
            k = index.get(t.to_status)
            scoped = scopes[i]
            # Rejections and acceptance decisions.
            if scoped and t.from_status == o.mql_stage and t.to_status in o.rejected:
                self.rejected += 1
            if k is None:
                continue
            if k == in_order_next:
                in_order_next += 1
                if scoped and k not in counted_in_order:
                    counted_in_order.add(k)
                    self.in_order[k] += 1
            if scoped:
                if k not in counted_any:
                    counted_any.add(k)
                    self.any_order[k] += 1
                    if later_max[i + 1] > k:
                        self.reached_later[k] += 1
                if k < furthest:
                    self.regressions += 1
                elif k > furthest and k > position + 1:
                    self.skipped += 1
                if nxt is not None:
                    self.durations[k].add((ats[i + 1] - at).total_seconds() / 86400)
                if t.to_status == o.accepted_stage:
                    self.accepted += 1
                    self._follow_up(lead, at, nxt)
                if t.to_status == o.mql_stage:
                    self.mqls += 1
                    sal = next(
                        (h for h in history[i + 1 :] if h.to_status == o.accepted_stage), None
                    )
                    if sal is not None:
                        waited = business_hours_between(cal, at, _aware(sal.at))
                        if waited <= o.accept_within_hours:
                            self.mqls_accepted_in_time += 1
            if t.to_status == o.accepted_stage and first_sal is None:
                first_sal = at
            if k == len(stages) - 1 and first_sal is not None and scoped:
                self.sal_to_close.add((at - first_sal).total_seconds() / 86400)
            if k > furthest:
                furthest = k
            position = k
        # Stale: the current status is a stage before the last, unchanged too long.
        if history:
            last = history[-1]
            k = index.get(last.to_status)
            stale = o.now - _aware(last.at) > o.stale_after
            if k is not None and k < len(stages) - 1 and stale:
                self.stale[k] += 1

    def _follow_up(self, lead: LeadInfo, sal_at: datetime, nxt: Transition | None) -> None:
        o = self.options
        self.sal_entries += 1
        candidates = [
            t
            for t in (
                _touch_at(lead.last_activity_at, sal_at, o.calendar),
                _aware(nxt.at) if nxt is not None else None,
            )
            if t is not None
        ]
        if candidates:
            touched = min(candidates)
            hours = business_hours_between(o.calendar, sal_at, touched)
            self.first_touch_hours.add(hours)
            self.sla_decided += 1
            if hours > o.sla_hours:
                self._breach(sal_at)
            return
        age = business_hours_between(o.calendar, sal_at, o.now)
        if age > o.sla_hours:
            self.sla_decided += 1
            self._breach(sal_at)
            if nxt is None:
                self.open_breaches.append(
                    OpenBreach(lead.crm, lead.lead_id, lead.owner, sal_at, round(age, 2))
                )

    def _breach(self, sal_at: datetime) -> None:
        self.sla_breaches += 1
        day = sal_at.date().isoformat()
        self.breaches_by_day[day] = self.breaches_by_day.get(day, 0) + 1

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
            open_breaches=sorted(self.open_breaches, key=lambda b: -b.age_business_hours),
            breaches_by_day=dict(sorted(self.breaches_by_day.items())),
            sal_to_close_p50_days=_round(self.sal_to_close.percentile(50)),
            sal_to_close_p90_days=_round(self.sal_to_close.percentile(90)),
            sal_to_close_n=len(self.sal_to_close),
            durations_days={s: self.durations[k] for k, s in enumerate(o.stages)},
        )


_MINUTE_DAYS = 1 / 1440  # a minute, in days: the resolution of durations past exact counting


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
    total = _Acc.new(options)
    groups: dict[str, _Acc] = {}
    for lead, history in leads:
        total.add(lead, history)
        if by is not None:
            key = _group_key(lead, by)
            groups.setdefault(key, _Acc.new(options)).add(lead, history)
    return [total.result("all")] + [groups[k].result(k) for k in sorted(groups)]


# -- reading the store ---------------------------------------------------------------------

_CHUNK = 2000


def _parse_activity(value: object) -> datetime | date | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def read_inputs(
    engine: Engine,
    status_maps: Mapping[str, Mapping[str, str]],
    *,
    crm: str | None = None,
    since: datetime | None = None,
    chunk: int = _CHUNK,
) -> Iterator[tuple[LeadInfo, list[Transition]]]:
    """Each lead of the ledger with its status transitions in time order, streamed.

    Two ordered reads side by side, each fetched ``chunk`` rows at a time (a server-side cursor
    on PostgreSQL): the ledger in (crm, lead_id, at, id) order, along its ``ix_history_lead``
    index, and the mirror's leads that have ledger rows in (crm, lead_id) order, its primary
    key. Both are in the database's order of the same columns, so each lead's mirror row is
    the next one of the second read, or missing (a lead the mirror no longer has): memory holds
    one lead's history and one chunk of each read, whatever the size of the ledger.

    ``status_maps``: per CRM instance, the CRM's stored value -> rule status (the inverse of
    ``status_values``); a value without an entry is the status of that name. ``crm`` and
    ``since`` read one CRM's transitions from that time on only (the KPI gauges: what they
    show needs no earlier history).
    """
    from syncd.state import LeadRow, StatusHistoryRow

    h = StatusHistoryRow.__table__
    lt = LeadRow.__table__
    # ``field || ''``, not ``field``: a plain equality lets SQLite (no statistics) pick the
    # (field, to_value, at) index and then sort the whole ledger, or search it once per lead.
    # Hiding the column from the planner makes both reads walk (crm, lead_id, at).
    is_status = h.c.field.op("||")("") == "status"
    # Plain columns (type_coerce: no result processing per value, a third of the read's
    # time); SQLite's text timestamps are parsed below.
    text = String()
    history_q = select(
        type_coerce(h.c.crm, text),
        type_coerce(h.c.lead_id, text),
        type_coerce(h.c.at, text),
        type_coerce(h.c.from_value, text),
        type_coerce(h.c.to_value, text),
    ).where(is_status)
    has_history = select(h.c.id).where(h.c.crm == lt.c.crm, h.c.lead_id == lt.c.lead_id, is_status)
    # The three fields the report uses, extracted by the database: not a whole JSON document
    # parsed per lead.
    leads_q = select(
        lt.c.crm,
        lt.c.lead_id,
        lt.c.status,
        *(lt.c.fields[key].as_string() for key in ("owner", "lead_source", "last_activity_at")),
    )
    if crm is not None:
        history_q = history_q.where(h.c.crm == crm)
        leads_q = leads_q.where(lt.c.crm == crm)
    if since is not None:
        history_q = history_q.where(h.c.at >= since)
        has_history = has_history.where(h.c.at >= since)
    history_q = history_q.order_by(h.c.crm, h.c.lead_id, h.c.at, h.c.id)
    leads_q = leads_q.where(has_history.exists()).order_by(lt.c.crm, lt.c.lead_id)
    streamed = {"stream_results": True, "yield_per": chunk}
    with engine.connect() as history_conn, engine.connect() as leads_conn:
        rows = history_conn.execution_options(**streamed).execute(history_q)
        mirror = iter(leads_conn.execution_options(**streamed).execute(leads_q))
        pending = next(mirror, None)
        current: tuple[str, str] | None = None
        history: list[Transition] = []
        mapping: Mapping[str, str] = {}

        def info(key: tuple[str, str]) -> LeadInfo:
            nonlocal pending
            if pending is not None and (pending[0], pending[1]) == key:
                found = _info(key, pending[2], pending[3], pending[4], pending[5], status_maps)
                pending = next(mirror, None)
                return found
            return LeadInfo(key[0], key[1])  # no mirror row: the ledger outlived the lead

        for row_crm, lead_id, stamp, from_value, to_value in rows:
            if current is None or current[1] != lead_id or current[0] != row_crm:
                if current is not None:
                    yield info(current), history
                current, history = (row_crm, lead_id), []
                mapping = status_maps.get(row_crm, {})
            to = to_value or ""
            before: str | None = from_value  # NULL when unknown, whatever the coerced type says
            # Coerced to text for speed, the value is still what the driver gives: text from
            # SQLite, a datetime from PostgreSQL.
            value: object = stamp
            at = datetime.fromisoformat(value) if isinstance(value, str) else cast(datetime, value)
            history.append(
                Transition(
                    at if at.tzinfo is not None else at.replace(tzinfo=UTC),
                    mapping.get(to, to),
                    None if before is None else mapping.get(before, before),
                )
            )
        if current is not None:
            yield info(current), history


def _info(
    key: tuple[str, str],
    status: str | None,
    owner: object,
    source: object,
    activity: object,
    status_maps: Mapping[str, Mapping[str, str]],
) -> LeadInfo:
    mapping = status_maps.get(key[0], {})
    return LeadInfo(
        key[0],
        key[1],
        owner=str(owner) if owner else None,
        source=str(source) if source else None,
        last_activity_at=_parse_activity(activity),
        status=None if status is None else mapping.get(status, status),
    )
