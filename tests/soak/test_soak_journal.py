"""How the soak reads an emulator's journal: a Composite request's lost answer is every
subrequest's lost answer, whatever else befell a subrequest (the long soak once counted the
unavoidable resend after a lost answer as a change sent twice, because a row-lock fault on the
collection hid the request's ``drop-after``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from tests.soak.invariants import Observed, no_change_sent_twice
from tests.soak.world import Emulator

API = "59.0"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator.start("salesforce", leads=20, seed=5)
    try:
        yield emu
    finally:
        emu.stop()


def _client(emu: Emulator) -> Salesforce:
    session = requests.Session()
    session.trust_env = False
    session.verify = emu.info["ca_pem_path"]
    token = session.post(
        emu.info["token_url"],
        data={
            "grant_type": "client_credentials",
            "client_id": emu.info["client_id"],
            "client_secret": emu.info["client_secret"],
        },
        timeout=10,
    )
    token.raise_for_status()
    return Salesforce(
        instance_url=emu.base_url,
        session_id=token.json()["access_token"],
        session=session,
        version=API,
    )


def _status_write(ids: list[str]) -> dict[str, Any]:
    records = [{"attributes": {"type": "Lead"}, "Id": i, "Status": "Nurture"} for i in ids]
    return {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"/services/data/v{API}/composite/sobjects",
                "referenceId": "statuses",
                "body": {"allOrNone": False, "records": records},
            }
        ],
    }


def test_a_resend_after_a_lost_composite_answer_is_not_a_change_sent_twice_despite_a_row_lock(
    emulator: Emulator,
) -> None:
    sf = _client(emulator)
    ids = [r["Id"] for r in sf.query("SELECT Id FROM Lead")["records"]]
    emulator.script_faults(
        {"kind": "drop-after", "count": 1, "path": "/composite$", "method": "POST"},
        {"kind": "lock", "count": 2, "path": "composite/sobjects", "method": "PATCH"},
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.restful("composite", method="POST", json=_status_write(ids))
    sf.restful("composite", method="POST", json=_status_write(ids))  # the client's resend

    journal = emulator.journal()
    writes = [e for e in journal if e.get("subrequest") and e["kind"] == "update"]
    assert len(writes) == 2
    lost, resent = writes
    assert lost["written"], "the row lock left nothing applied: the test proves nothing"
    assert set(lost["written"]) & set(resent["written"])
    assert lost["fault"] == "drop-after"
    world = Observed(state={"salesforce": {}}, journal={"salesforce": journal}, outbox=[], audit=[])
    assert no_change_sent_twice(world, world) == []
