"""``json.dumps`` with its defaults, without building an encoder for every value.

The SQLite store serializes every JSON column value of every row it writes through
``json.dumps`` (SQLAlchemy's JSON type): some 150,000 values in a cycle writing 10,000 leads
(mirror fields, enrichment, outbox and audit values). Called with its defaults, ``json.dumps``
goes through ``JSONEncoder.encode``, which builds the C encoder anew for each value
(``iterencode``). :func:`dumps` builds it once with the same settings and gives the same text:
ASCII escapes, ``", "`` and ``": "`` separators, keys in the dictionary's order, ``NaN`` and
``Infinity`` allowed, ``TypeError`` for a value JSON has no form for.

One difference, by choice: no check for circular references (the default's ``ValueError``);
the store's values come from parsed JSON and dictionaries of scalars, which cannot hold one.
"""

from __future__ import annotations

import json.encoder
from typing import Any

__all__ = ["dumps"]

_encode_str = json.encoder.encode_basestring_ascii
# Private to json.encoder (the C encoder JSONEncoder itself uses); None without _json.
_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encoder = (
    _c_encoder(None, json.JSONEncoder().default, _encode_str, None, ": ", ", ", False, False, True)
    if _c_encoder is not None
    else None
)


def dumps(value: Any) -> str:
    """``json.dumps(value)``, the same text."""
    if type(value) is str:
        return str(_encode_str(value))
    if _encoder is None:  # an interpreter without the C accelerator
        return json.dumps(value)
    return "".join(_encoder(value, 0))
