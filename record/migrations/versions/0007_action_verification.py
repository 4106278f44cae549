"""Did the action work? (README, "Learning")

- each action's verification (domain/verification.py: asked, verified, ineffective,
  unanswered, or "" before any) and when it was answered: the learning view counts them,
  and the repeat lookup finds an incident that came back after an action said to work;
- `links.verified_repeat`: the later post-mortem repeats the earlier one's service and
  factor category after one of its actions was verified as working. Both show it.

Rows written before it have no verification (their actions were never asked) and no flag.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "actions", sa.Column("verification", sa.String(16), nullable=False, server_default="")
    )
    op.add_column("actions", sa.Column("verified_at", MOMENT))
    op.add_column(
        "links",
        sa.Column("verified_repeat", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("links") as table:
        table.drop_column("verified_repeat")
    with op.batch_alter_table("actions") as table:
        table.drop_column("verified_at")
        table.drop_column("verification")
