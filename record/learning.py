"""What the organisation has learned, read from the record (every post-mortem ever closed):
the learning view (`/learning`, `/api/learning`, `postmortem learning`).

For a period (default: the last 365 days) and optionally a team and a service:
- contributing-factor categories per month (factors of the post-mortems resolved that month);
- repeat incidents per service: a post-mortem is a repeat when an earlier one of the same
  service was resolved within the look-back before it;
- corrective actions due in the period, by type and by priority: done by their due date,
  done late, dropped, still open past due, open and not yet due;
- dropped actions and the reasons given;
- days from resolution to the review's findings, and to closure (median, 90th percentile);
- open actions past due, per service (now, whatever the period).

Post-mortem figures filter on the post-mortem's team; action figures on the action's own
team (the team that owns the work), as the overview does. Every list is bounded.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import ColumnElement, and_, case, func, select

from domain.export import spreadsheet_safe
from domain.models import ActionState, ActionType, FactorCategory, Priority, service_name
from record.schema import actions, factors, postmortems
from record.store import Record

DAY = timedelta(days=1)
DEFAULT_DAYS = 365
MAX_DAYS = 3_660  # ten years: twelve hundred months is not a chart
SERVICES_SHOWN = 50  # repeats and overdue per service: the most first
DROPPED_SHOWN = 100  # the newest dropped actions
OPEN = ActionState.OPEN.value
DONE = ActionState.DONE.value
DROPPED = ActionState.DROPPED.value
ANSWERS = ("verified", "ineffective", "unanswered")


@dataclass(frozen=True)
class LearningFilter:
    since: datetime
    until: datetime
    team: str | None = None
    service: str | None = None

    @staticmethod
    def last(days: int, now: datetime, team: str | None = None, service: str | None = None):
        """The `days` before `now` (whole UTC days, today included)."""
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"the period is 1 to {MAX_DAYS} days (asked: {days})")
        end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + DAY
        return LearningFilter(
            since=end - days * DAY,
            until=end,
            team=team or None,
            service=service_name(service) or None,
        )


class Outcome(BaseModel):
    """Actions due in the period, by how they ended."""

    due: int = 0
    on_time: int = 0  # done by their due date
    late: int = 0  # done after it
    dropped: int = 0
    open_past_due: int = 0
    open_not_due: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def on_time_share(self) -> float | None:
        """Of those whose due date has passed (or that ended): done on time."""
        decided = self.due - self.open_not_due
        return round(self.on_time / decided, 3) if decided else None


class Verified(BaseModel):
    """Done actions whose owner was asked whether they worked, by the answer, for those
    answered (or left unanswered) in the period (domain/verification.py)."""

    verified: int = 0
    ineffective: int = 0
    unanswered: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def worked_share(self) -> float | None:
        """Of those answered: it worked."""
        answered = self.verified + self.ineffective
        return round(self.verified / answered, 3) if answered else None


class ServiceRepeats(BaseModel):
    service: str
    incidents: int
    repeats: int  # of them, within the look-back of an earlier one on the service
    last: datetime


class Dropped(BaseModel):
    workflow_id: str
    action_id: str
    title: str
    type: str
    priority: str
    team: str
    reason: str
    dropped_at: datetime | None


class Spread(BaseModel):
    count: int = 0
    median_days: float | None = None
    p90_days: float | None = None


class Learning(BaseModel):
    """The learning view: what /api/learning answers (its OpenAPI schema) and the page,
    the CLI and the CSV show."""

    since: datetime
    until: datetime
    now: datetime
    team: str | None
    service: str | None
    lookback_days: int
    postmortems: int = 0
    months: list[str] = Field(default_factory=list)
    categories: dict[str, list[int]] = Field(default_factory=dict)
    repeats: list[ServiceRepeats] = Field(default_factory=list)
    by_type: dict[str, Outcome] = Field(default_factory=dict)
    by_priority: dict[str, Outcome] = Field(default_factory=dict)
    verified_by_type: dict[str, Verified] = Field(default_factory=dict)
    dropped: list[Dropped] = Field(default_factory=list)
    to_review: Spread = Field(default_factory=Spread)
    to_closure: Spread = Field(default_factory=Spread)
    overdue_by_service: dict[str, int] = Field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def months_between(since: datetime, until: datetime) -> list[datetime]:
    """The first instant of each calendar month (UTC) the period touches."""
    start = since.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    found = []
    while start < until:
        found.append(start)
        start = (start + timedelta(days=32)).replace(day=1)
    return found


def learning(record: Record, f: LearningFilter, now: datetime, lookback_days: int) -> Learning:
    months = months_between(f.since, f.until)
    keys = [f"{m:%Y-%m}" for m in months]
    result = Learning(
        since=f.since,
        until=f.until,
        now=now,
        team=f.team,
        service=f.service,
        lookback_days=lookback_days,
        months=keys,
        categories={c.value: [0] * len(keys) for c in FactorCategory},
    )
    resolved = postmortems.c.resolved_at
    mine: list[ColumnElement[bool]] = []
    if f.team:
        mine.append(postmortems.c.team == f.team)
    if f.service:
        mine.append(postmortems.c.service == f.service)
    in_period = and_(resolved >= f.since, resolved < f.until, *mine)
    # Actions: their own team; the service of the post-mortem they came from.
    theirs: list[ColumnElement[bool]] = []
    if f.team:
        theirs.append(actions.c.team == f.team)
    if f.service:
        theirs.append(postmortems.c.service == f.service)
    action_rows = actions.join(postmortems) if f.service else actions
    due_in_period = and_(actions.c.due >= f.since, actions.c.due < f.until, *theirs)

    with record.reading() as connection:
        result.postmortems = int(
            connection.execute(select(func.count()).where(in_period)).scalar_one()
        )
        # Grouped in SQL by category and month (UTC).
        month = _month(resolved, connection.dialect.name)
        for category, key, n in connection.execute(
            select(factors.c.category, month, func.count())
            .select_from(factors.join(postmortems))
            .where(in_period)
            .group_by(factors.c.category, month)
        ):
            if category in result.categories and key in keys:
                result.categories[category][keys.index(key)] = int(n)
        # Repeats: each service's post-mortems from a look-back before the period, in order.
        window = and_(
            resolved >= f.since - lookback_days * DAY,
            resolved < f.until,
            postmortems.c.service != "",
            *mine,
        )
        dialect = connection.dialect.name
        service = postmortems.c.service
        gap = _days(resolved, func.lag(resolved).over(partition_by=service, order_by=resolved),
                    dialect)  # fmt: skip
        ordered = select(service, resolved, gap.label("gap")).where(window).subquery()
        counted = ordered.c.resolved_at >= f.since
        per_service = (
            select(
                ordered.c.service,
                func.sum(case((counted, 1), else_=0)),
                func.sum(case((and_(counted, ordered.c.gap <= lookback_days), 1), else_=0)),
                func.max(ordered.c.resolved_at),
            )
            .group_by(ordered.c.service)
            .having(func.sum(case((counted, 1), else_=0)) > 0)
        )
        result.repeats = sorted(
            (
                ServiceRepeats(
                    service=name, incidents=int(n), repeats=int(r or 0), last=_aware(last)
                )
                for name, n, r, last in connection.execute(per_service)
            ),
            key=lambda x: (-x.repeats, -x.incidents, x.service),
        )[:SERVICES_SHOWN]
        # Grouped in SQL: each (type, priority, outcome) once.
        outcome = case(
            (
                actions.c.state == DONE,
                case((actions.c.completed_at <= actions.c.due, "on_time"), else_="late"),
            ),
            (actions.c.state == DROPPED, "dropped"),
            (actions.c.due < now, "open_past_due"),
            else_="open_not_due",
        )
        result.by_type = {t.value: Outcome() for t in ActionType}
        result.by_priority = {p.value: Outcome() for p in Priority}
        for kind, priority, ended, n in connection.execute(
            select(actions.c.type, actions.c.priority, outcome, func.count())
            .select_from(action_rows)
            .where(due_in_period)
            .group_by(actions.c.type, actions.c.priority, outcome)
        ):
            for group, key in ((result.by_type, kind), (result.by_priority, priority)):
                tally = group.setdefault(key, Outcome())
                tally.due += n
                setattr(tally, ended, getattr(tally, ended) + n)
        # Did they work: answers given (or left unanswered) in the period, by type.
        result.verified_by_type = {t.value: Verified() for t in ActionType}
        for kind, said, n in connection.execute(
            select(actions.c.type, actions.c.verification, func.count())
            .select_from(action_rows)
            .where(
                actions.c.verification.in_(ANSWERS),
                actions.c.verified_at >= f.since,
                actions.c.verified_at < f.until,
                *theirs,
            )
            .group_by(actions.c.type, actions.c.verification)
        ):
            answered = result.verified_by_type.setdefault(kind, Verified())
            setattr(answered, said, getattr(answered, said) + int(n))
        dropped_at = func.coalesce(actions.c.completed_at, actions.c.due)
        result.dropped = [
            Dropped(
                workflow_id=r.workflow_id,
                action_id=r.action_id,
                title=r.title,
                type=r.type,
                priority=r.priority,
                team=r.team,
                reason=r.state_reason,
                dropped_at=r.completed_at,
            )
            for r in connection.execute(
                select(actions)
                .select_from(action_rows)
                .where(
                    actions.c.state == DROPPED,
                    dropped_at >= f.since,
                    dropped_at < f.until,
                    *theirs,
                )
                .order_by(dropped_at.desc(), actions.c.workflow_id, actions.c.action_id)
                .limit(DROPPED_SHOWN)
            )
        ]
        for name, end in (("to_review", postmortems.c.findings_at),
                          ("to_closure", postmortems.c.closed_at)):  # fmt: skip
            span = _days(end, resolved, dialect)
            days = (
                connection.execute(select(span).where(in_period, end.is_not(None)).order_by(span))
                .scalars()
                .all()
            )
            setattr(result, name, _spread([float(d) for d in days]))
        overdue = (
            select(postmortems.c.service, func.count())
            .select_from(actions.join(postmortems))
            .where(actions.c.state == OPEN, actions.c.due < now, *theirs)
            .group_by(postmortems.c.service)
            .order_by(func.count().desc(), postmortems.c.service)
            .limit(SERVICES_SHOWN)
        )
        result.overdue_by_service = {
            (service or "(no service)"): int(n) for service, n in connection.execute(overdue)
        }
    return result


def _days(later: Any, earlier: Any, dialect: str) -> Any:
    """Days from `earlier` to `later`, in SQL (fractional)."""
    if dialect == "sqlite":
        return func.julianday(later) - func.julianday(earlier)
    return func.extract("epoch", later - earlier) / 86_400.0


def _month(moment: Any, dialect: str) -> Any:
    """'YYYY-MM' of a moment in UTC, in SQL (SQLite keeps UTC without a zone)."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m", moment)
    return func.to_char(func.timezone("UTC", moment), "YYYY-MM")


def _aware(value: Any) -> datetime:
    """An aggregate of a moment: SQLite gives its text back."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _spread(days: list[float]) -> Spread:
    """Median and 90th percentile of sorted day counts."""
    if not days:
        return Spread()
    return Spread(
        count=len(days),
        median_days=round(_percentile(days, 50), 1),
        p90_days=round(_percentile(days, 90), 1),
    )


def _percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile: a value that occurred."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# -- CSV -------------------------------------------------------------------------------------

TABLES = ("categories", "repeats", "actions", "verified", "dropped", "timing", "overdue")


def csv_table(data: Learning, table: str) -> str:
    """One of TABLES as CSV (a header row, then the rows)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if table == "categories":
        w.writerow(["category", *data.months])
        for category, counts in data.categories.items():
            w.writerow([category, *counts])
    elif table == "repeats":
        w.writerow(["service", "incidents", "repeats", "last"])
        for r in data.repeats:
            w.writerow([spreadsheet_safe(r.service), r.incidents, r.repeats, r.last.isoformat()])
    elif table == "actions":
        fields = ["due", "on_time", "late", "dropped", "open_past_due", "open_not_due"]
        w.writerow(["by", "value", *fields, "on_time_share"])
        for by, group in (("type", data.by_type), ("priority", data.by_priority)):
            for name, o in group.items():
                w.writerow([by, name, *(getattr(o, x) for x in fields), o.on_time_share])
    elif table == "verified":
        w.writerow(["type", *ANSWERS, "worked_share"])
        for name, v in data.verified_by_type.items():
            w.writerow([name, v.verified, v.ineffective, v.unanswered, v.worked_share])
    elif table == "dropped":
        w.writerow(
            [
                "workflow_id",
                "action_id",
                "title",
                "type",
                "priority",
                "team",
                "reason",
                "dropped_at",
            ]
        )
        for d in data.dropped:
            w.writerow(
                [
                    d.workflow_id,
                    d.action_id,
                    spreadsheet_safe(d.title),
                    d.type,
                    d.priority,
                    spreadsheet_safe(d.team),
                    spreadsheet_safe(d.reason),
                    d.dropped_at.isoformat() if d.dropped_at else "",
                ]
            )
    elif table == "timing":
        w.writerow(["from resolution to", "count", "median_days", "p90_days"])
        for name, s in (("findings", data.to_review), ("closure", data.to_closure)):
            w.writerow([name, s.count, s.median_days, s.p90_days])
    elif table == "overdue":
        w.writerow(["service", "open_past_due"])
        for service, n in data.overdue_by_service.items():
            w.writerow([spreadsheet_safe(service), n])
    else:
        raise ValueError(f"no table {table!r} (tables: {', '.join(TABLES)})")
    return out.getvalue()
