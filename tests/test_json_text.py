"""The store's JSON text is json.dumps' text, value for value."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.json_text import dumps

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -17,
    10**30,
    1.5,
    1e300,
    -0.0,
    math.nan,
    math.inf,
    "",
    "Nurture",
    'quote " and \\ backslash',
    "Jörg Müller 日本 \u2028 \x00",
    [],
    {},
    [1, "a", None, [2.5, {"k": "v"}]],
    {"email": "a@b.com", "status": "New", "score": 12.25, "tags": ["x", "y"], "ok": None},
    {"z": 1, "a": 2},  # the dictionary's order, not sorted
    {1: "int key", False: "bool key", None: "none key", 2.5: "float key"},
    ("tuple", "as", "list"),
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_dumps_gives_the_text_json_dumps_gives(value: Any) -> None:
    assert dumps(value) == json.dumps(value)


def test_dumps_refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError):
        dumps({"at": datetime(2026, 1, 1, tzinfo=UTC)})
    with pytest.raises(TypeError):
        dumps({("tuple", "key"): 1})
