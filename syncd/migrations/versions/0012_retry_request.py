"""An operator's request to plan refused writes again: ``retry_request`` (``syncd retry``).

A write the CRM refused for good waits until the lead changes in the CRM. ``syncd retry``
queues a row here once the admin fixed the cause; the connector's lease holder applies it at
its next full cycle, in a transaction fenced by its lease token, and records when, in which run
and for how many leads. A new table: no existing row is rewritten.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retry_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(64), nullable=False),
        sa.Column("codes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("lead_ids", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("applied_run_id", sa.String(32), nullable=True),
        sa.Column("applied_leads", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The leader's question, every renewal of its lease: has this connector a pending request?
    op.create_index("ix_retry_request_pending", "retry_request", ["crm", "applied_at"])


def downgrade() -> None:
    op.drop_index("ix_retry_request_pending", table_name="retry_request")
    op.drop_table("retry_request")
