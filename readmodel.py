"""The overview's shape (`Overview`, `WeekBar`) and its cache (`OverviewCache`), which the
dashboard fills from the record (record/reads.py). Below them, the reads the dashboard made
from Temporal visibility before the record: kept as `benchmarks/dashboard.py`'s baseline.

SQL visibility (the dev server's SQLite, PostgreSQL in production) counts quickly but lists
slowly and cannot sort by a custom attribute. So: the overview is made of counts only, run a
few at a time; the overdue list ranks by due date by narrowing a due-date range with counts
until a page's worth is left, and lists only that (most overdue first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client

import engine
from domain.models import ActionType, Phase, Severity
from engine import quote
from workflows import search_attributes as sa
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.api")
DAY = timedelta(days=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
LIST_AT_MOST = 200  # a range holding more is split before it is listed
CONCURRENCY = 8


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def actions_query(
    *,
    overdue: bool | None = None,
    team: str | None = None,
    severity: Severity | str | None = None,
    running: bool = True,
) -> str:
    clauses = [f"WorkflowType = '{ActionFollowUpWorkflow.__name__}'"]
    if running:
        clauses += ["ExecutionStatus = 'Running'", f"{sa.OPEN_ACTIONS.name} = 1"]
    else:
        clauses.append("ExecutionStatus != 'ContinuedAsNew'")
    if overdue is not None:
        clauses.append(f"{sa.OVERDUE_ACTIONS.name} = {int(overdue)}")
    if team:
        clauses.append(f"{sa.TEAM.name} = {quote(team)}")
    if severity:
        clauses.append(f"{sa.SEVERITY.name} = {quote(str(severity))}")
    return " AND ".join(clauses)


def due_between(query: str, start: datetime | None, end: datetime | None) -> str:
    if start is not None:
        query += f" AND {sa.NEXT_ACTION_DUE.name} >= {quote(iso(start))}"
    if end is not None:
        query += f" AND {sa.NEXT_ACTION_DUE.name} < {quote(iso(end))}"
    return query


class Counter:
    """count_workflows, a few at a time, each query asked once per page view."""

    def __init__(self, client: Client, concurrency: int = CONCURRENCY) -> None:
        self._client = client
        self._gate = asyncio.Semaphore(concurrency)
        self._known: dict[str, Awaitable[int]] = {}

    def __call__(self, query: str) -> Awaitable[int]:
        if query not in self._known:
            future = asyncio.ensure_future(self._count(query))
            # With Temporal down every count fails; the page answers 503 from the first, and
            # the others' errors are read here instead of logged as never retrieved.
            future.add_done_callback(_read_error)
            self._known[query] = future
        return self._known[query]

    async def _count(self, query: str) -> int:
        async with self._gate:
            return (await self._client.count_workflows(query)).count

    def many(self, queries: Iterable[str]) -> Awaitable[list[int]]:
        """Started at once; awaited when the answer is needed."""
        return asyncio.gather(*(self(q) for q in queries))


def _read_error(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


# -- the overview ------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekBar:
    week_start: datetime
    opened: int
    closed: int


@dataclass(frozen=True)
class Overview:
    now: datetime
    phases: dict[str, int]
    overdue_by_team: dict[str, int]
    ageing: dict[str, int]
    late_reviews: int
    completion: dict[str, tuple[int, int]]  # type -> (done, due in the last 90 days)
    weeks: list[WeekBar] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "phases": self.phases,
            "overdue_by_team": self.overdue_by_team,
            "ageing": self.ageing,
            "late_reviews": self.late_reviews,
            "completion_90d": {
                kind: {"done": done, "due": due, "rate": round(done / due, 3) if due else None}
                for kind, (done, due) in self.completion.items()
            },
            "weeks": [
                {
                    "week_start": w.week_start.date().isoformat(),
                    "opened": w.opened,
                    "closed": w.closed,
                }
                for w in self.weeks
            ],
        }


AGEING = ("due within 7 days", "overdue up to 7 days", "overdue 8-30 days", "overdue over 30 days")


def late_reviews_query(now: datetime, team: str | None = None) -> str:
    query = (
        f"WorkflowType = '{PostmortemWorkflow.__name__}' AND ExecutionStatus = 'Running' "
        f"AND {sa.REVIEW_DUE.name} < {quote(iso(now))}"
    )
    return query + (f" AND {sa.TEAM.name} = {quote(team)}" if team else "")


async def overview(
    client: Client, now: datetime, teams: list[str], *, team: str | None = None, weeks: int = 12
) -> Overview:
    """The overview of every team in `teams`, or of `team` alone."""
    count = Counter(client)
    phases = list(Phase)
    phase_counts = count.many(engine.postmortem_query(phase=p, team=team) for p in phases)
    teams = [team] if team else teams
    team_counts = count.many(actions_query(overdue=True, team=t) for t in teams)
    all_overdue = count(actions_query(overdue=True, team=team))
    open_actions = actions_query(team=team)
    ageing = count.many(
        [
            due_between(open_actions, now, now + 7 * DAY),
            due_between(open_actions, now - 7 * DAY, now),
            due_between(open_actions, now - 30 * DAY, now - 7 * DAY),
            due_between(open_actions, None, now - 30 * DAY),
        ]
    )
    late = count(late_reviews_query(now, team))
    types = list(ActionType)
    ended = actions_query(running=False, team=team)
    window = due_between(ended, now - 90 * DAY, now)
    of_type = [f"{window} AND {sa.ACTION_TYPE.name} = {quote(t.value)}" for t in types]
    due_by_type = count.many(of_type)
    done_by_type = count.many(f"{q} AND {sa.ACTION_STATE.name} = 'done'" for q in of_type)
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    starts = [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    completed = (
        f"WorkflowType = '{ActionFollowUpWorkflow.__name__}' AND ExecutionStatus = 'Completed'"
    )
    if team:
        completed += f" AND {sa.TEAM.name} = {quote(team)}"
    opened = count.many(
        f"{ended} AND {sa.ACTION_OPENED_AT.name} >= {quote(iso(s))} "
        f"AND {sa.ACTION_OPENED_AT.name} < {quote(iso(s + timedelta(weeks=1)))}"
        for s in starts
    )
    closed = count.many(
        f"{completed} AND CloseTime >= {quote(iso(s))} "
        f"AND CloseTime < {quote(iso(s + timedelta(weeks=1)))}"
        for s in starts
    )
    by_team = dict(zip(teams, await team_counts, strict=True))
    other = await all_overdue - sum(by_team.values())
    if other > 0:
        by_team["(other teams)"] = other
    return Overview(
        now=now,
        phases={p.value: n for p, n in zip(phases, await phase_counts, strict=True)},
        overdue_by_team=by_team,
        ageing=dict(zip(AGEING, await ageing, strict=True)),
        late_reviews=await late,
        completion={
            t.value: (done, due)
            for t, done, due in zip(types, await done_by_type, await due_by_type, strict=True)
        },
        weeks=[
            WeekBar(s, o, c) for s, o, c in zip(starts, await opened, await closed, strict=True)
        ],
    )


# -- the overdue list, most overdue first ------------------------------------------------


async def ranked_actions(
    client: Client,
    now: datetime,
    *,
    team: str | None = None,
    severity: str | None = None,
    offset: int = 0,
    limit: int = 50,
    overdue: bool = True,
) -> tuple[int, list[engine.OverdueRow]]:
    """(total, the rows from `offset`), earliest due first: overdue actions (most overdue
    first) or the open ones not overdue (soonest due first). The due-date range is split
    (older half first) until a part holds few enough rows to list; counts skip the rest."""
    count = Counter(client)
    query = actions_query(overdue=overdue, team=team, severity=severity)
    total = await count(query)
    rows: list[engine.OverdueRow] = []

    async def collect(start: datetime, end: datetime, skip: int) -> int:
        """Rows of [start, end) into `rows`, skipping `skip` first; returns what is left to skip."""
        if len(rows) >= limit:
            return skip
        part = due_between(query, start, end)
        n = await count(part)
        if n == 0 or skip >= n:
            return skip - n if n else skip
        if n > LIST_AT_MOST and end - start > timedelta(seconds=2):
            middle = start + (end - start) / 2
            skip = await collect(start, middle, skip)
            return await collect(middle, end, skip)
        found = [row async for row in engine.list_overdue_actions(client, part)]
        found.sort(key=lambda r: (r.due or now, r.workflow_id))
        rows.extend(found[skip : skip + (limit - len(rows))])
        return 0

    if offset < total:
        await collect(EPOCH, now + DAY if overdue else LATEST, offset)
    return total, rows[:limit]


class OverviewCache:
    """The overview is ~70 count queries; a manager's page must not wait for them. Served from
    memory while younger than `fresh`; older (up to `stale`), it is served at once and
    refreshed in the background (one refresh per team at a time); older still, recomputed.
    The page and the JSON say when it was computed (`now`).

    Bounded: only the overview of every team and of each team `kept` accepts (the routing
    file's) is held; any other team a viewer names is computed for that request and not
    kept, so a crawler walking team names cannot grow the memory or the warmer's rounds."""

    def __init__(
        self,
        compute: Callable[[str | None], Awaitable[Overview]],
        *,
        fresh: timedelta = timedelta(seconds=15),
        stale: timedelta = timedelta(minutes=10),
        kept: Callable[[str], bool] = lambda team: False,
    ) -> None:
        self._compute = compute
        self._fresh, self._stale = fresh, stale
        self._kept = kept
        self._known: dict[str | None, Overview] = {}
        self._running: dict[str | None, asyncio.Task[Overview]] = {}

    async def get(self, team: str | None) -> Overview:
        if self._fresh <= timedelta(0) or (team is not None and not self._kept(team)):
            return await self._compute(team)  # caching off, or a team not configured
        known = self._known.get(team)
        age = datetime.now(UTC) - known.now if known else None
        if known is not None and age is not None and age < self._fresh:
            return known
        task = self._refresh(team)
        if known is not None and age is not None and age < self._stale:
            return known
        return await asyncio.shield(task)

    def _refresh(self, team: str | None) -> asyncio.Task[Overview]:
        running = self._running.get(team)
        if running is None or running.done():
            running = asyncio.ensure_future(self._store(team))
            # A background refresh nobody awaits must not leave its failure unretrieved.
            running.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._running[team] = running
        return running

    async def _store(self, team: str | None) -> Overview:
        overview = await self._compute(team)
        self._known[team] = overview
        return overview

    async def keep_warm(self, first: list[str | None]) -> None:
        """Until cancelled: compute `first` now, then refresh every overview asked for so far
        before it goes stale, so that managers never wait for the counts (only the very first
        view of a team after a start does, unless it is in `first`)."""
        if self._fresh <= timedelta(0):
            return
        for team in first:
            await self._warm(team)
        while True:
            await asyncio.sleep(self._fresh.total_seconds() * 0.8)
            for team in list(self._known):
                if team is None or self._kept(team):  # a team removed from routing: dropped
                    await self._warm(team)
                else:
                    self._known.pop(team, None)

    async def _warm(self, team: str | None) -> None:
        try:
            await self._refresh(team)
        except Exception as exc:  # Temporal unreachable for a moment: the next turn retries
            log.warning("overview of %s not refreshed: %s", team or "every team", exc)
