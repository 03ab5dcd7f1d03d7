"""Migration 0008: the held and blocked lead indexes hold only held and blocked leads, and the
cycle's counts are still answered from them on both databases (not by a scan of the mirror)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from syncd.schema import _config, schema_status
from syncd.state import LeadRow, StateStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lead(lead_id: str, *, rep_edit_at: datetime | None, blocked: bool | None) -> dict[str, object]:
    return {
        "crm": "salesforce",
        "lead_id": lead_id,
        "modified_at": T0.replace(tzinfo=None),
        "status": "New",
        "rep_edit_at": None if rep_edit_at is None else rep_edit_at.replace(tzinfo=None),
        "guard_blocked": blocked,
        "t": T0.replace(tzinfo=None),
    }


_INSERT = sa.text(
    "INSERT INTO lead (crm, lead_id, modified_at, fields, enrichment, reasons, status, deleted, "
    "converted, newsletters, first_seen_at, pulled_at, rep_edit_at, guard_blocked) VALUES "
    "(:crm, :lead_id, :modified_at, '{}', '{}', '{}', :status, false, false, '[]', :t, :t, "
    ":rep_edit_at, :guard_blocked)"
)


def test_a_0007_store_upgrades_to_partial_indexes_that_still_count_held_and_blocked_leads(
    store_url: str,
) -> None:
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0007")
        conn.execute(
            _INSERT,
            [
                _lead("held", rep_edit_at=T0, blocked=False),
                _lead("blocked", rep_edit_at=None, blocked=True),
                _lead("plain", rep_edit_at=None, blocked=None),
                _lead("held-long-ago", rep_edit_at=T0 - timedelta(days=90), blocked=False),
            ],
        )
    engine.dispose()
    store = StateStore(store_url, auto_upgrade=True)
    try:
        assert schema_status(store.engine).up_to_date
        assert store.count_held_and_blocked("salesforce", T0 - timedelta(days=1)) == (1, 1)
        dialect = store.engine.dialect.name
        with store.engine.connect() as conn:
            if dialect == "postgresql":
                definitions = dict(
                    conn.execute(
                        sa.text(
                            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'lead'"
                        )
                    ).all()
                )
            else:
                definitions = dict(
                    conn.execute(
                        sa.text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'lead'")
                    ).all()
                )
        assert "rep_edit_at IS NOT NULL" in definitions["ix_lead_rep_edit"]
        assert "WHERE" in definitions["ix_lead_blocked"].upper()
        assert "guard_blocked" in definitions["ix_lead_blocked"].split("WHERE")[-1]
    finally:
        store.close()


def test_held_and_blocked_counts_read_the_partial_indexes(store_url: str) -> None:
    store = StateStore(store_url, auto_upgrade=True)
    try:
        held, blocked = store.held_and_blocked_counts("salesforce", T0)
        query = sa.select(held, blocked)
        dialect = store.engine.dialect
        compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        with store.engine.begin() as conn:
            if dialect.name == "postgresql":
                # A tiny table is cheaper to scan; ask the planner for the index path it has.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            else:
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
                plan = "\n".join(str(r[-1]) for r in rows)
        assert "ix_lead_rep_edit" in plan, plan
        assert "ix_lead_blocked" in plan, plan
        assert "SCAN lead" not in plan and "Seq Scan" not in plan, plan
    finally:
        store.close()


def test_the_lead_model_declares_the_partial_indexes_the_migration_makes() -> None:
    indexes = {i.name: i for i in LeadRow.__table__.indexes}
    for name in ("ix_lead_rep_edit", "ix_lead_blocked"):
        options = indexes[name].dialect_options
        assert options["postgresql"]["where"] is not None, name
        assert options["sqlite"]["where"] is not None, name
