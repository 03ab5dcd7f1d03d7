"""Load rule files: YAML -> shape check (pydantic) -> meaning check -> compiled :class:`RuleSet`.

The admin's experience is the point of this module: every problem in a file is reported at once,
each with file, line and column (from ruamel.yaml's round-trip nodes), the rule it is in, a
plain-English message and a did-you-mean suggestion for unknown names. Nothing but
:class:`~rules.issues.RuleLoadError` leaves :func:`load_ruleset` / :func:`load_rulebook`; an
unexpected exception is itself reported as an issue at the best known location.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node as YamlNode, SequenceNode

from rules.compiler import (
    ConditionError,
    describe_kind,
    LeafSpec,
    Node,
    always,
    check_value,
    combine,
    compile_leaf,
)
from rules.engine import CompiledRule, RuleBook, RuleSet
from rules.fields import STANDARD_FIELDS, FieldType
from rules.issues import RuleIssue, RuleLoadError, suggest
from rules.yamlread import round_trip_yaml
from rules.schema import (
    ACTION_KEYS,
    COMBINATOR_KEYS,
    CONDITION_OPERATORS,
    RuleModel,
    RuleSetModel,
    SetFieldArgs,
    StatusMeta,
    TransitionGuard,
)

__all__ = ["load_rulebook", "load_ruleset"]

Path_ = tuple[Any, ...]

_DEFAULT_ARCHIVE = "Archived"
_ID_LINE = re.compile(r"^\s*-\s+id:\s*([^\s#]+)")
_TYPE_WORDS = {
    "string_type": "text", "int_type": "a whole number", "float_type": "a number",
    "bool_type": "true/false", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "empty",
    "int_from_float": "a whole number",
}


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


_RULESET_KEYS = _keys(RuleSetModel)
_RULE_KEYS = _keys(RuleModel)
_LEAF_KEYS = ["field", *CONDITION_OPERATORS]


def load_ruleset(path: Path, *, fields: Mapping[str, FieldType] = STANDARD_FIELDS,
                 settable_fields: Collection[str] = (),
                 newsletters: Collection[str] | None = None) -> RuleSet:
    """Load and compile one rule file.

    Args:
        path: The YAML rule file.
        fields: Field catalogue (canonical name -> type); conditions may use only these.
        settable_fields: Fields ``set_field`` may write.
        newsletters: Known newsletter names; None accepts any name.

    Returns:
        The compiled rule set (its ``warnings`` hold non-fatal issues).

    Raises:
        RuleLoadError: with every problem found in the file.
    """
    loader = _FileLoader(Path(path), fields, frozenset(settable_fields),
                         None if newsletters is None else frozenset(newsletters))
    return loader.load()


def load_rulebook(paths: Sequence[Path], *, fields: Mapping[str, FieldType] = STANDARD_FIELDS,
                  settable_fields: Collection[str] = (),
                  newsletters: Collection[str] | None = None) -> RuleBook:
    """Load several rule files into a book evaluated in the given order.

    Errors from all files are collected into one :class:`RuleLoadError`; rule ids must be unique
    across the book (they are stored in audit rows) and so must set names.

    Raises:
        RuleLoadError: with every problem found in every file.
    """
    issues: list[RuleIssue] = []
    sets: list[RuleSet] = []
    if not paths:
        raise RuleLoadError([RuleIssue("<rule book>", 1, 1, None, "no rule files given")])
    for path in paths:
        try:
            sets.append(load_ruleset(path, fields=fields, settable_fields=settable_fields,
                                     newsletters=newsletters))
        except RuleLoadError as exc:
            issues.extend(exc.issues)
    seen_ids: dict[str, tuple[RuleSet, int]] = {}
    seen_names: dict[str, RuleSet] = {}
    for rs in sets:
        if rs.name in seen_names:
            first = seen_names[rs.name]
            issues.append(RuleIssue(str(rs.path), 1, 1, None,
                                    f"rule set name '{rs.name}' is already used by {first.path}; "
                                    "give each file its own `name`"))
        seen_names.setdefault(rs.name, rs)
        for rule in rs.rules:
            if rule.id in seen_ids:
                other, line = seen_ids[rule.id]
                issues.append(RuleIssue(
                    str(rs.path), rule.line, 1, rule.id,
                    f"duplicate rule id '{rule.id}' (also in {other.path}:{line}); rule ids must "
                    "be unique across all rule files because audit rows refer to them"))
            else:
                seen_ids[rule.id] = (rs, rule.line)
    if any(i.severity == "error" for i in issues):
        raise RuleLoadError(issues)
    return RuleBook(sets)


# -- YAML ----------------------------------------------------------------------------------


class _RecursiveAlias(Exception):
    """An anchor that contains itself (``a: &x [*x]``): no rule file needs one."""


def _plain(value: Any, _open: frozenset[int] = frozenset()) -> Any:
    """ruamel round-trip data -> plain dict/list/str/int/float/bool (datetimes as ISO text)."""
    if isinstance(value, (dict, list)):
        if id(value) in _open:
            raise _RecursiveAlias
        inner = _open | {id(value)}
        if isinstance(value, dict):
            return {_plain_key(k): _plain(v, inner) for k, v in value.items()}
        return [_plain(v, inner) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _plain_key(key: Any) -> Any:
    # YAML allows complex keys (`? [a, b]`); they are never valid here, so keep them hashable
    # and printable for the "unknown key" message.
    plain = _plain(key)
    return plain if isinstance(plain, (str, int, float, bool)) or plain is None else str(key)


class _FileLoader:
    """Loads one file; collects issues instead of stopping at the first."""

    def __init__(self, path: Path, fields: Mapping[str, FieldType], settable: frozenset[str],
                 newsletters: frozenset[str] | None) -> None:
        self.path = path
        self.file = str(path)
        self.fields = fields
        self.settable = settable
        self.newsletters = newsletters
        self.issues: list[RuleIssue] = []
        self.root: Any = None
        self.plain: Any = None
        self.rule_lines: list[tuple[int, str | None]] = []  # (start line, id) per rule
        self.broken: list[Path_] = []

    # -- reporting -------------------------------------------------------------------------

    def _rule_id_for(self, path: Path_ | None, line: int) -> str | None:
        if path and len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            rules = self.plain.get("rules") if isinstance(self.plain, dict) else None
            if isinstance(rules, list) and path[1] < len(rules) and isinstance(rules[path[1]],
                                                                                dict):
                rid = rules[path[1]].get("id")
                return rid if isinstance(rid, str) else None
            return None
        if path is None:
            found = None
            for start, rid in self.rule_lines:
                if start <= line:
                    found = rid
            return found
        return None

    def error(self, path: Path_ | None, message: str, *, at: str = "value",
              suggestion: str | None = None, severity: str = "error",
              line_col: tuple[int, int] | None = None) -> None:
        line, col = line_col if line_col is not None else self.position(path or (), at)
        self.issues.append(RuleIssue(self.file, line, col, self._rule_id_for(path, line),
                                     message, suggestion, severity))  # type: ignore[arg-type]

    def position(self, path: Path_, at: str = "value") -> tuple[int, int]:
        """1-based (line, column) of the node at ``path`` (``at``: value, key or node).

        Path elements that do not exist in the data (pydantic's union tags, a missing key) are
        skipped, so a pydantic ``loc`` can be passed as is.
        """
        node, parent, last = self.root, None, None
        for step in path:
            if isinstance(node, CommentedMap) and step in node:
                parent, last, node = node, step, node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and \
                    0 <= step < len(node):
                parent, last, node = node, step, node[step]
        try:
            if at == "node" and isinstance(node, (CommentedMap, CommentedSeq)) and \
                    getattr(node.lc, "line", None) is not None:
                return node.lc.line + 1, node.lc.col + 1
            if parent is None:
                if isinstance(self.root, (CommentedMap, CommentedSeq)):
                    return self.root.lc.line + 1, self.root.lc.col + 1
                return 1, 1
            if isinstance(parent, CommentedMap):
                line, col = parent.lc.key(last) if at == "key" else parent.lc.value(last)
            else:
                line, col = parent.lc.item(last)
            return line + 1, col + 1
        except Exception:  # noqa: BLE001 - positions are best effort, never fatal
            return 1, 1

    def real_path(self, loc: Sequence[Any]) -> Path_:
        """The part of a pydantic ``loc`` that exists in the data."""
        node, out = self.plain, []
        for step in loc:
            if isinstance(node, dict) and step in node:
                node = node[step]
                out.append(step)
            elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
                node = node[step]
                out.append(step)
        return tuple(out)

    def at(self, path: Path_) -> Any:
        node = self.plain
        for step in path:
            node = node[step]
        return node

    # -- main ------------------------------------------------------------------------------

    def load(self) -> RuleSet:
        try:
            result = self._load()
        except RuleLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - never a traceback for the admin
            self.error(None, f"internal error while checking this file ({type(exc).__name__}: "
                             f"{exc}); please report it with the file", line_col=(1, 1))
            result = None
        errors = [i for i in self.issues if i.severity == "error"]
        if errors or result is None:
            raise RuleLoadError(sorted(self.issues, key=lambda i: (i.line, i.column)))
        return result

    def _load(self) -> RuleSet | None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            self.error(None, f"cannot read the rule file: {exc.strerror or exc}",
                       line_col=(1, 1))
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.error(None, "the file is not UTF-8 text; save it as UTF-8",
                       line_col=(line, 1))
            return None
        if not self._parse(text):
            return None
        if self.root is None:
            self.error(None, "the file is empty; a rule set needs at least `version: 1`, "
                             "`name` and `rules`", line_col=(1, 1))
            return None
        if not isinstance(self.root, CommentedMap):
            self.error(None, f"the top level of a rule file must be a mapping (version, name, "
                             f"rules, ...), not {describe_kind(_plain(self.root))}", at="node")
            return None
        try:
            self.plain = _plain(self.root)
        except _RecursiveAlias:
            self.error(None, "an anchor refers to itself (`&name` used inside its own value "
                             "with `*name`); write the value out instead", line_col=(1, 1))
            return None
        self._note_rule_lines()
        try:
            RuleSetModel.model_validate(self.plain)
        except ValidationError as exc:
            self._report_validation(exc)
        return self._check_and_compile(hashlib.sha256(raw).hexdigest())

    def _parse(self, text: str) -> bool:
        yaml = round_trip_yaml()
        # Compose first to find *every* duplicate key (the constructor stops at the first and
        # keeps only one value); then construct with duplicates allowed to check the rest.
        try:
            nodes = yaml.compose(io.StringIO(text))
        except YAMLError as exc:
            self._syntax_error(exc, text)
            return False
        if nodes is not None:
            self._duplicate_keys(nodes)
        yaml = round_trip_yaml(allow_duplicate_keys=True)
        try:
            self.root = yaml.load(io.StringIO(text))
        except YAMLError as exc:
            self._syntax_error(exc, text)
            return False
        return True

    def _syntax_error(self, exc: YAMLError, text: str) -> None:
        line, col = 1, 1
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line, col = mark.line + 1, mark.column + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        if "\t" in (problem or "") or "\t" in source[: max(col, 1)] or \
                (source.lstrip(" ").startswith("\t")):
            tab_col = source.find("\t") + 1 if "\t" in source else col
            self._syntax_issue(line, tab_col, "tab character in indentation: YAML does not "
                                              "allow tabs for indentation; use spaces", lines)
            return
        message = f"YAML syntax error: {problem}"
        if context and isinstance(exc, MarkedYAMLError):
            cmark = getattr(exc, "context_mark", None)
            started = f" started at line {cmark.line + 1}, column {cmark.column + 1}" \
                if cmark is not None and cmark.line + 1 != line else ""
            message += f" ({context}{started})"
        hint = ""
        if "mapping values are not allowed" in (problem or ""):
            hint = "; a value containing ': ' must be quoted, or the indentation is off"
        elif "could not find expected ':'" in (problem or ""):
            hint = "; check for a missing ':' after a key"
        elif "expected <block end>" in (problem or ""):
            hint = "; check the indentation of this line against the lines above"
        self._syntax_issue(line, col, message + hint, lines)

    def _syntax_issue(self, line: int, col: int, message: str, lines: list[str]) -> None:
        # No node tree after a syntax error: name the rule from the nearest `- id:` above.
        rule_id = None
        for text_line in reversed(lines[:line]):
            found = _ID_LINE.match(text_line)
            if found:
                rule_id = found.group(1).strip("'\"")
                break
            if text_line.startswith("rules:"):
                break
        self.issues.append(RuleIssue(self.file, line, col, rule_id, message))

    def _duplicate_keys(self, node: YamlNode) -> None:
        stack: list[YamlNode] = [node]
        seen_nodes: set[int] = set()  # aliases make this a graph, possibly with cycles
        while stack:
            current = stack.pop()
            if id(current) in seen_nodes:
                continue
            seen_nodes.add(id(current))
            if isinstance(current, MappingNode):
                seen: dict[Any, int] = {}
                for key, value in current.value:
                    name = getattr(key, "value", None)
                    if isinstance(name, str):
                        if name in seen:
                            self.error(None, f"duplicate key '{name}' (first at line "
                                             f"{seen[name]}); YAML keeps only one of them: "
                                             "remove or rename one",
                                       line_col=(key.start_mark.line + 1,
                                                 key.start_mark.column + 1))
                        else:
                            seen[name] = key.start_mark.line + 1
                    stack.append(value)
            elif isinstance(current, SequenceNode):
                stack.extend(current.value)

    def _note_rule_lines(self) -> None:
        rules = self.root.get("rules")
        if isinstance(rules, CommentedSeq):
            for i, item in enumerate(rules):
                try:
                    start = rules.lc.item(i)[0] + 1
                except Exception:  # noqa: BLE001
                    continue
                rid = item.get("id") if isinstance(item, dict) else None
                self.rule_lines.append((start, rid if isinstance(rid, str) else None))
            # a syntax-level issue (duplicate key) attached before this ran gets its rule now
            self.issues = [
                i if i.rule_id is not None else RuleIssue(
                    i.file, i.line, i.column, self._rule_id_for(None, i.line), i.message,
                    i.suggestion, i.severity)
                for i in self.issues]

    # -- shape errors (pydantic) -------------------------------------------------------------

    def _report_validation(self, exc: ValidationError) -> None:
        errors = exc.errors(include_url=False)
        extra_containers = {self.real_path(e["loc"][:-1]) for e in errors
                            if e["type"] == "extra_forbidden"}
        type_groups: dict[Path_, list[dict[str, Any]]] = {}
        for err in errors:
            loc = tuple(err["loc"])
            kind = err["type"]
            if "[key]" in loc:  # the mapping key itself is wrong (e.g. a number, not text)
                at = loc.index("[key]")
                container = self.real_path(loc[: at - 1])
                self.broken.append(container)
                key = loc[at - 1]
                self.error(container + (key,), f"key {key!r} in {self._name(container)} must "
                                               f"be text, not {describe_kind(key)}; quote it: "
                                               f"\"{key}\"", at="key")
                continue
            path = self.real_path(loc)
            self.broken.append(path)
            if kind == "extra_forbidden":
                self._unknown_key(loc, path)
            elif kind == "missing":
                if path in extra_containers:
                    continue  # a misspelt key is the cause; reported as unknown key
                self.error(path, f"missing required key '{loc[-1]}' {self._context(loc, path)}",
                           at="node")
            elif kind == "condition_shape":
                value = self.at(path)
                self.error(path, "a condition must be a mapping such as "
                                 "`{field: status, eq: SAL}` or one of all/any/not, not "
                                 f"{describe_kind(value)}")
            elif kind == "action_shape":
                self._bad_action(path)
            elif kind == "value_error":
                self._leaf_value_error(path, str(err["msg"]).removeprefix("Value error, "))
            elif kind == "literal_error":
                self._literal_error(path, err)
            elif kind == "too_short":
                self._too_short(path)
            elif kind in _TYPE_WORDS:
                type_groups.setdefault(path, []).append(err)
            else:
                self.error(path, f"{self._name(path)}: {err['msg']}")
        for path, group in type_groups.items():
            words = {_TYPE_WORDS[e["type"]] for e in group}
            if "a number" in words:
                words.discard("a whole number")
            ordered = sorted(words, key=["text", "a number", "a whole number", "true/false",
                                         "a list", "a mapping", "empty"].index)
            expected = ([", ".join(ordered[:-1])] if len(ordered) > 1 else []) + ordered[-1:]
            value = self.at(path)
            if path and path[-1] in ("archive", "stop"):
                self.error(path, f"`{path[-1]}` takes no arguments; write `{path[-1]}: {{}}`")
                continue
            self.error(path, f"{self._name(path)} must be {' or '.join(expected)}, not "
                             f"{describe_kind(value)}")

    def _name(self, path: Path_) -> str:
        if not path:
            return "the rule set"
        last = path[-1]
        if isinstance(last, int):
            parent = next((p for p in reversed(path[:-1]) if isinstance(p, str)), "list")
            return f"item {last + 1} of '{parent}'"
        return f"'{last}'"

    def _context(self, loc: Sequence[Any], path: Path_) -> str:
        tag = next((s for s in reversed(loc) if isinstance(s, str) and
                    s.startswith(("cond:", "action:"))), None)
        if tag == "cond:leaf":
            return "in a condition"
        if tag and tag.startswith("cond:"):
            return f"in an `{tag[5:]}` condition"
        if tag and tag.startswith("action:"):
            return f"in action `{tag[7:]}`"
        if not path or (len(path) == 1 and path[0] != "rules"):
            return "at the top level of the rule set"
        if path[0] == "rules" and len(path) == 2:
            return "in the rule"
        if path[0] == "statuses":
            return f"in status '{path[1]}'" if len(path) > 1 else "in `statuses`"
        if path[0] == "transitions":
            return f"in the transition guard for '{path[1]}'" if len(path) > 1 else \
                "in `transitions`"
        return "here"

    def _allowed_keys(self, loc: Sequence[Any], path: Path_) -> list[str]:
        tag = next((s for s in reversed(loc) if isinstance(s, str) and
                    s.startswith(("cond:", "action:"))), None)
        if tag == "cond:leaf":
            return _LEAF_KEYS + list(COMBINATOR_KEYS)
        if tag and tag.startswith("cond:"):
            return [tag[5:]]
        if tag == "action:set_field":
            return _keys(SetFieldArgs)
        if tag and tag.startswith("action:"):
            return []
        if not path:
            return _RULESET_KEYS
        if path[0] == "rules" and len(path) == 2:
            return _RULE_KEYS
        if path[0] == "statuses":
            return _keys(StatusMeta)
        if path[0] == "transitions":
            return _keys(TransitionGuard)
        return []

    def _unknown_key(self, loc: Sequence[Any], path: Path_) -> None:
        key = loc[-1]
        container_loc = loc[:-1]
        container = path[:-1]
        allowed = self._allowed_keys(container_loc, container)
        tag = next((s for s in reversed(container_loc) if isinstance(s, str) and
                    s.startswith(("cond:", "action:"))), None)
        guess = suggest(key, allowed)
        if tag and tag.startswith("cond:") and tag != "cond:leaf" and key in _LEAF_KEYS:
            self.error(path, f"'{key}' cannot sit next to `{tag[5:]}`: a condition is either "
                             "all/any/not or a field with one operator; nest it inside the "
                             f"`{tag[5:]}` list", at="key")
            return
        if tag and tag.startswith("cond:") and tag != "cond:leaf" and key in COMBINATOR_KEYS:
            self.error(path, f"a condition mapping takes one of all/any/not, not both "
                             f"'{tag[5:]}' and '{key}'; nest one inside the other", at="key")
            return
        if tag in ("action:archive", "action:stop"):
            self.error(path, f"`{tag[7:]}` takes no arguments; write `{tag[7:]}: {{}}`",
                       at="key")
            return
        if tag == "cond:leaf" and guess in CONDITION_OPERATORS or \
                (tag == "cond:leaf" and guess is None):
            self.error(path, f"unknown operator '{key}'; use one of "
                             f"{', '.join(CONDITION_OPERATORS)}", at="key", suggestion=guess)
            return
        what = self._context(container_loc, container)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed and guess is None else ""
        if isinstance(key, str) and " " in key.strip():
            listing += ("; if this is the rest of a text value, a comma inside `{...}` split "
                        "it: quote the text")
        self.error(path, f"unknown key '{key}' {what}{listing}", at="key", suggestion=guess)

    def _bad_action(self, path: Path_) -> None:
        value = self.at(path)
        if isinstance(value, dict) and len(value) == 1:
            key = next(iter(value))
            self.error(path + (key,), f"unknown action '{key}'; actions are "
                                       f"{', '.join(ACTION_KEYS)}", at="key",
                       suggestion=suggest(key, ACTION_KEYS))
        elif isinstance(value, dict) and value:
            keys = ", ".join(str(k) for k in value)
            self.error(path, f"an action has exactly one key, found {len(value)} ({keys}); "
                             "put each action in its own `- ` list item", at="node")
        elif isinstance(value, str) and value in ACTION_KEYS:
            self.error(path, f"write the action as a mapping: `- {value}: {{}}`"
                       if value in ("archive", "stop") else
                       f"`{value}` needs a value: `- {value}: ...`")
        elif isinstance(value, str):
            self.error(path, f"unknown action '{value}'; an action is a mapping such as "
                             "`- set_status: Nurture`",
                       suggestion=suggest(value, ACTION_KEYS))
        else:
            self.error(path, "an action is a mapping with one key such as "
                             f"`- set_status: Nurture`, not {describe_kind(value)}")

    def _leaf_value_error(self, path: Path_, message: str) -> None:
        value = self.at(path)
        if message.startswith("a condition takes exactly one operator") and \
                isinstance(value, dict):
            ops = [k for k in value if k in CONDITION_OPERATORS]
            self.error(path + (ops[1],), message, at="key")
        else:
            self.error(path, message, at="node")

    def _literal_error(self, path: Path_, err: Mapping[str, Any]) -> None:
        value = self.at(path)
        if path == ("version",):
            self.error(path, f"unsupported version {value!r}; this syncd reads `version: 1`")
        elif path == ("mode",):
            self.error(path, f"unknown mode {value!r}; use first_match (status sets) or "
                             "all_match (tagging sets)",
                       suggestion=suggest(value, ["first_match", "all_match"]))
        else:
            self.error(path, f"{self._name(path)}: {err['msg']}")

    def _too_short(self, path: Path_) -> None:
        last = path[-1] if path else None
        messages = {
            "then": "the rule has no actions: `then` needs at least one action "
                    "(e.g. `- set_status: Nurture`)",
            "rules": "the rule set has no rules; add at least one under `rules:`",
            "in": "'in' needs at least one value",
            "not_in": "'not_in' needs at least one value",
            "all": "'all' needs at least one condition",
            "any": "'any' needs at least one condition",
            "from": "'from' needs at least one status",
        }
        self.error(path, messages.get(str(last), f"{self._name(path)} must not be empty"))

    # -- meaning ---------------------------------------------------------------------------

    def _is_broken(self, path: Path_) -> bool:
        n = len(path)
        return any(b[:n] == path for b in self.broken)

    def _check_and_compile(self, digest: str) -> RuleSet | None:
        doc = self.plain
        statuses_raw = doc.get("statuses")
        statuses = [s for s in statuses_raw if isinstance(s, str)] \
            if isinstance(statuses_raw, dict) else []
        converted = frozenset(
            s for s, meta in (statuses_raw if isinstance(statuses_raw, dict) else {}).items()
            if isinstance(meta, dict) and meta.get("converted") is True)

        def check_status(path: Path_, value: Any, what: str) -> bool:
            if not isinstance(value, str):
                return False
            if value in statuses:
                return True
            if not statuses:
                self.error(path, f"{what} '{value}' is not a status of this set: `statuses` is "
                                 "empty; list the status vocabulary under `statuses:`")
            else:
                self.error(path, f"unknown status '{value}' in {what}; this set's statuses are "
                                 f"{', '.join(statuses)} (add it to `statuses:` if your CRM "
                                 "has it)", suggestion=suggest(value, statuses))
            return False

        archive_status = doc.get("archive_status")
        if isinstance(archive_status, str):
            check_status(("archive_status",), archive_status, "archive_status")
        elif _DEFAULT_ARCHIVE in statuses:
            archive_status = _DEFAULT_ARCHIVE
        else:
            archive_status = None

        transitions: dict[str, tuple[str, ...]] = {}
        trans_raw = doc.get("transitions")
        if isinstance(trans_raw, dict):
            for target, guard in trans_raw.items():
                check_status(("transitions", target), target, "transitions")
                if isinstance(guard, dict) and isinstance(guard.get("from"), list):
                    sources = guard["from"]
                    for i, src in enumerate(sources):
                        check_status(("transitions", target, "from", i), src, "transitions")
                    if isinstance(target, str):
                        transitions[target] = tuple(s for s in sources if isinstance(s, str))
        protected_raw = doc.get("protected")
        protected: list[str] = []
        if isinstance(protected_raw, list):
            for i, name in enumerate(protected_raw):
                if check_status(("protected", i), name, "protected"):
                    protected.append(name)

        durations: list[timedelta] = []
        compiled: list[CompiledRule] = []
        rules_raw = doc.get("rules")
        name = doc.get("name") if isinstance(doc.get("name"), str) else self.path.stem
        mode = doc.get("mode", "first_match")
        seen_ids: dict[str, int] = {}
        shadow_keys: list[tuple[frozenset[str], str, int]] = []
        if isinstance(rules_raw, list):
            for i, rule in enumerate(rules_raw):
                path: Path_ = ("rules", i)
                if not isinstance(rule, dict):
                    continue
                line = self.position(path, "node")[0]
                rid = rule.get("id")
                if isinstance(rid, str):
                    self._check_rule_id(path, rid, seen_ids, line)
                ok = not self._is_broken(path)
                node: Node | None = None
                if "when" in rule and rule["when"] is not None:
                    node = self._condition(path + ("when",), rule["when"], durations, statuses)
                    ok = ok and node is not None
                effects = self._actions(path, rule.get("then"), check_status, archive_status)
                ok = ok and effects is not None
                if mode == "first_match" and isinstance(rid, str) and not self._is_broken(path):
                    self._shadow_check(path, rule.get("when"), rid, line, shadow_keys)
                if ok and isinstance(rid, str) and effects is not None:
                    status, archived, nls, sets, stop = effects
                    compiled.append(CompiledRule(
                        ruleset=name, id=rid, line=line,
                        description=rule.get("description"),
                        cond=node.fn if node is not None else always,
                        node=node, status=status, archived=archived, newsletters=nls,
                        field_sets=sets, stop=stop))
        if any(i.severity == "error" for i in self.issues):
            return None
        return RuleSet(
            name=name, path=self.path, mode=mode, statuses=tuple(statuses),
            converted=converted, protected=frozenset(protected), transitions=transitions,
            archive_status=archive_status, rules=tuple(compiled), durations=tuple(durations),
            digest=digest, warnings=tuple(i for i in self.issues if i.severity == "warning"),
            fields=dict(self.fields))

    def _check_rule_id(self, path: Path_, rid: str, seen: dict[str, int], line: int) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", rid):
            self.error(path + ("id",), f"rule id {rid!r} may contain only letters, digits, "
                                       "'-', '_' and '.', and must start with a letter or "
                                       "digit")
        if rid in seen:
            self.error(path + ("id",), f"duplicate rule id '{rid}' (first used by the rule at "
                                       f"line {seen[rid]}); rule ids must be unique")
        else:
            seen[rid] = line

    def _shadow_check(self, path: Path_, when: Any, rid: str, line: int,
                      earlier: list[tuple[frozenset[str], str, int]]) -> None:
        # A first_match rule is unreachable when an earlier rule's conjuncts are a subset of
        # its own: every lead it matches was taken by the earlier rule (a rule with no `when`
        # has no conjuncts, so it shadows everything after it).
        if when is None:
            conj: frozenset[str] = frozenset()
        elif isinstance(when, dict) and set(when) == {"all"} and isinstance(when["all"], list):
            conj = frozenset(json.dumps(c, sort_keys=True) for c in when["all"])
        else:
            conj = frozenset([json.dumps(when, sort_keys=True)])
        for prev, prev_id, prev_line in earlier:
            if prev <= conj:
                why = "matches every lead" if not prev else (
                    "has the same condition" if prev == conj else "has a broader condition")
                self.error(path, f"this rule can never match: rule '{prev_id}' (line "
                                 f"{prev_line}) {why} and comes first in this first_match set; "
                                 "move this rule above it or narrow the earlier rule",
                           at="node", severity="warning")
                break
        earlier.append((conj, rid, line))

    def _condition(self, path: Path_, cond: Any, durations: list[timedelta],
                   statuses: list[str]) -> Node | None:
        if not isinstance(cond, dict):
            return None  # reported by the shape check
        for key in COMBINATOR_KEYS:
            if key in cond:
                inner = cond[key]
                if key == "not":
                    child = self._condition(path + ("not",), inner, durations, statuses)
                    return combine("not", [child]) if child is not None else None
                if not isinstance(inner, list) or not inner:
                    return None
                children = [self._condition(path + (key, i), c, durations, statuses)
                            for i, c in enumerate(inner)]
                if any(c is None for c in children):
                    return None
                return combine(key, children)  # type: ignore[arg-type]
        return self._leaf(path, cond, durations, statuses)

    def _leaf(self, path: Path_, cond: dict[str, Any], durations: list[timedelta],
              statuses: list[str]) -> Node | None:
        fname = cond.get("field")
        if not isinstance(fname, str):
            return None
        ftype = self.fields.get(fname)
        if ftype is None:
            self.error(path + ("field",), f"unknown field '{fname}'; conditions can use the "
                                          "canonical lead fields (rules/fields.py) and custom "
                                          "fields declared in config",
                       suggestion=suggest(fname, self.fields))
            return None
        if self._is_broken(path):
            return None
        ops = [k for k in cond if k in CONDITION_OPERATORS]
        if len(ops) != 1:
            return None
        op = ops[0]
        raw = cond[op]
        try:
            fn, text = compile_leaf(fname, ftype, op, raw, durations, self.fields)
        except ConditionError as exc:
            where: Path_ = path + (op,) if exc.item is None else path + (op, exc.item)
            if isinstance(raw, dict) and "field" in raw:
                where = path + (op, "field")
            self.error(where, exc.message, at="key" if exc.at_key else "value",
                       suggestion=exc.suggestion)
            return None
        if fname == "status" and statuses and op in ("eq", "ne", "in", "not_in"):
            values = raw if isinstance(raw, list) else [raw]
            for k, value in enumerate(values):
                if value not in statuses:
                    where = path + (op, k) if isinstance(raw, list) else path + (op,)
                    self.error(where, f"unknown status '{value}' in a condition; this set's "
                                      f"statuses are {', '.join(statuses)}",
                               suggestion=suggest(value, statuses))
                    return None
        return Node("leaf", fn, spec=LeafSpec(fname, op, text))

    def _actions(self, path: Path_, then: Any, check_status: Any,
                 archive_status: str | None
                 ) -> tuple[str | None, bool, tuple[str, ...], tuple[tuple[str, Any], ...],
                            bool] | None:
        if not isinstance(then, list):
            return None
        ok = True
        status: str | None = None
        status_at: Path_ | None = None
        archived = False
        newsletters: list[str] = []
        field_sets: dict[str, Any] = {}
        stop = False
        for j, action in enumerate(then):
            apath = path + ("then", j)
            if not isinstance(action, dict) or len(action) != 1:
                ok = False
                continue
            kind, arg = next(iter(action.items()))
            if kind not in ACTION_KEYS or self._is_broken(apath):
                ok = False
                continue
            target: str | None = None
            if kind == "set_status":
                if check_status(apath + (kind,), arg, "set_status"):
                    target = arg
                else:
                    ok = False
            elif kind == "archive":
                if archive_status is None:
                    self.error(apath, "`archive` needs an archive status: this set has no "
                                      "'Archived' status and no `archive_status`; add one",
                               at="node")
                    ok = False
                else:
                    target, archived = archive_status, True
            elif kind == "add_to_newsletter":
                if self.newsletters is not None and arg not in self.newsletters:
                    known = ", ".join(sorted(self.newsletters)) or "none configured"
                    self.error(apath + (kind,), f"unknown newsletter '{arg}'; configured "
                                                f"newsletters: {known}",
                               suggestion=suggest(arg, self.newsletters))
                    ok = False
                elif arg not in newsletters:
                    newsletters.append(arg)
            elif kind == "set_field":
                ok = self._set_field(apath + (kind,), arg, field_sets) and ok
            elif kind == "stop":
                stop = True
            if target is not None:
                if status is not None and status_at is not None:
                    self.error(apath, f"the rule already sets the status (action "
                                      f"{status_at[-1] + 1}); a rule sets at most one status",
                               at="node")
                    ok = False
                status, status_at = target, apath
        if not ok:
            return None
        return status, archived, tuple(newsletters), tuple(field_sets.items()), stop

    def _set_field(self, path: Path_, arg: Any, field_sets: dict[str, Any]) -> bool:
        fname, value = arg.get("field"), arg.get("value")
        if fname == "status":
            self.error(path + ("field",), "use `set_status` (or `archive`) to change the "
                                          "status, not set_field")
            return False
        if fname not in self.fields:
            self.error(path + ("field",), f"unknown field '{fname}'",
                       suggestion=suggest(fname, self.fields))
            return False
        if fname not in self.settable:
            allowed = ", ".join(sorted(self.settable)) or "none"
            self.error(path + ("field",), f"field '{fname}' is not on the settable allowlist "
                                          f"(settable fields: {allowed}); add it to the "
                                          "config's settable fields first",
                       suggestion=suggest(fname, self.settable))
            return False
        try:
            checked = check_value(fname, self.fields[fname], value)
        except ConditionError as exc:
            self.error(path + ("value",), exc.message)
            return False
        if self.fields[fname] is FieldType.DATETIME:
            checked = value  # written as the ISO text the admin gave
        if fname in field_sets and field_sets[fname] != checked:
            self.error(path, f"the rule sets '{fname}' twice with different values",
                       at="node")
            return False
        field_sets[fname] = checked
        return True
