"""A small SOQL parser and compiler for exactly the query shapes syncd sends.

Grammar::

    query   := SELECT field (',' field)* FROM object [WHERE expr]
               [ORDER BY order (',' order)*] [LIMIT int]
    expr    := conj (OR conj)*
    conj    := unary (AND unary)*
    unary   := NOT unary | '(' expr ')' | field op literal | field [NOT] IN '(' literal, ... ')'
    op      := = | != | <> | < | <= | > | >=
    literal := 'string' | number | true | false | null | datetime | date

Datetime literals are unquoted ``YYYY-MM-DDThh:mm:ss(.sss)?(Z|+hh:mm|-hh:mm)`` (crm-api A3.3).
Errors carry Salesforce's codes: MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .schema import SCHEMAS, ObjectSchema

__all__ = ["CompiledQuery", "SoqlError", "compile_query", "parse_datetime_literal"]

Row = tuple[Any, ...]


class SoqlError(Exception):
    """A query Salesforce would reject with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
""",
    re.VERBOSE,
)

_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "order",
    "by",
    "limit",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "true",
    "false",
    "null",
}
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[pos : pos + 10]}'")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


def parse_datetime_literal(text: str) -> float:
    """SOQL datetime literal -> epoch seconds."""
    norm = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", norm):
        norm = norm[:-2] + ":" + norm[-2:]
    try:
        return datetime.fromisoformat(norm).timestamp()
    except ValueError as exc:
        raise SoqlError("MALFORMED_QUERY", f"invalid datetime literal: {text}") from exc


# --- AST -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # string, number, boolean, null, datetime, date
    value: Any


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Any


@dataclass(frozen=True, slots=True)
class Parsed:
    fields: list[str]
    sobject: str
    where: Any
    order_by: list[tuple[str, bool, bool]]  # (field, descending, nulls_last)
    limit: int | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def is_kw(self, word: str, offset: int = 0) -> bool:
        t = self.peek(offset)
        return t is not None and t.kind == "ident" and t.text.lower() == word

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            self.fail(f"expecting '{word.upper()}'")
        self.i += 1

    def expect_punct(self, ch: str) -> None:
        t = self.peek()
        if t is None or t.text != ch:
            self.fail(f"expecting '{ch}'")
        self.i += 1

    def fail(self, what: str) -> None:
        t = self.peek()
        found = "end of query" if t is None else f"'{t.text}'"
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {found}, {what}")

    def ident(self) -> str:
        t = self.peek()
        if t is None or t.kind != "ident" or t.text.lower() in _KEYWORDS:
            self.fail("expecting a field or object name")
        self.i += 1
        return t.text  # type: ignore[union-attr]

    def parse(self) -> Parsed:
        self.expect_kw("select")
        fields = [self.ident()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.i += 1
            fields.append(self.ident())
        self.expect_kw("from")
        sobject = self.ident()
        where = None
        if self.is_kw("where"):
            self.i += 1
            where = self.expr()
        order: list[tuple[str, bool, bool]] = []
        if self.is_kw("order"):
            self.i += 1
            self.expect_kw("by")
            order.append(self.order_item())
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.i += 1
                order.append(self.order_item())
        limit = None
        if self.is_kw("limit"):
            self.i += 1
            t = self.peek()
            if t is None or t.kind != "number" or not t.text.isdigit():
                self.fail("expecting an integer LIMIT")
            limit = int(t.text)  # type: ignore[union-attr]
            self.i += 1
        if self.peek() is not None:
            self.fail("expecting end of query")
        return Parsed(fields, sobject, where, order, limit)

    def order_item(self) -> tuple[str, bool, bool]:
        name = self.ident()
        desc = False
        if self.is_kw("asc"):
            self.i += 1
        elif self.is_kw("desc"):
            self.i += 1
            desc = True
        nulls_last = desc  # Salesforce default: ASC NULLS FIRST, DESC NULLS LAST
        if self.is_kw("nulls"):
            self.i += 1
            if self.is_kw("first"):
                nulls_last = False
            elif self.is_kw("last"):
                nulls_last = True
            else:
                self.fail("expecting FIRST or LAST")
            self.i += 1
        return name, desc, nulls_last

    def expr(self) -> Any:
        items = [self.conj()]
        while self.is_kw("or"):
            self.i += 1
            items.append(self.conj())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conj(self) -> Any:
        items = [self.unary()]
        while self.is_kw("and"):
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Any:
        if self.is_kw("not"):
            self.i += 1
            return Not(self.unary())
        t = self.peek()
        if t is not None and t.text == "(":
            self.i += 1
            inner = self.expr()
            self.expect_punct(")")
            return inner
        name = self.ident()
        if self.is_kw("not") and self.is_kw("in", 1):
            self.i += 2
            return InList(name, self.literal_list(), True)
        if self.is_kw("in"):
            self.i += 1
            return InList(name, self.literal_list(), False)
        op = self.peek()
        if op is None or op.kind != "op":
            self.fail("expecting a comparison operator")
        self.i += 1
        return Compare(name, "!=" if op.text == "<>" else op.text, self.literal())  # type: ignore[union-attr]

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.i += 1
            values.append(self.literal())
        self.expect_punct(")")
        return tuple(values)

    def literal(self) -> Literal:
        t = self.peek()
        if t is None:
            self.fail("expecting a value")
        assert t is not None
        self.i += 1
        if t.kind == "string":
            body = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), t.text[1:-1])
            return Literal("string", body)
        if t.kind == "number":
            return Literal("number", float(t.text) if "." in t.text else int(t.text))
        if t.kind == "datetime":
            return Literal("datetime", parse_datetime_literal(t.text))
        if t.kind == "date":
            return Literal("date", t.text)
        if t.kind == "ident" and t.text.lower() in ("true", "false"):
            return Literal("boolean", t.text.lower() == "true")
        if t.kind == "ident" and t.text.lower() == "null":
            return Literal("null", None)
        self.i -= 1
        self.fail("expecting a value")
        raise AssertionError  # unreachable


# --- compilation ---------------------------------------------------------------------------


@dataclass(slots=True)
class CompiledQuery:
    """A parsed query bound to an object schema."""

    schema: ObjectSchema
    columns: list[int]  # selected columns, in SELECT order
    predicate: Callable[[Row], bool]
    order_by: list[tuple[int, bool, bool]]
    limit: int | None
    modstamp_bounds: tuple[float | None, float | None]  # (lower, upper) inclusive, for the index
    references_is_deleted: bool
    keyset_after: tuple[float, str] | None = None  # rows must sort after this (ms, Id) key

    @property
    def keyset_ordered(self) -> bool:
        """True when ORDER BY is absent or (SystemModstamp, Id) ascending: the index order."""
        ms, rid = self.schema.column("SystemModstamp"), self.schema.column("Id")
        return not self.order_by or [(c, d) for c, d, _ in self.order_by] == [
            (ms, False),
            (rid, False),
        ]


def compile_query(text: str) -> CompiledQuery:
    """Parse and bind a SOQL query.

    Raises:
        SoqlError: MALFORMED_QUERY, INVALID_TYPE or INVALID_FIELD, like Salesforce's 400 body.
    """
    parsed = _Parser(text).parse()
    schema = SCHEMAS.get(parsed.sobject.lower())
    if schema is None:
        raise SoqlError(
            "INVALID_TYPE",
            f"sObject type '{parsed.sobject}' is not supported. "
            "If you are attempting to use a custom object, be sure "
            "to append the '__c' after the entity name.",
        )

    def col(name: str) -> int:
        c = schema.column(name)
        if c is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity "
                f"'{schema.name}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after "
                "the custom field name.",
            )
        return c

    columns = [col(f) for f in parsed.fields]
    predicate = _compile(parsed.where, schema, col) if parsed.where is not None else _true
    order = [(col(f), d, n) for f, d, n in parsed.order_by]
    refs_deleted = parsed.where is not None and _mentions(parsed.where, "isdeleted")
    bounds = _bounds(parsed.where, "systemmodstamp") if parsed.where is not None else (None, None)
    after = _keyset_after(parsed.where) if parsed.where is not None else None
    return CompiledQuery(
        schema, columns, predicate, order, parsed.limit, bounds, refs_deleted, after
    )


def _is(node: Any, field: str, op: str, kind: str) -> bool:
    return (
        isinstance(node, Compare)
        and node.field.lower() == field
        and node.op == op
        and node.value.kind == kind
    )


def _keyset_after(node: Any) -> tuple[float, str] | None:
    """``(SystemModstamp > t OR (SystemModstamp = t AND Id > id))`` -> (t, id), found among the
    top-level AND terms, so a resume inside a big tie bisects to the id instead of scanning."""
    terms = node.items if isinstance(node, BoolOp) and node.op == "and" else (node,)
    for term in terms:
        if not (isinstance(term, BoolOp) and term.op == "or" and len(term.items) == 2):
            continue
        gt, tie = term.items
        if not _is(gt, "systemmodstamp", ">", "datetime"):
            gt, tie = tie, gt
        if not (
            _is(gt, "systemmodstamp", ">", "datetime")
            and isinstance(tie, BoolOp)
            and tie.op == "and"
            and len(tie.items) == 2
        ):
            continue
        eq, idc = tie.items
        if not _is(eq, "systemmodstamp", "=", "datetime"):
            eq, idc = idc, eq
        if (
            _is(eq, "systemmodstamp", "=", "datetime")
            and _is(idc, "id", ">", "string")
            and eq.value.value == gt.value.value
        ):
            return (gt.value.value, idc.value.value)
    return None


def _true(row: Row) -> bool:
    return True


def _mentions(node: Any, field: str) -> bool:
    if isinstance(node, (Compare, InList)):
        return node.field.lower() == field
    if isinstance(node, BoolOp):
        return any(_mentions(i, field) for i in node.items)
    if isinstance(node, Not):
        return _mentions(node.item, field)
    return False


def _coerce(lit: Literal, kind: str, name: str) -> Any:
    """Check a literal against the field's kind, as Salesforce does at parse time."""
    if lit.kind == "null":
        return None
    ok = {
        "datetime": lit.kind == "datetime",
        "date": lit.kind == "date",
        "boolean": lit.kind == "boolean",
        "int": lit.kind == "number",
        "double": lit.kind == "number",
        "string": lit.kind == "string",
    }[kind]
    if not ok:
        quoted = " and should not be enclosed in quotes" if lit.kind == "string" else ""
        raise SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{name}' must be of type {kind}{quoted}",
        )
    return lit.value


def _compile(node: Any, schema: ObjectSchema, col: Callable[[str], int]) -> Callable[[Row], bool]:
    if isinstance(node, BoolOp):
        parts = [_compile(i, schema, col) for i in node.items]
        if node.op == "and":
            return lambda row: all(p(row) for p in parts)
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.item, schema, col)
        return lambda row: not inner(row)
    c = col(node.field)
    fdef = schema.fields[c]
    # SOQL string equality is case-insensitive, except on ids (we compare ids exactly so that
    # ORDER BY Id and Id > :last agree).
    fold = fdef.kind == "string" and fdef.type not in ("id", "reference")
    norm: Callable[[Any], Any] = (
        (lambda v: v.lower() if isinstance(v, str) else v) if fold else (lambda v: v)
    )
    if isinstance(node, InList):
        values = {norm(_coerce(v, fdef.kind, fdef.name)) for v in node.values}
        if node.negated:
            return lambda row: norm(row[c]) not in values
        return lambda row: norm(row[c]) in values
    value = norm(_coerce(node.value, fdef.kind, fdef.name))
    op = node.op
    if value is None:
        if op == "=":
            return lambda row: row[c] is None
        if op == "!=":
            return lambda row: row[c] is not None
        return lambda row: False
    if op == "=":
        return lambda row: norm(row[c]) == value
    if op == "!=":
        return lambda row: norm(row[c]) != value
    cmp: Callable[[Any], bool] = {
        "<": lambda a: a < value,
        "<=": lambda a: a <= value,
        ">": lambda a: a > value,
        ">=": lambda a: a >= value,
    }[op]

    def compare(row: Row) -> bool:
        v = row[c]
        return v is not None and cmp(norm(v))

    return compare


def _bounds(node: Any, field: str) -> tuple[float | None, float | None]:
    """Conservative inclusive (lower, upper) bounds on ``field`` implied by a WHERE clause."""
    if isinstance(node, Compare) and node.field.lower() == field and node.value.kind == "datetime":
        v = node.value.value
        return {"=": (v, v), ">": (v, None), ">=": (v, None), "<": (None, v), "<=": (None, v)}.get(
            node.op, (None, None)
        )
    if isinstance(node, BoolOp):
        sub = [_bounds(i, field) for i in node.items]
        los = [lo for lo, _ in sub]
        his = [hi for _, hi in sub]
        if node.op == "and":
            lo_known = [x for x in los if x is not None]
            hi_known = [x for x in his if x is not None]
            return (max(lo_known) if lo_known else None, min(hi_known) if hi_known else None)
        return (
            None if None in los else min(los),  # type: ignore[type-var]
            None if None in his else max(his),  # type: ignore[type-var]
        )
    return (None, None)


def format_datetime(epoch: int | float) -> str:
    """Epoch seconds -> Salesforce's wire format ``2024-01-01T12:00:00.000+0000``."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
