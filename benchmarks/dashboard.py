"""The dashboard at size: 10,000 post-mortems with 30,000 corrective actions (10% overdue).

    .venv/bin/python benchmarks/dashboard.py [--postmortems 10000] [--runs 15] [--sample 150]

On one dev server (SQLite file, WAL):
- seeding: post-mortem and follow-up workflows started with their search attributes on a task
  queue no worker polls (they stay Running, as in production visibility sees them), so that
  40,000 executions exist in about two minutes instead of an hour of real lifecycles;
- measured (median and p95 over --runs, through the API over HTTP): `/api/actions?overdue=true`
  (first page, most overdue first), `/overdue` (the page), `/` (the overview), a deep page
  of the overdue list;
- baseline 1, visibility without counts: list every overdue action and sort in Python;
- baseline 2, querying every workflow: real post-mortems (--sample of them, with a worker)
  queried one by one for their actions' state; the per-workflow time times 30,000 actions.
Goal: the overview and the overdue page under 300 ms at this size. Not a test.
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
from temporalio.client import Client

import engine
import readmodel
from benchmarks.devserver import start_dev_server
from benchmarks.lifecycle import findings
from config import Settings
from domain.messages import CompleteReviewInput, PostmortemInput
from domain.models import ActionType, Incident, Phase, Severity
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


async def seed(client: Client, postmortems: int, overdue_share: float, concurrency: int) -> int:
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
    return overdue


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = await start_dev_server(folder / "temporal.sqlite3")
        try:
            (folder / "teams.toml").write_text(routing())
            settings = Settings(
                temporal_address=env.client.service_client.config.target_host,
                teams_file=folder / "teams.toml",
                data_dir=folder / "data",
                task_queue="bench-dashboard",
                api_port=18080,
            )
            overdue = await seed(env.client, args.postmortems, args.overdue, args.concurrency)
            results = {}
            # The overview without its cache: every request makes all its count queries.
            cold = settings.model_copy(update={"api_port": 18081, "overview_cache_seconds": 0})
            server = serve(cold)
            with httpx.Client(base_url=f"http://127.0.0.1:{cold.api_port}", timeout=120) as http:
                http.get("/")
                results["/ (overview, cache off)"] = await asyncio.to_thread(
                    timed, http, "/", args.runs
                )
            server.should_exit = True
            server = serve(settings)
            base = f"http://127.0.0.1:{settings.api_port}"
            with httpx.Client(base_url=base, timeout=120) as http:
                deep = max(0, overdue - 60)
                for label, path in [
                    ("/api/actions?overdue=true", "/api/actions?overdue=true"),
                    ("/overdue", "/overdue"),
                    ("/ (overview, served from its 15 s cache)", "/"),
                    (f"/overdue?offset={deep}", f"/overdue?offset={deep}"),
                    ("/overdue?team=team-03&severity=SEV4", "/overdue?team=team-03&severity=SEV4"),
                ]:
                    http.get(path)  # warm
                    results[label] = await asyncio.to_thread(timed, http, path, args.runs)
            server.should_exit = True
            baseline_list = statistics.median([await list_everything(env.client) for _ in range(3)])
            per_query = await query_each(env.client, settings, args.sample)
        finally:
            await env.shutdown()
    actions = 3 * args.postmortems
    print(
        f"\n{args.postmortems} post-mortems, {actions} actions, {overdue} overdue; {args.runs} runs"
    )
    print(f"{'endpoint':45} {'median ms':>10} {'p95 ms':>8}")
    for label, (median, p95, size) in results.items():
        print(f"{label:45} {median:10.0f} {p95:8.0f}   ({size} bytes)")
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


if __name__ == "__main__":
    asyncio.run(main())
