"""Which connector types exist, and how the daemon builds one from its config.

Each CRM package declares one :class:`ConnectorSpec` (``connectors/salesforce/spec.py``): its
type name (what config writes as ``type: salesforce``), its config model, how to build a
connector from a validated config, and the import path of its embedded-demo emulator, if any.
The daemon looks a spec up by type name and never names a CRM itself, so adding a CRM is one
package plus one line below (or an entry point, for a CRM shipped in its own distribution).

Lookup order, first match wins:

1. specs given to :func:`register` (tests, plugins loaded by hand);
2. the built-in table :data:`BUILTIN` (works from a source checkout, no install needed);
3. entry points of the group ``syncd.connectors`` (``name = "package.module:SPEC"``), declared
   in a distribution's ``pyproject.toml``. An entry point cannot replace a built-in type.

Specs are imported only when looked up: listing the known types imports no connector, and the
emulator is named by import path so production code never imports :mod:`connectors.testing`.
"""

from __future__ import annotations

import difflib
import importlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from connectors.base import Connector

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "ConnectorRegistry",
    "ConnectorSpec",
    "ConnectorTypeError",
    "DemoSeed",
    "EmbeddedEmulator",
    "get",
    "kinds",
    "register",
    "unknown_kind_message",
    "unregister",
]

ENTRY_POINT_GROUP = "syncd.connectors"

#: The connector types that ship with syncd: type name -> ``module:attribute`` of its spec.
BUILTIN: Mapping[str, str] = {
    "salesforce": "connectors.salesforce.spec:SPEC",
    "hubspot": "connectors.hubspot.spec:SPEC",
}

# A type name is one segment of an instance name (``salesforce`` in ``salesforce/emea``).
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

C = TypeVar("C", bound=BaseModel)


class ConnectorTypeError(Exception):
    """A connector type is unknown, or its spec could not be loaded; the message says why."""


@dataclass(frozen=True, slots=True)
class DemoSeed:
    """What the embedded demo asks an emulator to hold before the first cycle."""

    leads: Sequence[Mapping[str, Any]]  # canonical demo leads (syncd field names and values)
    fields: Mapping[str, str]  # the instance's configured ``fields`` overrides (canonical -> CRM)
    status_values: Mapping[str, str]  # rule status -> CRM value, as the instance maps them
    newsletters: Sequence[str]  # newsletter names to create (a campaign, a list, ...)
    modified_at: Callable[[Mapping[str, Any]], datetime]  # when a demo lead was last modified


class EmbeddedEmulator(Protocol):
    """A running, seeded emulator serving one connector instance of the embedded demo."""

    #: The emulator server itself, for tests that add leads or read its journal.
    server: Any
    url: str
    lead_ids: list[str]

    def connector_overrides(self) -> dict[str, Any]:
        """Connector settings pointing at this emulator (URLs, credentials, CA, newsletters)."""
        ...

    def set_status_by_hand(self, lead_id: str) -> str | None:
        """Play a rep changing a lead's status; the status set, or None when skipped."""
        ...

    def stop(self) -> None: ...


#: ``spec.emulator`` names one of these: it starts an emulator and seeds it.
EmulatorStarter = Callable[[DemoSeed], EmbeddedEmulator]


@dataclass(frozen=True, slots=True)
class ConnectorSpec(Generic[C]):
    """One connector type: everything the daemon needs to configure and build it."""

    kind: str  # the type name in config (``type: salesforce``) and ``Connector.kind``
    title: str  # for people: "Salesforce"
    config_model: type[C]  # validates the instance's ``connector:`` block
    build: Callable[[C], Connector]  # a connector from a validated config
    # ``module:attribute`` of an EmulatorStarter for the embedded demo; None: no demo.
    emulator: str | None = None

    def __post_init__(self) -> None:
        if not _KIND.match(self.kind):
            raise ConnectorTypeError(
                f"connector type name {self.kind!r} must be lowercase "
                "letters, digits, '-' or '_', starting with a letter"
            )

    def create(self, config: C, name: str) -> Connector:
        """Build the connector for the instance ``name`` from its validated config."""
        # A plug-in's build() is typed, but nothing enforces that at run time: check what came back.
        connector: object = self.build(config)
        if not isinstance(connector, Connector) or connector.kind != self.kind:
            raise ConnectorTypeError(
                f"connector type {self.kind!r} built {connector!r}, not a "
                f"connectors.base.Connector of kind {self.kind!r}"
            )
        connector.name = name
        return connector

    def load_emulator(self) -> EmulatorStarter | None:
        """The embedded-demo emulator starter, imported now; None when the type has none."""
        if self.emulator is None:
            return None
        starter: EmulatorStarter = _import(self.emulator, f"the {self.kind} emulator")
        return starter


class ConnectorRegistry:
    """Connector types by name: registered specs, a built-in table and entry points."""

    def __init__(
        self, builtin: Mapping[str, str] = BUILTIN, *, group: str = ENTRY_POINT_GROUP
    ) -> None:
        self._builtin = dict(builtin)
        self._group = group
        self._registered: dict[str, ConnectorSpec[Any]] = {}
        self._loaded: dict[str, ConnectorSpec[Any]] = {}
        self._entry_points: dict[str, str] | None = None
        self._lock = threading.Lock()

    def register(self, spec: ConnectorSpec[Any], *, replace: bool = False) -> None:
        """Make ``spec`` known under ``spec.kind`` (first in lookup order)."""
        with self._lock:
            if not replace and spec.kind in self._registered:
                raise ConnectorTypeError(
                    f"connector type {spec.kind!r} is already registered; "
                    "pass replace=True to replace it"
                )
            self._registered[spec.kind] = spec

    def unregister(self, kind: str) -> None:
        with self._lock:
            self._registered.pop(kind, None)

    def kinds(self) -> list[str]:
        """Every known type name, sorted; imports no connector."""
        return sorted({*self._registered, *self._builtin, *self._plugins()})

    def get(self, kind: str) -> ConnectorSpec[Any]:
        """The spec of type ``kind``, imported on first use.

        Raises:
            ConnectorTypeError: the type is unknown (with the known ones and a near match), or
                its spec failed to import.
        """
        with self._lock:
            if kind in self._registered:
                return self._registered[kind]
            if kind in self._loaded:
                return self._loaded[kind]
        target = self._builtin.get(kind) or self._plugins().get(kind)
        if target is None:
            raise ConnectorTypeError(unknown_kind_message(kind, self.kinds()))
        spec = _import(target, f"connector type {kind!r}")
        if not isinstance(spec, ConnectorSpec) or spec.kind != kind:
            raise ConnectorTypeError(
                f"{target} (connector type {kind!r}) is not a ConnectorSpec of kind {kind!r}"
            )
        with self._lock:
            self._loaded[kind] = spec
        return spec

    def _plugins(self) -> dict[str, str]:
        """Entry points of the group, read once; built-in names are never replaced by one."""
        if self._entry_points is None:
            found = {ep.name: ep.value for ep in entry_points(group=self._group)}
            self._entry_points = {
                name: value
                for name, value in found.items()
                if name not in self._builtin and _KIND.match(name)
            }
        return self._entry_points


def unknown_kind_message(kind: str, known: Sequence[str]) -> str:
    message = f"unknown connector type '{kind}'; known types: {', '.join(known) or 'none'}"
    close = difflib.get_close_matches(kind, known, n=1)
    return message + (f" (did you mean '{close[0]}'?)" if close else "")


def _import(target: str, what: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module
    except ImportError as exc:
        raise ConnectorTypeError(
            f"{what} cannot be imported from {target}: {exc}; is its package installed?"
        ) from None
    except AttributeError:
        raise ConnectorTypeError(f"{what}: {module_name} has no attribute {attribute!r}") from None


#: The registry the daemon uses.
REGISTRY = ConnectorRegistry()
register = REGISTRY.register
unregister = REGISTRY.unregister
kinds = REGISTRY.kinds
get = REGISTRY.get
