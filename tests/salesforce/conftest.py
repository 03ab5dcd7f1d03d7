"""Fixtures: a TLS Salesforce emulator on 127.0.0.1 and connectors pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import EmulatorConfig, SalesforceEmulator

from .support import T0, config_for


@pytest.fixture
def emu_config() -> EmulatorConfig:
    """Override in a test module (or parametrize) to change the emulated org."""
    return EmulatorConfig()


@pytest.fixture
def emu(emu_config: EmulatorConfig) -> Iterator[SalesforceEmulator]:
    emulator = SalesforceEmulator(emu_config).start()
    emulator.clock.freeze(T0)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def make_connector(emu: SalesforceEmulator) -> Iterator[Callable[..., SalesforceConnector]]:
    made: list[SalesforceConnector] = []

    def make(**overrides: Any) -> SalesforceConnector:
        connector = SalesforceConnector(
            # Waits pass on the emulator's clock: a Bulk API 2.0 job completes after its run
            # time there, and no test waits in wall time.
            config_for(emu, **overrides),
            clock=emu.clock.now,
            sleep=emu.clock.advance,
        )
        made.append(connector)
        return connector

    yield make
    for c in made:
        c.close()


@pytest.fixture
def connector(make_connector: Callable[..., SalesforceConnector]) -> SalesforceConnector:
    return make_connector()
