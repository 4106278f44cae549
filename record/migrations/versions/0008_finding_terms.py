"""The repeat lookup counts shared terms in SQL (README, "Learning"):

- `finding_terms`: each term of each contributing factor and cause of a post-mortem that is
  not private, with its finding's size and its resolution time, indexed by term and time, so
  that the lookup reads only the findings of the look-back that share a term with the new
  post-mortem's, counted by the database, instead of every finding of the look-back.

Rows written before it get theirs from the terms 0006 stored: nothing is stemmed again.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from record.store import term_rows

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)
BATCH = 5_000


def upgrade() -> None:
    op.create_table(
        "finding_terms",
        sa.Column(
            "workflow_id",
            sa.String(300),
            sa.ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("what", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("term", sa.String(100), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("resolved_at", MOMENT, nullable=False),
    )
    op.create_index(
        "ix_finding_terms_lookup",
        "finding_terms",
        ["term", "resolved_at", "workflow_id", "what", "position", "size"],
    )
    _fill()


def _fill() -> None:
    from record.schema import factors, finding_terms, postmortems  # the types as written

    bind = op.get_bind()
    heads = bind.execute(
        sa.select(
            postmortems.c.workflow_id,
            postmortems.c.resolved_at,
            postmortems.c.root_terms,
            postmortems.c.proximate_terms,
        ).where(postmortems.c.private.is_(False))
    ).all()
    found: dict[str, list[tuple[str, int, str | None]]] = {}
    for workflow_id, position, stored in bind.execute(
        sa.select(factors.c.workflow_id, factors.c.position, factors.c.terms)
        .join(postmortems, postmortems.c.workflow_id == factors.c.workflow_id)
        .where(postmortems.c.private.is_(False))
    ):
        found.setdefault(workflow_id, []).append(("factor", position, stored))
    batch: list[dict[str, object]] = []
    for head in heads:
        batch.extend(
            term_rows(
                head.workflow_id,
                head.resolved_at,
                [
                    *found.get(head.workflow_id, []),
                    ("root cause", 0, head.root_terms),
                    ("proximate cause", 0, head.proximate_terms),
                ],
            )
        )
        if len(batch) >= BATCH:
            bind.execute(finding_terms.insert(), batch)
            batch = []
    if batch:
        bind.execute(finding_terms.insert(), batch)


def downgrade() -> None:
    op.drop_index("ix_finding_terms_lookup", "finding_terms")
    op.drop_table("finding_terms")
