"""The lock files pin every dependency pyproject.toml names, at versions it allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins(lock: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / lock).read_text().splitlines():
        if not line or line.startswith(("#", " ")):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert match, f"{lock}: {line!r} is not a name==version pin"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _required(*extras: str) -> list[Requirement]:
    specs = list(PROJECT["dependencies"])
    for extra in extras:
        specs += PROJECT["optional-dependencies"][extra]
    return [r for r in map(Requirement, specs) if canonicalize_name(r.name) != "syncd"]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("requirements.lock", ("emulators",)),
        ("requirements-dev.lock", tuple(PROJECT["optional-dependencies"])),
    ],
)
def test_lock_pins_every_dependency_at_an_allowed_version(
    lock: str, extras: tuple[str, ...]
) -> None:
    pins = _pins(lock)
    for requirement in _required(*extras):
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{lock} does not pin {requirement.name}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside {requirement}"
        )
