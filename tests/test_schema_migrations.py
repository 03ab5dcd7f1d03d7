"""Alembic owns the state store's schema: empty, 0.1, behind, current and newer databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from syncd.schema import schema_status, upgrade
from syncd.state import StateStore, StateStoreError

V0_1_DDL = (Path(__file__).parent / "fixtures" / "state_v0_1.sql").read_text()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _make_v0_1_store(url: str) -> None:
    """A database as syncd 0.1 left it: its tables and rows, no alembic_version."""
    engine = sa.create_engine(url)
    ddl = re.sub(r"^--.*$", "", V0_1_DDL, flags=re.M)
    if engine.dialect.name == "postgresql":
        ddl = ddl.replace("DATETIME", "TIMESTAMP WITHOUT TIME ZONE")
        ddl = ddl.replace("id INTEGER NOT NULL", "id SERIAL NOT NULL")
    with engine.begin() as conn:
        for statement in filter(str.strip, ddl.split(";")):
            conn.exec_driver_sql(statement)
        conn.execute(
            sa.text(
                "INSERT INTO lead (crm, lead_id, modified_at, fields, enrichment, reasons, status, "
                "status_changed_at, deleted, converted, written_status, rep_edit_at, "
                "rep_edit_status, newsletters, first_seen_at, pulled_at) VALUES ('salesforce', "
                "'00Q1', :t, '{}', '{}', '{}', 'Working', :t, false, false, 'Nurture', :t, "
                "'Working', '[]', :t, :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO outbox (crm, lead_id, kind, field, value, run_id, state, attempts, "
                "created_at, updated_at) VALUES ('hubspot', '42', 'field', 'status', '\"NURTURE\"', "
                "'r1', 'pending', 0, :t, :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                'INSERT INTO audit (crm, lead_id, field, "before", "after", run_id, at, outcome) '
                "VALUES ('salesforce', '00Q1', 'status', '\"New\"', '\"Nurture\"', 'r0', :t, "
                "'applied')"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
    engine.dispose()


def _counts(store: StateStore) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("lead", "outbox", "audit")
        )  # type: ignore[return-value]


def test_an_empty_database_gets_the_newest_schema(store_url: str) -> None:
    store = StateStore(store_url, auto_upgrade=False)  # creating tables loses nothing
    assert schema_status(store.engine).up_to_date
    store.close()


def test_a_0_1_store_upgrades_in_place_keeping_holds_pending_changes_and_audit(
    store_url: str,
) -> None:
    _make_v0_1_store(store_url)
    store = StateStore(store_url, auto_upgrade=True)
    try:
        assert schema_status(store.engine).up_to_date
        assert _counts(store) == (1, 1, 1)
        lead = store.lead("salesforce", "00Q1")
        assert lead is not None and lead.rep_edit_status == "Working"
        assert store.pending_count("hubspot") == 1
        assert [r.after for r in store.audit_of_lead("00Q1")] == ["Nurture"]
    finally:
        store.close()


def test_a_store_behind_is_refused_without_auto_upgrade_naming_the_command(store_url: str) -> None:
    _make_v0_1_store(store_url)
    with pytest.raises(StateStoreError, match=r"syncd 0\.1.*syncd db upgrade"):
        StateStore(store_url, auto_upgrade=False)
    engine = sa.create_engine(store_url)
    before, after = upgrade(engine)
    engine.dispose()
    assert before.legacy and after.up_to_date
    store = StateStore(store_url, auto_upgrade=False)
    assert _counts(store) == (1, 1, 1)
    store.close()


def test_a_store_made_by_a_newer_syncd_is_refused(store_url: str) -> None:
    StateStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'fffffffff'"))
    engine.dispose()
    with pytest.raises(StateStoreError, match="newer syncd"):
        StateStore(store_url)


def test_postgres_defaults_to_explicit_upgrades_and_sqlite_to_automatic(store_url: str) -> None:
    _make_v0_1_store(store_url)
    if store_url.startswith("sqlite"):
        StateStore(store_url).close()  # default: upgraded in place
    else:
        with pytest.raises(StateStoreError, match="syncd db upgrade"):
            StateStore(store_url)


def test_the_migrations_build_exactly_the_models(store_url: str) -> None:
    store = StateStore(store_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    store.close()
    # Column changes come grouped in lists. A type reported as changed is reflection noise (a
    # model's DateTime reads back as TIMESTAMP); tables, columns, nullability and indexes count.
    flat = [d for item in diff for d in (item if isinstance(item, list) else [item])]
    assert [d for d in flat if d[0] != "modify_type"] == []


def test_after_upgrading_a_0_1_store_a_cycle_keeps_holds_and_sends_pending_changes_once(
    store_url: str, tmp_path: Path
) -> None:
    """A 0.1 store whose mirror holds a person's edit and a pending change, upgraded in place:
    the next cycle leaves the held lead alone and sends the pending change exactly once."""
    from connectors.testing.salesforce import SalesforceEmulator
    from syncd.app import App
    from syncd.settings import load_settings
    from tests.daemon.harness import E2E_RULES, sf_lead

    with SalesforceEmulator() as emu:
        campaign = emu.add_campaign("Newsletter")
        held, pending = emu.add_leads(
            [
                sf_lead("Held", "held@acme.com", title="CTO", activity_days=200),
                sf_lead("Pending", "pending@acme.com", title="CTO", activity_days=200),
            ]
        )
        _make_v0_1_store(store_url)  # holds '00Q1' and a pending row of lead '42': replace them
        engine = sa.create_engine(store_url)
        t0 = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM lead"))
            conn.execute(sa.text("DELETE FROM outbox"))
            for lead_id, rep in ((held, True), (pending, False)):
                conn.execute(
                    sa.text(
                        "INSERT INTO lead (crm, lead_id, modified_at, fields, enrichment, "
                        "reasons, status, status_changed_at, deleted, converted, rep_edit_at, "
                        "rep_edit_status, newsletters, first_seen_at, pulled_at) VALUES "
                        "('salesforce', :id, :t, '{}', '{}', '{}', 'Open - Not Contacted', :t, "
                        "false, false, :rep_at, :rep_status, '[]', :t, :t)"
                    ),
                    {
                        "id": lead_id,
                        "t": t0,
                        "rep_at": t0 if rep else None,
                        "rep_status": "Open - Not Contacted" if rep else None,
                    },
                )
            conn.execute(
                sa.text(
                    'INSERT INTO outbox (crm, lead_id, kind, field, value, "before", run_id, '
                    "state, attempts, created_at, updated_at) VALUES ('salesforce', :id, "
                    "'field', 'status', '\"Nurture\"', '\"Open - Not Contacted\"', 'old', "
                    "'pending', 0, :t, :t)"
                ),
                {"id": pending, "t": t0},
            )
        engine.dispose()
        (tmp_path / "rules.yaml").write_text(E2E_RULES)
        config = tmp_path / "syncd.yaml"
        config.write_text(
            f"""
state: {{url: "{store_url}", auto_upgrade: true}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
salesforce:
  status_values: {{New: Open - Not Contacted, Open: Working - Contacted}}
  connector:
    instance_url: {emu.base_url}
    token_url: {emu.token_url}
    ca_bundle: {emu.ca_pem_path}
    lag_seconds: 0
    auth: {{type: client_credentials, client_id: {emu.client_id}, client_secret: {{env: S}}}}
    newsletters: {{newsletter: {campaign}}}
"""
        )
        app = App.build(load_settings(config, env={"S": emu.client_secret}))
        try:
            assert schema_status(app.store.engine).up_to_date
            report = app.pipelines["salesforce"].run_cycle()
            assert report.outcome == "ok", report.message
            assert report.held == 1
            # Collections PATCHes, standalone or carried by a Composite request
            patched = [
                rid
                for call in emu.journal.writes()
                for e in [call, *call.subrequests]
                if e.method == "PATCH" and e.status == 200
                for rid in e.written
            ]
            assert patched == [pending]  # the pending change, once; the held lead untouched
            assert emu.lead(held)["Status"] == "Open - Not Contacted"
            assert emu.lead(pending)["Status"] == "Nurture"
            assert app.pipelines["salesforce"].run_cycle().planned == 0
        finally:
            app.close()


def test_a_0005_store_upgrades_to_due_times_live_leads_due_at_once_deleted_never(
    store_url: str,
) -> None:
    """Migration 0006 (``lead.due_at``): every live lead of an older store is evaluated at the
    next cycle (NULL); deleted and converted leads, never evaluated, are never due."""
    from alembic import command

    from syncd.schema import _config
    from syncd.state import NEVER_DUE

    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0005")
        for lead_id, deleted, converted in (
            ("live", False, False),
            ("gone", True, False),
            ("won", False, True),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO lead (crm, lead_id, modified_at, fields, enrichment, reasons, "
                    "status, deleted, converted, newsletters, first_seen_at, pulled_at) VALUES "
                    "('salesforce', :id, :t, '{}', '{}', '{}', 'New', :d, :c, '[]', :t, :t)"
                ),
                {"id": lead_id, "t": T0.replace(tzinfo=None), "d": deleted, "c": converted},
            )
    engine.dispose()
    store = StateStore(store_url, auto_upgrade=True)
    try:
        assert schema_status(store.engine).up_to_date
        with store.engine.connect() as conn:
            due = dict(conn.execute(sa.text("SELECT lead_id, due_at FROM lead")).all())
        assert due["live"] is None
        never = NEVER_DUE.replace(tzinfo=None)
        assert {_naive(due["gone"]), _naive(due["won"])} == {never}
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("lead")}
        assert {"ix_lead_due", "ix_lead_rep_edit", "ix_lead_blocked"} <= indexes
    finally:
        store.close()


def _naive(value: object) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=None)


def test_holds_stay_status_edits_with_their_reason_when_a_0010_store_upgrades(
    store_url: str,
) -> None:
    """Migration 0011 (``lead.rep_edit_field``): every hold of an older store was a person's
    status edit; it stays one, with the same reason, and the lead's other columns are kept."""
    from alembic import command

    from syncd.holds import held_reason
    from syncd.plan import _held
    from syncd.schema import _config

    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0010")
        conn.execute(
            sa.text(
                "INSERT INTO lead (crm, lead_id, modified_at, fields, enrichment, reasons, "
                "status, deleted, converted, written_status, rep_edit_at, rep_edit_status, "
                "newsletters, first_seen_at, pulled_at) VALUES ('hubspot', '42', :t, "
                "'{\"lifecycle_stage\": \"lead\"}', '{}', '{}', 'OPEN', false, false, "
                "'NEW', :t, 'OPEN', '[]', :t, :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
    engine.dispose()
    store = StateStore(store_url, auto_upgrade=True)
    try:
        assert schema_status(store.engine).up_to_date
        hold = timedelta(days=14)
        [held] = _held(store, "hubspot", hold, T0 + timedelta(days=1))
        with store.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, written_status, rep_edit_field, fields FROM lead")
            ).one()
    finally:
        store.close()
    assert held == {"lead_id": "42", "reason": held_reason("OPEN", T0, hold)}
    assert held["reason"].startswith("status set to 'OPEN' by a person at 2026-03-01 12:00 UTC")
    assert (row.status, row.written_status, row.rep_edit_field) == ("OPEN", "NEW", None)
    assert "lifecycle_stage" in str(row.fields)


def test_three_processes_opening_a_new_store_at_once_all_start_on_the_newest_schema(
    store_url: str,
) -> None:
    """Two daemons started together on a new store (a rolling update's first start, `syncd
    status` run as the daemon starts): the second waits for the first's upgrade, then finds
    the store up to date. On SQLite both used to find it empty and the second's Alembic run
    failed on the first's tables."""
    import subprocess
    import sys

    # Each imports syncd first and opens the store when told, so that the opens race.
    opens = (
        "import sys\n"
        "from syncd.state import StateStore\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "StateStore(sys.argv[1], auto_upgrade=True)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", opens, store_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    failures = [err for p in procs for _, err in [p.communicate(timeout=120)] if p.returncode]
    assert failures == []
    assert schema_status(sa.create_engine(store_url)).up_to_date


def test_a_process_killed_while_creating_a_new_store_leaves_it_empty_for_the_next_start(
    store_url: str,
) -> None:
    """The first start's upgrade is one transaction: killed after some tables were made (here
    at the third CREATE TABLE), it leaves no table behind. On SQLite each CREATE used to commit
    on its own, and the next start refused the half-made store as tables syncd does not know."""
    import subprocess
    import sys

    killed_mid_upgrade = (
        "import os, sys\n"
        "from alembic.operations import Operations\n"
        "made = []\n"
        "create = Operations.create_table\n"
        "def dies_at_the_third(self, *args, **kw):\n"
        "    made.append(args[0])\n"
        "    if len(made) == 3:\n"
        "        os._exit(9)  # as SIGKILL: no rollback, no cleanup\n"
        "    return create(self, *args, **kw)\n"
        "Operations.create_table = dies_at_the_third\n"
        "from syncd.state import StateStore\n"
        "StateStore(sys.argv[1], auto_upgrade=True)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", killed_mid_upgrade, store_url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == 9, killed.stderr
    engine = sa.create_engine(store_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()
    store = StateStore(store_url, auto_upgrade=True)
    try:
        assert schema_status(store.engine).up_to_date
    finally:
        store.close()


#: Revisions made before the rule below: 0002 widened the crm columns (harmless to older code)
#: and 0003 made outbox.intent_id required (a daemon of the release before it failed its
#: outbox writes during that rollout; nothing was lost, its cycles failed and were redone).
_BEFORE_THE_EXPAND_RULE = {"0002", "0003"}


def _columns(engine: sa.Engine) -> dict[str, dict[str, dict[str, object]]]:
    inspector = sa.inspect(engine)
    return {
        table: {c["name"]: c for c in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def test_every_migration_leaves_the_previous_release_its_tables_and_columns_and_asks_no_new_value(
    store_url: str,
) -> None:
    """README's upgrade runs `syncd db upgrade` before the rollout, so the running leader, a
    release older, works on the new schema until it is replaced: every migration only adds
    (tables, indexes, columns the old code need not fill: nullable or with a server default)
    and drops, renames or retypes nothing the older code reads or writes."""
    from alembic import command

    from syncd.schema import _config, _script

    revisions = [r.revision for r in reversed(list(_script().walk_revisions()))]
    engine = sa.create_engine(store_url)
    problems = []
    with engine.begin() as conn:
        command.upgrade(_config(conn), revisions[0])
    before = _columns(engine)
    for revision in revisions[1:]:
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision)
        after = _columns(engine)
        if revision not in _BEFORE_THE_EXPAND_RULE:
            for table, columns in before.items():
                if table not in after:
                    problems.append(f"{revision} drops table {table}")
                    continue
                for name, column in columns.items():
                    kept = after[table].get(name)
                    if kept is None:
                        problems.append(f"{revision} drops {table}.{name}")
                    elif str(kept["type"]) != str(column["type"]):
                        problems.append(f"{revision} retypes {table}.{name}")
                    elif column["nullable"] and not kept["nullable"]:
                        problems.append(f"{revision} makes {table}.{name} required")
                for name, column in after[table].items():
                    if name not in columns and not column["nullable"] and column["default"] is None:
                        problems.append(f"{revision} adds required {table}.{name} with no default")
        before = after
    engine.dispose()
    assert problems == []
