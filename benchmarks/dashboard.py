"""The dashboard at size: 10,000 post-mortems with 30,000 corrective actions (10% overdue),
served from the record, side by side with the same reads from Temporal visibility.

    .venv/bin/python benchmarks/dashboard.py [--postmortems 10000] [--runs 15] [--sample 150]
        [--record-url postgresql://...]   # default: a SQLite file, as `make run` has it

On one dev server (SQLite file, WAL) and one record:
- seeding: the same post-mortems twice. Into the record, as the projection writes them
  (`Record.project`); into visibility, post-mortem and follow-up workflows started with their
  search attributes on a task queue no worker polls (they stay Running, as production
  visibility sees them), so that 40,000 executions exist in minutes instead of an hour;
- measured (median and p95 over --runs, through the API over HTTP, which reads the record):
  `/` (the overview, cache off), `/overdue` (first page and a deep page),
  `/api/actions?overdue=true`, a filtered page;
- against (median and p95 over --runs, in-process): the overview and the ranked overdue list
  as they were computed from visibility (`readmodel.overview`, `readmodel.ranked_actions`:
  ~70 counts, and ranges narrowed by counts), first and deep page;
- baseline 1, visibility without counts: list every overdue action and sort in Python;
- baseline 2, querying every workflow: real post-mortems (--sample of them, with a worker)
  queried one by one for their actions' state; the per-workflow time times 30,000 actions.
Goal (issue 14): p95 under 100 ms for the overview (no cache) and the overdue page (first and
last page) from the record. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from pydantic import SecretStr
from temporalio.client import Client

import engine
import readmodel
from benchmarks.devserver import start_dev_server
from benchmarks.lifecycle import findings
from config import Settings
from domain.messages import CompleteReviewInput, PostmortemInput
from domain.models import (
    ActionState,
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Incident,
    Phase,
    PhaseChange,
    PostmortemState,
    ReviewOutcome,
    ReviewSlot,
    Severity,
)
from record.store import Record
from worker import api_server, build_worker
from workflows import search_attributes as sa
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

TEAMS = [f"team-{n:02d}" for n in range(20)]
IDLE = "bench-idle"  # no worker polls it: seeded workflows stay Running with their attributes


def routing() -> str:
    return "\n".join(
        f'[teams.{t}]\nproject = "T{n:02d}"\nmanager = "m{n}@example.com"\n'
        for n, t in enumerate(TEAMS)
    )


async def seed(
    client: Client, record: Record, postmortems: int, overdue_share: float, concurrency: int
) -> int:
    rng = random.Random(7)
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(concurrency)
    phases = [Phase.REVIEW_SCHEDULED, Phase.IN_REVIEW, Phase.FOLLOWING_UP, Phase.FOLLOWING_UP]
    overdue = 0

    async def start(workflow: str, workflow_id: str, memo: dict, attrs: dict) -> None:
        async with gate:
            await client.start_workflow(
                workflow,
                {},
                id=workflow_id,
                task_queue=IDLE,
                memo=memo,
                search_attributes=sa.initial(attrs),
            )

    async def one(i: int) -> None:
        nonlocal overdue
        team, severity = TEAMS[i % len(TEAMS)], f"SEV{1 + i % 4}"
        pm_id = f"postmortem-bench-INC-{i:06d}"
        phase = phases[i % len(phases)]
        due_review = now + timedelta(days=rng.randint(-10, 10))
        actions: list[CorrectiveAction] = []
        tasks = [
            start(
                "PostmortemWorkflow",
                pm_id,
                {"title": f"Incident {i}"},
                {
                    sa.PHASE: phase.value,
                    sa.TEAM: team,
                    sa.SEVERITY: severity,
                    sa.INCIDENT_ID: f"INC-{i:06d}",
                    sa.OPEN_ACTIONS: 3,
                    sa.OVERDUE_ACTIONS: 0,
                    sa.REVIEW_DUE: due_review if phase.awaits_review else None,
                },
            )
        ]
        for j in range(3):
            late = rng.random() < overdue_share
            overdue += late
            due = (
                now - timedelta(days=rng.uniform(0.1, 90))
                if late
                else now + timedelta(days=rng.uniform(0.1, 60))
            )
            actions.append(
                CorrectiveAction(
                    id=f"a{j}",
                    title=f"Action {j} of incident {i}",
                    type=list(ActionType)[(i + j) % len(ActionType)],
                    owner=f"owner{i % 97}@example.com",
                    team=team,
                    due=due,
                    state=ActionState.OPEN,
                    overdue=late,
                    escalation_level=rng.randint(1, 3) if late else 0,
                )
            )
            tasks.append(
                start(
                    "ActionFollowUpWorkflow",
                    f"{pm_id}/action-a{j}",
                    {
                        "postmortem_id": pm_id,
                        "action_id": f"a{j}",
                        "title": f"Action {j} of incident {i}",
                        "owner": f"owner{i % 97}@example.com",
                        "ticket": f"T{i % 20:02d}-{i * 3 + j}",
                        "ticket_url": f"local://tickets/T{i % 20:02d}-{i * 3 + j}",
                    },
                    {
                        sa.TEAM: team,
                        sa.SEVERITY: severity,
                        sa.INCIDENT_ID: f"INC-{i:06d}",
                        sa.OPEN_ACTIONS: 1,
                        sa.OVERDUE_ACTIONS: int(late),
                        sa.NEXT_ACTION_DUE: due,
                        sa.ACTION_OPENED_AT: now - timedelta(days=rng.uniform(0, 80)),
                        sa.ACTION_TYPE: list(ActionType)[(i + j) % len(ActionType)].value,
                        sa.ACTION_STATE: "open",
                        sa.ESCALATION_LEVEL: rng.randint(1, 3) if late else 0,
                    },
                )
            )
        await asyncio.gather(*tasks)
        states.append(
            record_state(
                i, pm_id, team, severity, phase, due_review, actions, now - timedelta(days=1)
            )
        )

    states: list[PostmortemState] = []
    started = time.perf_counter()
    for chunk in range(0, postmortems, 500):
        await asyncio.gather(*(one(i) for i in range(chunk, min(chunk + 500, postmortems))))
        print(f"  seeded {min(chunk + 500, postmortems)} post-mortems", end="\r", flush=True)
    print(
        f"\nseeded {postmortems} post-mortems, {3 * postmortems} actions "
        f"({overdue} overdue) in {time.perf_counter() - started:.0f} s"
    )
    query = readmodel.actions_query(overdue=True)
    while (await client.count_workflows(query)).count < overdue:
        await asyncio.sleep(1)
    started = time.perf_counter()
    for state in states:
        record.project(state, 1)
    print(f"recorded the same in {time.perf_counter() - started:.0f} s")
    return overdue


def record_state(
    i: int,
    pm_id: str,
    team: str,
    severity: str,
    phase: Phase,
    due_review: datetime,
    actions: list[CorrectiveAction],
    accepted: datetime,
) -> PostmortemState:
    incident = Incident(
        id=f"INC-{i:06d}",
        source="bench",
        title=f"Incident {i}",
        severity=Severity(severity),
        team=team,
        resolved_at=accepted - timedelta(days=1),
    )
    followed = phase is Phase.FOLLOWING_UP
    return PostmortemState(
        workflow_id=pm_id,
        incident=incident,
        phase=phase,
        review=ReviewSlot(
            start=due_review - timedelta(days=1), window_end=due_review, timezone="UTC"
        ),
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=FactorCategory.MISSING_SAFEGUARD, description="x")
            ],
            proximate_cause="p",
            root_cause="r",
            accepted_at=accepted,
        )
        if followed
        else None,
        actions=actions,
        phase_history=[PhaseChange(phase=Phase.DRAFTING, at=accepted - timedelta(days=1))],
    )


def serve(settings: Settings) -> Any:
    server = api_server(settings)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def timed(http: httpx.Client, path: str, runs: int) -> tuple[float, float, int]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = http.get(path)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times) * 1000, p95 * 1000, len(answer.content)


async def list_everything(client: Client) -> float:
    """Baseline 1: every overdue action listed from visibility and sorted here."""
    started = time.perf_counter()
    query = readmodel.actions_query(overdue=True)
    rows = [r async for r in engine.list_overdue_actions(client, query)]
    rows.sort(key=lambda r: r.due or datetime.max.replace(tzinfo=UTC))
    return (time.perf_counter() - started) * 1000


async def query_each(client: Client, settings: Settings, sample: int) -> float:
    """Baseline 2: real post-mortems, each follow-up queried for its state; ms per workflow."""
    now = datetime.now(UTC)
    review = findings(now)
    review = review.model_copy(
        update={"actions": [a.model_copy(update={"team": TEAMS[0]}) for a in review.actions]}
    )
    async with build_worker(client, settings):
        handles = []
        for i in range(sample):
            inc = Incident(
                id=f"Q-{i}",
                title="Sample",
                severity=Severity.SEV2,
                team=TEAMS[0],
                resolved_at=now - timedelta(minutes=5),
            )
            start = await engine.start_postmortem(
                client, settings.task_queue, PostmortemInput(incident=inc)
            )
            handles.append(start.handle)
        children = []
        for handle in handles:
            while not (await handle.query(PostmortemWorkflow.phase)).awaits_review:
                await asyncio.sleep(0.05)
            await handle.execute_update(
                PostmortemWorkflow.complete_review, CompleteReviewInput(findings=review)
            )
        for handle in handles:
            while True:
                state = await handle.query(PostmortemWorkflow.status)
                if state.actions and all(a.ticket for a in state.actions):
                    break
                await asyncio.sleep(0.1)
            children += [f"{handle.id}/action-{a.id}" for a in state.actions]
        for child in children:  # each exists and answers before the clock starts
            while True:
                try:
                    await client.get_workflow_handle(child).query(ActionFollowUpWorkflow.status)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        clock = time.perf_counter()
        for child in children:
            await client.get_workflow_handle(child).query(ActionFollowUpWorkflow.status)
        return (time.perf_counter() - clock) * 1000 / len(children)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postmortems", type=int, default=10_000)
    parser.add_argument("--overdue", type=float, default=0.10)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--record-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = await start_dev_server(folder / "temporal.sqlite3")
        url = args.record_url or f"sqlite:///{folder / 'record.sqlite3'}"
        record = Record(url)
        record.upgrade()
        try:
            (folder / "teams.toml").write_text(routing())
            settings = Settings(
                temporal_address=env.client.service_client.config.target_host,
                teams_file=folder / "teams.toml",
                data_dir=folder / "data",
                task_queue="bench-dashboard",
                api_port=18080,
                record_url=SecretStr(url),
                overview_cache_seconds=0,  # every overview computed: the goal is uncached
            )
            overdue = await seed(
                env.client, record, args.postmortems, args.overdue, args.concurrency
            )
            deep = max(0, overdue - 50)
            results: dict[str, tuple[float, float, int]] = {}
            server = serve(settings)
            base = f"http://127.0.0.1:{settings.api_port}"
            with httpx.Client(base_url=base, timeout=120) as http:
                for label, path in [
                    ("/ (overview, no cache)", "/"),
                    ("/api/overview (no cache)", "/api/overview"),
                    ("/overdue (first page)", "/overdue"),
                    (f"/overdue?offset={deep} (last page)", f"/overdue?offset={deep}"),
                    ("/api/actions?overdue=true", "/api/actions?overdue=true"),
                    ("/overdue?team=team-03&severity=SEV4", "/overdue?team=team-03&severity=SEV4"),
                    ("/api/postmortems?phase=following_up", "/api/postmortems?phase=following_up"),
                ]:
                    http.get(path)  # warm
                    results[label] = await asyncio.to_thread(timed, http, path, args.runs)
            server.should_exit = True
            teams = sorted(TEAMS)
            against = {
                "overview from visibility": await timed_async(
                    lambda: readmodel.overview(env.client, datetime.now(UTC), teams), args.runs
                ),
                "overdue first page from visibility": await timed_async(
                    lambda: readmodel.ranked_actions(env.client, datetime.now(UTC)), args.runs
                ),
                "overdue last page from visibility": await timed_async(
                    lambda: readmodel.ranked_actions(env.client, datetime.now(UTC), offset=deep),
                    args.runs,
                ),
            }
            baseline_list = statistics.median([await list_everything(env.client) for _ in range(3)])
            per_query = await query_each(env.client, settings, args.sample)
        finally:
            record.dispose()
            await env.shutdown()
    actions = 3 * args.postmortems
    where = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"\n{args.postmortems} post-mortems, {actions} actions, {overdue} overdue; "
        f"{args.runs} runs; the record on {where}"
    )
    print(f"{'from the record, through the API':45} {'median ms':>10} {'p95 ms':>8}")
    for label, (median, p95, size) in results.items():
        print(f"{label:45} {median:10.0f} {p95:8.0f}   ({size} bytes)")
    print(f"{'the same reads from visibility (in-process)':45} {'median ms':>10} {'p95 ms':>8}")
    for label, (median, p95) in against.items():
        print(f"{label:45} {median:10.0f} {p95:8.0f}")
    pairs = [
        ("overview", "/ (overview, no cache)", "overview from visibility"),
        ("overdue first page", "/overdue (first page)", "overdue first page from visibility"),
        (
            "overdue last page",
            f"/overdue?offset={deep} (last page)",
            "overdue last page from visibility",
        ),
    ]
    for name, mine, theirs in pairs:
        print(
            f"ratio, {name}: visibility p95 / record p95 = "
            f"{against[theirs][1] / results[mine][1]:.1f}x"
        )
    first_page = results["/api/actions?overdue=true"][0]
    print(
        f"baseline 1, list every overdue action and sort: {baseline_list:.0f} ms "
        f"(ratio to /api/actions: {baseline_list / first_page:.1f}x)"
    )
    every = per_query * actions
    print(
        f"baseline 2, query every follow-up workflow: {per_query:.2f} ms each, "
        f"{every / 1000:.0f} s for {actions} (measured on {3 * args.sample}; ratio to "
        f"/api/actions: {every / first_page:.0f}x)"
    )


async def timed_async(make: Any, runs: int) -> tuple[float, float]:
    times = []
    await make()  # warm
    for _ in range(runs):
        started = time.perf_counter()
        await make()
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times) * 1000, p95 * 1000


if __name__ == "__main__":
    asyncio.run(main())
