"""An audit row that ends a change unsent or failed says when the CRM may hold it anyway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.state import MAY_HAVE_LANDED, AuditOutcome, OutboxState, audit_values

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class _Change:
    state: str = OutboxState.PENDING
    may_have_landed: bool = False
    crm: str = "salesforce"
    lead_id: str = "L1"
    kind: str = "membership"
    field: str = "newsletter"
    value: Any = True
    before: Any = False
    rule_id: str | None = "r1"
    ruleset_version: str | None = "v1"
    intent_id: str = "run1.L1"


def _message(change: _Change, outcome: AuditOutcome, message: str | None) -> str | None:
    row = audit_values(change, outcome, NOW, "run2", message=message)  # type: ignore[arg-type]
    return row["message"]


@pytest.mark.parametrize(
    "outcome", [AuditOutcome.FAILED, AuditOutcome.WITHDRAWN, AuditOutcome.SUPERSEDED]
)
def test_a_change_settled_after_a_lost_answer_says_it_may_have_landed_when_it_ends_unsent(
    outcome: AuditOutcome,
) -> None:
    settled = _Change(may_have_landed=True)
    assert _message(settled, outcome, "lead deleted in the CRM") == (
        f"lead deleted in the CRM; {MAY_HAVE_LANDED}"
    )
    assert _message(settled, outcome, None) == MAY_HAVE_LANDED
    in_flight = _Change(state=OutboxState.SENDING)
    assert _message(in_flight, outcome, "lead converted in the CRM") == (
        f"lead converted in the CRM; {MAY_HAVE_LANDED}"
    )


def test_a_message_that_already_says_unconfirmed_is_not_told_twice() -> None:
    said = "sent but unconfirmed (the answer was lost); someone else changed the status"
    assert _message(_Change(may_have_landed=True), AuditOutcome.WITHDRAWN, said) == said


@pytest.mark.parametrize("outcome", [AuditOutcome.APPLIED, AuditOutcome.ALREADY_IN_PLACE])
def test_a_change_the_crm_confirmed_is_audited_as_it_is(outcome: AuditOutcome) -> None:
    assert _message(_Change(may_have_landed=True), outcome, None) is None


def test_a_change_never_in_doubt_ends_without_the_note() -> None:
    assert _message(_Change(), AuditOutcome.WITHDRAWN, "lead deleted in the CRM") == (
        "lead deleted in the CRM"
    )
