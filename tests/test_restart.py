"""Durability: kill -9 the worker and the dev server at any point; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

import engine
from config import Settings
from domain.messages import ActionStateChange, CompleteReviewInput, PostmortemInput
from domain.models import ActionState, Findings, Phase, PostmortemState
from integrations.local import LocalTracker
from record.store import Record
from tests import scenario
from tests.conftest import ROUTING
from tests.scenario import until
from worker import dev_server_command, port_in_use
from workflows.postmortem import PostmortemWorkflow

REPO = Path(__file__).resolve().parents[1]

# `postmortem up` runs its dev server on the machine's clock.
pytestmark = pytest.mark.realclock


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """The dev server and the worker as separate processes, on one SQLite file."""

    def __init__(self, settings: Settings, port: int, env: dict[str, str] | None = None) -> None:
        self.settings, self.port, self.extra_env = settings, port, env or {}
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = (settings.data_dir / "processes.log").open("ab")

    async def start(self) -> None:
        self.server = subprocess.Popen(
            dev_server_command(self.settings, self.port, None), stdout=self.log, stderr=self.log
        )
        for _ in range(300):
            if port_in_use("127.0.0.1", self.port):
                break
            await asyncio.sleep(0.1)
        self.start_worker()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no flush, as a crash or an OOM kill would."""
        for process in (self.worker, self.server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()

    async def restart(self) -> Client:
        self.kill()
        await self.start()
        return await self.client()

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait()

    def start_worker(self) -> None:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
            "PM_DATA_DIR": str(self.settings.data_dir),
            "PM_TEAMS_FILE": str(self.settings.teams_file),
            "PM_TASK_QUEUE": self.settings.task_queue,
            **self.extra_env,
        }
        self.worker = subprocess.Popen(
            [sys.executable, str(REPO / "worker.py")], env=env, stdout=self.log, stderr=self.log
        )

    async def client(self) -> Client:
        for _ in range(100):
            try:
                return await engine.connect(self.settings)
            except RuntimeError:
                await asyncio.sleep(0.1)
        pytest.fail("the restarted dev server did not accept connections")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue="postmortem",
        temporal_address=f"127.0.0.1:{port}",
    )
    settings.data_dir.mkdir(parents=True)
    running = Stack(settings, port)
    yield running
    running.kill()
    running.log.close()


async def test_kill_9_at_every_step_loses_nothing(stack: Stack):
    await stack.start()
    client = await stack.client()
    now = datetime.now(UTC)
    started = await engine.start_postmortem(
        client, "postmortem", PostmortemInput(incident=scenario.incident(now))
    )
    workflow_id = started.handle.id

    async def state(c: Client):
        return await c.get_workflow_handle(workflow_id).query(PostmortemWorkflow.status)

    # 1. Killed while drafting (the tracking ticket may or may not be filed yet).
    client = await stack.restart()
    review = await until(lambda: state(client), lambda s: s.phase is Phase.REVIEW_SCHEDULED, 120)
    assert review.tracking_ticket is not None

    # 2. Killed right after the review's findings, while tickets are being filed.
    handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
    )
    client = await stack.restart()
    following = await until(lambda: state(client), lambda s: s.phase is Phase.FOLLOWING_UP, 120)
    assert all(a.ticket is not None for a in following.actions)

    # 3. Killed during follow-up, after one action is done.
    handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
    await handle.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="canary", state=ActionState.DONE, reason="shipped"),
    )
    client = await stack.restart()
    handle = client.get_workflow_handle(workflow_id, result_type=PostmortemState)
    after = await until(
        lambda: state(client), lambda s: s.actions[0].state is ActionState.DONE, 120
    )
    assert after.actions[1].state is ActionState.OPEN
    await handle.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="alert", state=ActionState.DONE, reason="alert live"),
    )
    final = await asyncio.wait_for(handle.result(), 120)
    assert final.phase is Phase.CLOSED

    # Exactly one ticket per idempotency key: the tracking ticket and one per action.
    tracker = LocalTracker(stack.settings.tracker_db, {"payments": "PAY", "platform": "PLAT"})
    tickets = tracker.list_tickets()
    assert [t.key for t in tickets] == ["PAY-1", "PAY-2", "PLAT-1"]
    assert [a.ticket.key for a in final.actions if a.ticket] == ["PAY-2", "PLAT-1"]
    # The record, written by a worker killed three times on the way, has the final state.
    record = Record(stack.settings.record_database)
    recorded = record.get(workflow_id)
    assert recorded is not None and recorded.state == final
    assert recorded.version == final.record_version
    record.dispose()


async def test_worker_killed_between_created_and_completed_files_each_ticket_once(tmp_path: Path):
    """Jira and GitHub both create the ticket, then hold their answer; the worker is killed
    meanwhile. The retried activity finds each ticket by its idempotency label."""
    from tests.fakes.github import GitHubEmulator
    from tests.fakes.jira import JiraEmulator
    from tests.fakes.server import Fault
    from tests.test_tracker_routing import routing

    jira, github = JiraEmulator().start(), GitHubEmulator().start()
    teams = tmp_path / "teams.toml"
    teams.write_text(routing("k", jira, github, project="PAY"))
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue="postmortem",
        temporal_address=f"127.0.0.1:{port}",
    )
    settings.data_dir.mkdir(parents=True)
    env = {"PM_TEST_JIRA_TOKEN": jira.token, "PM_GITHUB_TOKEN__GH_K": github.token}
    stack = Stack(settings, port, env)
    try:
        await stack.start()
        client = await stack.client()
        now = datetime.now(UTC)
        handle = (
            await engine.start_postmortem(
                client, "postmortem", PostmortemInput(incident=scenario.incident(now, team="pay-k"))
            )
        ).handle
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review, 60)
        jira.inject(Fault(method="POST", path=r".*/issue", hold=60))
        github.inject(Fault(method="POST", path=r".*/issues", hold=60))
        await handle.execute_update(
            PostmortemWorkflow.complete_review, scenario.two_tracker_review(now, "k")
        )

        async def created() -> tuple[int, int]:
            return len(jira.state.issues), len(github.state.issues)

        # Both trackers have the ticket; neither answer has reached the worker yet.
        await until(created, lambda n: n == (1, 1), 30)
        stack.kill_worker()
        stack.start_worker()
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: s.phase is Phase.FOLLOWING_UP,
            120,
        )
        assert [a.ticket.key for a in state.actions if a.ticket] == [
            "PAY-1",
            f"{github.repo_name}#1",
        ]
        assert (len(jira.state.issues), len(github.state.issues)) == (1, 1)
        assert jira.count("POST", r".*/issue") == 1 and github.count("POST", r".*/issues") == 1
    finally:
        stack.kill()
        stack.log.close()
        jira.stop()
        github.stop()
