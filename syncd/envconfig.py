"""Settings from the environment: ``SYNCD_<SECTION>__<KEY>`` overrides the file's value.

A variable is an override when its name starts with ``SYNCD_`` and holds ``__`` after it; the
parts between the ``__`` are the setting's path, matched case-insensitively
(``SYNCD_STATE__URL`` is ``state.url``, ``SYNCD_LOG__FORMAT`` is ``log.format``). Other
``SYNCD_`` variables (``SYNCD_CONFIG``, a ``SYNCD_DATABASE_URL`` the file references with
``{env: ...}``) are left alone.

Connector instance names may hold ``/`` and ``-``, which variable names cannot: a part names an
instance when it equals the instance's name upper-cased with ``/`` and ``-`` written as ``_``
(``salesforce/emea`` is ``SALESFORCE_EMEA``). When two instances in the file would map to one
part, the variable is refused as ambiguous. A part matching no instance in the file names a new
one, lower-cased. ``SYNCD_SALESFORCE__...`` and ``SYNCD_HUBSPOT__...`` reach the instance of that
name wherever the file declares it (top level or under ``connectors:``).

Values are YAML, as in the file: ``5m``, ``true``, ``[a.yaml, b.yaml]``, ``{env: DB_URL}``.

Each override is applied to the parsed file before validation, and remembered by path, so a
problem in its value is reported naming the variable instead of a file position.

pydantic-settings is not used: it parses JSON rather than YAML, cannot map instance names with
``/``, and its errors point into the model rather than at the variable.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

__all__ = ["PREFIX", "EnvProblem", "apply_overrides", "did_you_mean", "model_keys"]

PREFIX = "SYNCD_"
_MAX_VALUE_CHARS = 64 * 1024
_LEGACY = ("salesforce", "hubspot")


class EnvProblem(Exception):
    """A variable that cannot be applied; the message names it."""


def did_you_mean(key: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _members(annotation: Any) -> list[Any]:
    """The types an annotation stands for: Annotated and Optional/Union unwrapped."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a) if m is not type(None)]
    return [annotation]


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config file may give for ``model`` (aliases where set)."""
    return [info.alias or name for name, info in model.model_fields.items() if not info.exclude]


def _step(annotations: list[Any], part: str | int) -> list[Any]:
    found: list[Any] = []
    for ann in annotations:
        for member in _members(ann):
            origin = get_origin(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                sub = _field(member, str(part))
                if sub is not None:
                    found.append(sub)
            elif origin is dict or origin is Mapping:
                found.append(get_args(member)[1] if get_args(member) else Any)
            elif origin is list and get_args(member):
                found.append(get_args(member)[0])
    return found


def keys_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys valid in the mapping at ``loc`` of ``model``'s data (for did-you-mean).

    A part that leads nowhere is a union's tag pydantic puts into error locations; it is
    skipped, so a discriminated union's keys are the union of its members'.
    """
    current: list[Any] = [model]
    for part in loc:
        nxt = _step(current, part)
        current = nxt or current
    keys: list[str] = []
    for ann in current:
        for member in _members(ann):
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys.extend(k for k in model_keys(member) if k not in keys)
    return keys


def _norm(name: str) -> str:
    return re.sub(r"[/\-. ]", "_", name).upper()


def parse_value(variable: str, text: str) -> Any:
    """The variable's value as YAML (a scalar or a flow collection), within a size bound."""
    if len(text) > _MAX_VALUE_CHARS:
        raise EnvProblem(f"the value is longer than {_MAX_VALUE_CHARS} characters")
    try:
        return YAML(typ="rt").load(text)
    except (YAMLError, ValueError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EnvProblem(
            f"the value is not valid YAML ({first}); quote it, e.g. {variable}='\"...\"'"
        ) from None


def _resolve_path(
    model: type[BaseModel], root: CommentedMap, variable: str, parts: list[str]
) -> tuple[str, ...]:
    """The config path (file keys) a variable's parts name."""
    path: list[str] = []
    node: Any = root
    annotations: list[Any] = [model]
    for i, part in enumerate(parts):
        if not part:
            raise EnvProblem("empty part in the name (three or more '_' in a row?)")
        models = [
            m
            for a in annotations
            for m in _members(a)
            if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        if models:
            keys = [k for m in models for k in model_keys(m)]
            key = next((k for k in keys if k.upper() == part.upper()), None)
            if key is None:
                where = ".".join(path) or "the top level"
                raise EnvProblem(
                    f"unknown setting '{part.lower()}' in {where}{did_you_mean(part.lower(), keys)}"
                )
            if i == 0 and key in _LEGACY and key not in root:
                # SYNCD_SALESFORCE__... reaches the instance named so under connectors: too.
                under = root.get("connectors")
                if isinstance(under, Mapping) and key in under:
                    path, node, annotations = ["connectors"], under, _step([model], "connectors")
        else:
            existing = [
                k
                for k in (node if isinstance(node, Mapping) else {})
                if _norm(str(k)) == part.upper()
            ]
            if len(existing) > 1:
                raise EnvProblem(
                    f"'{part}' matches {', '.join(map(str, existing))}"
                    "; rename one of them to override it from the environment"
                )
            key = str(existing[0]) if existing else part.lower()
        path.append(key)
        node = node.get(key) if isinstance(node, Mapping) else None
        annotations = _step(annotations, key) or [Any]
    return tuple(path)


def apply_overrides(
    model: type[BaseModel],
    root: CommentedMap,
    env: Mapping[str, str],
) -> tuple[dict[tuple[str, ...], str], list[tuple[str, str]]]:
    """Set every ``SYNCD_...__...`` variable's value into ``root`` (in place).

    Returns:
        The path each applied variable set (path -> variable name), and (variable, message)
        for each variable that could not be applied.
    """
    applied: dict[tuple[str, ...], str] = {}
    problems: list[tuple[str, str]] = []
    for variable in sorted(env):
        rest = variable[len(PREFIX) :]
        if not variable.startswith(PREFIX) or "__" not in rest:
            continue
        try:
            path = _resolve_path(model, root, variable, rest.split("__"))
            value = parse_value(variable, env[variable])
        except EnvProblem as exc:
            problems.append((variable, str(exc)))
            continue
        node: Any = root
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = CommentedMap()
                node[key] = child
            node = child
        node[path[-1]] = value
        applied[path] = variable
    return applied, problems
