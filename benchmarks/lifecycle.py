"""Throughput of the post-mortem lifecycle against a bare Temporal workflow of the same shape.

    .venv/bin/python benchmarks/lifecycle.py [--count 500] [--concurrency 50]

On one dev server (SQLite file, WAL), in one run:
- lifecycle: N post-mortems, each start -> review with 3 actions -> actions filed (tracking
  ticket, review slot, 3 tickets in the local tracker, 3 follow-up children, publication);
- baseline: N bare workflows with the same 10 no-op activities (4, then an update, then 6 of
  which 3 in parallel), driven by the same client code.
Prints both throughputs and the ratio (goal: >= 0.5). Not a test: machines are noisy.
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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client
from temporalio.worker import Worker

import engine
from benchmarks.bare import BareWorkflow, noop
from benchmarks.devserver import start_dev_server
from config import Settings
from domain.messages import CompleteReviewInput, PostmortemInput
from domain.models import Findings, Incident, Phase, Severity
from worker import build_worker
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


def findings(now: datetime) -> Findings:
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
                for i, team in enumerate(["payments", "platform", "payments"])
            ],
        }
    )


async def until(probe: Callable[[], Awaitable[str]], wanted: str) -> None:
    delay = 0.02
    while await probe() != wanted:
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


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
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pm-bench-"))
    (folder / "teams.toml").write_text(ROUTING)
    settings = Settings(
        data_dir=folder / "data", teams_file=folder / "teams.toml", log_level="WARNING"
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
        async with bare, build_worker(client, settings, task_queue="bench-lifecycle"):
            # A short warm-up of each, so neither pays the process's first-use costs.
            await run_baseline(client, "bench-bare", 10, 10)
            await run_lifecycle(client, "bench-lifecycle", 10, 10)
            # A-B-B-A halves: neither side always runs on the larger database.
            half, rest = args.count // 2, args.count - args.count // 2
            base_s = await run_baseline(client, "bench-bare", half, args.concurrency)
            life_s = await run_lifecycle(client, "bench-lifecycle", half, args.concurrency)
            life_s += await run_lifecycle(client, "bench-lifecycle", rest, args.concurrency)
            base_s += await run_baseline(client, "bench-bare", rest, args.concurrency)
        base_rate, life_rate = args.count / base_s, args.count / life_s
        print(f"dev server: SQLite file, WAL; {args.count} workflows, {args.concurrency} in flight")
        print(f"baseline : {base_rate:7.1f} workflows/s ({base_s:.1f} s)", end="")
        print(" bare, 10 no-op activities + update")
        print(f"lifecycle: {life_rate:7.1f} post-mortems/s ({life_s:.1f} s)", end="")
        print(" start -> review -> 3 actions filed")
        print(f"ratio    : {life_rate / base_rate:.2f} (goal >= 0.50)")
    finally:
        await env.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # sdk-python #300: a client process can crash at interpreter exit
