"""Build hook for the modules every lead passes through: compiled with mypyc on request.

``SYNCD_COMPILE=1 python setup.py build_ext --inplace`` (what ``make`` runs) or
``SYNCD_COMPILE=1 pip wheel --no-build-isolation .`` (what the Dockerfile runs) compiles the
modules listed under ``[tool.syncd] compiled`` in ``pyproject.toml`` to C extensions with mypyc
(https://mypyc.readthedocs.io), which the interpreter then imports in place of the ``.py``
files. Without ``SYNCD_COMPILE=1`` the build is pure Python and syncd behaves the same, slower:
the sources stay the definition, type-checked by mypy in strict mode, and the compiled modules
are built from exactly them. Why these modules and what it buys: ``docs/benchmarks.md`` §4.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def compiled_modules() -> list[str]:
    """The source files ``[tool.syncd] compiled`` names, relative to this directory."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["tool"]["syncd"]["compiled"])


def _extensions() -> list[object]:
    if os.environ.get("SYNCD_COMPILE") != "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "SYNCD_COMPILE=1 needs mypyc in the build environment: install mypy and "
            "types-PyYAML at the dev extra's pins in pyproject.toml (mypyc type-checks what it "
            "compiles), then build with --no-build-isolation"
        ) from None
    return list(mypycify(compiled_modules(), opt_level="3", group_name="syncd._native"))


setup(ext_modules=_extensions())
