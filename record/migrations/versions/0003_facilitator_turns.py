"""Facilitator turns: whose turn each post-mortem got in its team's rotation, shared by every
worker (they were in a SQLite file on each worker's disk, `rotation.sqlite3`; the worker
copies that file's turns in at start, so an upgrade loses none).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turns",
        sa.Column("team", sa.String(200), primary_key=True),
        sa.Column("postmortem", sa.String(300), primary_key=True),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.UniqueConstraint("team", "turn", name="uq_turns_team_turn"),
    )


def downgrade() -> None:
    op.drop_table("turns")
