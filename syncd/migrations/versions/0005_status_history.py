"""The status history ledger: one row per observed transition of a lead's lifecycle fields.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(64), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("from_value", sa.String()),
        sa.Column("to_value", sa.String()),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String()),
        sa.Column("rule_id", sa.String()),
        sa.Column("run_id", sa.String()),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_history_lead", "status_history", ["crm", "lead_id", "at"])
    op.create_index("ix_history_field_to", "status_history", ["field", "to_value", "at"])
    op.create_index("ix_history_at", "status_history", ["at"])


def downgrade() -> None:
    op.drop_table("status_history")
