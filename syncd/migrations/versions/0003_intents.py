"""Decisions delivered whole: an intent id on outbox and audit rows.

Every outbox row planned for one lead in one planning decision shares ``intent_id``; the
planner keeps delivering an intent once part of it reached the CRM. Rows of a 0.1 store predate
intents: each becomes an intent of its own run and lead (``<run_id>.<lead_id>``), which is what
the planner would have given them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("intent_id", sa.String(96), nullable=True))
    op.execute("UPDATE outbox SET intent_id = run_id || '.' || lead_id WHERE intent_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("intent_id", existing_type=sa.String(96), nullable=False)
    op.create_index("ix_outbox_intent", "outbox", ["intent_id", "state"])
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("intent_id", sa.String(96), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("intent_id")
    op.drop_index("ix_outbox_intent", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("intent_id")
