"""Scale-out on one machine: two API processes and two workers on one dev server and one
PostgreSQL record, each with a data folder of its own (nothing shared on disk).

    .venv/bin/python benchmarks/scaleout.py [--incidents 200] [--actions 3]

- every incident delivery (the generic webhook) is sent to *both* APIs at once;
- each post-mortem's review files --actions corrective actions in a Jira emulator (Data Center:
  its search is consistent), whichever worker runs it;
- half-way through the reviews one worker is killed with SIGKILL; the other carries on.
Then, checked (the script exits 1 when one fails): exactly --incidents post-mortems; exactly
incidents x actions action tickets, and no issue in Jira that no action or tracking ticket
names (nothing filed twice); every facilitator turn of each team given once; the record equal
to each post-mortem's state as its workflow has it. Figures: wall time, and how many
deliveries the second API found already started. Not a test (it takes minutes); the rules it
exercises are tested in tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from benchmarks.devserver import start_dev_server
from benchmarks.lifecycle import findings
from domain.messages import CompleteReviewInput
from domain.models import PostmortemState
from record.schema import turns
from record.store import Record
from tests.fakes.jira import JiraEmulator
from tests.postgres import PostgresServer
from workflows.postmortem import PostmortemWorkflow

BIN = Path(sys.executable).parent
TEAMS = ["checkout", "search"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def routing(jira: JiraEmulator) -> str:
    return "\n".join(
        f"""
[teams.{team}]
tracker = "jira"
manager = "m-{team}@example.com"
facilitators = ["f1-{team}@example.com", "f2-{team}@example.com", "f3-{team}@example.com"]
[teams.{team}.jira]
url = "{jira.base_url}"
deployment = "datacenter"
project = "{jira.state.projects and sorted(jira.state.projects)[0]}"
token_env = "PM_BENCH_JIRA_TOKEN"
"""
        for team in TEAMS
    )


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "postmortem"), command],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def ready(url: str, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)


async def deliver(http: httpx.AsyncClient, apis: list[str], body: dict[str, Any]) -> list[dict]:
    """The same delivery to every API at once; each must answer 2xx."""
    answers = await asyncio.gather(
        *(http.post(f"{api}/webhooks/generic", json=body) for api in apis)
    )
    for answer in answers:
        if answer.status_code >= 300:
            raise RuntimeError(f"delivery refused: {answer.status_code} {answer.text[:200]}")
    return [a.json() for a in answers]


async def poll(probe: Any, ok: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not met within {seconds:.0f} s; last: {value!r}"[:500])
        await asyncio.sleep(0.5)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--actions", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = await start_dev_server(folder / "temporal.sqlite3")
        postgres = PostgresServer().start()
        jira = JiraEmulator(cloud=False, project="SCALE").start()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            record_url = postgres.database()
            (folder / "teams.toml").write_text(routing(jira))
            queue = f"scaleout-{uuid.uuid4().hex[:6]}"
            common = {
                **os.environ,
                "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                "PM_TASK_QUEUE": queue,
                "PM_TEAMS_FILE": str(folder / "teams.toml"),
                "PM_RECORD_URL": record_url,
                "PM_BENCH_JIRA_TOKEN": jira.token,
                "PM_ALLOW_UNSIGNED": "true",
                "PM_LOG_LEVEL": "WARNING",
            }
            apis = []
            for n in range(2):
                port = free_port()
                own = common | {"PM_DATA_DIR": str(folder / f"api-{n}"), "PM_API_PORT": str(port)}
                processes.append(spawn("api", own, folder / f"api-{n}.log"))
                apis.append(f"http://127.0.0.1:{port}")
            workers = []
            for n in range(2):
                health = free_port()
                own = common | {
                    "PM_DATA_DIR": str(folder / f"worker-{n}"),
                    "PM_WORKER_HEALTH_ADDRESS": f"127.0.0.1:{health}",
                }
                workers.append(spawn("worker", own, folder / f"worker-{n}.log"))
                processes.append(workers[-1])
                await ready(f"http://127.0.0.1:{health}/healthz", folder / f"worker-{n}.log")
            for n, api in enumerate(apis):
                await ready(f"{api}/readyz", folder / f"api-{n}.log")

            client: Client = env.client
            now = datetime.now(UTC)
            started = time.perf_counter()
            gate = asyncio.Semaphore(args.concurrency)
            found_started: Counter[str] = Counter()
            ids: list[str] = []

            async with httpx.AsyncClient(timeout=60) as http:

                async def one(i: int) -> None:
                    body = {
                        "incident_id": f"SCALE-{i:04d}",
                        "title": f"Incident {i}",
                        "severity": "SEV2",
                        "team": TEAMS[i % len(TEAMS)],
                        "resolved_at": (now - timedelta(minutes=5)).isoformat(),
                        "responders": ["sam@example.com"],
                    }
                    async with gate:
                        answers = await deliver(http, apis, body)
                    found_started.update(str(a.get("started")) for a in answers)
                    ids.append(next(a["workflow_id"] for a in answers if a.get("workflow_id")))

                await asyncio.gather(*(one(i) for i in range(args.incidents)))
            delivered = time.perf_counter() - started

            async def review(n: int, workflow_id: str) -> None:
                handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
                async with gate:
                    state = await poll(
                        lambda: handle.query(PostmortemWorkflow.status),
                        lambda s: s.phase.awaits_review,
                        300,
                        f"{workflow_id} awaiting its review",
                    )
                    review_in = CompleteReviewInput(
                        findings=findings(now, [state.incident.team] * args.actions)
                    )
                    await handle.execute_update(PostmortemWorkflow.complete_review, review_in)

            half = len(ids) // 2
            await asyncio.gather(*(review(n, w) for n, w in enumerate(ids[:half])))
            os.killpg(workers[0].pid, signal.SIGKILL)  # half-way: one worker gone at once
            killed_at = time.perf_counter() - started
            await asyncio.gather(*(review(n, w) for n, w in enumerate(ids[half:])))

            async def filed(workflow_id: str) -> PostmortemState:
                handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
                return await poll(
                    lambda: handle.query(PostmortemWorkflow.status),
                    lambda s: len(s.actions) == args.actions and all(a.ticket for a in s.actions),
                    600,
                    f"{workflow_id} filed",
                )

            states = await asyncio.gather(*(filed(w) for w in ids))
            everything_filed = time.perf_counter() - started

            # -- the checks ----------------------------------------------------------------
            query = f"WorkflowType = 'PostmortemWorkflow' AND TaskQueue = '{queue}'"
            count = (await client.count_workflows(query)).count
            if count != args.incidents or len(set(ids)) != args.incidents:
                problems.append(f"{count} post-mortems ({len(set(ids))} ids), not {args.incidents}")
            action_tickets = [a.ticket.key for s in states for a in s.actions if a.ticket]
            tracking = {s.tracking_ticket.key for s in states if s.tracking_ticket}
            if len(set(action_tickets)) != args.incidents * args.actions:
                problems.append(f"{len(set(action_tickets))} action tickets")
            if len(action_tickets) != len(set(action_tickets)):
                problems.append("an action ticket named twice")
            stray = set(jira.state.issues) - set(action_tickets) - tracking
            if stray:
                problems.append(f"{len(stray)} issues in Jira no post-mortem names: filed twice")
            record = Record(record_url)
            with record.reading() as db:
                by_team = db.execute(
                    select(
                        turns.c.team,
                        func.count(),
                        func.count(func.distinct(turns.c.turn)),
                        func.max(turns.c.turn),
                    ).group_by(turns.c.team)
                ).all()
            for team, given, distinct, highest in by_team:
                if not given == distinct == highest + 1:
                    problems.append(f"{team}: {given} turns, {distinct} distinct, max {highest}")
            if sum(row[1] for row in by_team) != args.incidents:
                problems.append(f"{sum(row[1] for row in by_team)} turns for the post-mortems")

            async def converged(workflow_id: str) -> bool:
                handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
                state = await handle.query(PostmortemWorkflow.status)
                recorded = await asyncio.to_thread(record.get, workflow_id)
                return recorded is not None and recorded.state == state

            unequal = list(ids)
            deadline = time.monotonic() + 120
            while unequal and time.monotonic() < deadline:
                results = await asyncio.gather(*(converged(w) for w in unequal))
                unequal = [w for w, same in zip(unequal, results, strict=True) if not same]
                if unequal:
                    await asyncio.sleep(1)
            if unequal:
                problems.append(f"{len(unequal)} post-mortems differ in the record")
            settled = time.perf_counter() - started
            record.dispose()
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            jira.stop()
            postgres.remove()
            await env.shutdown()
    print(
        f"{args.incidents} incidents, each delivered to both APIs; {args.actions} actions each; "
        f"one of two workers killed with SIGKILL at {killed_at:.0f} s"
    )
    print(f"deliveries answered: {dict(found_started)} (True: started, False: already there)")
    print(
        f"delivered in {delivered:.0f} s; every action filed at {everything_filed:.0f} s; "
        f"the record equal to every workflow at {settled:.0f} s"
    )
    print(
        f"post-mortems: {count}; action tickets: {len(set(action_tickets))}; tracking "
        f"tickets: {len(tracking)}; Jira issues: {len(jira.state.issues)}; turns by team: "
        f"{[(t, g) for t, g, _, _ in by_team]}"
    )
    for problem in problems:
        print(f"FAILED: {problem}")
    print("all checks passed" if not problems else f"{len(problems)} check(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
