"""Leads a pull mirrored before reading their CRM status history (``history_pending``): a
HubSpot first sync reads that history after the pull, before the plan (``syncd.history_pending``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_pending",
        sa.Column("crm", sa.String(64), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("crm", "lead_id"),
    )


def downgrade() -> None:
    op.drop_table("history_pending")
