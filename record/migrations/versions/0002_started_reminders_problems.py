"""When each post-mortem started, each action's last reminder, and each post-mortem's
problems: what the lists, the digest and the metrics read of the record.

Rows written before it have no start and no reminder time (NULL) until the post-mortem's
next change or `postmortem record sync` writes them again; nothing is lost.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("postmortems", sa.Column("started_at", MOMENT))
    op.add_column("actions", sa.Column("last_reminder_at", MOMENT))
    op.create_table(
        "problems",
        sa.Column(
            "workflow_id",
            sa.String(300),
            sa.ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action_id", sa.String(40)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("since", MOMENT),
    )
    op.create_index("ix_problems_kind", "problems", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_problems_kind", "problems")
    op.drop_table("problems")
    with op.batch_alter_table("actions") as actions:  # SQLite: the table is copied
        actions.drop_column("last_reminder_at")
    with op.batch_alter_table("postmortems") as postmortems:
        postmortems.drop_column("started_at")
