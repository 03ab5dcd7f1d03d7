"""The state store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.state import StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lead(lead_id: str, **over: object) -> dict:
    row = {
        "crm": "salesforce",
        "lead_id": lead_id,
        "modified_at": T0,
        "fields": {"email": f"{lead_id}@x.io"},
        "enrichment": {},
        "reasons": {},
        "status": "Open",
        "status_changed_at": T0,
        "deleted": False,
        "converted": False,
        "written_status": None,
        "written_at": None,
        "rep_edit_at": None,
        "rep_edit_status": None,
        "newsletters": [],
        "error_code": None,
        "error_message": None,
        "first_seen_at": T0,
        "pulled_at": T0,
    }
    row.update(over)
    return row


def test_cursor_round_trips_with_timezone(store_url: str) -> None:
    store = StateStore(store_url)
    assert store.cursor("salesforce") is None
    with store.begin() as conn:
        store.save_cursor(conn, "salesforce", T0, "00Q1", T0)
    with store.begin() as conn:
        store.save_cursor(conn, "salesforce", T0 + timedelta(seconds=1), "00Q2", T0)
    assert store.cursor("salesforce") == (T0 + timedelta(seconds=1), "00Q2", None)
    store.close()


def test_upsert_keeps_first_seen_and_replaces_the_rest(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a"), _lead("b")])
    later = T0 + timedelta(hours=1)
    with store.begin() as conn:
        store.upsert_leads(
            conn, [_lead("a", status="Nurture", first_seen_at=later, pulled_at=later)]
        )
    row = store.lead("salesforce", "a")
    assert row.status == "Nurture"
    assert row.first_seen_at.replace(tzinfo=UTC) == T0
    assert store.count_live("salesforce") == 2
    assert store.count_live("salesforce", at_most=1) == 1  # counted no further than asked
    assert store.count_live("salesforce", at_most=5) == 2
    store.close()


def test_failed_transaction_leaves_nothing_half_written(store_url: str) -> None:
    store = StateStore(store_url)

    def crash_mid_transaction() -> None:
        with store.begin() as conn:
            store.upsert_leads(conn, [_lead("a")])
            store.save_cursor(conn, "salesforce", T0, "a", T0)
            raise RuntimeError("crash between page and checkpoint")

    with pytest.raises(RuntimeError, match="crash between page and checkpoint"):
        crash_mid_transaction()
    assert store.lead("salesforce", "a") is None
    assert store.cursor("salesforce") is None
    store.close()


def test_live_leads_stream_in_chunks_without_deleted(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead(f"L{i:04d}", deleted=(i % 10 == 0)) for i in range(1000)])
    chunks = list(store.iter_live_leads("salesforce", chunk=128))
    ids = [r.lead_id for c in chunks for r in c]
    assert len(ids) == 900 and len(set(ids)) == 900
    assert max(len(c) for c in chunks) == 128
    store.close()


def test_outbox_due_changes_respect_backoff(store_url: str) -> None:
    store = StateStore(store_url)
    base = {
        "crm": "hubspot",
        "kind": "field",
        "field": "status",
        "value": "NURTURE",
        "before": "NEW",
        "rule_id": "r",
        "ruleset_version": "v",
        "run_id": "run1",
        "intent_id": "run1.x",
        "state": "pending",
        "attempts": 0,
        "created_at": T0,
        "updated_at": T0,
    }
    with store.begin() as conn:
        store.add_changes(
            conn,
            [
                {**base, "lead_id": "1"},
                {**base, "lead_id": "2", "next_attempt_at": T0 + timedelta(minutes=5)},
            ],
        )

    def due(at: datetime) -> list[str]:
        return [
            r.lead_id
            for chunk in store.iter_due_changes("hubspot", "field", at, chunk=1)
            for r in chunk
        ]

    assert due(T0) == ["1"]
    assert due(T0 + timedelta(minutes=6)) == ["1", "2"]
    store.close()


def test_closed_changes_keep_their_reason_in_the_outbox_and_the_audit(store_url: str) -> None:
    from syncd.state import AuditOutcome, OutboxState

    store = StateStore(store_url)
    base = {
        "crm": "salesforce",
        "lead_id": "1",
        "before": None,
        "rule_id": "r",
        "ruleset_version": "v",
        "run_id": "run1",
        "attempts": 0,
        "created_at": T0,
        "updated_at": T0,
    }
    with store.begin() as conn:
        store.add_changes(
            conn,
            [
                {
                    **base,
                    "kind": "field",
                    "field": "status",
                    "value": "Nurture",
                    "intent_id": "run1.1",
                    "state": OutboxState.DONE,
                },
                {
                    **base,
                    "kind": "membership",
                    "field": "newsletter",
                    "value": True,
                    "intent_id": "run1.1",
                    "state": OutboxState.PENDING,
                },
                {
                    **base,
                    "lead_id": "2",
                    "kind": "membership",
                    "field": "newsletter",
                    "value": True,
                    "intent_id": "run1.2",
                    "state": OutboxState.PENDING,
                    "error_code": "LOCKED",
                },
            ],
        )
    assert sorted(store.pending_summary("salesforce"), key=str) == [
        ("membership", "newsletter", "LOCKED", 1),
        ("membership", "newsletter", None, 1),
    ]
    with store.begin() as conn:
        parts = store.intent_parts(conn, ["run1.1", "run1.2"])
        assert [p.state for p in parts["run1.1"]] == ["done", "pending"]
        (second,) = parts["run1.2"]
        store.close_changes(
            conn,
            [parts["run1.1"][1], second],
            OutboxState.WITHDRAWN,
            T0 + timedelta(minutes=1),
            run_id="run2",
            reason="lead deleted in the CRM",
        )
        with pytest.raises(ValueError, match="ends rows unsent"):
            store.close_changes(conn, [second], OutboxState.DONE, T0, run_id="run2", reason="x")
    assert store.pending_count("salesforce") == 0
    assert store.unsent_by_reason(["run2"]) == {
        (AuditOutcome.WITHDRAWN, "lead deleted in the CRM"): 2
    }
    (audit,) = store.audit_of_lead("2")
    assert (audit.outcome, audit.intent_id, audit.field) == (
        "withdrawn",
        "run1.2",
        "newsletter:newsletter",
    )
    store.close()


def test_find_leads_by_email_is_case_insensitive(store_url: str) -> None:
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a", fields={"email": "Ada@Example.com"})])
    assert [r.lead_id for r in store.find_leads("ada@example.com")] == ["a"]
    store.close()


@pytest.mark.parametrize(
    "ref", ["ANN@müller.de", "ann@MÜLLER.DE", "Ann@Müller.De", "ann@müller.de", "ANN@MÜLLER.DE"]
)
def test_find_leads_finds_an_email_whatever_the_case_of_its_non_ascii_letters_when_typed(
    store_url: str, ref: str
) -> None:
    # SQLite's lower() folds ASCII letters only: 'ANN@müller.de' did not find 'ANN@MÜLLER.DE'.
    store = StateStore(store_url)
    with store.begin() as conn:
        store.upsert_leads(
            conn,
            [
                _lead("mu", fields={"email": "ANN@MÜLLER.DE"}),
                _lead("mo", fields={"email": "ann@möller.de"}),  # same ASCII letters
                _lead("ml", fields={"email": "ann@mueller.de"}),
                _lead("u_", fields={"email": "a_n@müller.de"}),  # LIKE's wildcard, literally
            ],
        )
    assert [r.lead_id for r in store.find_leads(ref)] == ["mu"]
    assert [r.lead_id for r in store.find_leads("A_N@MÜLLER.de")] == ["u_"]
    assert store.find_leads("a%n@müller.de") == []
    store.close()


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(store_url: str) -> None:
    from syncd.state import RunRow

    store = StateStore(store_url)
    store.start_run(RunRow(run_id="r1", crm="salesforce", started_at=T0))
    assert store.close_interrupted_runs(T0 + timedelta(minutes=1)) == 1
    (run,) = store.last_runs(1)
    assert run.outcome == "interrupted" and "stopped before the run finished" in run.message
    assert store.close_interrupted_runs(T0 + timedelta(minutes=2)) == 0
    store.close()


def test_forgetting_fields_drops_only_those_fields_of_that_connectors_leads_and_its_cursor(
    store_url: str,
) -> None:
    """A remapped field's values go from the mirror (syncd.field_remap), a name with a dot or
    quote as safely as any; another connector's leads and the other fields stay."""
    store = StateStore(store_url)
    fields = {"email": "a@x.io", "tier": "Gold", "odd.name's": 1, "need": "n"}
    with store.begin() as conn:
        store.upsert_leads(conn, [_lead("a", fields=fields), _lead("b", fields={"tier": "x"})])
        store.upsert_leads(conn, [_lead("h", crm="hubspot", fields={"tier": "Gold"})])
        store.save_cursor(conn, "salesforce", T0, "a", T0)
        store.save_cursor(conn, "hubspot", T0, "h", T0)
    with store.begin() as conn:
        assert store.forget_lead_fields(conn, "salesforce", ["tier", "odd.name's"]) == 2
        store.forget_cursor(conn, "salesforce")
    assert store.lead("salesforce", "a").fields == {"email": "a@x.io", "need": "n"}
    assert store.lead("salesforce", "b").fields == {}
    assert store.lead("hubspot", "h").fields == {"tier": "Gold"}
    assert store.cursor("salesforce") is None
    assert store.cursor("hubspot") is not None
    store.close()
