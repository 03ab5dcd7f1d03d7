"""Read a rule file's YAML into plain data plus the line and column of every key and value.

Rule files can be large (thousands of rules), so the text is parsed by libyaml (PyYAML's C
binding) when it is installed: ruamel.yaml's pure-Python parser is about 20 times slower. Both
parsers deliver the same event stream; :class:`_Builder` turns either into plain ``dict``/``list``
/scalar data and a position table, and resolves scalars with ruamel.yaml's YAML 1.2 rules (so
``NO`` stays text and ``010`` is ten, whichever parser ran). When libyaml rejects a file, ruamel's
parser reads it again, so a syntax error is the ``ruamel.yaml`` exception with its familiar
wording (which :mod:`rules.diagnostics` turns into the admin's message).

Hostile files are bounded here, each with a located :class:`YamlContentError`: aliases may add
at most :data:`MAX_ALIAS_NODES` nodes in total ("billion laughs": a 1 KB file of nested aliases
would otherwise expand to a billion nodes in validation), containers nest at most
:data:`MAX_DEPTH` deep, a document has at most :data:`MAX_NODES` nodes, and a number has at most
:data:`MAX_NUMBER_CHARS` characters.

Dates stay text (the loader checks them with a located message) and composition problems that
YAML libraries report without a useful location (an anchor used inside itself, an unknown
alias, a second document, an unsupported tag) raise :class:`YamlContentError` at the offending
node.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ruamel.yaml import events as ruamel_events
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarbool import ScalarBoolean

from rules.yamlread import round_trip_yaml

try:  # PyYAML with libyaml: optional, only a speed-up (same results without it)
    import yaml as _pyyaml
    from yaml import events as _pyyaml_events

    _HAVE_LIBYAML = bool(getattr(_pyyaml, "__with_libyaml__", False))
except ImportError:  # pragma: no cover - depends on the installation
    _pyyaml_events = None  # type: ignore[assignment]
    _HAVE_LIBYAML = False

__all__ = [
    "DuplicateKey",
    "Position",
    "YamlContentError",
    "YamlDocument",
    "has_child",
    "read_yaml",
]

#: 1-based (line, column).
Position = tuple[int, int]
#: A key in a YAML mapping as it appears in the plain data.
Key = str | int | float | bool | None
At = Literal["value", "key", "node"]

_TAG = "tag:yaml.org,2002:"
_TEXT_TAGS = frozenset({_TAG + "str", _TAG + "timestamp", _TAG + "value", _TAG + "merge", "!"})
_SCALAR_TAGS = _TEXT_TAGS | {_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"}
_COLLECTION_TAGS = frozenset({_TAG + "map", _TAG + "seq", "!"})
_MISSING = object()
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_MERGE = object()  # the pending key is `<<`
_NUMBER = re.compile(
    r"[-+]?(?:\.?[0-9][0-9_]*|0[xob][0-9a-fA-F_]+)(?:\.[0-9_]*)?"
    r"(?:[eE][-+]?[0-9]+)?"
)

#: Nodes aliases may add to a document, in total (a rule file needs a few hundred at most).
MAX_ALIAS_NODES = 10_000
#: Deepest nesting of mappings and lists (a rule with a deeply nested condition needs ~20).
MAX_DEPTH = 64
#: Nodes in one document (10,000 rules are about 300,000).
MAX_NODES = 3_000_000
#: Longest number (digits, sign, point, exponent): no rule compares with a 100-digit number.
MAX_NUMBER_CHARS = 40


class YamlContentError(Exception):
    """Well-formed YAML that cannot be rule data; ``message`` is ready for the admin."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key written twice in one mapping (YAML keeps one value; the loader reports it)."""

    name: str
    position: Position
    first_line: int


class _Mark(Protocol):
    line: int
    column: int


class _Event(Protocol):
    start_mark: _Mark


class YamlDocument:
    """Plain data of one YAML document and where each of its parts was written.

    Attributes:
        data: The document as plain ``dict``/``list``/``str``/``int``/``float``/``bool``/None.
        duplicates: Keys written twice in one mapping (the first value is kept).
    """

    def __init__(
        self,
        data: object,
        duplicates: list[DuplicateKey],
        starts: dict[int, Position],
        keys: dict[int, dict[Key, tuple[int, int, int, int]]],
        items: dict[int, list[Position]],
    ) -> None:
        self.data = data
        self.duplicates = duplicates
        self._starts = starts  # id(container) -> where it starts
        self._keys = keys  # id(mapping) -> key -> (key line, key col, value line, value col)
        self._items = items  # id(sequence) -> item positions

    def position(self, path: Iterable[object], at: At = "value") -> Position:
        """Where the part at ``path`` (keys and list indexes from the root) was written.

        ``at`` picks the value (default), its key, or the start of the container itself.
        Steps that do not exist in the data (pydantic's union tags, a missing key) are
        skipped, so a validation error's location can be passed as is.
        """
        node: Any = self.data
        parent: Any = None
        last: Any = None
        for step in path:
            if has_child(node, step):
                parent, last, node = node, step, node[step]
        if at == "node" and isinstance(node, (dict, list)) and id(node) in self._starts:
            return self._starts[id(node)]
        if parent is None:
            return self._starts.get(id(self.data), (1, 1))
        if isinstance(parent, dict):
            record = self._keys.get(id(parent), {}).get(last)
            if record is None:
                return 1, 1
            return (record[0], record[1]) if at == "key" else (record[2], record[3])
        index: int = last
        return self._items[id(parent)][index]


def has_child(node: object, step: object) -> bool:
    """Whether ``node`` (plain data) has a key or list index ``step``."""
    if isinstance(node, dict):
        try:
            return step in node
        except TypeError:  # an unhashable step never names a key
            return False
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def read_yaml(text: str) -> YamlDocument:
    """Parse ``text`` (one YAML document) into a :class:`YamlDocument`.

    Raises:
        ruamel.yaml.error.YAMLError: the text is not YAML (ruamel's error, with its marks).
        YamlContentError: YAML that no rule file can hold (see the module docstring).
    """
    if _HAVE_LIBYAML:
        try:
            return _Builder().build(_libyaml_events(text))
        except _pyyaml.YAMLError:
            pass  # read again below, for ruamel's wording and YAML 1.2 leniency
    return _Builder().build(_ruamel_events(text))


def _libyaml_events(text: str) -> Iterator[Any]:
    parser = _pyyaml.CSafeLoader(text)
    try:
        while True:
            event = parser.get_event()
            yield event
            if isinstance(event, _pyyaml_events.StreamEndEvent):
                return
    finally:
        parser.dispose()


def _ruamel_events(text: str) -> Iterator[Any]:
    for event in round_trip_yaml().parse(io.StringIO(text)):
        if isinstance(event, ruamel_events.ScalarEvent) and event.style == ">":
            # ruamel's round-trip scanner marks folds with BEL for its own re-emitting.
            event.value = event.value.replace("\a", "")
        yield event


_SCALAR, _MAP, _SEQ, _END, _ALIAS, _DOC, _OTHER = range(7)
_KINDS: dict[type, int] = {
    ruamel_events.ScalarEvent: _SCALAR,
    ruamel_events.MappingStartEvent: _MAP,
    ruamel_events.SequenceStartEvent: _SEQ,
    ruamel_events.MappingEndEvent: _END,
    ruamel_events.SequenceEndEvent: _END,
    ruamel_events.AliasEvent: _ALIAS,
    ruamel_events.DocumentStartEvent: _DOC,
}
if _HAVE_LIBYAML:
    _KINDS.update(
        {
            _pyyaml_events.ScalarEvent: _SCALAR,
            _pyyaml_events.MappingStartEvent: _MAP,
            _pyyaml_events.SequenceStartEvent: _SEQ,
            _pyyaml_events.MappingEndEvent: _END,
            _pyyaml_events.SequenceEndEvent: _END,
            _pyyaml_events.AliasEvent: _ALIAS,
            _pyyaml_events.DocumentStartEvent: _DOC,
        }
    )


class _Scalars:
    """Plain scalar text -> value, by ruamel.yaml's resolver and constructor (cached: rule
    files repeat the same few words thousands of times)."""

    def __init__(self, version: tuple[int, int] | None) -> None:
        yaml = round_trip_yaml()
        yaml.version = version  # read by the resolver the constructor consults
        self._resolver = VersionedResolver(version=version)
        self._constructor = yaml.constructor
        self._table: dict[Any, Callable[[Any, ScalarNode], Any]] = type(
            self._constructor
        ).yaml_constructors
        self._first_chars = frozenset(k for k in self._resolver.versioned_resolver if k)
        self._cache: dict[str, object] = {}
        self._decimal_ints = version is None or version == (1, 2)  # 1.1 reads 010 as octal

    def plain(self, text: str) -> object:
        """The value of an unquoted scalar (``12`` is a number, ``true`` a boolean, ...)."""
        if text and text[0] not in self._first_chars:
            return text
        if self._decimal_ints and _DECIMAL.fullmatch(text):
            return int(text)  # what the YAML 1.2 constructor makes of it, without its cost
        value = self._cache.get(text, _MISSING)
        if value is _MISSING:
            tag = str(self._resolver.resolve(ScalarNode, text, (True, False)))
            value = self._cache[text] = self.tagged(tag, text)
        return value

    def tagged(self, tag: str, text: str) -> object:
        """The value of a scalar with a resolved or explicit standard tag."""
        if tag in _TEXT_TAGS:
            return text
        return _plain_scalar(self._table[tag](self._constructor, ScalarNode(tag, text)))


def _plain_scalar(value: object) -> object:
    # ruamel's round-trip types (ScalarBoolean is an int, ScalarInt, ScalarFloat) -> builtins.
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class _MapFrame:
    """A mapping being filled, with the positions of its keys and values."""

    __slots__ = (
        "anchor",
        "first_node",
        "key",
        "key_at",
        "key_text",
        "merges",
        "positions",
        "seen",
        "value",
    )

    def __init__(self, anchor: str | None) -> None:
        self.first_node = 0
        self.value: dict[Key, Any] = {}
        self.anchor = anchor
        self.positions: dict[Key, tuple[int, int, int, int]] = {}
        self.key: Any = _MISSING  # the pending key, until its value arrives
        self.key_at: Position = (1, 1)
        self.key_text: str | None = None  # the key as written, for duplicates; None: not text
        self.seen: dict[str, int] = {}  # key as written -> its line
        self.merges: list[tuple[Any, tuple[int, int, int, int]]] = []


class _SeqFrame:
    """A sequence being filled, with the positions of its items."""

    __slots__ = ("anchor", "first_node", "positions", "value")

    def __init__(self, anchor: str | None) -> None:
        self.first_node = 0
        self.value: list[Any] = []
        self.anchor = anchor
        self.positions: list[Position] = []


class _Builder:
    """Events (libyaml's or ruamel's) -> :class:`YamlDocument`."""

    def __init__(self) -> None:
        self.stack: list[_MapFrame | _SeqFrame] = []
        self.anchors: dict[str, Any] = {}
        self.open_anchors: set[str] = set()
        self.duplicates: list[DuplicateKey] = []
        self.starts: dict[int, Position] = {}
        self.keys: dict[int, dict[Key, tuple[int, int, int, int]]] = {}
        self.items: dict[int, list[Position]] = {}
        self.root: Any = None
        self.documents = 0
        self.scalars = _Scalars(None)
        self.sizes: dict[str, int] = {}  # anchor -> nodes it stands for
        self.nodes = 0  # nodes so far, aliases counted expanded
        self.alias_nodes = 0

    def build(self, events: Iterator[Any]) -> YamlDocument:
        kinds = _KINDS
        for event in events:
            kind = kinds.get(type(event), _OTHER)
            if kind == _SCALAR:
                self.scalar(event)
            elif kind in (_MAP, _SEQ):
                self.open(event, kind == _MAP)
            elif kind == _END:
                self.close()
            elif kind == _ALIAS:
                self.add(self.alias(event), _at(event), None)
            elif kind == _DOC:
                self.document(event)
        return YamlDocument(self.root, self.duplicates, self.starts, self.keys, self.items)

    # -- nodes --------------------------------------------------------------------------

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise YamlContentError(
                "YAML syntax error: a second YAML document starts here; a rule file holds one "
                "document: remove the `---` line or split the file",
                _at(event),
            )
        version = getattr(event, "version", None)
        if version is not None:
            self.scalars = _Scalars((version[0], version[1]))

    def count(self, nodes: int, event: Any) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise YamlContentError(
                f"the file has more than {MAX_NODES:,} YAML nodes; split it "
                "into several rule files",
                _at(event),
            )

    def scalar(self, event: Any) -> None:
        text = event.value
        plain = event.tag is None and event.implicit[0]
        self.count(1, event)
        if plain and len(text) > MAX_NUMBER_CHARS and _NUMBER.fullmatch(text):
            raise YamlContentError(
                f"a number of {len(text):,} characters is too long (at most "
                f"{MAX_NUMBER_CHARS}); quote it if it is text",
                _at(event),
            )
        if plain:
            value = self.scalars.plain(text)
        elif event.tag is None:
            value = text  # quoted
        else:
            tag = str(event.tag)
            if tag not in _SCALAR_TAGS:
                raise _unsupported_tag(tag, event)
            value = self.scalars.tagged(tag, text)
        if event.anchor is not None:
            self.anchors[event.anchor] = value
            self.sizes[event.anchor] = 1
        self.add(value, _at(event), text, merge=plain and text == "<<")

    def open(self, event: Any, is_map: bool) -> None:
        if event.tag is not None and str(event.tag) not in _COLLECTION_TAGS:
            raise _unsupported_tag(str(event.tag), event)
        if len(self.stack) >= MAX_DEPTH:
            raise YamlContentError(
                f"lists and mappings nest more than {MAX_DEPTH} deep here; "
                "a rule file never needs that: flatten the condition",
                _at(event),
            )
        self.count(1, event)
        frame = _MapFrame(event.anchor) if is_map else _SeqFrame(event.anchor)
        frame.first_node = self.nodes
        self.starts[id(frame.value)] = _at(event)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = frame.value
            self.open_anchors.add(frame.anchor)
        self.stack.append(frame)

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.sizes[frame.anchor] = self.nodes - frame.first_node + 1
        if isinstance(frame, _MapFrame):
            self.keys[id(frame.value)] = frame.positions
            if frame.merges:
                _merge(frame)
        else:
            self.items[id(frame.value)] = frame.positions
        self.add(frame.value, self.starts[id(frame.value)], None)

    def alias(self, event: Any) -> object:
        name = event.anchor
        if name in self.open_anchors:
            raise YamlContentError(
                "an anchor refers to itself (`&name` used inside its own value with `*name`); "
                "write the value out instead",
                _at(event),
            )
        if name not in self.anchors:
            raise YamlContentError(
                f"YAML syntax error: found undefined alias '{name}' (an "
                f"alias `*{name}` needs an anchor `&{name}` above it)",
                _at(event),
            )
        size = self.sizes.get(name, 1)
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise YamlContentError(
                f"aliases in this file stand for more than {MAX_ALIAS_NODES:,} YAML nodes "
                f"(`*{name}` alone for {size:,}); nested aliases can make a small file huge: "
                "write the values out or use fewer aliases",
                _at(event),
            )
        self.count(size, event)
        return self.anchors[name]

    # -- placing a finished node in its parent --------------------------------------------

    def add(self, value: Any, at: Position, text: str | None, *, merge: bool = False) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        if isinstance(frame, _SeqFrame):
            frame.value.append(value)
            frame.positions.append(at)
        elif frame.key is _MISSING:
            frame.key, frame.key_at, frame.key_text = _as_key(value), at, text
            if merge:
                frame.key = _MERGE
        else:
            self.set_item(frame, value, at)

    def set_item(self, frame: _MapFrame, value: Any, at: Position) -> None:
        key, key_at, text = frame.key, frame.key_at, frame.key_text
        frame.key = _MISSING
        record = (key_at[0], key_at[1], at[0], at[1])
        if text is not None:
            first = frame.seen.get(text)
            if first is not None:
                self.duplicates.append(DuplicateKey(text, key_at, first))
                return  # YAML keeps the first value
            frame.seen[text] = key_at[0]
        if key is _MERGE:
            frame.merges.append((value, record))
        elif key not in frame.value:
            frame.value[key] = value
            frame.positions[key] = record


def _merge(frame: _MapFrame) -> None:
    """Apply ``<<: *base`` (or a list of them): keys written in the mapping itself win."""
    mapping, positions = frame.value, frame.positions
    for value, record in frame.merges:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                raise YamlContentError(
                    "a merge key `<<` takes a mapping or a list of mappings "
                    "(usually an alias such as `<<: *defaults`)",
                    (record[2], record[3]),
                )
            for key, item in source.items():
                if key not in mapping:
                    mapping[key] = item
                    positions[key] = record


def _as_key(value: object) -> Key:
    # YAML allows complex keys (`? [a, b]`); they are never valid in a rule file, so keep them
    # hashable and printable for the "unknown key" message.
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(tuple(value)) if isinstance(value, list) else str(value)


def _at(event: _Event) -> Position:
    return event.start_mark.line + 1, event.start_mark.column + 1


def _unsupported_tag(tag: str, event: Any) -> YamlContentError:
    return YamlContentError(
        f"unsupported YAML tag '{tag}': rule files use plain text, numbers, "
        "true/false, lists and mappings; remove the tag",
        _at(event),
    )
