"""An admin changes the enrichment settings (the ICP, extra free-mail domains) and restarts.

The mirror keeps each lead's enrichment as derived when it was pulled; every live lead is
evaluated again after such a change, but on values derived under the old settings a lead the
CRM does not change again would never move. The next cycle derives the mirror's enrichment again
from the stored fields first (``syncd.enrichment_refresh``), and ``syncd plan`` and ``explain``
show what it will do before it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.testing.salesforce import SalesforceEmulator
from syncd import enrichment_refresh
from syncd.app import App
from syncd.plan import build_plan, explain_lead
from tests.daemon.harness import running_app, sf_lead, standalone_sf_config

RULES = """\
version: 1
name: free-mail
mode: first_match
statuses:
  New: {}
  Open: {}
  Nurture: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: free-mail-nurture
    when: {field: free_mail, eq: true}
    then:
      - set_status: Nurture
"""

EXTRA_FREE = "enrichment: {extra_free_mail_domains: [partnermail.io]}\n"


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    emu = SalesforceEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _secret(org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_SECRET", org.client_secret)


def _config(tmp_path: Path, org: SalesforceEmulator, extra: str = "") -> Path:
    config = standalone_sf_config(tmp_path, org, rules=RULES)
    config.write_text(config.read_text() + extra)
    return config


def _seed(org: SalesforceEmulator) -> tuple[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    partner, business = org.add_leads(
        [
            sf_lead("P", "pat@partnermail.io", title="Analyst"),
            sf_lead("B", "bo@acme.com", title="Analyst"),
        ],
        modstamp=now - timedelta(hours=2),
    )
    # A later lead holds the cursor, so a pull's overlap window re-reads only it: the two
    # above are never read from the CRM again.
    org.add_leads(
        [sf_lead("F", "fay@fresh.com", title="Analyst")], modstamp=now - timedelta(minutes=30)
    )
    return partner, business


def _refreshes(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each of the pipeline's enrichment refreshes returned (a spy on syncd's own code)."""
    returned: list[int | None] = []
    original = enrichment_refresh.refresh

    def spy(*args: object, **kwargs: object) -> int | None:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        returned.append(result)
        return result

    monkeypatch.setattr(enrichment_refresh, "refresh", spy)
    return returned


def _query_rows(org: SalesforceEmulator) -> int:
    pages = [e for e in org.journal.entries() if e.method == "GET" and "/query" in e.path]
    return sum(e.records or 0 for e in pages)


def _plan(app: App) -> set[tuple[str, str, str, object]]:
    return {
        (lead["lead_id"], kind, field, value)
        for lead in build_plan(app)["crms"]["salesforce"]["leads"]
        for kind, field, value in lead["changes"]
    }


def test_a_new_free_mail_domain_is_applied_to_mirrored_leads_the_crm_did_not_change_and_plan_shows_it_first(
    tmp_path: Path, org: SalesforceEmulator
) -> None:
    partner, business = _seed(org)
    with running_app(_config(tmp_path, org)) as app:
        first = app.pipelines["salesforce"].run_cycle()
        assert first.outcome == "ok" and first.written == 0  # partnermail.io: a business domain
        stored = app.store.lead("salesforce", partner)
        assert stored is not None and stored.enrichment["free_mail"] is False
        pulled_at = stored.pulled_at

    with running_app(_config(tmp_path, org, EXTRA_FREE)) as app:
        # Before the cycle: plan and explain derive what the cycle will derive.
        assert _plan(app) == {(partner, "field", "status", "Nurture")}
        (explained,) = explain_lead(app, partner)
        assert explained["enrichment"]["free_mail"] is True
        assert "extra_free_mail_domains" in explained["reasons"]["free_mail"]
        assert org.lead(partner)["Status"] == "Open - Not Contacted"  # nothing written yet

        org.journal.clear()
        cycle = app.pipelines["salesforce"].run_cycle()
        assert cycle.outcome == "ok", cycle.message
        assert org.lead(partner)["Status"] == "Nurture"
        assert org.lead(business)["Status"] == "Open - Not Contacted"
        assert _query_rows(org) <= 1, "decided on the mirror: no lead read again from the CRM"
        after = app.store.lead("salesforce", partner)
        assert after is not None
        assert after.enrichment["free_mail"] is True
        assert after.reasons == {}, "reasons are not stored: explain derives them"
        (explained,) = explain_lead(app, partner)
        assert "extra_free_mail_domains" in explained["reasons"]["free_mail"]
        assert after.pulled_at >= pulled_at
        current = app.store.get_meta(enrichment_refresh.fingerprint_key("salesforce"))
        assert current == enrichment_refresh.fingerprint(app.enricher.settings)
        assert _plan(app) == set(), "the plan after the cycle: nothing left"


def test_a_first_sync_records_the_enrichment_fingerprint_first_and_derives_nothing_twice(
    tmp_path: Path, org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(org)
    refreshes = _refreshes(monkeypatch)
    with running_app(_config(tmp_path, org)) as app:
        pipeline = app.pipelines["salesforce"]
        assert pipeline.run_cycle().outcome == "ok"
        assert refreshes == [0], "the empty mirror was current after one read; nothing derived"
        assert app.store.get_meta(enrichment_refresh.fingerprint_key("salesforce")) == (
            enrichment_refresh.fingerprint(app.enricher.settings)
        )
        assert pipeline.run_cycle().outcome == "ok"
        assert refreshes == [0], "checked once per lease, not every cycle"


def test_a_restart_under_the_same_settings_derives_nothing_again(
    tmp_path: Path, org: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(org)
    with running_app(_config(tmp_path, org, EXTRA_FREE)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
    refreshes = _refreshes(monkeypatch)
    with running_app(_config(tmp_path, org, EXTRA_FREE)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
    assert refreshes == [0]


def test_a_mirror_from_before_the_fingerprint_derives_its_enrichment_again_once(
    tmp_path: Path,
    org: SalesforceEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An upgrade: the mirror has leads but no fingerprint, so what derived them is unknown.
    partner, _business = _seed(org)
    with running_app(_config(tmp_path, org, EXTRA_FREE)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
        with app.store.begin() as conn:
            app.store.update_leads(
                conn,
                "salesforce",
                [{"lead_id": partner, "enrichment": {"free_mail": False}, "reasons": {}}],
            )
            app.store.delete_meta(conn, enrichment_refresh.fingerprint_key("salesforce"))
    refreshes = _refreshes(monkeypatch)
    caplog.set_level(logging.INFO, logger="syncd.enrichment_refresh")
    with running_app(_config(tmp_path, org, EXTRA_FREE)) as app:
        assert app.pipelines["salesforce"].run_cycle().outcome == "ok"
        stored = app.store.lead("salesforce", partner)
        assert stored is not None and stored.enrichment["free_mail"] is True
        assert org.lead(partner)["Status"] == "Nurture"
    assert refreshes == [1], "only the lead whose stored values differed was written"
    assert "derived the enrichment of 1 mirrored lead again" in caplog.text
