"""Which of syncd's modules are compiled (``make native``, ``setup.py``), and how to run code on
their pure-Python sources instead, in the same checkout: §4 measures the engine both ways, and
the tests compare what both give (``tests/native``).

Python imports a compiled extension module in place of the ``.py`` file beside it;
:class:`SourcesFinder`, installed before anything imports syncd, hands out the sources instead.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["ROOT", "SourcesFinder", "compiled_sources", "is_compiled", "module_name", "use_sources"]

ROOT = Path(__file__).resolve().parents[1]


def compiled_sources() -> list[Path]:
    """The source files ``[tool.syncd] compiled`` in pyproject.toml names."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return [ROOT / name for name in tomllib.load(f)["tool"]["syncd"]["compiled"]]


def module_name(source: Path) -> str:
    """``syncd/enrichment.py`` -> ``syncd.enrichment``."""
    return ".".join(source.relative_to(ROOT).with_suffix("").parts)


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was imported from a compiled extension."""
    return str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))


class SourcesFinder:
    """A meta-path finder that imports the compiled modules from their ``.py`` sources."""

    def __init__(self) -> None:
        self._sources = {module_name(path): path for path in compiled_sources()}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        source = self._sources.get(name)
        return importlib.util.spec_from_file_location(name, source) if source else None


def use_sources() -> None:
    """From now on, import the compiled modules from their sources; call before importing them."""
    already = [name for name in map(module_name, compiled_sources()) if name in sys.modules]
    if already:
        raise RuntimeError(f"imported before use_sources(): {', '.join(already)}")
    sys.meta_path.insert(0, SourcesFinder())
