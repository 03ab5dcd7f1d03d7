"""An index of the mirror's leads by when they were last stored (``lead.pulled_at``).

The funnel KPIs are kept incrementally (``syncd.kpi_incremental``): a refresh recomputes the
SAL leads whose mirror row a pull stored since the last refresh (their first touch and owner
come from it), found as ``crm = ? AND pulled_at >= ?``. Without this index that is a walk of
the CRM's whole mirror at every refresh; with it, a range as long as the leads pulled since.
The pull rewrites a pulled lead's row anyway (and its ``due_at``, indexed), so the entry this
adds costs one more index update per pulled lead, none for a lead not pulled.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lead_pulled", "lead", ["crm", "pulled_at"])


def downgrade() -> None:
    op.drop_index("ix_lead_pulled", table_name="lead")
