"""Authentication (private app, OAuth refresh) and connection reuse."""

from __future__ import annotations

import pytest
from hubspot_support import contacts

from connectors.base import LeadChange, Outcome
from connectors.errors import AuthError
from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
from connectors.testing.hubspot import EmulatorConfig


@pytest.mark.parametrize("emu_config", [EmulatorConfig(access_token_ttl_seconds=1800)])
def test_token_expiring_mid_cycle_is_refreshed_without_losing_or_repeating_a_write(
    emu, make_connector
):
    ids = emu.add_contacts(contacts(5))
    connector = make_connector(oauth=True)
    pages = connector.iter_pages(None, until=emu.clock.now())
    first = next(pages)
    emu.expire_access_tokens()  # earlier than the connector expected (skew, revocation)

    results = connector.write_batch([LeadChange(i, {"status": "CONNECTED"}) for i in ids])
    rest = list(pages)

    assert [r.outcome for r in results] == [Outcome.OK] * 5
    assert all(emu.contact(i)["hs_lead_status"] == "CONNECTED" for i in ids)
    assert [e.status for e in emu.journal.entries("POST", "batch/update")] == [401, 200]
    assert [e.status for e in emu.journal.entries("POST", "/oauth/v1/token")] == [200, 200]
    assert connector.stats.reauths == 1  # the first grant is not a re-authentication
    assert len(first.leads) + sum(len(p.leads) for p in rest) == 5
    assert all(
        h == ("CONNECTED", "INTEGRATION") for i in ids for h in emu.status_history(i)[1:]
    )  # written once each


def test_oauth_token_is_refreshed_before_it_expires_without_a_401(emu, make_connector):
    emu.add_contacts(contacts(1))
    connector = make_connector(oauth=True, archived_scan_interval_seconds=10**6)
    list(connector.iter_pages(None, until=emu.clock.now()))
    emu.clock.advance(1800 - 60)  # inside the refresh margin
    list(connector.iter_pages(None, until=emu.clock.now()))
    assert not emu.journal.entries(status=401)
    assert len(emu.journal.entries("POST", "/oauth/v1/token")) == 2


def test_refused_private_app_token_is_an_auth_error_naming_the_setting(emu):
    connector = HubSpotConnector(
        HubSpotConfig(base_url=emu.base_url, auth=PrivateAppAuth(access_token="pat-na1-wrong"))
    )
    with pytest.raises(AuthError, match="access token") as err:
        connector.check(statuses=set(), fields=set(), newsletters=set())
    assert "pat-na1-wrong" not in str(err.value)
    connector.close()


def test_refused_refresh_token_is_an_auth_error(emu, make_connector):
    connector = make_connector(oauth=True)
    emu.refresh_token = "na1-rotated"  # the grant was revoked in HubSpot
    with pytest.raises(AuthError, match="refresh_token"):
        connector.check(statuses=set(), fields=set(), newsletters=set())


def test_api_objects_are_built_once(emu, make_connector):
    ids = emu.add_contacts(contacts(20))
    list_id = emu.add_list("News")
    connector = make_connector(newsletters={"news": list_id}, page_size=5)
    apis = connector.api_objects

    for _ in range(3):
        list(connector.iter_pages(None, until=emu.clock.now()))
        connector.write_batch([LeadChange(i, {"status": "OPEN"}) for i in ids])
        connector.add_to_newsletter("news", ids[:3])
        connector.check(statuses={"OPEN"}, fields={"status"}, newsletters={"news"})

    assert connector.api_objects == apis and all(
        a is b for a, b in zip(connector.api_objects, apis, strict=True)
    )
    journal = emu.journal.entries()
    assert len(journal) > 20
    # One keep-alive connection per API object, reused for every call (crm-api D1).
    assert len({e.connection for e in journal}) <= len(apis)
