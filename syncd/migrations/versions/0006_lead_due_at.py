"""When each mirrored lead is next due for evaluation (``lead.due_at``, see ``syncd.due``), and
whether the guards blocked its rule at its last evaluation (``lead.guard_blocked``); indexes to
count held and blocked leads without a scan.

Existing live leads start NULL (due at the next cycle, which evaluates them all once); deleted
and converted ones are never evaluated and start never due.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: syncd.state.NEVER_DUE, repeated: a migration must not change when the model does.
_NEVER_DUE = datetime(9999, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def upgrade() -> None:
    op.add_column("lead", sa.Column("due_at", sa.DateTime(), nullable=True))
    op.add_column("lead", sa.Column("guard_blocked", sa.Boolean(), nullable=True))
    lead = sa.table(
        "lead",
        sa.column("deleted", sa.Boolean()),
        sa.column("converted", sa.Boolean()),
        sa.column("due_at", sa.DateTime()),
    )
    op.execute(
        lead.update()
        .where(sa.or_(lead.c.deleted.is_(True), lead.c.converted.is_(True)))
        .values(due_at=_NEVER_DUE)
    )
    op.create_index("ix_lead_due", "lead", ["crm", "due_at", "lead_id"])
    op.create_index("ix_lead_rep_edit", "lead", ["crm", "rep_edit_at"])
    op.create_index("ix_lead_blocked", "lead", ["crm", "guard_blocked"])


def downgrade() -> None:
    op.drop_index("ix_lead_blocked", table_name="lead")
    op.drop_index("ix_lead_rep_edit", table_name="lead")
    op.drop_index("ix_lead_due", table_name="lead")
    with op.batch_alter_table("lead") as batch:
        batch.drop_column("guard_blocked")
        batch.drop_column("due_at")
