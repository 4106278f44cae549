"""Post-mortems, their actions and contributing factors.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "postmortems",
        sa.Column("workflow_id", sa.String(300), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("resolved_at", MOMENT, nullable=False),
        sa.Column("review_at", MOMENT),
        sa.Column("review_window_end", MOMENT),
        sa.Column("findings_at", MOMENT),
        sa.Column("closed_at", MOMENT),
        sa.Column("published_url", sa.Text),
        sa.Column("proximate_cause", sa.Text),
        sa.Column("root_cause", sa.Text),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("recorded_at", MOMENT, nullable=False),
    )
    op.create_index("ix_postmortems_team", "postmortems", ["team"])
    op.create_index("ix_postmortems_phase", "postmortems", ["phase"])
    op.create_index("ix_postmortems_resolved_at", "postmortems", ["resolved_at"])
    op.create_table(
        "actions",
        sa.Column(
            "workflow_id",
            sa.String(300),
            sa.ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("action_id", sa.String(40), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("due", MOMENT, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("ticket_tracker", sa.String(32)),
        sa.Column("ticket_key", sa.String(160)),
        sa.Column("ticket_url", sa.Text),
        sa.Column("overdue", sa.Boolean, nullable=False),
        sa.Column("reminders_sent", sa.Integer, nullable=False),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("completed_at", MOMENT),
    )
    op.create_index("ix_actions_team", "actions", ["team"])
    op.create_index("ix_actions_due", "actions", ["due"])
    op.create_index("ix_actions_state", "actions", ["state"])
    op.create_table(
        "factors",
        sa.Column(
            "workflow_id",
            sa.String(300),
            sa.ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
    )
    op.create_index("ix_factors_category", "factors", ["category"])


def downgrade() -> None:
    op.drop_table("factors")
    op.drop_table("actions")
    op.drop_table("postmortems")
