"""The state store as syncd 0.1 created it (mirror, cursor, outbox, audit, run, meta).

A database made by 0.1 (before Alembic) has exactly these tables and no ``alembic_version``;
``syncd.schema`` recognises it, stamps it at this revision and upgrades it from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead",
        sa.Column("crm", sa.String(16), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("enrichment", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String()),
        sa.Column("status_changed_at", sa.DateTime()),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("written_status", sa.String()),
        sa.Column("written_at", sa.DateTime()),
        sa.Column("rep_edit_at", sa.DateTime()),
        sa.Column("rep_edit_status", sa.String()),
        sa.Column("newsletters", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String()),
        sa.Column("error_message", sa.String()),
        sa.Column("error_at", sa.DateTime()),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("crm", "lead_id"),
    )
    op.create_table(
        "cursor",
        sa.Column("crm", sa.String(16), nullable=False),
        sa.Column("object", sa.String(32), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("read_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("crm", "object"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(16), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("value", sa.JSON()),
        sa.Column("before", sa.JSON()),
        sa.Column("rule_id", sa.String()),
        sa.Column("ruleset_version", sa.String()),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("error_code", sa.String()),
        sa.Column("error_message", sa.String()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_crm_state", "outbox", ["crm", "state", "next_attempt_at"])
    op.create_index("ix_outbox_lead", "outbox", ["crm", "lead_id"])
    op.create_index("ix_outbox_drain_fields", "outbox", ["crm", "kind", "state", "lead_id", "id"])
    op.create_index(
        "ix_outbox_drain_members", "outbox", ["crm", "kind", "state", "field", "lead_id", "id"]
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("lead_id", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("before", sa.JSON()),
        sa.Column("after", sa.JSON()),
        sa.Column("rule_id", sa.String()),
        sa.Column("ruleset_version", sa.String()),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("error_code", sa.String()),
        sa.Column("message", sa.String()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_lead", "audit", ["crm", "lead_id"])
    op.create_index("ix_audit_run", "audit", ["run_id"])
    op.create_table(
        "run",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("ruleset_version", sa.String()),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "pulled",
                "deleted",
                "planned",
                "written",
                "failed",
                "retrying",
                "held",
                "blocked",
                "api_calls",
            )
        ],
        sa.Column("message", sa.String()),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    for table in ("meta", "run", "audit", "outbox", "cursor", "lead"):
        op.drop_table(table)
