"""The ruamel.yaml round-trip reader (positions, dates kept as text): fixture files are read
with it, and rules.yamldoc uses its parser and scalar constructor for rule files."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.nodes import ScalarNode

__all__ = ["round_trip_yaml"]


class _TextTimestamps(RoundTripConstructor):
    """Keeps unquoted dates as text: the rule loader checks them with a located message
    (ruamel's own timestamp conversion raises a bare ValueError without a position on
    ``2026-13-45``). ``add_constructor`` on a subclass copies the table, so ruamel's global
    constructor stays untouched for other users in the process."""


def _timestamp_as_text(constructor: RoundTripConstructor, node: ScalarNode) -> Any:
    return constructor.construct_scalar(node)


_TextTimestamps.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def round_trip_yaml(*, allow_duplicate_keys: bool = False) -> YAML:
    """A round-trip YAML reader (every node has ``.lc`` line/column) with dates kept as text."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _TextTimestamps
    yaml.allow_duplicate_keys = allow_duplicate_keys
    return yaml
