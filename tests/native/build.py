"""What ``make native`` built next to the sources, and which sources changed after it."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from bench.pure_python import ROOT, compiled_sources, is_compiled, module_name

__all__ = ["ROOT", "compiled_sources", "loaded_compiled", "stale"]


def _extension_of(source: Path) -> Path | None:
    """The compiled module built next to ``source``, if there is one."""
    for suffix in EXTENSION_SUFFIXES:
        built = source.with_name(source.stem + suffix)
        if built.exists():
            return built
    return None


def loaded_compiled(source: Path) -> bool:
    """Whether importing ``source``'s module gives the compiled extension."""
    return is_compiled(importlib.import_module(module_name(source)))


def stale() -> list[str]:
    """Sources edited after their compiled module was built: the tests would run the old code."""
    out = []
    for source in compiled_sources():
        built = _extension_of(source)
        if built is not None and source.stat().st_mtime > built.stat().st_mtime:
            out.append(str(source.relative_to(ROOT)))
    return out
