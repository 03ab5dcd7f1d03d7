"""Auth, preflight, API budget, retries and what errors say (and never say)."""

from __future__ import annotations

import logging

import pytest

from connectors.base import ApiQuota, LeadChange, Outcome, Page
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConfigurationError,
    RetriableError,
)
from connectors.salesforce import SalesforceConnector
from connectors.testing.salesforce import EmulatorConfig, generate_jwt_keypair

from .support import config_for, lead

STATUSES = {"MQL", "Nurture", "Archived"}
FIELDS = {"status", "title"}


def test_jwt_bearer_auth_obtains_token(emu_config, make_connector, emu):
    # The fixture emulator has no key configured; use one that has.
    from connectors.testing.salesforce import SalesforceEmulator

    private, public = generate_jwt_keypair()
    with SalesforceEmulator(EmulatorConfig(jwt_public_key_pem=public)) as jwt_emu:
        lid = jwt_emu.add_leads([lead(1)])[0]
        auth = {
            "type": "jwt_bearer",
            "client_id": jwt_emu.client_id,
            "username": jwt_emu.integration_username,
            "private_key": private.decode(),
        }
        connector = SalesforceConnector(config_for(jwt_emu, auth=auth), clock=jwt_emu.clock.now)
        assert connector.write_batch([LeadChange(lid, {"status": "MQL"})])[0].outcome is Outcome.OK
        assert connector.integration_user_id == jwt_emu.integration_user_id

        wrong_key, _ = generate_jwt_keypair()
        bad = SalesforceConnector(
            config_for(jwt_emu, auth={**auth, "private_key": wrong_key.decode()}),
            clock=jwt_emu.clock.now,
        )
        with pytest.raises(AuthError, match=r"salesforce\.connector\.auth\.private_key"):
            bad.write_batch([LeadChange(lid, {"status": "MQL"})])


def test_second_401_raises_auth_error_naming_setting(emu, make_connector):
    lid = emu.add_leads([lead(1)])[0]
    connector = make_connector(auth={"type": "session", "session_id": "00Dxx!not-a-session"})
    with pytest.raises(AuthError, match=r"salesforce\.connector\.auth\.session_id") as err:
        connector.write_batch([LeadChange(lid, {"status": "MQL"})])
    assert err.value.code == "INVALID_SESSION_ID"
    assert [e.status for e in emu.journal] == [401, 401]  # one retry, no loop


def test_refused_client_credentials_name_the_settings(emu, make_connector):
    connector = make_connector(
        auth={"type": "client_credentials", "client_id": emu.client_id, "client_secret": "wrong"}
    )
    with pytest.raises(AuthError, match=r"salesforce\.connector\.auth\.client_secret"):
        connector.check(statuses=set(), fields=set(), newsletters=set())


def test_preflight_reports_status_the_org_lacks(emu_config, make_connector, emu):
    emu.config.non_updateable_fields = frozenset({"Title"})
    campaign = emu.add_campaign("Newsletter")
    connector = make_connector(newsletters={"monthly": campaign, "gone": "701000000000000AAA"})

    pre = connector.check(
        statuses=STATUSES | {"Recycled", "Closed - Converted"},
        fields=FIELDS | {"nickname"},
        newsletters={"monthly", "gone", "nope"},
    )

    text = "\n".join(pre.problems)
    assert "'Recycled'" in text and "'MQL'" not in text
    assert "'Closed - Converted' is a converted status" in text
    assert "Lead.Title ('title') is not updateable" in text
    assert "'nickname'" in text and "salesforce.fields" in text
    assert "'nope'" in text and "701000000000000AAA" in text and campaign not in text
    assert len(pre.problems) == 6
    assert "status" in pre.writable_fields and "title" not in pre.writable_fields
    assert pre.statuses >= STATUSES
    assert pre.missing_statuses == {"Recycled"} and pre.missing_fields == {"nickname"}
    assert emu.journal.writes() == []  # a preflight never writes


def test_preflight_of_a_matching_org_has_no_problems(emu, connector):
    pre = connector.check(statuses=STATUSES, fields=FIELDS, newsletters=set())
    assert pre.problems == []


def test_mapping_to_a_missing_field_is_data_and_left_out_of_pulls(emu, make_connector):
    emu.add_leads([lead(1)])
    emu.clock.advance(10)
    connector = make_connector(fields={"score": "Score__c"})
    with pytest.raises(ConfigurationError, match="INVALID_FIELD"):  # before check: unknown
        list(connector.iter_pages(None, until=emu.clock.now()))
    pre = connector.check(statuses=set(), fields=set(), newsletters=set())
    assert pre.missing_fields == {"score"} and pre.problems == []
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert sum(len(p.leads) for p in pages) == 1


def test_a_missing_field_the_rules_write_is_a_problem(emu, make_connector):
    connector = make_connector(fields={"score": "Score__c"})
    pre = connector.check(statuses=set(), fields={"score"}, newsletters=set())
    assert len(pre.problems) == 1 and "'Score__c'" in pre.problems[0]


def test_cycle_stops_at_configured_share_of_daily_api_limit(emu, make_connector):
    emu.config.daily_api_limit = 100
    emu.set_api_usage(44)
    emu.add_leads([lead(i) for i in range(8000)])
    emu.clock.advance(1)
    # Query pages, 5 chained in a counted call (a Bulk job would read the leads in fewer).
    connector = make_connector(page_size=200, max_daily_api_share=0.5, bulk_read_threshold=None)

    pages: list[Page] = []

    def read_all() -> None:
        for page in connector.iter_pages(None, until=emu.clock.now()):
            pages.append(page)

    with pytest.raises(BudgetExhausted) as err:
        read_all()

    assert emu.api_usage == 50  # stopped when used/limit reached 0.5
    assert len(pages) == 6 * 5
    assert connector.api_quota() == ApiQuota(used=50, limit=100)
    assert err.value.resume_at is not None and err.value.resume_at > emu.clock.now()
    assert "max_daily_api_share" in str(err.value)


def test_request_limit_exceeded_backs_off_instead_of_looping(emu, connector):
    emu.set_api_usage(emu.config.daily_api_limit)
    lid = emu.add_leads([lead(1)])[0]
    with pytest.raises(BudgetExhausted) as err:
        connector.write_batch([LeadChange(lid, {"status": "MQL"})])
    assert err.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert (err.value.resume_at - emu.clock.now()).total_seconds() >= 3600
    assert [e.status for e in emu.journal if "/services/data/" in e.path] == [403]
    # and the next call does not even reach the CRM
    with pytest.raises(BudgetExhausted):
        connector.write_batch([LeadChange(lid, {"status": "MQL"})])
    assert len([e for e in emu.journal if "/services/data/" in e.path]) == 1


def test_html_503_is_retried_then_succeeds(emu, connector):
    lid = emu.add_leads([lead(1)])[0]
    emu.faults.fail_next(2, status=503, path="/composite/")
    (result,) = connector.write_batch([LeadChange(lid, {"status": "MQL"})])
    assert result.outcome is Outcome.OK
    assert [e.status for e in emu.journal.writes()] == [503, 503, 200]
    assert connector.stats.retries == 2


def test_persistent_503_becomes_retriable_error_after_configured_attempts(emu, connector):
    emu.faults.fail_next(10, status=503, path="/composite$")  # the pull's first call
    with pytest.raises(RetriableError, match="3 times") as err:
        list(connector.iter_pages(None, until=emu.clock.now()))
    assert err.value.status == 503
    assert len([e for e in emu.journal if e.path.endswith("/composite")]) == 3


@pytest.mark.parametrize("status", [420, 500])
def test_420_and_500_are_retried(emu, connector, status):
    emu.add_leads([lead(1)])
    emu.faults.fail_next(1, status=status, body='[{"message":"x","errorCode":"UNKNOWN"}]')
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert len(pages[0].leads) == 1


def test_dropped_connection_is_retried(emu, connector):
    lid = emu.add_leads([lead(1)])[0]
    emu.faults.drop_next(1, path="/composite/")
    (result,) = connector.write_batch([LeadChange(lid, {"status": "MQL"})])
    assert result.outcome is Outcome.OK
    assert [e.status for e in emu.journal.writes()] == [0, 200]


def test_slow_response_times_out_and_is_retried(emu, make_connector):
    emu.add_leads([lead(1)])
    connector = make_connector(timeout_seconds=0.3)
    emu.faults.slow_next(1, delay=1.0, path="/query")
    pages = list(connector.iter_pages(None, until=emu.clock.now()))
    assert len(pages) == 1 and connector.stats.retries == 1


def test_secret_never_appears_in_error_messages_or_logs(emu, make_connector, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-value-that-must-not-leak"
    errors: list[Exception] = []
    bad = make_connector(
        auth={"type": "client_credentials", "client_id": emu.client_id, "client_secret": secret}
    )
    with pytest.raises(AuthError) as err:
        bad.check(statuses=set(), fields=set(), newsletters=set())
    errors.append(err.value)

    good = make_connector()
    lid = emu.add_leads([lead(1)])[0]
    good.write_batch([LeadChange(lid, {"status": "MQL"})])
    token = good._token.access_token
    emu.expire_sessions()
    emu.faults.fail_next(5, status=503)
    with pytest.raises(RetriableError) as err:
        good.write_batch([LeadChange(lid, {"status": "MQL"})])
    errors.append(err.value)

    session = make_connector(auth={"type": "session", "session_id": token})
    emu.expire_sessions()
    with pytest.raises(AuthError) as err:
        session.write_batch([LeadChange(lid, {"status": "MQL"})])
    errors.append(err.value)

    for leaked in (secret, emu.client_secret, token):
        assert all(leaked not in str(e) and leaked not in repr(e) for e in errors)
        assert leaked not in caplog.text
        assert leaked not in repr(good._config) and leaked not in repr(good._token)


def test_stop_request_interrupts_a_retry_backoff_and_sends_nothing_more(emu):
    import threading
    import time

    from connectors.errors import Interrupted

    emu.faults.fail_next(10, status=503, path="/composite$")  # the pull's first call
    connector = SalesforceConnector(
        config_for(emu, retry={"attempts": 5, "initial_backoff_seconds": 30, "jitter_seconds": 0}),
        clock=emu.clock.now,
    )  # real-time waits
    stop = threading.Event()
    connector.bind_stop(stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            list(connector.iter_pages(None, until=emu.clock.now()))
    finally:
        connector.close()
    assert time.monotonic() - started < 10  # not the 30 s backoff
    assert len([e for e in emu.journal if "/services/data/" in e.path]) == 1
    assert connector.stats.retries == 1 and connector.stats.calls == 1
