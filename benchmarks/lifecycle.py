"""Throughput of the post-mortem lifecycle against a bare Temporal workflow of the same shape.

    .venv/bin/python benchmarks/lifecycle.py [--count 500] [--concurrency 50]

On one dev server (SQLite file, WAL), in one run:
- lifecycle: N post-mortems, each start -> review with 3 actions -> actions filed (tracking
  ticket, review slot, 3 tickets in the local tracker, 3 follow-up children, publication);
- baseline: N bare workflows with the same 10 no-op activities (4, then an update, then 6 of
  which 3 in parallel), driven by the same client code;
- the record's cost: the same lifecycle on a worker whose `record.project` writes nothing
  (it answers at once), against the real one writing the record (a SQLite file, or
  --record-url, e.g. PostgreSQL). The workflow schedules its projection either way (it is
  part of the workflow's code); what differs is the database's work.
Prints the throughputs and the ratios (goals: lifecycle / bare >= 0.5; with the record /
without its writes >= 0.85). Not a test: machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

import engine
from activities.record import ProjectInput
from benchmarks.bare import BareWorkflow, noop
from benchmarks.devserver import start_dev_server
from config import Settings
from domain.messages import CompleteReviewInput, PostmortemInput
from domain.models import Findings, Incident, Phase, Severity
from worker import activities_for, build_worker
from workflows.postmortem import PostmortemWorkflow

ROUTING = """
[teams.payments]
project = "PAY"
manager = "dana@example.com"
timezone = "Europe/Berlin"
[teams.platform]
project = "PLAT"
manager = "lee@example.com"
timezone = "America/New_York"
"""


def findings(
    now: datetime, teams: Sequence[str] = ("payments", "platform", "payments")
) -> Findings:
    """Findings with one corrective action per team named (three by default)."""
    due = (now + timedelta(days=30)).isoformat()
    return Findings.model_validate(
        {
            "contributing_factors": [{"category": "missing_safeguard", "description": "No canary"}],
            "proximate_cause": "A config push set a timeout to 0 ms.",
            "root_cause": "Config changes reach production without validation.",
            "actions": [
                {
                    "title": f"Action {i}",
                    "type": "prevent",
                    "owner": "alex@example.com",
                    "team": team,
                    "due": due,
                }
                for i, team in enumerate(teams)
            ],
        }
    )


async def until(probe: Callable[[], Awaitable[str]], wanted: str) -> None:
    delay = 0.02
    while await probe() != wanted:
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@activity.defn(name="record.project")
def project_nothing(request: ProjectInput) -> bool:
    """The record's writer, writing nothing: the lifecycle without the database's work."""
    return True


def without_record_writes(client: Client, settings: Settings, queue: str) -> Worker:
    from concurrent.futures import ThreadPoolExecutor

    from workflows.action import ActionFollowUpWorkflow

    kept = [
        a
        for a in activities_for(settings, client)
        if getattr(a, "__temporal_activity_definition").name != "record.project"
    ]
    return Worker(
        client,
        task_queue=queue,
        workflows=[PostmortemWorkflow, ActionFollowUpWorkflow],
        activities=[*kept, project_nothing],
        activity_executor=ThreadPoolExecutor(settings.activity_threads),
        max_cached_workflows=settings.max_cached_workflows,
    )


async def run_lifecycle(client: Client, queue: str, count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    now = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:6]

    async def one(i: int) -> None:
        async with gate:
            incident = Incident(
                id=f"B{run_id}-{i}",
                title="Bench",
                severity=Severity.SEV2,
                team="payments",
                resolved_at=now,
            )
            handle = (
                await engine.start_postmortem(client, queue, PostmortemInput(incident=incident))
            ).handle

            async def phase() -> str:
                current = await handle.query(PostmortemWorkflow.phase)
                if current.awaits_review:
                    return "ready"
                return "filed" if current is Phase.FOLLOWING_UP else current.value

            await until(phase, "ready")
            await handle.execute_update(
                PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings(now))
            )
            await until(phase, "filed")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def run_baseline(client: Client, queue: str, count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    run_id = uuid.uuid4().hex[:6]

    async def one(i: int) -> None:
        async with gate:
            handle = await client.start_workflow(
                BareWorkflow.run, id=f"bare-{run_id}-{i}", task_queue=queue
            )

            async def phase() -> str:
                return await handle.query(BareWorkflow.phase)

            await until(phase, "ready")
            await handle.execute_update(BareWorkflow.review)
            await until(phase, "filed")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--record-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pm-bench-"))
    (folder / "teams.toml").write_text(ROUTING)
    settings = Settings(
        data_dir=folder / "data",
        teams_file=folder / "teams.toml",
        log_level="WARNING",
        record_url=args.record_url,
    )
    settings.data_dir.mkdir()
    env = await start_dev_server(settings.temporal_db)
    client = env.client
    try:
        from concurrent.futures import ThreadPoolExecutor

        bare = Worker(
            client,
            task_queue="bench-bare",
            workflows=[BareWorkflow],
            activities=[noop],
            activity_executor=ThreadPoolExecutor(settings.activity_threads),
            max_cached_workflows=settings.max_cached_workflows,
        )
        async with (
            bare,
            build_worker(client, settings, task_queue="bench-lifecycle"),
            without_record_writes(client, settings, "bench-unrecorded"),
        ):
            # A short warm-up of each, so neither pays the process's first-use costs.
            await run_baseline(client, "bench-bare", 10, 10)
            await run_lifecycle(client, "bench-lifecycle", 10, 10)
            await run_lifecycle(client, "bench-unrecorded", 10, 10)
            # A-B-C-C-B-A halves: no side always runs on the larger database.
            half, rest = args.count // 2, args.count - args.count // 2
            base_s = await run_baseline(client, "bench-bare", half, args.concurrency)
            life_s = await run_lifecycle(client, "bench-lifecycle", half, args.concurrency)
            off_s = await run_lifecycle(client, "bench-unrecorded", half, args.concurrency)
            off_s += await run_lifecycle(client, "bench-unrecorded", rest, args.concurrency)
            life_s += await run_lifecycle(client, "bench-lifecycle", rest, args.concurrency)
            base_s += await run_baseline(client, "bench-bare", rest, args.concurrency)
        base_rate, life_rate = args.count / base_s, args.count / life_s
        off_rate = args.count / off_s
        where = "PostgreSQL" if args.record_url else "SQLite"
        print(f"dev server: SQLite file, WAL; {args.count} workflows, {args.concurrency} in flight")
        print(f"baseline : {base_rate:7.1f} workflows/s ({base_s:.1f} s)", end="")
        print(" bare, 10 no-op activities + update")
        print(f"lifecycle: {life_rate:7.1f} post-mortems/s ({life_s:.1f} s)", end="")
        print(f" start -> review -> 3 actions filed, the record on {where}")
        print(f"no writes: {off_rate:7.1f} post-mortems/s ({off_s:.1f} s)", end="")
        print(" the same, record.project writing nothing")
        print(f"ratio    : {life_rate / base_rate:.2f} lifecycle / bare (goal >= 0.50)")
        print(f"ratio    : {life_rate / off_rate:.2f} with the record / without (goal >= 0.85)")
    finally:
        await env.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # sdk-python #300: a client process can crash at interpreter exit
