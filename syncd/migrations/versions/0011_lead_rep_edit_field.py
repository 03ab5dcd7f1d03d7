"""A hold names the field a person changed: ``lead.rep_edit_field``.

A person's edit of a field a rule sets (HubSpot's lifecycle stage, a Salesforce ``Rating``)
holds the lead like an edit of its status (``syncd.holds``). The hold's reason says which field
was set to what: ``rep_edit_status`` keeps the value set, this column the field, NULL for the
status. Every hold of an older store was a status edit, so NULL is what its rows need: nothing
is rewritten.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: existing rows are not rewritten (PostgreSQL, SQLite).
    op.add_column("lead", sa.Column("rep_edit_field", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lead") as batch:
        batch.drop_column("rep_edit_field")
