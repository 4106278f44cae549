"""What the overview reads, indexed, so that it reads the rows it counts and not every row:
when findings were accepted (actions opened) with each post-mortem's number of actions; when
actions were completed; open actions by due date and verdict (an index holding all the
columns the ageing counts read); reviews by phase and window.

`action_count` is filled for the rows already there (post-mortems Temporal has deleted
never change again: counted here, or never).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("postmortems", sa.Column("action_count", sa.Integer))
    op.execute(
        "UPDATE postmortems SET action_count = (SELECT count(*) FROM actions"
        " WHERE actions.workflow_id = postmortems.workflow_id)"
    )
    op.create_index("ix_postmortems_findings_at", "postmortems", ["findings_at"])
    op.create_index("ix_postmortems_phase_window", "postmortems", ["phase", "review_window_end"])
    op.create_index("ix_actions_completed_at", "actions", ["completed_at"])
    op.create_index("ix_actions_state_due", "actions", ["state", "due", "overdue", "team"])


def downgrade() -> None:
    op.drop_index("ix_actions_state_due", "actions")
    op.drop_index("ix_actions_completed_at", "actions")
    op.drop_index("ix_postmortems_phase_window", "postmortems")
    op.drop_index("ix_postmortems_findings_at", "postmortems")
    with op.batch_alter_table("postmortems") as postmortems:
        postmortems.drop_column("action_count")
