"""Rule conditions as plain Python closures, built once at load time; their null semantics.

A compiled condition is ``fn(lead, thresholds) -> bool`` where ``lead`` is any mapping of
canonical field names (``rules.fields``) to values and ``thresholds`` is the tuple of
``now - duration`` datetimes of the rule set, computed once per evaluation batch by the rule book
(so ``older_than`` / ``within`` cost one comparison per lead). No ``eval``/``exec``: every operator
is a small closure over its precomputed value (frozensets for ``in``, compiled regexes, parsed
datetimes, lower-cased ``contains`` needles).

Null semantics
--------------
A value is *missing* when the key is absent, or its value is ``None`` or the empty string ``""``
(HubSpot returns ``""`` for empty properties, Salesforce returns ``null``; rules must not care).
On a missing value every operator is **False**, except these, which are **True**:

* ``missing: true`` and ``present: false``;
* ``ne`` (a missing value is not equal to anything);
* ``not_in`` (a missing value is in no list).

``not`` simply inverts its inner condition, so ``not: {field: x, eq: 1}`` is True on a missing
``x``. A value of the wrong type (e.g. text in an integer field) behaves like a value that matches
nothing: ``eq``/``in``/``gt``/... are False, ``ne``/``not_in`` True. Datetime values may be aware
or naive ``datetime`` objects (naive is taken as UTC) or ISO-8601 strings. Evaluation never
raises.

``older_than: 90d`` is ``value < now - 90d``; ``within: 90d`` is ``value >= now - 90d`` ("not
older than"), so a future value (a future-dated task) is within any duration.

String comparisons (``eq``, ``in``, ...) are exact; ``contains`` is case-insensitive and
``matches`` is a regular-expression *search* (anchor with ``^``/``$``; add ``(?i)`` to ignore case).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rules.calendar import BusinessDuration, Calendar
from rules.durations import DurationError, parse_duration
from rules.fields import DATE_ONLY_FIELDS, FieldType
from rules.issues import describe_kind, suggest
from rules.regex_backtracking import NESTED_REPEAT, OVERLAPPING_CHOICE, backtracking_risk
from rules.regex_polynomial import search_degree
from rules.schema import BusinessSpan, FieldRef, Scalar

__all__ = [
    "CondFn",
    "ConditionError",
    "DurationTable",
    "LeafSpec",
    "Node",
    "OperatorValue",
    "always",
    "as_aware_datetime",
    "check_value",
    "combine",
    "compile_leaf",
    "render_value",
]

Lead = Mapping[str, Any]
CondFn = Callable[[Lead, Sequence[datetime]], bool]
#: What an operator takes: a value, a list of values (in/not_in) or another field (gt/...).
OperatorValue = Scalar | list[Scalar] | FieldRef | BusinessSpan
#: A duration of a rule set: wall-clock, or working time by the calendar.
Duration = timedelta | BusinessDuration

_ORDERED = {FieldType.INTEGER, FieldType.NUMBER, FieldType.DATETIME}
_OPS_BY_TYPE: dict[str, set[FieldType] | None] = {
    "eq": None,
    "ne": None,
    "in": None,
    "not_in": None,
    "present": None,
    "missing": None,
    "gt": _ORDERED,
    "gte": _ORDERED,
    "lt": _ORDERED,
    "lte": _ORDERED,
    "contains": {FieldType.STRING},
    "matches": {FieldType.STRING},
    "older_than": {FieldType.DATETIME},
    "within": {FieldType.DATETIME},
}
_TYPE_WORDS = {
    FieldType.STRING: "a text field",
    FieldType.INTEGER: "a whole-number field",
    FieldType.NUMBER: "a number field",
    FieldType.BOOLEAN: "a true/false field",
    FieldType.DATETIME: "a date/time field",
}


class ConditionError(Exception):
    """A condition value that cannot be compiled; the loader turns it into a RuleIssue.

    Attributes:
        message: Plain-English problem.
        item: Index into a list value (``in``/``not_in``) the problem is at, if any.
        at_key: True when the operator key, not its value, is at fault.
        suggestion: Closest valid name, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        item: int | None = None,
        at_key: bool = False,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.item = item
        self.at_key = at_key
        self.suggestion = suggestion


def as_aware_datetime(value: object) -> datetime | None:
    """``value`` as an aware datetime (naive = UTC; ISO text parsed), or None if it is none."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def render_value(value: object) -> str:
    """Short rendering of a lead value for ``explain`` (never a whole payload)."""
    if value is None or value == "":
        return "missing"
    if isinstance(value, datetime):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(field: str, ftype: FieldType, value: object) -> Any:
    """Type-check one comparison value against its field type; return it in evaluation form.

    Raises:
        ConditionError: the value does not fit the field (wrong type, empty text, bad date).
    """
    return _VALUE_CHECKS[ftype](field, value)


def _text_value(field: str, value: object) -> str:
    if not isinstance(value, str):
        # Not `quote the value: "10"`: YAML has already read `010` as 10 (and `1_000` as
        # 1000), so echoing the number would lead the admin to quote the wrong text.
        raise ConditionError(
            f"'{field}' is a text field, so compare it with text, not {describe_kind(value)} "
            f"(YAML read the unquoted value as {value!r}); put the text in quotes exactly as "
            "meant, leading zeros included"
        )
    if value == "":
        raise ConditionError(
            "an empty text never matches (empty values count as missing); "
            "use `missing: true` instead"
        )
    return value


def _integer_value(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConditionError(
            f"'{field}' is a whole-number field; got {describe_kind(value)} {value!r}"
        )
    return value


def _number_value(field: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConditionError(f"'{field}' is a number field; got {describe_kind(value)} {value!r}")
    return value


def _boolean_value(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConditionError(
            f"'{field}' is a true/false field; use true or false, not "
            f"{describe_kind(value)} {value!r}"
        )
    return value


def _datetime_value(field: str, value: object) -> datetime:
    parsed = as_aware_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ConditionError(
            f"'{field}' is a date/time field; compare it with an ISO date such as "
            f"2026-01-31 or 2026-01-31T09:00:00Z (got {value!r}), or use older_than/within"
        )
    return parsed


_VALUE_CHECKS: dict[FieldType, Callable[[str, object], Any]] = {
    FieldType.STRING: _text_value,
    FieldType.INTEGER: _integer_value,
    FieldType.NUMBER: _number_value,
    FieldType.BOOLEAN: _boolean_value,
    FieldType.DATETIME: _datetime_value,
}


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """What a compiled leaf needs besides its closure: text for explain, durations used."""

    field: str
    op: str
    text: str
    value: Any = None  # the operator's value as written (for rules.analysis)


class Node:
    """Explain tree mirroring a compiled condition; ``explain`` reports the deciding leaf."""

    __slots__ = ("children", "fn", "kind", "spec")

    def __init__(
        self, kind: str, fn: CondFn, children: tuple[Node, ...] = (), spec: LeafSpec | None = None
    ) -> None:
        self.kind = kind
        self.fn = fn
        self.children = children
        self.spec = spec

    def explain(self, lead: Lead, th: Sequence[datetime]) -> tuple[bool, str]:
        """Evaluate and name the leaf that decided the result (short-circuit order)."""
        if self.kind == "leaf":
            assert self.spec is not None
            result = self.fn(lead, th)
            return result, f"{self.spec.text} (value {render_value(lead.get(self.spec.field))})"
        if self.kind == "not":
            result, why = self.children[0].explain(lead, th)
            return not result, f"not: {why}"
        want = self.kind == "any"  # any: first True decides; all: first False decides
        why = ""
        for child in self.children:
            result, why = child.explain(lead, th)
            if result is want:
                return result, why
        return not want, why


def _always(lead: Lead, th: Sequence[datetime]) -> bool:
    return True


always: CondFn = _always


class DurationTable:
    """The ``older_than``/``within`` durations of one rule set, each stored once.

    A leaf keeps the index of its duration; at evaluation ``thresholds[index]`` is
    ``now - duration``, computed once per batch by the rule book.
    """

    def __init__(self) -> None:
        self._index: dict[Duration, int] = {}

    def index(self, delta: Duration) -> int:
        """The threshold index of ``delta`` (added if new)."""
        return self._index.setdefault(delta, len(self._index))

    def durations(self) -> tuple[Duration, ...]:
        """The durations in threshold order."""
        return tuple(self._index)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """One ``{field: F, OP: V}`` on its way to a closure."""

    field: str
    ftype: FieldType
    op: str
    raw: OperatorValue
    durations: DurationTable
    fields: Mapping[str, FieldType]
    calendar: Calendar | None = None

    @property
    def date_only(self) -> bool:
        return self.field in DATE_ONLY_FIELDS


def compile_leaf(
    field: str,
    ftype: FieldType,
    op: str,
    raw: OperatorValue,
    durations: DurationTable,
    fields: Mapping[str, FieldType] | None = None,
    calendar: Calendar | None = None,
) -> tuple[CondFn, str]:
    """Compile ``{field: field, op: raw}``.

    Args:
        field: Canonical field name (already known to exist).
        ftype: Its type.
        op: One of ``rules.schema.CONDITION_OPERATORS``.
        raw: The operator's value as validated by the schema.
        durations: The rule set's duration table (``older_than``/``within``).
        fields: The field catalogue, for ``gt``/``gte``/``lt``/``lte`` against another field
            (``lt: {field: status_changed_at}``).
        calendar: Whose local date a date-only value is compared on (default UTC).

    Returns:
        The closure and its text for explain (``"last_activity_at older_than 90d"``).

    Raises:
        ConditionError: the operator does not apply to the field type, or the value is invalid.
    """
    allowed = _OPS_BY_TYPE[op]
    if allowed is not None and ftype not in allowed:
        needs = " or ".join(sorted(_TYPE_WORDS[t].removeprefix("a ") for t in allowed))
        raise ConditionError(
            f"operator '{op}' needs {('an ' if needs[0] in 'aeiou' else 'a ')}{needs}; "
            f"'{field}' is {_TYPE_WORDS[ftype]}",
            at_key=True,
        )
    leaf = _Leaf(field, ftype, op, raw, durations, fields or {}, calendar)
    if isinstance(raw, FieldRef):  # the schema allows this for gt/gte/lt/lte only
        return _field_ordering(leaf, raw.field), f"{field} {op} field {raw.field}"
    if isinstance(raw, BusinessSpan):
        if op not in ("older_than", "within"):
            raise ConditionError(f"'{op}' takes a value, not a business duration")
        span = BusinessDuration(days=raw.business_days or 0, hours=raw.business_hours or 0)
        return _relative_leaf(leaf, span), f"{field} {op} {span}"
    return _COMPILERS[op](leaf), f"{field} {op} {_render_raw(raw)}"


def _compile_presence(leaf: _Leaf) -> CondFn:
    return _presence(leaf.field, want_missing=(leaf.op == "missing") is bool(leaf.raw))


def _compile_relative(leaf: _Leaf) -> CondFn:
    assert isinstance(leaf.raw, str)
    try:
        delta = parse_duration(leaf.raw)
    except DurationError as exc:
        raise ConditionError(str(exc)) from None
    return _relative_leaf(leaf, delta)


def _relative_leaf(leaf: _Leaf, duration: Duration) -> CondFn:
    index = leaf.durations.index(duration)
    if leaf.date_only:
        return _date_relative(leaf.field, index, leaf.calendar, older=leaf.op == "older_than")
    return _relative(leaf.field, index, older=leaf.op == "older_than")


def _compile_membership(leaf: _Leaf) -> CondFn:
    assert isinstance(leaf.raw, list)
    values = []
    for i, item in enumerate(leaf.raw):
        try:
            values.append(check_value(leaf.field, leaf.ftype, item))
        except ConditionError as exc:
            exc.item = i
            raise
    return _membership(leaf.field, leaf.ftype, frozenset(values), negate=leaf.op == "not_in")


def _compile_contains(leaf: _Leaf) -> CondFn:
    if not isinstance(leaf.raw, str) or not leaf.raw:
        raise ConditionError("'contains' needs non-empty text")
    return _contains(leaf.field, leaf.raw.lower())


#: Longest regular expression and deepest group nesting a rule may use: Python's regex compiler
#: recurses per group level (500 nested groups exhaust the stack), and a rule never needs more.
MAX_REGEX_CHARS = 1000
MAX_REGEX_NESTING = 20
#: Highest power of the text's length a failing search may take (rules.regex_polynomial).
#: Measured on a shared 2-core machine, worst-case text, one search: power 2 (`.*foo.*` on
#: 'fo'*n, `^\d+\d+x` and `(\d+,)*\d+$` on digits) 0.02 s on 1,000 characters, 0.4-1.2 s on
#: 5,000, 1.1-2.9 s on 10,000; power 3 (`^\S+@\S+\.\S+$` on '@.'*n, `.*a.*b` on 'a'*n,
#: `\d+\d+x` on digits) 0.5-1.8 s on 1,000, 3-25 s on 2,000, 112 s on 5,000. Power 2 is what
#: `.*foo.*` costs and admins need it; power 3 stalls the cycle on one long text area.
MAX_SEARCH_DEGREE = 2
#: A pattern whose search may take n**2 steps is searched in this many characters of a value at
#: most: 1-3 s in the worst case above, where a long text area (Salesforce allows 131,072
#: characters) would take a hundred times that, every cycle. A linear pattern sees it all.
QUADRATIC_SEARCH_CHARS = 10_000


def _group_nesting(pattern: str) -> int:
    """Deepest nesting of ``(`` groups, skipping escapes and character classes."""
    depth = deepest = 0
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth = max(0, depth - 1)
    return deepest


def _compile_matches(leaf: _Leaf) -> CondFn:
    raw = leaf.raw
    assert isinstance(raw, str)
    if len(raw) > MAX_REGEX_CHARS:
        raise ConditionError(
            f"regular expression of {len(raw):,} characters is too long (at "
            f"most {MAX_REGEX_CHARS}); split it into several conditions"
        )
    nesting = _group_nesting(raw)
    if nesting > MAX_REGEX_NESTING:
        raise ConditionError(
            f"regular expression nests groups {nesting} deep (at most "
            f"{MAX_REGEX_NESTING}); simplify it"
        )
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ConditionError(
            f"invalid regular expression {raw!r}: {exc.msg}"
            + (f" at position {exc.pos}" if exc.pos is not None else "")
        ) from None
    except (RecursionError, OverflowError, MemoryError):
        raise ConditionError("regular expression is too complex to compile; simplify it") from None
    if pattern.search("") is not None:
        raise ConditionError(
            f"regular expression {raw!r} also matches empty text; "
            "use `present: true` to test for a value"
        )
    risk = backtracking_risk(raw)
    if risk == NESTED_REPEAT:
        raise ConditionError(
            f"regular expression {raw!r} repeats a part that itself repeats (like "
            "`([a-z]+\\.?)+`): on some text, a long run of letters from a CRM say, such a "
            "search takes minutes to years and would stall every cycle; repeat once (e.g. "
            "`[a-z.]+`) or make the inner repeat possessive (`[a-z]++`)"
        )
    if risk == OVERLAPPING_CHOICE:
        raise ConditionError(
            f"regular expression {raw!r} repeats a choice whose branches can start with the "
            "same character (like `(a|aa)+`): on some text, a long run of letters from a CRM "
            "say, such a search takes minutes to years and would stall every cycle; make the "
            "branches start differently (e.g. `(a|aa)+` as `a+`, `(a|ab)+` as `(ab?)+`) or "
            "make the repeat possessive (`(a|aa)++`)"
        )
    degree = search_degree(raw)
    if degree > MAX_SEARCH_DEGREE:
        raise ConditionError(
            f"regular expression {raw!r} has repeats side by side that can take the same "
            f"characters (like `\\d+\\d+x` or `\\S+@\\S+\\.\\S+`): a search that fails tries "
            f"every way to split the text between them, about n**{degree} steps on n "
            "characters (minutes on a few thousand from a CRM), and would stall every cycle; "
            "put a character between them that they cannot match (`[^@\\s]+@[^@\\s]+`), "
            "make the first possessive (`\\d++\\d+x`), or anchor it with `^` if it must "
            "match at the start"
        )
    return _matches(
        leaf.field, pattern, first_chars=QUADRATIC_SEARCH_CHARS if degree >= 2 else None
    )


def _compile_comparison(leaf: _Leaf) -> CondFn:
    value = check_value(leaf.field, leaf.ftype, leaf.raw)
    if leaf.op in ("eq", "ne"):
        return _equality(leaf.field, leaf.ftype, value, negate=leaf.op == "ne")
    return _ordering(leaf.field, leaf.ftype, leaf.op, value)


_COMPILERS: dict[str, Callable[[_Leaf], CondFn]] = {
    "present": _compile_presence,
    "missing": _compile_presence,
    "older_than": _compile_relative,
    "within": _compile_relative,
    "in": _compile_membership,
    "not_in": _compile_membership,
    "contains": _compile_contains,
    "matches": _compile_matches,
    "eq": _compile_comparison,
    "ne": _compile_comparison,
    "gt": _compile_comparison,
    "gte": _compile_comparison,
    "lt": _compile_comparison,
    "lte": _compile_comparison,
}


def _render_raw(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, list):
        return "[" + ", ".join(_render_raw(v) for v in raw) + "]"
    return str(raw)


def _presence(field: str, *, want_missing: bool) -> CondFn:
    if want_missing:

        def missing(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            return x is None or x == ""

        return missing

    def present(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        return x is not None and x != ""

    return present


def _relative(field: str, index: int, *, older: bool) -> CondFn:
    # thresholds[index] is now - duration; "older than 90d" is value < now - 90d and
    # "within 90d" is value >= now - 90d. The try/except is free when nothing is raised and
    # catches None, text and naive datetimes, which take the slow path once.
    if older:

        def older_than(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            try:
                return x < th[index]  # type: ignore[operator]
            except TypeError:
                x = as_aware_datetime(x)
                return x is not None and x < th[index]

        return older_than

    def within(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        try:
            return x >= th[index]  # type: ignore[operator]
        except TypeError:
            x = as_aware_datetime(x)
            return x is not None and x >= th[index]

    return within


def date_only_value(value: object) -> date | None:
    """The date of a value that carries no time of day: a ``date``, ISO date text, or a
    midnight-UTC datetime (how a CRM date such as ``LastActivityDate`` is read); else None."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        utc = value if value.tzinfo is None else value.astimezone(UTC)
        if utc.hour == utc.minute == utc.second == utc.microsecond == 0:
            return utc.date()
    return None


def _local_date(value: object, calendar: Calendar | None) -> date | None:
    """A date/time's date on the calendar (UTC without one); a date stays itself."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    aware = as_aware_datetime(value)
    if aware is None:
        return None
    return calendar.local_date(aware) if calendar is not None else aware.astimezone(UTC).date()


def _date_relative(field: str, index: int, calendar: Calendar | None, *, older: bool) -> CondFn:
    # A date says "some time that day": older than 90d only when the whole day is, within
    # 90d when any of it is. A value with a time of day compares as an instant (the fast path:
    # most values are datetimes off midnight).
    instant = _relative(field, index, older=older)

    def date_relative(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        if (
            x.__class__ is datetime
            and (x.microsecond or x.second or x.minute or x.hour)
            and (x.tzinfo is UTC or x.tzinfo is None)
        ):
            return instant(lead, th)
        day = date_only_value(x)
        if day is None:
            return instant(lead, th)
        limit = _local_date(th[index], calendar)
        assert limit is not None
        return day < limit if older else day >= limit

    return date_relative


def _membership(field: str, ftype: FieldType, values: frozenset[Any], *, negate: bool) -> CondFn:
    if ftype is FieldType.DATETIME:

        def dt_in(lead: Lead, th: Sequence[datetime]) -> bool:
            x = as_aware_datetime(lead.get(field))
            return (x not in values) if negate else (x is not None and x in values)

        return dt_in
    if ftype is not FieldType.STRING:
        # hash(True) == hash(1): a true/false value must not be found among numbers, nor
        # 1/0 among true/false.
        want_bool = ftype is FieldType.BOOLEAN

        def typed_in(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            try:
                found = (x.__class__ is bool) is want_bool and x in values
            except TypeError:  # unhashable (wrong-typed) value: in no list
                found = False
            return not found if negate else found

        return typed_in
    return _text_membership(field, values, negate=negate)


def _text_membership(field: str, values: frozenset[Any], *, negate: bool) -> CondFn:
    if negate:

        def not_in(lead: Lead, th: Sequence[datetime]) -> bool:
            try:
                return lead.get(field) not in values
            except TypeError:  # unhashable (wrong-typed) value: in no list
                return True

        return not_in

    def in_(lead: Lead, th: Sequence[datetime]) -> bool:
        try:
            return lead.get(field) in values
        except TypeError:
            return False

    return in_


def _equality(field: str, ftype: FieldType, value: Any, *, negate: bool) -> CondFn:
    if ftype is FieldType.DATETIME:

        def dt_eq(lead: Lead, th: Sequence[datetime]) -> bool:
            x = as_aware_datetime(lead.get(field))
            return (x is None or x != value) if negate else (x is not None and x == value)

        return dt_eq
    if ftype is FieldType.BOOLEAN:
        # `is` so that 1/0 (wrong-typed) do not pass for true/false.
        if negate:
            return lambda lead, th: lead.get(field) is not value
        return lambda lead, th: lead.get(field) is value
    if ftype is not FieldType.STRING:
        # True == 1 in Python; a true/false value in a number field is wrong-typed, not 1.
        if negate:

            def num_ne(lead: Lead, th: Sequence[datetime]) -> bool:
                x = lead.get(field)
                return x != value or x.__class__ is bool

            return num_ne

        def num_eq(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            return x == value and x.__class__ is not bool

        return num_eq
    # value is never None or "", so a missing value is != value: eq False, ne True.
    if negate:
        return lambda lead, th: lead.get(field) != value
    return lambda lead, th: lead.get(field) == value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _ordering(field: str, ftype: FieldType, op: str, value: Any) -> CondFn:
    cmp = _COMPARE[op]
    if ftype is FieldType.DATETIME:

        def dt_cmp(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            try:
                return cmp(x, value)
            except TypeError:
                x = as_aware_datetime(x)
                return x is not None and cmp(x, value)

        return dt_cmp

    def num_cmp(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        if x.__class__ is bool or x.__class__ is str:
            return False  # wrong-typed: text compares with nothing, true/false are no numbers
        try:
            return cmp(x, value)
        except TypeError:
            return False

    return num_cmp


def _field_ordering(leaf: _Leaf, other: str) -> CondFn:
    field, ftype = leaf.field, leaf.ftype
    if other not in leaf.fields:
        raise ConditionError(
            f"unknown field '{other}' to compare '{field}' with",
            suggestion=suggest(other, leaf.fields),
        )
    otype = leaf.fields[other]
    numeric = {FieldType.INTEGER, FieldType.NUMBER}
    if not (otype is ftype or (otype in numeric and ftype in numeric)):
        raise ConditionError(
            f"cannot compare '{field}' ({_TYPE_WORDS[ftype]}) with '{other}' ({_TYPE_WORDS[otype]})"
        )
    cmp = _COMPARE[leaf.op]
    if ftype is FieldType.DATETIME:

        def dt_fields(lead: Lead, th: Sequence[datetime]) -> bool:
            x, y = lead.get(field), lead.get(other)
            try:
                return cmp(x, y)
            except TypeError:
                x, y = as_aware_datetime(x), as_aware_datetime(y)
                return x is not None and y is not None and cmp(x, y)

        if leaf.date_only or other in DATE_ONLY_FIELDS:
            return _date_fields(field, other, cmp, leaf.calendar, dt_fields)
        return dt_fields

    def num_fields(lead: Lead, th: Sequence[datetime]) -> bool:
        x, y = lead.get(field), lead.get(other)
        if x.__class__ in (bool, str) or y.__class__ in (bool, str):
            return False
        try:
            return cmp(x, y)
        except TypeError:
            return False

    return num_fields


def _date_fields(
    field: str,
    other: str,
    cmp: Callable[[Any, Any], bool],
    calendar: Calendar | None,
    instant: CondFn,
) -> CondFn:
    # A date-only value against a date/time: compared on the calendar's local date, so an
    # activity dated the day a lead was accepted is not "before" the acceptance.
    def date_fields(lead: Lead, th: Sequence[datetime]) -> bool:
        x, y = lead.get(field), lead.get(other)
        dx = date_only_value(x) if field in DATE_ONLY_FIELDS else None
        dy = date_only_value(y) if other in DATE_ONLY_FIELDS else None
        if dx is None and dy is None:
            return instant(lead, th)
        left = dx if dx is not None else _local_date(x, calendar)
        right = dy if dy is not None else _local_date(y, calendar)
        return left is not None and right is not None and cmp(left, right)

    return date_fields


def _contains(field: str, needle: str) -> CondFn:
    def contains(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        try:
            return needle in x.lower()  # type: ignore[union-attr]
        except (AttributeError, TypeError):
            return False

    return contains


def _matches(field: str, pattern: re.Pattern[str], *, first_chars: int | None) -> CondFn:
    """``first_chars``: search only that many characters of the value (its end, for ``$``)."""
    search = pattern.search
    if first_chars is not None:
        end = first_chars

        def matches_first(lead: Lead, th: Sequence[datetime]) -> bool:
            x = lead.get(field)
            return isinstance(x, str) and search(x, 0, end) is not None

        return matches_first

    def matches(lead: Lead, th: Sequence[datetime]) -> bool:
        x = lead.get(field)
        if x.__class__ is not str:
            return isinstance(x, str) and search(x) is not None
        return search(x) is not None

    return matches


def combine(kind: str, children: Sequence[Node]) -> Node:
    """Build an ``all`` / ``any`` / ``not`` node; the closure is specialised for 1-3 children."""
    fns = tuple(c.fn for c in children)
    fn: CondFn
    if kind == "not":
        inner = fns[0]

        def fn(lead: Lead, th: Sequence[datetime]) -> bool:
            return not inner(lead, th)
    elif len(fns) == 1:
        fn = fns[0]
    elif kind == "all":
        fn = _all_of(fns)
    else:
        fn = _any_of(fns)
    return Node(kind, fn, tuple(children))


def _all_of(fns: tuple[CondFn, ...]) -> CondFn:
    if len(fns) == 2:
        a, b = fns
        return lambda lead, th: a(lead, th) and b(lead, th)
    if len(fns) == 3:
        a, b, c = fns
        return lambda lead, th: a(lead, th) and b(lead, th) and c(lead, th)

    def all_of(lead: Lead, th: Sequence[datetime]) -> bool:
        for f in fns:  # noqa: SIM110 - a plain loop beats all(<genexpr>) on the hot path
            if not f(lead, th):
                return False
        return True

    return all_of


def _any_of(fns: tuple[CondFn, ...]) -> CondFn:
    if len(fns) == 2:
        a, b = fns
        return lambda lead, th: a(lead, th) or b(lead, th)
    if len(fns) == 3:
        a, b, c = fns
        return lambda lead, th: a(lead, th) or b(lead, th) or c(lead, th)

    def any_of(lead: Lead, th: Sequence[datetime]) -> bool:
        for f in fns:  # noqa: SIM110 - a plain loop beats any(<genexpr>) on the hot path
            if f(lead, th):
                return True
        return False

    return any_of
