"""What the organisation learns across incidents (README, "Learning"):

- each post-mortem's service (its incident's component or system), indexed with its
  resolution time: the repeat lookup and the learning view's repeats per service;
- the terms of each contributing factor and of the two causes (domain/similarity.py): the
  similar-findings lookup compares stored term sets, never stems the archive again;
- whether its incident is private: private post-mortems stay out of repeats;
- `links`: the post-mortems each one found related, so the earlier one shows the later.

Rows written before it get the empty service (their incidents carried none), their privacy
from the stored document, and their terms computed here from the texts they hold: nothing
is lost, and an archived post-mortem is found similar like a new one.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

from domain import similarity

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    op.add_column(
        "postmortems", sa.Column("service", sa.String(100), nullable=False, server_default="")
    )
    op.add_column(
        "postmortems",
        sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("postmortems", sa.Column("root_terms", sa.Text))
    op.add_column("postmortems", sa.Column("proximate_terms", sa.Text))
    op.add_column("factors", sa.Column("terms", sa.Text))
    op.create_index("ix_postmortems_service_resolved", "postmortems", ["service", "resolved_at"])
    # The learning view's reads from their indexes alone: post-mortems of a period (its
    # factors joined by id, its spans), and actions due in it by how they ended.
    op.create_index(
        "ix_postmortems_learning",
        "postmortems",
        ["resolved_at", "team", "service", "workflow_id", "findings_at", "closed_at"],
    )
    op.create_index("ix_factors_workflow_category", "factors", ["workflow_id", "category"])
    op.drop_index("ix_actions_due_outcome", "actions")
    op.create_index(
        "ix_actions_due_outcome",
        "actions",
        ["due", "type", "state", "team", "priority", "completed_at"],
    )
    op.create_table(
        "links",
        sa.Column(
            "workflow_id",
            sa.String(300),
            sa.ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("related_id", sa.String(300), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("similarity", sa.Float, nullable=False),
    )
    op.create_index("ix_links_related_id", "links", ["related_id"])
    _fill_terms()


def _fill_terms() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    postmortems = sa.Table("postmortems", meta, autoload_with=bind)
    factors = sa.Table("factors", meta, autoload_with=bind)
    # Private as the stored document says (the incident's own flag).
    for workflow_id, document in bind.execute(
        sa.select(postmortems.c.workflow_id, postmortems.c.document)
    ).all():
        stored = json.loads(document) if isinstance(document, str) else document
        incident = (stored or {}).get("incident") or {}
        if incident.get("private"):
            bind.execute(
                postmortems.update()
                .where(postmortems.c.workflow_id == workflow_id)
                .values(private=True)
            )
    rows = bind.execute(
        sa.select(
            postmortems.c.workflow_id, postmortems.c.root_cause, postmortems.c.proximate_cause
        ).where(postmortems.c.root_cause.is_not(None))
    ).all()
    for row in rows:
        bind.execute(
            postmortems.update()
            .where(postmortems.c.workflow_id == row.workflow_id)
            .values(
                root_terms=similarity.encode(similarity.terms(row.root_cause or "")),
                proximate_terms=similarity.encode(similarity.terms(row.proximate_cause or "")),
            )
        )
    found = bind.execute(
        sa.select(factors.c.workflow_id, factors.c.position, factors.c.description)
    ).all()
    for row in found:
        bind.execute(
            factors.update()
            .where(factors.c.workflow_id == row.workflow_id, factors.c.position == row.position)
            .values(terms=similarity.encode(similarity.terms(row.description)))
        )


def downgrade() -> None:
    op.drop_index("ix_actions_due_outcome", "actions")
    op.create_index("ix_actions_due_outcome", "actions", ["due", "type", "state", "team"])
    op.drop_index("ix_factors_workflow_category", "factors")
    op.drop_index("ix_postmortems_learning", "postmortems")
    op.drop_index("ix_links_related_id", "links")
    op.drop_table("links")
    op.drop_index("ix_postmortems_service_resolved", "postmortems")
    with op.batch_alter_table("factors") as table:  # SQLite: the table is copied
        table.drop_column("terms")
    with op.batch_alter_table("postmortems") as table:
        table.drop_column("proximate_terms")
        table.drop_column("root_terms")
        table.drop_column("private")
        table.drop_column("service")
