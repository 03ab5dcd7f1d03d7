"""A HubSpot connector's ``fields`` mapping changed between runs (syncd.field_remap): every
contact is read again before rules use the remapped field, as on Salesforce
(tests/daemon/test_config_change_with_waiting_intents.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.hubspot import HubSpotConfig, HubSpotConnector, PrivateAppAuth
from connectors.testing.hubspot import EmulatorClock, HubSpotEmulator
from syncd.app import App
from tests.daemon.harness import hs_contact, running_app, write_config

RULES = """\
version: 1
name: budgets
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}, Nurture: {}}
rules:
  - id: gold-budget
    when: {field: budget, eq: Gold}
    then:
      - set_status: MQL
"""


@contextmanager
def _app(
    tmp_path: Path, hs: HubSpotEmulator, clock: EmulatorClock, fields: dict[str, str | None]
) -> Iterator[App]:
    connector = HubSpotConnector(
        HubSpotConfig(
            base_url=hs.base_url,
            auth=PrivateAppAuth(access_token=hs.access_token),
            allow_add_status_options=True,
            timeout_seconds=5,
            fields=fields,
        ),
        clock=clock.now,
        sleep=clock.advance,
    )
    config = write_config(tmp_path, rules=RULES, crms=("hubspot",))
    with running_app(config, connectors={"hubspot": connector}, clock=clock.now) as app:
        yield app


def test_contacts_are_read_again_when_budget_is_remapped_and_rules_see_the_new_property(
    tmp_path: Path,
) -> None:
    clock = EmulatorClock(frozen_at=datetime.now(UTC).replace(microsecond=0))
    with HubSpotEmulator(clock=clock) as hs:
        gold_before, gold_after = hs.add_contacts(
            [
                hs_contact("A", "a@acme.com", title="Analyst", bant_budget="Gold", bant_need="x"),
                hs_contact("B", "b@acme.com", title="Analyst", bant_budget="x", bant_need="Gold"),
            ]
        )
        clock.advance(60)
        with _app(tmp_path, hs, clock, {}) as app:
            assert app.pipelines["hubspot"].run_cycle().outcome == "ok"
        assert hs.contact(gold_before)["hs_lead_status"] == "MQL"
        assert hs.contact(gold_after)["hs_lead_status"] == "NEW"
        clock.advance(timedelta(hours=1).total_seconds())
        with _app(tmp_path, hs, clock, {"budget": "bant_need", "need": None}) as app:
            report = app.pipelines["hubspot"].run_cycle()
            assert (report.outcome, report.pulled) == ("ok", 2), report.message
            record = app.store.lead("hubspot", gold_before)
            assert record is not None and record.fields["budget"] == "x"
            assert "need" not in record.fields, "an unmapped field leaves the mirror"
        assert hs.contact(gold_after)["hs_lead_status"] == "MQL"
