"""The held and blocked lead indexes hold only held and blocked leads (partial indexes).

``ix_lead_rep_edit`` and ``ix_lead_blocked`` serve the two counts a cycle reports (leads a
person edited since the hold began, leads the guards blocked): a few leads of many. As full
indexes every lead had an entry in both, written again with every new row version (the pull's
upsert, the plan's due times): on PostgreSQL an update that changes ``due_at`` is never HOT,
so each index of the table takes a new entry per updated lead. Partial indexes keep only the
leads the counts read (https://www.postgresql.org/docs/current/indexes-partial.html,
https://www.sqlite.org/partialindex.html); the counts' conditions imply their predicates, so
both databases still answer them from the index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_HELD = sa.text("rep_edit_at IS NOT NULL")
# As each dialect writes the counts' ``guard_blocked IS true``: SQLite uses a partial index
# only for a query term written exactly as its predicate (``IS 1``).
_BLOCKED_PG = sa.text("guard_blocked IS true")
_BLOCKED_SQLITE = sa.text("guard_blocked IS 1")


def upgrade() -> None:
    op.drop_index("ix_lead_rep_edit", table_name="lead")
    op.drop_index("ix_lead_blocked", table_name="lead")
    op.create_index(
        "ix_lead_rep_edit",
        "lead",
        ["crm", "rep_edit_at"],
        postgresql_where=_HELD,
        sqlite_where=_HELD,
    )
    op.create_index(
        "ix_lead_blocked",
        "lead",
        ["crm", "guard_blocked"],
        postgresql_where=_BLOCKED_PG,
        sqlite_where=_BLOCKED_SQLITE,
    )


def downgrade() -> None:
    op.drop_index("ix_lead_rep_edit", table_name="lead")
    op.drop_index("ix_lead_blocked", table_name="lead")
    op.create_index("ix_lead_rep_edit", "lead", ["crm", "rep_edit_at"])
    op.create_index("ix_lead_blocked", "lead", ["crm", "guard_blocked"])
