"""Fixtures: a live HubSpot emulator on 127.0.0.1 and connectors pointed at it.

Most tests run the connector on the emulator's clock (``clock=emu.clock.now``,
``sleep=emu.clock.advance``): pacing and Retry-After waits then cost no wall time and the
emulator's rate windows see exactly the time the connector believes has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hubspot_support import T0

from connectors.hubspot import HubSpotConfig, HubSpotConnector, OAuthAuth, PrivateAppAuth
from connectors.testing.hubspot import EmulatorClock, EmulatorConfig, HubSpotEmulator


@pytest.fixture
def emu_config() -> EmulatorConfig:
    return EmulatorConfig()


@pytest.fixture
def emu(emu_config: EmulatorConfig) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(emu_config, clock=EmulatorClock(frozen_at=T0)) as emulator:
        yield emulator


ConnectorFactory = Callable[..., HubSpotConnector]


@pytest.fixture
def make_connector(emu: HubSpotEmulator) -> Iterator[ConnectorFactory]:
    made: list[HubSpotConnector] = []

    def make(
        *,
        oauth: bool = False,
        simulated_time: bool = True,
        sleep: Callable[[float], None] | None = None,
        **overrides: Any,
    ) -> HubSpotConnector:
        auth: PrivateAppAuth | OAuthAuth
        if oauth:
            auth = OAuthAuth(
                client_id=emu.oauth_client_id,
                client_secret=emu.oauth_client_secret,
                refresh_token=emu.refresh_token,
                token_url=emu.base_url + "/oauth/v1/token",
            )
        else:
            auth = PrivateAppAuth(access_token=emu.access_token)
        overrides.setdefault("timeout_seconds", 5)
        overrides.setdefault("retry", {"initial_backoff_seconds": 0.01})
        config = HubSpotConfig(base_url=emu.base_url, auth=auth, **overrides)
        kwargs: dict[str, Any] = {}
        if simulated_time:
            kwargs = {"clock": emu.clock.now, "sleep": sleep or emu.clock.advance}
        connector = HubSpotConnector(config, **kwargs)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()
