"""When a lead's decision can next change by the passing of time alone (pure).

A decision depends on ``now`` only through the time-relative leaves (``older_than``/``within``,
wall-clock or business time, date-only fields on the calendar's local date) and, inside a
chain, through ``status_changed_at``, which a would-be state sets to ``now``
(``rules.engine._would_be``). :func:`next_change` returns the earliest instant after ``now`` at
which any of them could change its truth for the lead's current values; until then evaluating
the lead again gives the same decision. It may be earlier than the real change (the lead is
then evaluated early and finds nothing new), never later.

Why a relative leaf changes at most once: its threshold ``th(t)`` (``t - d``, or the instant
``d`` of working time before ``t``) never decreases as ``t`` grows, and both ``older_than``
(``value < th``) and ``within`` (``value >= th``) flip exactly when ``th`` passes the value. A
leaf whose threshold has already passed the value at ``now`` never changes again; one that has
not flips no earlier than the instant computed here (exact for wall-clock durations, a
checked lower bound in business time).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from rules.calendar import DEFAULT_CALENDAR, BusinessDuration, Calendar
from rules.conditions import Duration, Node, as_aware_datetime, date_only_value
from rules.fields import DATE_ONLY_FIELDS
from rules.schema import FieldRef

if TYPE_CHECKING:
    from rules.engine import RuleSet

__all__ = ["TimeTable"]

_TICK = timedelta(microseconds=1)
#: The field a would-be state of a chain sets to the cycle's ``now``.
_NOW_FIELD = "status_changed_at"
#: How far back a business-time bound steps when the calendar's local-time arithmetic (a DST
#: change inside working hours) puts the threshold past the target before the computed instant.
_STEP_BACK = timedelta(hours=1)
_DAY = timedelta(days=1)
_STARTS_CACHED = 4096  # distinct dates a _NowLeaf keeps the day starts of


@dataclass(frozen=True, slots=True)
class _Relative:
    """One distinct ``older_than``/``within`` leaf of a rule set."""

    field: str
    set_index: int
    duration_index: int
    duration: Duration
    calendar: Calendar | None
    date_only: bool
    constants: tuple[object, ...]  # values rules set this field to (chains see them)


@dataclass(frozen=True, slots=True)
class _WallField:
    """The wall-clock ``older_than``/``within`` durations of one field, sorted."""

    field: str
    date_only: bool
    calendar: Calendar | None
    durations: tuple[timedelta, ...]
    constants: tuple[object, ...]

    def next_flip(self, value: object, now: datetime) -> datetime | None:
        """When the first of these leaves not yet flipped for ``value`` flips (None: none).

        With ``th = now - d``: an instant ``v`` has not flipped while ``d >= now - v`` and flips
        at ``v + d + 1us``; a date has not flipped while the next local day's start ``M`` has
        ``M + d > now`` (``th`` still on or before the date) and flips at ``M + d``.
        """
        if value is None:
            return None  # neither a date nor an instant (the common missing value)
        if (
            value.__class__ is datetime
            and value.tzinfo is UTC
            and (
                not self.date_only
                or value.hour
                or value.minute
                or value.second
                or value.microsecond
            )
        ):
            # The common value, an instant in UTC (as the mirror's datetimes are): what
            # _compares_as_date and as_aware_datetime below say of it, without the calls.
            k = bisect_left(self.durations, now - value)
            if k == len(self.durations):
                return None
            return _add(value, self.durations[k] + _TICK)
        if self.date_only and _compares_as_date(value):
            day = date_only_value(value)
            assert day is not None
            start = _day_start(day + timedelta(days=1), self.calendar)
            if start is None:
                return None
            k = bisect_right(self.durations, now - start)
            return _add(start, self.durations[k]) if k < len(self.durations) else None
        instant = as_aware_datetime(value)
        if instant is None:
            return None
        k = bisect_left(self.durations, now - instant)
        if k == len(self.durations):
            return None
        return _add(instant, self.durations[k] + _TICK)


#: (field, durations, durations + 1 µs, date only, the field's leaves): TimeTable._walls.
_Wall = tuple[str, tuple[timedelta, ...], tuple[timedelta, ...], bool, _WallField]


@dataclass(frozen=True, slots=True)
class _NowLeaf:
    """A datetime leaf on ``status_changed_at`` other than older_than/within: inside a chain it
    compares ``now`` with a constant or another field, so its truth can change at those."""

    constants: tuple[datetime, ...]
    other: str | None  # the other field of a field comparison
    calendar: Calendar | None
    # Local day -> (its start, the next day's start): dates repeat across leads.
    starts: dict[date, tuple[datetime | None, datetime | None]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def day_starts(self, day: date) -> tuple[datetime | None, datetime | None]:
        found = self.starts.get(day)
        if found is None:
            found = (_day_start(day, self.calendar), _day_start(day + _DAY, self.calendar))
            if len(self.starts) < _STARTS_CACHED:
                self.starts[day] = found
        return found


class TimeTable:
    """Every time-dependent leaf of a rule book, collected once at load."""

    def __init__(self, sets: Sequence[RuleSet]) -> None:
        relative: dict[tuple[Any, ...], _Relative] = {}
        now_leaves: list[_NowLeaf] = []
        set_values: dict[str, list[object]] = {}
        for rs in sets:
            for rule in rs.rules:
                for name, value in rule.field_sets:
                    set_values.setdefault(name, []).append(value)
        for k, rs in enumerate(sets):
            for rule in rs.rules:
                for leaf in _leaves(rule.node):
                    spec = leaf.spec
                    assert spec is not None
                    if spec.op in ("older_than", "within"):
                        duration = _duration_of(spec.value)
                        key = (k, spec.field, duration)
                        if key not in relative:
                            relative[key] = _Relative(
                                spec.field,
                                k,
                                rs.durations.index(duration),
                                duration,
                                rs.calendar,
                                spec.field in DATE_ONLY_FIELDS,
                                tuple(set_values.get(spec.field, ())),
                            )
                    else:
                        now_leaf = _now_leaf(spec.field, spec.value, rs.calendar)
                        if now_leaf is not None:
                            now_leaves.append(now_leaf)
        # Wall-clock leaves of one field (and calendar) share one reading of the value: the
        # first to flip is the shortest duration not yet passed (a bisection).
        walls: dict[tuple[str, bool, Any], set[timedelta]] = {}
        business: list[_Relative] = []
        constants: dict[str, tuple[object, ...]] = {}
        for rel in relative.values():
            if isinstance(rel.duration, timedelta):
                group = (rel.field, rel.date_only, rel.calendar)
                walls.setdefault(group, set()).add(rel.duration)
                constants[rel.field] = rel.constants
            else:
                business.append(rel)
        self.walls = tuple(
            _WallField(f, date_only, cal, tuple(sorted(durations)), constants[f])
            for (f, date_only, cal), durations in walls.items()
        )
        self.relative = tuple(relative.values())
        self.business = tuple(business)
        self.now_leaves = tuple(now_leaves)
        # Per wall field, what next_change reads for the common value (an instant in UTC), in
        # one tuple: the field, its sorted durations and each plus a tick (when it flips). The
        # method call and attribute reads of next_flip per field were about a tenth of
        # next_change's time.
        self._walls: tuple[_Wall, ...] = tuple(
            (w.field, w.durations, tuple(d + _TICK for d in w.durations), w.date_only, w)
            for w in self.walls
        )

    def __bool__(self) -> bool:
        return bool(self.relative or self.now_leaves)

    def next_change(
        self,
        lead: Mapping[str, Any],
        now: datetime,
        thresholds: Sequence[Sequence[datetime]],
    ) -> datetime | None:
        """The earliest instant after ``now`` at which a leaf could change for ``lead`` (see the
        module docstring); None when none can. ``thresholds`` are the rule book's for ``now``."""
        # Runs for every evaluated lead: the lead's value first, then the fields' constants,
        # without building a tuple of them per lead (most fields have none).
        best = _first_wall_flip(self._walls, lead, now)
        get = lead.get
        for leaf in self.business:
            th = thresholds[leaf.set_index][leaf.duration_index]
            for value in (get(leaf.field), *leaf.constants):
                at = _relative_change(leaf, value, th, now)
                if at is not None and (best is None or at < best):
                    best = at
        for now_leaf in self.now_leaves:
            at = _next_now_breakpoint(now_leaf, lead, now)
            if at is not None and (best is None or at < best):
                best = at
        return best


def _first_wall_flip(
    walls: Sequence[_Wall], lead: Mapping[str, Any], now: datetime
) -> datetime | None:
    """The earliest flip of the wall-clock leaves for ``lead``'s values and the values rules set
    (``_WallField.next_flip`` of each, its common case inline)."""
    best: datetime | None = None
    get = lead.get
    for name, durations, flips, date_only, wall in walls:
        value = get(name)
        if value is None:
            at = None  # neither a date nor an instant (the common missing value)
        elif (
            value.__class__ is datetime
            and value.tzinfo is UTC
            and (not date_only or value.hour or value.minute or value.second or value.microsecond)
        ):
            # An instant in UTC: next_flip's first case.
            k = bisect_left(durations, now - value)
            try:
                at = value + flips[k] if k < len(durations) else None
            except OverflowError:
                at = None
        else:
            at = wall.next_flip(value, now)
        if at is not None and (best is None or at < best):
            best = at
        for value in wall.constants:
            at = wall.next_flip(value, now)
            if at is not None and (best is None or at < best):
                best = at
    return best


def _leaves(node: Node | None) -> Iterator[Node]:
    if node is None:
        return
    if node.kind == "leaf":
        yield node
    for child in node.children:
        yield from _leaves(child)


def _duration_of(raw: object) -> Duration:
    from rules.durations import parse_duration
    from rules.schema import BusinessSpan

    if isinstance(raw, BusinessSpan):
        return BusinessDuration(days=raw.business_days or 0, hours=raw.business_hours or 0)
    assert isinstance(raw, str)  # the compiler accepted it
    return parse_duration(raw)


def _now_leaf(field: str, raw: object, calendar: Calendar | None) -> _NowLeaf | None:
    """The leaf as a comparison with ``now`` inside a chain, if it is one."""
    if isinstance(raw, FieldRef):
        if field == _NOW_FIELD and raw.field != _NOW_FIELD:
            return _NowLeaf((), raw.field, calendar)
        if raw.field == _NOW_FIELD and field != _NOW_FIELD:
            return _NowLeaf((), field, calendar)
        return None
    if field != _NOW_FIELD:
        return None
    values = raw if isinstance(raw, list) else [raw]
    constants = tuple(
        d for d in (as_aware_datetime(v) for v in values if isinstance(v, str)) if d is not None
    )
    return _NowLeaf(constants, None, calendar) if constants else None


def _now_breakpoints(leaf: _NowLeaf, lead: Mapping[str, Any]) -> Iterator[datetime]:
    """Instants around which ``now op value`` can change: the value and just after it; for a
    date-only field, the local-day boundaries of its date (``rules.conditions._date_fields``)."""
    for constant in leaf.constants:
        yield constant
        yield _add(constant, _TICK) or constant
    if leaf.other is None:
        return
    value = lead.get(leaf.other)
    instant = as_aware_datetime(value)
    if instant is not None:
        yield instant
        yield _add(instant, _TICK) or instant
    if leaf.other in DATE_ONLY_FIELDS:
        day = date_only_value(value)
        if day is None and instant is not None:
            day = _local_day(instant, leaf.calendar)
        if day is not None:
            for d in (day, day + timedelta(days=1)):
                start = _day_start(d, leaf.calendar)
                if start is not None:
                    yield start


def _next_now_breakpoint(leaf: _NowLeaf, lead: Mapping[str, Any], now: datetime) -> datetime | None:
    """The first of the earliest of :func:`_now_breakpoints` after ``now`` (None: none), without
    producing the ones that cannot be it: of an instant and the instant just after it, the
    latter is after ``now`` before the former only when the instant is ``now``."""
    best: datetime | None = None
    for constant in leaf.constants:
        best = _earlier_after((constant, _add(constant, _TICK) or constant), now, best)
    if leaf.other is None:
        return best
    value = lead.get(leaf.other)
    if value is None:
        return best  # neither an instant nor a date
    # An aware datetime is the common value: as_aware_datetime gives it back as it is.
    is_aware = value.__class__ is datetime and value.tzinfo is not None
    instant = value if is_aware else as_aware_datetime(value)
    if instant is not None:
        at = instant if instant > now else (_add(instant, _TICK) or instant)
        if at > now and (best is None or at < best):
            best = at
    if leaf.other in DATE_ONLY_FIELDS:
        day: date | None
        if (
            value.__class__ is datetime
            and value.tzinfo is UTC
            and leaf.calendar is None
            and (value.hour or value.minute or value.second or value.microsecond)
        ):
            # The common value, an instant in UTC off midnight: date_only_value gives None for
            # it and _local_day its UTC date, without the calls.
            day = value.date()
        else:
            day = date_only_value(value)
            if day is None and instant is not None:
                day = _local_day(instant, leaf.calendar)
        if day is not None:
            best = _earlier_after(leaf.day_starts(day), now, best)
    return best


def _earlier_after(
    candidates: Iterable[datetime | None], now: datetime, best: datetime | None
) -> datetime | None:
    """``best``, or the first earliest of ``candidates`` after ``now`` if earlier still."""
    for at in candidates:
        if at is not None and at > now and (best is None or at < best):
            best = at
    return best


def _relative_change(
    leaf: _Relative, value: object, th_now: datetime, now: datetime
) -> datetime | None:
    """When the leaf flips for ``value`` (a bound no later than that), or None if it has
    flipped already or never can."""
    target: datetime | None
    if leaf.date_only and _compares_as_date(value):
        day = date_only_value(value)
        assert day is not None
        if _local_day(th_now, leaf.calendar) > day:
            return None  # flipped already
        # Flips once the threshold's local date passes the value's: at the next day's start.
        target = _day_start(day + timedelta(days=1), leaf.calendar)
        if target is None:
            return None
        inclusive = True  # flipped when th >= target
    else:
        instant = as_aware_datetime(value)
        if instant is None:
            return None  # a missing value never satisfies either operator
        if th_now > instant:
            return None  # flipped already
        target, inclusive = instant, False  # flipped when th > target
    at = _first_flip(leaf, target, inclusive)
    if at is None:
        return None
    return at if at > now else now + _TICK


def _compares_as_date(value: object) -> bool:
    """Whether ``rules.conditions._date_relative`` compares ``value`` as a date (mirrors its
    fast path: a datetime with a time of day in UTC or naive is an instant)."""
    if (
        type(value) is datetime
        and (value.microsecond or value.second or value.minute or value.hour)
        and (value.tzinfo is UTC or value.tzinfo is None)
    ):
        return False
    return date_only_value(value) is not None


def _first_flip(leaf: _Relative, target: datetime, inclusive: bool) -> datetime | None:
    """The earliest ``t`` at which ``th(t) > target`` (``>=`` when inclusive) may hold."""
    duration = leaf.duration
    if isinstance(duration, timedelta):
        # t - d > target  <=>  t >= target + d + 1us;  t - d >= target  <=>  t >= target + d
        return _add(target, duration if inclusive else duration + _TICK)
    cal = leaf.calendar or DEFAULT_CALENDAR
    amount = duration.amount(cal)
    at = cal.after(target, amount)
    if at is None:
        return None
    # Checked against the threshold itself: before ``at`` it must not have passed the target.
    for _ in range(48):
        probe = cal.before(at - _TICK, amount)
        if probe < target or (probe == target and not inclusive):
            return at
        at -= _STEP_BACK
    return at


def _local_day(instant: datetime, calendar: Calendar | None) -> date:
    if calendar is not None:
        return calendar.local_date(instant)
    return instant.astimezone(UTC).date()


def _day_start(day: date, calendar: Calendar | None) -> datetime | None:
    """The first instant whose local date is ``day`` (UTC without a calendar)."""
    try:
        if calendar is None:
            return datetime.combine(day, time(0), tzinfo=UTC)
        return calendar.day_start(day)
    except OverflowError:
        return None


def _add(at: datetime, delta: timedelta) -> datetime | None:
    try:
        return at + delta
    except OverflowError:
        return None
