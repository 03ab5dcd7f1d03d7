"""Provenance written back: rule, reason, time, run and stage dates in the status's own record."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.app import StartupError
from tests.daemon.harness import hs_contact, running_app, sf_lead, write_config

SF_PROVENANCE = """
    provenance:
      rule: syncd_Rule__c
      reason: syncd_Reason__c
      changed_at: syncd_Changed_At__c
      run: syncd_Run__c
      stage_dates: {Nurture: MQL_Date__c}
"""
HS_PROVENANCE = """
    provenance:
      rule: syncd_rule
      reason: syncd_reason
      changed_at: syncd_changed_at
      run: syncd_run
      stage_dates: {Nurture: mql_date}
"""


def _with_provenance(config: Path, crm: str, block: str) -> None:
    text = config.read_text()
    head, tail = text.split(f"\n{crm}:\n", 1)
    first, rest = tail.split("\n", 1)
    config.write_text(
        f"{head}\n{crm}:\n{first}\n{block.strip(chr(10))}\n{rest}".replace(
            "\n    provenance", "\n  provenance"
        ).replace("\n      ", "\n    ")
    )


def _seed(app, crm: str, n: int) -> list[str]:
    if crm == "salesforce":
        return app.embedded.salesforce.add_leads(
            [
                sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
                for i in range(n)
            ]
        )
    return app.embedded.hubspot.add_contacts(
        [
            hs_contact(f"L{i}", f"l{i}@acme{i}.com", title="Analyst", activity_days=200)
            for i in range(n)
        ]
    )


def _fields(app, crm: str, lead_id: str) -> dict[str, object]:
    if crm == "salesforce":
        return dict(app.embedded.salesforce.lead(lead_id))
    return dict(app.embedded.hubspot.contact(lead_id))


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_provenance_rides_in_the_status_batch_at_no_extra_api_call(
    tmp_path: Path, crm: str
) -> None:
    names = (
        {
            "rule": "syncd_Rule__c",
            "reason": "syncd_Reason__c",
            "run": "syncd_Run__c",
            "at": "syncd_Changed_At__c",
            "stage": "MQL_Date__c",
        }
        if crm == "salesforce"
        else {
            "rule": "syncd_rule",
            "reason": "syncd_reason",
            "run": "syncd_run",
            "at": "syncd_changed_at",
            "stage": "mql_date",
        }
    )
    calls = {}
    for enabled in (False, True):
        where = tmp_path / str(enabled)
        where.mkdir()
        config = write_config(where, crms=(crm,))
        if enabled:
            _with_provenance(config, crm, SF_PROVENANCE if crm == "salesforce" else HS_PROVENANCE)
        with running_app(config) as app:
            ids = _seed(app, crm, 150)
            report = app.pipelines[crm].run_cycle()
            assert report.outcome == "ok" and report.written == 300, report
            calls[enabled] = report.api_calls
            lead = _fields(app, crm, ids[0])
            if not enabled:
                assert not lead.get(names["rule"])
                continue
            assert lead[names["rule"]] == "stale-nurture"
            assert str(lead[names["reason"]]).startswith(
                "rule stale-nurture: last_activity_at older_than 90d"
            )
            assert lead[names["run"]] == report.run_id
            assert lead[names["at"]] and lead[names["stage"]]
    assert calls[True] == calls[False]


def test_reason_is_cut_to_the_fields_length(tmp_path: Path) -> None:
    config = write_config(tmp_path, crms=("salesforce",))
    # syncd_Run__c is 32 characters long: the reason is cut to it, not refused by the CRM.
    _with_provenance(config, "salesforce", "    provenance:\n      reason: syncd_Run__c\n")
    with running_app(config) as app:
        ids = _seed(app, "salesforce", 1)
        assert app.pipelines["salesforce"].run_cycle().written == 2
        reason = str(app.embedded.salesforce.lead(ids[0])["syncd_Run__c"])
        assert len(reason) == 32 and reason.startswith("rule stale-nurture: ")
        assert reason.endswith("…")


@pytest.mark.parametrize(
    ("crm", "missing"), [("salesforce", "syncd_Rul__c"), ("hubspot", "syncd_rul")]
)
def test_preflight_names_a_missing_provenance_field(tmp_path: Path, crm: str, missing: str) -> None:
    config = write_config(tmp_path, crms=(crm,))
    _with_provenance(config, crm, f"    provenance:\n      rule: {missing}\n")
    with pytest.raises(StartupError) as caught, running_app(config):
        pass
    text = str(caught.value)
    assert f"{crm}.provenance: the lead field '{missing}' does not exist in {crm}" in text


@pytest.mark.parametrize(
    ("text", "fitted"),
    [
        ("rule a: title is 🚀🚀🚀🚀", "rule a: title is 🚀…"),  # 25 units: each 🚀 counts 2
        ("rule a: title 𠮟 ok", "rule a: title 𠮟 ok"),  # 19 units: fits as is
        ("rule a: title is ab🚀", "rule a: title is ab…"),  # 20 characters, 21 units; no half pair
    ],
)
def test_reason_is_cut_counting_a_character_beyond_the_bmp_as_two_as_salesforce_does(
    text: str, fitted: str
) -> None:
    from syncd.provenance import Provenance
    from syncd.settings import ProvenanceSettings

    provenance = Provenance(ProvenanceSettings(reason="Why__c"), {"Why__c": 20}, {})
    assert provenance._fit("Why__c", text) == fitted
    units = len(fitted.encode("utf-16-le")) // 2
    assert units <= 20
