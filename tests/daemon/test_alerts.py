"""Alerts over plain webhooks, against a loopback HTTP receiver: each SLA breach is sent once
(a digest per owner), not once per cycle; a channel that fails is logged and counted, never
fatal, and its URL (which holds a token) never appears in the logs."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from syncd.state import LeadRow
from tests.daemon.harness import running_app, write_config
from tests.daemon.test_kpi import _seed_ledger


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_sla_breach_is_sent_once_per_owner_not_once_per_cycle(
    tmp_path: Path,
    receiver: tuple[int, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, received = receiver
    # Webhook URLs hold their tokens, so they come from the environment, as README says.
    monkeypatch.setenv("SALES_HOOK", f"http://127.0.0.1:{port}/hook/TOKEN-abc")
    monkeypatch.setenv("BROKEN_HOOK", f"http://127.0.0.1:{_closed_port()}/hook/TOKEN-xyz")
    config = write_config(
        tmp_path,
        extra="""
alerts:
  channels:
    - {name: sales, url: {env: SALES_HOOK}, events: [sla_breach, acceptance_below_target]}
    - {name: broken, url: {env: BROKEN_HOOK}, timeout: 2s}
""",
    )
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    monday = today - timedelta(days=today.weekday() + 21)
    caplog.set_level(logging.INFO)
    with running_app(config) as app:
        _seed_ledger(app.store.engine, config, monday)
        with Session(app.store.engine) as session:
            for n in range(5):  # group D of the fixture: SAL, never followed up
                session.add(
                    LeadRow(crm="hubspot", lead_id=f"d{n:02d}", modified_at=now,
                            fields={"owner": "dan"}, status="SAL", first_seen_at=now,
                            pulled_at=now)
                )  # fmt: skip
            session.commit()
        for _ in range(3):
            for name in ("hubspot", "salesforce"):
                assert app.pipelines[name].run_cycle().outcome == "ok"
        failed = app.metrics.registry.get_sample_value(
            "syncd_alerts_failed_total", {"channel": "broken"}
        )
    sla = [m for m in received if m["event"] == "sla_breach"]
    assert len(sla) == 1, sla
    assert sla[0]["owner"] == "dan" and sla[0]["crm"] == "hubspot"
    assert sorted(b["lead_id"] for b in sla[0]["breaches"]) == [f"d{n:02d}" for n in range(5)]
    # salesforce accepted 15 of 25 (C's 10 rejected): under 90 %, said once (repeat_after 24h).
    acceptance = [m for m in received if m["event"] == "acceptance_below_target"]
    assert [(m["crm"], m["acceptance_rate"]) for m in acceptance] == [("salesforce", 0.6)]
    assert len(received) == 2
    # The broken channel failed once and was counted; then it rests for a minute rather than
    # costing every later digest of these cycles a timeout.
    assert failed == 1
    assert "alert channel broken: could not send" in caplog.text
    assert "TOKEN" not in caplog.text


class _Meta(dict[str, Any]):
    def get_meta(self, key: str) -> Any:
        return self.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self[key] = value


def test_a_channel_past_max_per_hour_waits_and_sends_the_rest_later(
    receiver: tuple[int, list[dict[str, Any]]],
) -> None:
    from syncd.alerts import Alerter
    from syncd.report import OpenBreach, Report
    from syncd.settings import AlertSettings

    port, received = receiver
    settings = AlertSettings.model_validate(
        {"channels": [{"name": "s", "url": f"http://127.0.0.1:{port}/", "max_per_hour": 1}]}
    )
    clock = [0.0]
    alerter = Alerter(settings, _Meta(), clock=lambda: clock[0])
    since = datetime(2026, 9, 7, 13, tzinfo=UTC)
    funnel = Report(
        "all",
        [],
        open_breaches=[
            OpenBreach("hubspot", "d1", "dan", since, 20),
            OpenBreach("hubspot", "e1", "eve", since, 20),
        ],
    )

    class Cycle:
        crm, run_id, outcome, failed, written, planned = "hubspot", "r1", "ok", 0, 0, 0

    alerter.after_cycle(Cycle(), funnel)
    alerter.after_cycle(Cycle(), funnel)  # still within the hour: eve's digest waits
    assert [m["owner"] for m in received] == ["dan"]
    clock[0] = 3601.0
    alerter.after_cycle(Cycle(), funnel)
    alerter.after_cycle(Cycle(), funnel)
    assert [m["owner"] for m in received] == ["dan", "eve"]


def test_no_leader_is_sent_once_by_a_standby_after_the_grace_and_resolved_when_one_leads(
    tmp_path: Path, receiver: tuple[int, list[dict[str, Any]]]
) -> None:
    """Two replicas on one store: the leader stops, the lease stays unheld; a standby's watch
    says so once after ``no_leader_after`` (not before, not every check, not again from the
    other replica), and once more when a leader holds the lease again."""
    from syncd.alerts import Alerter
    from syncd.leader_watch import LeaderWatch
    from syncd.lease import Identity, Lease
    from syncd.settings import AlertSettings
    from syncd.state import StateStore

    port, received = receiver
    settings = AlertSettings.model_validate(
        {
            "channels": [
                {"name": "ops", "url": f"http://127.0.0.1:{port}/hook/TOKEN-ops",
                 "events": ["no_leader"]},
            ],
            "no_leader_after": "5m",
        }
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'state.db'}"
    leader_store, standby_store, other_store = StateStore(url), StateStore(url), StateStore(url)
    clock = [datetime.now(UTC)]

    def watch(store: StateStore) -> LeaderWatch:
        alerter = Alerter(settings, store, now=lambda: clock[0])
        return LeaderWatch(
            store, alerter, ["hubspot"], grace=settings.no_leader_after, now=lambda: clock[0]
        )

    def lease(store: StateStore, who: str) -> Lease:
        ttl = timedelta(seconds=30)
        return Lease(store, "hubspot", ttl=ttl, renew_every=ttl / 3, identity=Identity(who, 1, who))

    try:
        first, second = lease(leader_store, "pod-a"), lease(standby_store, "pod-b")
        standby, other = watch(standby_store), watch(other_store)
        assert first.try_acquire()
        standby.check()
        assert received == []  # led: nothing to say
        first.release()  # the leader stops; say every standby fails to start its cycles
        held = first.holder()
        assert held is not None
        released = held.expires_at  # the release expired the lease at once
        clock[0] = released + timedelta(minutes=4)
        standby.check()
        assert received == []  # within the grace a standby normally takes over
        clock[0] = released + timedelta(minutes=6)
        standby.check()
        standby.check()
        clock[0] = released + timedelta(minutes=7)
        other.check()  # another replica sees it already sent (shared meta table)
        assert [(m["event"], m["connector"], m["minutes"]) for m in received] == [
            ("no_leader", "hubspot", 6)
        ]
        assert "no syncd process has led this connector for 6 minutes" in received[0]["text"]
        assert "host pod-a" in received[0]["text"]
        assert second.try_acquire()
        clock[0] = datetime.now(UTC)
        standby.check()
        standby.check()
        assert len(received) == 2
        assert (
            received[1]["resolved"] is True
            and "leads this connector again" in (received[1]["text"])
        )
        assert "TOKEN" not in json.dumps(received)
        second.release()
    finally:
        for store in (leader_store, standby_store, other_store):
            store.close()
