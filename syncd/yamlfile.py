"""Load YAML keeping line numbers, and turn pydantic errors into ``file:line:col`` messages.

Config and admins' files are read with ruamel.yaml's round-trip loader: every mapping and sequence
remembers where each key and item stood, so a validation error can point at the exact place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

__all__ = ["Located", "YamlFileError", "load_yaml", "locate", "validation_problems"]


@dataclass(frozen=True, slots=True)
class Located:
    """One problem at one place in a file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class YamlFileError(Exception):
    """A file could not be read or did not validate; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Located]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_yaml(path: Path) -> Any:
    """Parse ``path`` with positions kept.

    Raises:
        YamlFileError: the file is missing, unreadable or not valid YAML.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError([Located(name, 1, 1, f"cannot read the file: {exc.strerror}")]) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
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


def locate(root: Any, loc: Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the node at ``loc``, or of its nearest located parent."""
    node, line, col = root, 1, 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
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


def validation_problems(file: str, root: Any, error: ValidationError,
                        prefix: Sequence[str | int] = ()) -> list[Located]:
    """One :class:`Located` per pydantic error, placed at the offending key."""
    problems = []
    for err in error.errors(include_url=False):
        loc = [*prefix, *[p for p in err["loc"] if not _is_union_tag(p)]]
        line, col = locate(root, loc)
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown setting '{loc[-1]}'"
        elif err["type"] == "missing":
            message = f"missing required setting '{loc[-1]}'"
        problems.append(Located(file, line, col, f"{where}: {message}"))
    return problems


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the chosen union member's tag into ``loc`` ("client_credentials", ...);
    # those are not keys of the file, so they would make the path unresolvable.
    return isinstance(part, str) and (part.startswith("function-") or part.endswith("]"))
