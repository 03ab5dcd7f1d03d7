"""Builds a real syncd App on the embedded emulators, with a config file and rules of the test's
choosing. Everything goes over sockets: the real simple-salesforce over TLS, the real
hubspot-api-client over HTTP."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.app import App
from syncd.settings import load_settings

NOW = datetime.now(UTC)

E2E_RULES = """\
version: 1
name: e2e
mode: first_match
statuses:
  New: {}
  Open: {}
  MQL: {}
  SAL: {}
  Nurture: {}
  Unqualified: {}
  Archived: {}
  Converted: {converted: true}
protected: [Converted]
rules:
  - id: misfit-archive
    when:
      all:
        - {field: free_mail, eq: true}
        - {field: title, missing: true}
    then:
      - archive: {}
  - id: stale-nurture
    when: {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""


def write_config(
    tmp_path: Path,
    *,
    rules: str = E2E_RULES,
    extra: str = "",
    breaker_share: float = 1.0,
    crms: tuple[str, ...] = ("salesforce", "hubspot"),
    leads: int = 0,
    state_url: str | None = None,
    sf_composite: bool = True,
) -> Path:
    """``sf_composite=False``: Salesforce writes each collection as a call of its own (the
    path tests of separate status and newsletter calls need)."""
    (tmp_path / "rules.yaml").write_text(rules)
    sections = {
        "salesforce": """
salesforce:
  enabled: true
  interval: 60s
  status_values: {New: Open - Not Contacted, Open: Working - Contacted,
                  Converted: Closed - Converted}
  connector:
    lag_seconds: 0   # tests seed leads a moment before the cycle
""",
        "hubspot": """
hubspot:
  enabled: true
  interval: 60s
  status_values: {New: NEW, Open: OPEN, Nurture: NURTURE, Archived: ARCHIVED, MQL: MQL, SAL: SAL,
                  Unqualified: UNQUALIFIED, Converted: CONVERTED}
  connector:
    allow_add_status_options: true
""",
    }
    body = f"""
state: {{url: "{state_url or f"sqlite:///{tmp_path / 'state.db'}"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: {breaker_share}, min_changes: 1}}
server: {{enabled: false}}
embedded: {{enabled: true, leads: {leads}, rep_activity: false, fresh_state: false}}
"""
    if not sf_composite:
        sections["salesforce"] += "    composite: false\n"
    body += "".join(sections[c] for c in crms) + textwrap.dedent(extra)
    path = tmp_path / "syncd.yaml"
    path.write_text(body)
    return path


#: Connector retries without waits: a CRM answering 503 fails its request at once.
FAST_RETRY = "    retry: {attempts: 2, initial_backoff_seconds: 0, jitter_seconds: 0}\n"


def standalone_sf_config(
    tmp_path: Path,
    emu: Any,
    *,
    state_url: str | None = None,
    server: str = "{enabled: false}",
    connector_extra: str = "",
    rules: str = E2E_RULES,
    salesforce_extra: str = "",
) -> Path:
    """A Salesforce-only config on a standalone emulator ``emu`` (a SalesforceEmulator started
    by the test), ``rules`` (E2E_RULES), its client secret in SF_SECRET; ``salesforce_extra``
    and ``connector_extra`` are more lines of the ``salesforce`` and ``connector`` blocks."""
    (tmp_path / "rules.yaml").write_text(rules)
    campaign = emu.add_campaign("Newsletter")
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""\
state: {{url: "{state_url or "sqlite:///" + str(tmp_path / "state.db")}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {server}
salesforce:
  interval: 10s
  status_values:
    {{New: Open - Not Contacted, Open: Working - Contacted, Converted: Closed - Converted}}
{salesforce_extra}  connector:
    instance_url: {emu.base_url}
    token_url: {emu.token_url}
    ca_bundle: {emu.ca_pem_path}
    auth:
      {{type: client_credentials, client_id: {emu.client_id}, client_secret: {{env: SF_SECRET}}}}
    newsletters: {{newsletter: {campaign}}}
    lag_seconds: 0
{connector_extra}""")
    return config


@contextmanager
def running_app(config: Path, **kwargs: Any) -> Iterator[App]:
    app = App.build(load_settings(config), **kwargs)
    try:
        yield app
    finally:
        app.close()


def sf_lead(
    last: str,
    email: str,
    *,
    title: str | None,
    status: str = "Open - Not Contacted",
    activity_days: int | None = 2,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "LastName": last,
        "Company": f"{last} Inc",
        "Email": email,
        "Status": status,
    }
    if title:
        record["Title"] = title
    if activity_days is not None:
        record["LastActivityDate"] = (NOW - timedelta(days=activity_days)).date()
    record.update(extra)
    return record


def hs_contact(
    last: str,
    email: str,
    *,
    title: str | None,
    status: str = "NEW",
    activity_days: int | None = 2,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "lastname": last,
        "company": f"{last} Inc",
        "email": email,
        "hs_lead_status": status,
    }
    if title:
        record["jobtitle"] = title
    if activity_days is not None:
        when = NOW - timedelta(days=activity_days)
        record["notes_last_updated"] = when.isoformat().replace("+00:00", "Z")
    record.update(extra)
    return record


def newsletter_id(app: App, crm: str, name: str = "newsletter") -> str:
    return app.embedded.connector_overrides(crm)["newsletters"][name]


def sf_write_calls(app: App) -> list[Any]:
    return [e for e in app.embedded.salesforce.journal.writes()]


def outbox_states(app: App) -> dict[tuple[str, str], int]:
    """Outbox rows by (kind, state)."""
    with app.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state"
        ).all()
    return {(k, s): n for k, s, n in rows}


def sf_statuses_patched(app: App) -> list[str]:
    """Ids of every lead record a Composite status collection (PATCH) applied, once per time
    the org applied it: a lead written twice is in it twice."""
    return [
        r
        for e in app.embedded.salesforce.journal.writes()
        for s in e.subrequests
        if s.method == "PATCH" and s.status == 200
        for r in s.record_ids
    ]


def hs_write_calls(app: App) -> list[Any]:
    return [
        e
        for e in app.embedded.hubspot.journal.entries()
        if e.method in ("PATCH", "PUT") or (e.method == "POST" and "/batch/update" in e.path)
    ]


__all__ = [
    "E2E_RULES",
    "NOW",
    "date",
    "hs_contact",
    "hs_write_calls",
    "newsletter_id",
    "outbox_states",
    "running_app",
    "sf_lead",
    "sf_statuses_patched",
    "sf_write_calls",
    "write_config",
]
