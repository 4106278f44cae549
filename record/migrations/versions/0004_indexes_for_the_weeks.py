"""Indexes for the overview's weeks: when findings were accepted (actions opened) and when
actions were completed, so that the weekly chart reads the weeks shown, not every row.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_postmortems_findings_at", "postmortems", ["findings_at"])
    op.create_index("ix_actions_completed_at", "actions", ["completed_at"])


def downgrade() -> None:
    op.drop_index("ix_actions_completed_at", "actions")
    op.drop_index("ix_postmortems_findings_at", "postmortems")
