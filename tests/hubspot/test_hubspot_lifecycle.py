"""HubSpot lifecyclestage moves forward only through the API; syncd clears it first for a
declared backward move (docs/crm-api.md#c9)."""

from __future__ import annotations

from hubspot_support import contacts

from connectors.base import LeadChange, Outcome


def _stage_writes(emu):
    return [e for e in emu.journal.entries() if "/batch/update" in e.path]


def test_emulator_ignores_a_backward_stage_that_was_not_cleared_as_hubspot_does(
    emu, make_connector
):
    [cid] = emu.add_contacts(contacts(1, lifecyclestage="salesqualifiedlead"))
    connector = make_connector()

    [result] = connector.write_batch(
        [LeadChange(cid, {"lifecycle_stage": "marketingqualifiedlead"})]
    )

    assert _stage_writes(emu)[-1].status == 200  # HubSpot answers success ...
    assert emu.contact(cid)["lifecyclestage"] == "salesqualifiedlead"  # ... and keeps the stage
    assert result.outcome is Outcome.FAILED and result.error_code == "LIFECYCLE_NOT_APPLIED"
    assert "lifecycle.backward" in (result.message or "")


def test_forward_stage_is_written_in_one_request(emu, make_connector):
    [cid] = emu.add_contacts(contacts(1, lifecyclestage="lead"))
    connector = make_connector()

    [result] = connector.write_batch(
        [LeadChange(cid, {"lifecycle_stage": "marketingqualifiedlead"})]
    )

    assert result.outcome is Outcome.OK and result.cleared == frozenset()
    assert emu.contact(cid)["lifecyclestage"] == "marketingqualifiedlead"
    assert len(_stage_writes(emu)) == 1


def test_clear_first_clears_in_its_own_request_then_sets_the_backward_stage(emu, make_connector):
    ids = emu.add_contacts(contacts(3, lifecyclestage="salesqualifiedlead"))
    connector = make_connector()
    changes = [
        LeadChange(
            ids[0],
            {"lifecycle_stage": "marketingqualifiedlead"},
            clear_first=frozenset({"lifecycle_stage"}),
        ),
        LeadChange(ids[1], {"status": "OPEN"}),
        LeadChange(ids[2], {"lifecycle_stage": "opportunity"}),
    ]

    results = connector.write_batch(changes)

    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert results[0].cleared == frozenset({"lifecycle_stage"})
    assert results[2].cleared == frozenset()
    assert emu.contact(ids[0])["lifecyclestage"] == "marketingqualifiedlead"
    assert emu.contact(ids[2])["lifecyclestage"] == "opportunity"
    writes = _stage_writes(emu)
    assert [w.records for w in writes] == [1, 3]  # the clear alone, then the batch
    assert writes[0].record_ids == (ids[0],)
