"""Load YAML keeping line numbers, and turn pydantic errors into ``file:line:col`` messages.

Config and admins' files are read with ruamel.yaml's round-trip loader: every mapping and sequence
remembers where each key and item stood, so a validation error can point at the exact place.

Before the loader builds anything, the file is bounded (a config file is small and shallow, so
anything else is a mistake or an attack, reported at its place rather than as a crash): its size,
its characters (no control bytes), its nesting depth, how many nodes its aliases expand to
("billion laughs"), and the length of its numbers (Python refuses to convert integers of more
than 4,300 digits, deep inside the loader).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)

__all__ = [
    "Located",
    "YamlFileError",
    "load_yaml",
    "locate",
    "overridden_by",
    "validation_problems",
]

MAX_FILE_BYTES = 1 << 20  #: 1 MiB: a config file is a few kB; rule files a few hundred kB at most
MAX_DEPTH = 64  #: nesting levels of mappings and sequences
MAX_NODES = 200_000  #: nodes of the document once every alias is expanded
MAX_NUMBER_CHARS = 64  #: characters of a number written in the file

# Characters YAML does not allow in a stream (YAML 1.2 §5.1): C0 controls except tab, LF and
# CR; DEL; C1 controls except NEL; surrogates; U+FFFE/U+FFFF.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
_NUMBER = re.compile(r"[-+]?\.?[0-9][0-9a-fA-FxXoObB_.:]*([eE][-+]?[0-9_]+)?")


@dataclass(frozen=True, slots=True)
class Located:
    """One problem at one place in a file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        if self.line == 0:  # not in a file: ``file`` names the source (an env variable)
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"

    @classmethod
    def variable(cls, name: str, message: str) -> Located:
        """A problem in the value of environment variable ``name``."""
        return cls(f"environment variable {name}", 0, 0, message)


class YamlFileError(Exception):
    """A file could not be read or did not validate; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Located]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: Path) -> Any:
    """Parse ``path`` with positions kept, within the bounds above.

    Raises:
        YamlFileError: the file is missing, unreadable, too large, not UTF-8 text, not valid
            YAML, or past a bound; located at the offending place.
    """
    name = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise YamlFileError(
            [Located(name, 1, 1, f"cannot read the file: {exc.strerror}")]
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise YamlFileError(
            [
                Located(
                    name,
                    1,
                    1,
                    f"the file is larger than {MAX_FILE_BYTES} bytes; is it the right file?",
                )
            ]
        )
    text = _decode(name, data)
    _check_characters(name, text)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        _check_events(name, yaml, text)
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        lines = text.splitlines()
        hint = ""
        if 0 < line <= len(lines) and "\t" in lines[line - 1]:
            hint = " (YAML does not allow tabs for indentation; use spaces)"
        problem = exc.problem or str(exc)
        raise YamlFileError([Located(name, line, col, f"invalid YAML: {problem}{hint}")]) from None
    except (YAMLError, ValueError, RecursionError, OverflowError) as exc:
        # Past the checks above this should not happen; still a located line, not a crash.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise YamlFileError([Located(name, 1, 1, f"invalid YAML: {first}")]) from None


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data[: exc.start].decode("utf-8", "replace"))
        hint = (
            " (it looks like UTF-16: save it as UTF-8)"
            if data[:2] in (b"\xff\xfe", b"\xfe\xff")
            else "; save it as UTF-8"
        )
        raise YamlFileError(
            [Located(name, line, col, f"byte 0x{data[exc.start]:02x} is not UTF-8 text{hint}")]
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is allowed, and nothing else


def _check_characters(name: str, text: str) -> None:
    bad = _FORBIDDEN.search(text)
    if bad:
        line, col = _position(text[: bad.start()])
        raise YamlFileError(
            [
                Located(
                    name,
                    line,
                    col,
                    (
                        f"control character U+{ord(bad.group()):04X} is not allowed in YAML; the file "
                        "may be binary, truncated or saved in another encoding: save it as UTF-8 text"
                    ),
                )
            ]
        )


def _position(before: str) -> tuple[int, int]:
    """1-based line and column of the character after ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _check_events(name: str, yaml: YAML, text: str) -> None:
    """Walk the parser's events (no tree is built) and enforce depth, alias and number bounds.

    Raises:
        MarkedYAMLError: the text is not valid YAML (reported by the caller).
        YamlFileError: a bound is passed.
    """
    sizes: list[int] = [0]  # expanded node count of each open collection
    anchors: dict[str, int] = {}  # anchor -> expanded node count of what it names
    opened: list[str | None] = []  # anchor of each open collection
    for event in yaml.parse(text):
        mark = event.start_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if isinstance(event, CollectionStartEvent):
            if len(opened) >= MAX_DEPTH:
                raise YamlFileError(
                    [
                        Located(
                            name,
                            line,
                            col,
                            (
                                f"nested deeper than {MAX_DEPTH} levels; syncd's files need a handful"
                            ),
                        )
                    ]
                )
            opened.append(event.anchor)
            sizes.append(1)
        elif isinstance(event, CollectionEndEvent):
            size = sizes.pop()
            anchor = opened.pop()
            if anchor is not None:
                anchors[anchor] = size
            sizes[-1] += size
        elif isinstance(event, ScalarEvent):
            value = event.value
            if (
                event.style is None
                and event.tag is None
                and len(value) > MAX_NUMBER_CHARS
                and _NUMBER.fullmatch(value)
            ):
                raise YamlFileError(
                    [
                        Located(
                            name,
                            line,
                            col,
                            (
                                f"a number of {len(value)} characters; syncd's settings take numbers of "
                                f"at most {MAX_NUMBER_CHARS} (quote it if it is meant as text)"
                            ),
                        )
                    ]
                )
            if event.style is None and event.tag is None:
                _check_timestamp(name, line, col, value)
            if event.anchor is not None:
                anchors[event.anchor] = 1
            sizes[-1] += 1
        elif isinstance(event, AliasEvent):
            sizes[-1] += anchors.get(event.anchor, 1)
        else:
            continue
        if sizes[-1] > MAX_NODES or sum(sizes) > MAX_NODES:
            raise YamlFileError(
                [
                    Located(
                        name,
                        line,
                        col,
                        (
                            f"the document expands to more than {MAX_NODES} values (through aliases?); "
                            "write the values out or use fewer aliases"
                        ),
                    )
                ]
            )


#: What YAML 1.1's implicit resolver reads as a timestamp (https://yaml.org/type/timestamp.html):
#: a date alone with two-digit month and day, or a date and time.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"|(\d{4})-(\d\d?)-(\d\d?)(?:[Tt]|[ \t]+)(\d\d?):(\d\d):(\d\d)(?:\.\d*)?"
    r"(?:[ \t]*(?:Z|[-+]\d\d?(?::\d\d)?))?"
)


def _check_timestamp(name: str, line: int, col: int, value: str) -> None:
    """An unquoted value the loader would build a date from must be a real one: the loader's
    own ``ValueError`` ("day is out of range for month") names no place in the file."""
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        return
    numbers = [int(g) for g in m.groups() if g is not None]  # a date, or a date and a time
    y, mo, d, h, mi, sec = [*numbers, 0, 0, 0][:6]
    try:
        datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError as exc:
        raise YamlFileError(
            [
                Located(
                    name,
                    line,
                    col,
                    f"{value} reads as a date, but {exc}; write a real date (YYYY-MM-DD), or "
                    "quote it if it is text",
                )
            ]
        ) from None


def locate(root: Any, loc: Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the node at ``loc``, or of its nearest located parent."""
    node, line, col = root, 1, 1
    for part in loc:
        # A key an environment variable added (SYNCD_CONNECTORS__X__...) has no position.
        if isinstance(node, CommentedMap) and part in node and part in node.lc.data:
            line, col = node.lc.key(part)
            line, col = line + 1, col + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            line, col = line + 1, col + 1
            node = node[part]
        else:
            break
    return line, col


def validation_problems(
    file: str,
    root: Any,
    error: ValidationError,
    prefix: Sequence[str | int] = (),
    *,
    model: type[BaseModel] | None = None,
    overrides: Mapping[tuple[str, ...], str] | None = None,
    ignore_missing: bool = False,
) -> list[Located]:
    """One :class:`Located` per pydantic error, placed at the offending key.

    With ``model`` (the model that raised), an unknown key gets a did-you-mean from the keys
    valid at its place. A problem under a path set from the environment (``overrides``: path ->
    variable) names the variable instead of a file position. ``ignore_missing`` leaves out
    required settings that are not given.
    """
    from syncd.envconfig import did_you_mean, keys_at

    problems = []
    for err in error.errors(include_url=False):
        if ignore_missing and err["type"] == "missing":
            continue
        loc = _without_tags(root, [*prefix, *[p for p in err["loc"] if not _is_union_tag(p)]])
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown setting '{loc[-1]}'"
            if model is not None:
                message += did_you_mean(str(loc[-1]), keys_at(model, tuple(err["loc"][:-1])))
        elif err["type"] == "missing":
            message = f"missing required setting '{loc[-1]}'"
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):
            message = str(err["ctx"]["error"])  # our own validators' words, without a prefix
        variable = overridden_by(overrides or {}, tuple(str(p) for p in loc))
        if variable is not None:
            problems.append(Located.variable(variable, f"{where}: {message}"))
            continue
        line, col = locate(root, loc)
        problems.append(Located(file, line, col, f"{where}: {message}"))
    return problems


def overridden_by(overrides: Mapping[tuple[str, ...], str], loc: Sequence[str]) -> str | None:
    """The environment variable that set ``loc`` or a parent of it, if one did."""
    for n in range(len(loc), 0, -1):
        variable = overrides.get(tuple(loc[:n]))
        if variable is not None:
            return variable
    return None


def _without_tags(root: Any, loc: Sequence[str | int]) -> list[str | int]:
    """``loc`` without the tag pydantic adds for the member of a discriminated union it chose
    (``auth.oauth.token_url`` for ``auth: {type: oauth, token_url: ...}``): the tag is the
    block's ``type``, not a key of the file."""
    kept: list[str | int] = []
    node = root
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return kept


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the chosen union member's tag into ``loc`` ("client_credentials", ...);
    # those are not keys of the file, so they would make the path unresolvable.
    return isinstance(part, str) and (part.startswith("function-") or part.endswith("]"))
