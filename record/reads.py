"""What the lists, the dashboard, the metrics and the digest read: SQL on the record. It holds
every post-mortem that ever ran, whatever Temporal's retention has deleted since.

Each function is a few statements, each reading through an index only the rows it counts,
mostly from the index alone (grouped counts, and range counts per bucket or week, so the
number of teams costs nothing).
Synchronous: the API calls them in a thread (`asyncio.to_thread`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from domain.models import (
    ActionState,
    ActionType,
    Phase,
    ProblemKind,
    action_workflow_id,
    service_name,
)
from engine import OverdueRow, PostmortemRow
from readmodel import AGEING, Overview, WeekBar
from record.schema import actions, postmortems, problems
from record.store import Record

DAY = timedelta(days=1)
PROBLEMS_LISTED = 5  # per post-mortem in a list, as visibility kept them
PROBLEM_CHARS = 250
NO_ACTIONS: tuple[int, int, datetime | None] = (0, 0, None)  # open, overdue, next due

AWAITING_REVIEW = (Phase.REVIEW_SCHEDULED.value, Phase.IN_REVIEW.value)
TERMINAL = tuple(p.value for p in Phase if p.is_terminal)
OPEN = ActionState.OPEN.value


class BadPageToken(ValueError):
    """A page token this API did not give."""


@dataclass(frozen=True)
class PostmortemFilter:
    phase: Phase | None = None
    team: str | None = None
    severity: str | None = None
    overdue: bool = False  # only those with overdue actions
    late_at: datetime | None = None  # only those whose review window closed before this
    with_problems: bool = False  # only running ones with a problem
    service: str | None = None  # only this service (as domain.models.service_name keeps it)


# Post-mortems with an open action its follow-up found overdue: one set, not a lookup per row
# (a correlated EXISTS made SQLite walk the state index once per post-mortem).
_HAS_OVERDUE = postmortems.c.workflow_id.in_(
    select(actions.c.workflow_id).where(actions.c.state == OPEN, actions.c.overdue.is_(True))
)
# Newest first: when it started (rows from before 0002: when the incident was resolved).
_started = func.coalesce(postmortems.c.started_at, postmortems.c.resolved_at)


def late_review(now: datetime) -> ColumnElement[bool]:
    """A review window that closed before `now` with no findings accepted."""
    return and_(
        postmortems.c.phase.in_(AWAITING_REVIEW),
        postmortems.c.findings_at.is_(None),
        postmortems.c.review_window_end < now,
    )


def _where(f: PostmortemFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f.phase is not None:
        clauses.append(postmortems.c.phase == f.phase.value)
    if f.team:
        clauses.append(postmortems.c.team == f.team)
    if f.severity:
        clauses.append(postmortems.c.severity == f.severity)
    if f.service:
        clauses.append(postmortems.c.service == service_name(f.service))
    if f.overdue:
        clauses.append(_HAS_OVERDUE)
    if f.late_at is not None:
        clauses.append(late_review(f.late_at))
    if f.with_problems:
        clauses.append(postmortems.c.phase.not_in(TERMINAL))
        clauses.append(
            select(problems.c.workflow_id)
            .where(problems.c.workflow_id == postmortems.c.workflow_id)
            .exists()
        )
    return clauses


def postmortem_page(
    record: Record, f: PostmortemFilter, *, limit: int, page_token: str | None = None
) -> tuple[list[PostmortemRow], str | None]:
    """A page of post-mortems, newest first, and the token of the next page (None: the last).
    The token names the last row shown, so a page is neither skipped nor repeated when
    post-mortems start meanwhile."""
    statement = (
        select(
            postmortems.c.workflow_id,
            postmortems.c.title,
            postmortems.c.phase,
            postmortems.c.team,
            postmortems.c.severity,
            postmortems.c.incident_id,
            _started.label("started"),
            postmortems.c.started_at,
        )
        .where(*_where(f))
        .order_by(_started.desc(), postmortems.c.workflow_id.desc())
        .limit(limit + 1)
    )
    if page_token is not None:
        started, workflow_id = _read_token(page_token)
        statement = statement.where(
            or_(
                _started < started,
                and_(_started == started, postmortems.c.workflow_id < workflow_id),
            )
        )
    with record.reading() as connection:
        found = connection.execute(statement).all()
        shown = found[:limit]
        listed = _problem_messages(connection, [r.workflow_id for r in shown])
        counted = _action_counts(connection, [r.workflow_id for r in shown])
    rows = [
        PostmortemRow(
            workflow_id=r.workflow_id,
            title=r.title,
            phase=r.phase,
            team=r.team,
            severity=r.severity,
            incident_id=r.incident_id,
            open_actions=counted.get(r.workflow_id, NO_ACTIONS)[0],
            overdue_actions=counted.get(r.workflow_id, NO_ACTIONS)[1],
            next_action_due=counted.get(r.workflow_id, NO_ACTIONS)[2],
            status="completed" if r.phase in TERMINAL else "running",
            started_at=r.started_at,
            problems=listed.get(r.workflow_id, []),
        )
        for r in shown
    ]
    following = _token(shown[-1].started, shown[-1].workflow_id) if len(found) > limit else None
    return rows, following


def postmortem_list(record: Record, f: PostmortemFilter, limit: int) -> list[PostmortemRow]:
    rows, _ = postmortem_page(record, f, limit=limit)
    return rows


def _action_counts(
    connection: Any, workflow_ids: Sequence[str]
) -> dict[str, tuple[int, int, datetime | None]]:
    """Per post-mortem of a page: (open actions, overdue ones, the next due date), counted for
    the page's rows only (one grouped query, on the actions' key)."""
    if not workflow_ids:
        return {}
    is_open = actions.c.state == OPEN
    rows = connection.execute(
        select(
            actions.c.workflow_id,
            _count_if(is_open),
            _count_if(and_(is_open, actions.c.overdue.is_(True))),
            func.min(case((is_open, actions.c.due))),
        )
        .where(actions.c.workflow_id.in_(workflow_ids))
        .group_by(actions.c.workflow_id)
    )
    return {r[0]: (int(r[1]), int(r[2]), _aware(r[3])) for r in rows}


def _problem_messages(connection: Any, workflow_ids: Sequence[str]) -> dict[str, list[str]]:
    if not workflow_ids:
        return {}
    listed: dict[str, list[str]] = {}
    for r in connection.execute(
        select(problems.c.workflow_id, problems.c.message)
        .where(problems.c.workflow_id.in_(workflow_ids))
        .order_by(problems.c.workflow_id, problems.c.position)
    ):
        messages = listed.setdefault(r.workflow_id, [])
        if len(messages) < PROBLEMS_LISTED:
            messages.append(r.message[:PROBLEM_CHARS])
    return listed


def _token(started: datetime, workflow_id: str) -> str:
    moment = _aware(started)
    assert moment is not None
    data = json.dumps([moment.isoformat(), workflow_id]).encode()
    return base64.urlsafe_b64encode(data).decode()


def _read_token(token: str) -> tuple[datetime, str]:
    """The last row a page showed; anything else is BadPageToken (a 400), never a 500:
    nesting deep enough to exhaust the parser, moments no database holds, ids no post-mortem
    has (too long, a NUL PostgreSQL's text refuses)."""
    refused = BadPageToken("page_token is not one this API gave")
    try:
        started, workflow_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        moment = datetime.fromisoformat(started)
        if moment.tzinfo is None:
            raise refused
        moment = moment.astimezone(UTC)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        raise refused from exc
    if not isinstance(workflow_id, str) or len(workflow_id) > 300 or "\x00" in workflow_id:
        raise refused
    return moment, workflow_id


def _aware(value: datetime | None) -> datetime | None:
    """A value computed in SQL (a min, a coalesce) comes back naive from SQLite."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's aggregate over a text column
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the overview ------------------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _between(column: Any, start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return and_(*clauses)


def overview(
    record: Record, now: datetime, teams: list[str], *, team: str | None = None, weeks: int = 12
) -> Overview:
    """The overview of every team in `teams`, or of `team` alone: phases of post-mortems (by
    their team), overdue actions by team, ageing of open actions, late reviews, the share of
    actions due in the last 90 days that are done, and actions opened (their findings
    accepted) and closed per week (actions by their own team)."""
    teams = [team] if team else teams
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    starts = [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    first, after = starts[0], starts[-1] + timedelta(weeks=1)
    is_open = actions.c.state == OPEN
    due = actions.c.due
    types = list(ActionType)
    mine = [actions.c.team == team] if team else []
    # Each figure from the rows it concerns, read from an index that holds every column the
    # figure needs (0004, 0005): a range count per ageing bucket and per week, not one pass
    # evaluating every bucket on every row.
    ageing = select(
        *(
            select(func.count())
            .select_from(actions)
            .where(is_open, _between(due, start, end), *mine)
            .scalar_subquery()
            for start, end in [
                (now, now + 7 * DAY),
                (now - 7 * DAY, now),
                (now - 30 * DAY, now - 7 * DAY),
                (None, now - 30 * DAY),
            ]
        )
    )
    of_window = (
        select(actions.c.type, func.count(), _count_if(actions.c.state == "done"))
        .where(_between(due, now - 90 * DAY, now), *mine)
        .group_by(actions.c.type)
    )
    accepted = postmortems.c.findings_at
    if team:  # the team's own actions, whoever's post-mortem they came from
        opened = (
            select(*(_count_if(_between(accepted, s, s + timedelta(weeks=1))) for s in starts))
            .select_from(actions.join(postmortems))
            .where(_between(accepted, first, after), *mine)
        )
    else:  # every action: each post-mortem's count, no join
        opened = select(
            *(
                select(func.coalesce(func.sum(postmortems.c.action_count), 0))
                .where(_between(accepted, s, s + timedelta(weeks=1)))
                .scalar_subquery()
                for s in starts
            )
        )
    completed = actions.c.completed_at
    closed = select(
        *(_count_if(_between(completed, s, s + timedelta(weeks=1))) for s in starts)
    ).where(~is_open, _between(completed, first, after), *mine)
    by_team = (
        select(actions.c.team, func.count())
        .where(is_open, actions.c.overdue.is_(True), *mine)
        .group_by(actions.c.team)
    )
    phases = select(postmortems.c.phase, func.count()).group_by(postmortems.c.phase)
    late = select(func.count()).select_from(postmortems).where(late_review(now))
    if team:
        phases = phases.where(postmortems.c.team == team)
        late = late.where(postmortems.c.team == team)
    with record.reading() as connection:
        ageing_counts = [int(v) for v in connection.execute(ageing).one()]
        in_window = {r[0]: (int(r[2]), int(r[1])) for r in connection.execute(of_window)}
        opened_per_week = [int(v) for v in connection.execute(opened).one()]
        closed_per_week = [int(v) for v in connection.execute(closed).one()]
        overdue_of = _counts(connection, by_team)
        phase_of = _counts(connection, phases)
        late_reviews = int(connection.execute(late).scalar_one())
    all_overdue = sum(overdue_of.values())
    shown = {t: overdue_of.get(t, 0) for t in teams}
    other = all_overdue - sum(shown.values())
    if other > 0:
        shown["(other teams)"] = other
    return Overview(
        now=now,
        phases={p.value: phase_of.get(p.value, 0) for p in Phase},
        overdue_by_team=shown,
        ageing=dict(zip(AGEING, ageing_counts, strict=True)),
        late_reviews=late_reviews,
        completion={kind.value: in_window.get(kind.value, (0, 0)) for kind in types},
        weeks=[
            WeekBar(start, o, c)
            for start, o, c in zip(starts, opened_per_week, closed_per_week, strict=True)
        ],
    )


# -- open actions by due date ------------------------------------------------------------


def ranked_actions(
    record: Record,
    *,
    team: str | None = None,
    severity: str | None = None,
    offset: int = 0,
    limit: int = 50,
    overdue: bool = True,
) -> tuple[int, list[OverdueRow]]:
    """(total, the rows from `offset`): open actions, overdue ones (most overdue first) or
    those still on time (soonest due first). Overdue is the follow-up's own verdict (its
    grace, its working days), not a comparison with a clock."""
    clauses: list[ColumnElement[bool]] = [
        actions.c.state == OPEN,
        actions.c.overdue.is_(overdue),
    ]
    if team:
        clauses.append(actions.c.team == team)
    if severity:
        clauses.append(postmortems.c.severity == severity)
    joined = actions.join(postmortems)
    total_of = select(func.count()).select_from(joined).where(*clauses)
    page = (
        select(
            actions.c.workflow_id,
            actions.c.action_id,
            actions.c.title,
            actions.c.owner,
            actions.c.team,
            actions.c.due,
            actions.c.ticket_key,
            actions.c.ticket_url,
            actions.c.escalation_level,
            actions.c.last_reminder_at,
            postmortems.c.severity,
            postmortems.c.incident_id,
        )
        .select_from(joined)
        .where(*clauses)
        .order_by(actions.c.due, actions.c.workflow_id, actions.c.action_id)
        .offset(offset)
        .limit(limit)
    )
    with record.reading() as connection:
        total = int(connection.execute(total_of).scalar_one())
        found = connection.execute(page).all() if offset < total else []
    return total, [
        OverdueRow(
            workflow_id=action_workflow_id(r.workflow_id, r.action_id),
            postmortem_id=r.workflow_id,
            action_id=r.action_id,
            title=r.title,
            owner=r.owner,
            team=r.team,
            severity=r.severity,
            incident_id=r.incident_id,
            due=r.due,
            ticket=r.ticket_key or "",
            ticket_url=r.ticket_url or "",
            escalation_level=r.escalation_level,
            last_reminder_at=r.last_reminder_at,
        )
        for r in found
    ]


# -- the metrics -------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauges:
    open_by_phase: dict[str, int]
    overdue_by_team: dict[str, int]
    late_reviews: int
    unrouted: int
    actions_by_state: dict[str, int]
    problems_by_kind: dict[str, int]


def _counts(connection: Any, statement: Any) -> dict[str, int]:
    return {str(key): int(n) for key, n in connection.execute(statement)}


def gauges(record: Record, now: datetime, teams: list[str], triage_team: str | None) -> Gauges:
    running = postmortems.c.phase.not_in(TERMINAL)
    with record.reading() as connection:
        phase_of = _counts(
            connection,
            select(postmortems.c.phase, func.count()).where(running).group_by(postmortems.c.phase),
        )
        overdue_of = _counts(
            connection,
            select(actions.c.team, func.count())
            .where(actions.c.state == OPEN, actions.c.overdue.is_(True))
            .group_by(actions.c.team),
        )
        late = connection.execute(
            select(func.count()).select_from(postmortems).where(late_review(now))
        ).scalar_one()
        unrouted = (
            connection.execute(
                select(func.count())
                .select_from(postmortems)
                .where(running, postmortems.c.team == triage_team)
            ).scalar_one()
            if triage_team
            else 0
        )
        state_of = _counts(
            connection, select(actions.c.state, func.count()).group_by(actions.c.state)
        )
        kind_of = _counts(
            connection,
            select(problems.c.kind, func.count(func.distinct(problems.c.workflow_id)))
            .select_from(problems.join(postmortems))
            .where(running)
            .group_by(problems.c.kind),
        )
    return Gauges(
        open_by_phase={p.value: int(phase_of.get(p.value, 0)) for p in Phase if not p.is_terminal},
        overdue_by_team={t: int(overdue_of.get(t, 0)) for t in teams},
        late_reviews=int(late),
        unrouted=int(unrouted),
        actions_by_state={s.value: int(state_of.get(s.value, 0)) for s in ActionState},
        problems_by_kind={k.value: int(kind_of.get(k.value, 0)) for k in ProblemKind},
    )
