"""An outbox row remembers that it may already be in the CRM.

A row still ``sending`` when a cycle starts was in a request whose answer never came; the pull
settles it and, unless the CRM shows its value, it goes back to ``pending`` to be sent again.
Before this revision nothing on the row said it had been sent: if the re-send was refused (a
retriable error) and a person then changed the lead's status, the change was withdrawn with an
audit row that did not say it may have landed -- and a newsletter add had landed. The column
is set when an in-doubt row is settled and read when the row ends unsent or failed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: existing rows are filled without a table rewrite on PostgreSQL 11+
    # (https://www.postgresql.org/docs/current/sql-altertable.html, "Notes").
    op.add_column(
        "outbox",
        sa.Column("may_have_landed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("may_have_landed")
