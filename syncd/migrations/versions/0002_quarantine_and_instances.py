"""Quarantined CRM values on the mirror; connector instance names up to 64 characters.

* ``lead.quarantine``: values a pull could not parse or store (NaN, infinity, overflowing numbers
  or dates, huge text), nulled in ``fields`` and kept here with the reason (``syncd status``).
* ``crm`` columns of ``lead``, ``cursor`` and ``outbox`` widen from 16 to 64 characters: they
  hold connector instance names such as ``salesforce/emea``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_WIDENED = ("lead", "cursor", "outbox")


def upgrade() -> None:
    with op.batch_alter_table("lead") as batch:
        batch.add_column(sa.Column("quarantine", sa.JSON(), nullable=True))
    for table in _WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "crm", type_=sa.String(64), existing_type=sa.String(16), existing_nullable=False
            )


def downgrade() -> None:
    for table in _WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "crm", type_=sa.String(16), existing_type=sa.String(64), existing_nullable=False
            )
    with op.batch_alter_table("lead") as batch:
        batch.drop_column("quarantine")
