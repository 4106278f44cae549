"""The record's tables (SQLAlchemy Core). A change here comes with a migration in
record/migrations/versions/ (tests/test_record.py checks they agree)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator


class Instant(TypeDecorator[datetime]):
    """A moment, stored in UTC and read back aware (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a moment without a time zone: {value!r}")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = MetaData()


def _belongs_to_postmortem() -> Column[str]:
    """The key of a post-mortem's row: gone with it."""
    return Column(
        "workflow_id",
        String(300),
        ForeignKey("postmortems.workflow_id", ondelete="CASCADE"),
        primary_key=True,
    )


postmortems = Table(
    "postmortems",
    metadata,
    Column("workflow_id", String(300), primary_key=True),
    # Monotonic per post-mortem: a write with a version not above the stored one changes
    # nothing (a retried or late projection).
    Column("version", BigInteger, nullable=False),
    Column("source", String(100), nullable=False),
    Column("incident_id", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("severity", String(8), nullable=False),
    Column("team", String(200), nullable=False, index=True),
    Column("phase", String(32), nullable=False, index=True),
    Column("resolved_at", Instant, nullable=False, index=True),
    Column("review_at", Instant),
    Column("review_window_end", Instant),
    Column("findings_at", Instant),
    Column("closed_at", Instant),
    Column("published_url", Text),
    Column("proximate_cause", Text),
    Column("root_cause", Text),
    # The whole document as the workflow last had it (PostmortemDocument's JSON): what
    # `status` shows of a post-mortem whose workflow Temporal has deleted.
    Column("document", JSON, nullable=False),
    Column("recorded_at", Instant, nullable=False),
    Column("started_at", Instant),  # 0002: when the post-mortem began (its first phase)
    Column("action_count", Integer),  # 0004: its actions, for the weeks' "opened"
    # 0006: what repeats are found by (domain/similarity.py keeps the terms' form)
    Column("service", String(100), nullable=False, server_default=""),
    Column("private", Boolean, nullable=False, server_default=false()),
    Column("root_terms", Text),
    Column("proximate_terms", Text),
    Index("ix_postmortems_service_resolved", "service", "resolved_at"),
    Index(  # 0006: the learning view's period, from the index alone
        "ix_postmortems_learning",
        "resolved_at",
        "team",
        "service",
        "workflow_id",
        "findings_at",
        "closed_at",
    ),
    # 0005: what the overview counts, read from the index alone
    Index("ix_postmortems_findings_count", "findings_at", "action_count"),
    Index("ix_postmortems_review_late", "phase", "review_window_end", "findings_at"),
)

actions = Table(
    "actions",
    metadata,
    _belongs_to_postmortem(),
    Column("action_id", String(40), primary_key=True),
    Column("title", Text, nullable=False),
    Column("type", String(32), nullable=False),
    Column("priority", String(8), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("team", String(200), nullable=False, index=True),
    Column("due", Instant, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("state_reason", Text, nullable=False),
    Column("ticket_tracker", String(32)),
    Column("ticket_key", String(160)),
    Column("ticket_url", Text),
    Column("overdue", Boolean, nullable=False),
    Column("reminders_sent", Integer, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("completed_at", Instant, index=True),  # index: 0004
    Column("last_reminder_at", Instant),  # 0002
    Column("verification", String(16), nullable=False, server_default=""),  # 0007
    Column("verified_at", Instant),  # 0007
    Index("ix_actions_state_due", "state", "due", "overdue", "team"),  # 0004: the ageing
    Index("ix_actions_open_overdue", "state", "overdue", "team"),  # 0005: overdue by team
    # 0005: done by due date; 0006: with priority and completion, for the learning view
    Index("ix_actions_due_outcome", "due", "type", "state", "team", "priority", "completed_at"),
)

factors = Table(
    "factors",
    metadata,
    _belongs_to_postmortem(),
    Column("position", Integer, primary_key=True),
    Column("category", String(40), nullable=False, index=True),
    Column("description", Text, nullable=False),
    Column("terms", Text),  # 0006
    Index("ix_factors_workflow_category", "workflow_id", "category"),  # 0006: categories by id
)

# 0008: each term of each finding (a contributing factor, the root cause, the proximate
# cause) of a post-mortem that is not private, with its finding's size in terms and its
# resolution time: the repeat lookup counts, in SQL, the terms each finding of the look-back
# shares with each of a new post-mortem's, and keeps those similar enough (its index holds
# every column it reads). Written with the factors; a private post-mortem has none.
FINDING_WHATS = ("factor", "root cause", "proximate cause")
finding_terms = Table(
    "finding_terms",
    metadata,
    _belongs_to_postmortem(),
    Column("what", String(16), primary_key=True),  # one of FINDING_WHATS
    Column("position", Integer, primary_key=True),  # the factor's; 0 for a cause
    Column("term", String(100), primary_key=True),
    Column("size", Integer, nullable=False),  # the finding's terms
    Column("resolved_at", Instant, nullable=False),
    Index(
        "ix_finding_terms_lookup", "term", "resolved_at", "workflow_id", "what", "position", "size"
    ),
)

# 0006: the post-mortems each one found related (its document's `related`), so that the
# earlier one shows the later: read by `related_id`.
links = Table(
    "links",
    metadata,
    _belongs_to_postmortem(),
    Column("related_id", String(300), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("similarity", Float, nullable=False),
    Column("verified_repeat", Boolean, nullable=False, server_default=false()),  # 0007
    Index("ix_links_related_id", "related_id"),
)

# 0002: what the engine could not do (ProblemKind), until what fixes it happens.
problems = Table(
    "problems",
    metadata,
    _belongs_to_postmortem(),
    Column("position", Integer, primary_key=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("action_id", String(40)),
    Column("message", Text, nullable=False),
    Column("since", Instant),
)

# 0003: facilitator turns, per team: each post-mortem keeps the turn it got; the next one gets
# the next turn, whichever worker asks (two asking at once: one gets the next but one).
turns = Table(
    "turns",
    metadata,
    Column("team", String(200), primary_key=True),
    Column("postmortem", String(300), primary_key=True),
    Column("turn", Integer, nullable=False),
    UniqueConstraint("team", "turn", name="uq_turns_team_turn"),
)
