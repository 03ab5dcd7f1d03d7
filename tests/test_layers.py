"""The layers stay clean: connectors know HTTP and the CRM, rules know nothing of HTTP,
the daemon wires them. Imports only go syncd -> connectors and syncd -> rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "connectors": {"syncd", "rules"},
    "rules": {
        "syncd",
        "connectors",
        "requests",
        "urllib3",
        "simple_salesforce",
        "hubspot",
        "sqlalchemy",
        "sqlmodel",
    },
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_layers_above_or_beside_it(package: str) -> None:
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_daemon_and_the_connectors_never_import_the_emulators() -> None:
    # Connector specs name their emulator by import path; only the embedded demo resolves it
    # (and seeds it from the testing package's lead generator).
    testing = ROOT / "connectors" / "testing"
    demo = ROOT / "syncd" / "embedded.py"
    offenders = {}
    for path in sorted([*(ROOT / "syncd").rglob("*.py"), *(ROOT / "connectors").rglob("*.py")]):
        if path.is_relative_to(testing) or path == demo:
            continue
        bad = {m for m in _full_imports(path) if m.startswith("connectors.testing")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
