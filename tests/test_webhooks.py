"""Tracker webhooks over real HTTP: status flows back to the follow-ups, nothing else moves."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

import engine
from config import Settings
from domain.messages import PostmortemInput
from domain.models import ActionState, Phase, PostmortemState
from tests import scenario
from tests.scenario import until
from tests.test_lifecycle import record
from tests.test_tracker_routing import routing
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

SECRET = "webhook-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def stack(
    tmp_path: Path, emulators, monkeypatch, dev_env: WorkflowEnvironment
) -> AsyncIterator[tuple[Settings, str, str]]:
    jira, github = emulators
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PM_TEST_JIRA_TOKEN", jira.token)
    monkeypatch.setenv(f"PM_GITHUB_TOKEN__GH_{suffix.upper()}", github.token)
    teams = tmp_path / "teams.toml"
    # Polled every 10 s, so that "closed in Jira, no webhook" is seen within the test.
    poll = '[policy.follow_up]\npoll_every = "10s"\n'
    teams.write_text(
        routing(suffix, jira, github, project=next(iter(jira.state.projects)), policy=poll)
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"tq-{suffix}",
        api_port=free_port(),
        webhook_secret_github=SecretStr(SECRET),
        webhook_secret_jira=SecretStr(SECRET),
    )
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        yield settings, suffix, base


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_event(
    repo: str, number: int, action: str = "closed", reason: str = "completed"
) -> bytes:
    payload = {
        "action": action,
        "issue": {
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "state_reason": reason if action == "closed" else "reopened",
        },
        "repository": {"full_name": repo, "name": repo.split("/")[1]},
        "sender": {"login": "kimgh"},
    }
    return json.dumps(payload).encode()


def jira_event(key: str, category: str = "done", resolution: str | None = "Done") -> bytes:
    payload = {
        "timestamp": 1764115200000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "acc-alex"},
        "issue": {
            "id": "10001",
            "key": key,
            "fields": {
                "status": {"name": "Closed", "statusCategory": {"key": category}},
                "resolution": {"name": resolution} if resolution else None,
            },
        },
        "changelog": {
            "id": "1",
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fromString": "In Progress",
                    "toString": "Closed",
                }
            ],
        },
    }
    return json.dumps(payload).encode()


async def reviewed(dev_env: WorkflowEnvironment, settings: Settings, suffix: str) -> Any:
    now = await dev_env.get_current_time()
    incident = scenario.incident(now, team=f"pay-{suffix}")
    handle = (
        await engine.start_postmortem(
            dev_env.client, settings.task_queue, PostmortemInput(incident=incident)
        )
    ).handle
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    await handle.execute_update(
        PostmortemWorkflow.complete_review, scenario.two_tracker_review(now, suffix)
    )
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p is Phase.FOLLOWING_UP)
    # The follow-ups are findable by ticket once visibility has them.
    query = f"WorkflowType = 'ActionFollowUpWorkflow' AND IncidentId = '{incident.id}'"

    async def children() -> int:
        return len([e async for e in dev_env.client.list_workflows(query)])

    await until(children, lambda n: n == 2)
    return handle


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            url, content=body, headers={"content-type": "application/json", **headers}
        )


async def test_github_closed_by_webhook_jira_by_the_poll(dev_env, stack, emulators):
    """The foundation's lifecycle with real trackers: one review files to a Jira team and a
    GitHub team; GitHub's close arrives by webhook, Jira's is found by the poll."""
    settings, suffix, base = stack
    jira, github = emulators
    handle = await reviewed(dev_env, settings, suffix)

    async def states() -> list[ActionState]:
        state: PostmortemState = await handle.query(PostmortemWorkflow.status)
        return [a.state for a in state.actions]

    async def signals(workflow_id: str) -> int:
        history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
        return sum(
            e.HasField("workflow_execution_signaled_event_attributes") for e in history.events
        )

    body = github_event(github.repo_name, 1)
    headers = {"x-github-event": "issues", "x-github-delivery": str(uuid.uuid4())}
    assert await signals(f"{handle.id}/action-in-github") == 0
    # A bad signature: 401, and nothing moves.
    refused = await post(
        f"{base}/webhooks/github", body, headers | {"x-hub-signature-256": signed(body, "wrong")}
    )
    assert refused.status_code == 401 and refused.json()["accepted"] is False
    # The answer comes after anything the API did: no signal reached the follow-up.
    assert await signals(f"{handle.id}/action-in-github") == 0
    assert await states() == [ActionState.OPEN, ActionState.OPEN]

    github.close(1)
    accepted = await post(
        f"{base}/webhooks/github", body, headers | {"x-hub-signature-256": signed(body)}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["workflow_id"] == f"{handle.id}/action-in-github"
    assert await signals(f"{handle.id}/action-in-github") == 1  # the probe sees a signal
    assert await until(states, lambda s: s[1] is ActionState.DONE) == [
        ActionState.OPEN,
        ActionState.DONE,
    ]
    # Redelivered: one more hint, and the tracker still says closed: nothing changes.
    again = await post(
        f"{base}/webhooks/github", body, headers | {"x-hub-signature-256": signed(body)}
    )
    assert again.status_code in (200, 202), again.text

    # Jira sends nothing; its poll (every 10 s here) reads the status category.
    jira.set_status(f"{next(iter(jira.state.projects))}-1", "done", resolution="Done")
    final = await asyncio.wait_for(handle.result(), 60)
    assert final.phase is Phase.CLOSED
    assert [a.state_reason for a in final.actions] == ["closed in the tracker"] * 2


async def test_jira_closes_its_action_by_webhook(dev_env, stack, emulators):
    settings, suffix, base = stack
    jira, _ = emulators
    handle = await reviewed(dev_env, settings, suffix)
    key = f"{next(iter(jira.state.projects))}-1"
    follow_up = f"{handle.id}/action-in-jira"

    async def jira_state() -> ActionState:
        state: PostmortemState = await handle.query(PostmortemWorkflow.status)
        return state.actions[0].state

    # A webhook saying "done" while the ticket is open in Jira (forged, or stale): the
    # follow-up reads the ticket after the signal and believes Jira, not the webhook.
    body = jira_event(key)
    headers = {"x-atlassian-webhook-identifier": str(uuid.uuid4()), "x-hub-signature": signed(body)}
    hinted = await post(f"{base}/webhooks/jira", body, headers)
    assert hinted.status_code == 200 and hinted.json()["workflow_id"] == follow_up, hinted.text
    await until(lambda: reads_after_signal(dev_env.client, follow_up), lambda n: n >= 1, 60)
    assert await jira_state() is ActionState.OPEN

    # Closed in Jira for real: the next webhook closes the action.
    jira.set_status(key, "done", resolution="Done")
    headers["x-atlassian-webhook-identifier"] = str(uuid.uuid4())
    done = await post(f"{base}/webhooks/jira", body, headers)
    assert done.status_code == 200, done.text
    assert await until(jira_state, lambda s: s is ActionState.DONE) is ActionState.DONE
    follow_up_handle = dev_env.client.get_workflow_handle(follow_up)
    await follow_up_handle.result()
    await record("action-hinted", follow_up_handle)


async def reads_after_signal(client: Any, workflow_id: str) -> int:
    """Ticket reads a follow-up completed after its last tracker signal."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    reads, scheduled = 0, set[int]()
    for event in history.events:
        if event.HasField("workflow_execution_signaled_event_attributes"):
            reads, scheduled = 0, set[int]()
        attributes = event.activity_task_scheduled_event_attributes
        if (
            event.HasField("activity_task_scheduled_event_attributes")
            and attributes.activity_type.name == "tracker.ticket_status"
        ):
            scheduled.add(event.event_id)
        completed = event.activity_task_completed_event_attributes
        if (
            event.HasField("activity_task_completed_event_attributes")
            and completed.scheduled_event_id in scheduled
        ):
            reads += 1
    return reads


async def test_webhooks_that_change_nothing(dev_env, stack, emulators):
    _settings, _suffix, base = stack
    _jira, github = emulators
    body = github_event(github.repo_name, 999)
    headers = {"x-github-event": "issues", "x-hub-signature-256": signed(body)}
    unknown = await post(f"{base}/webhooks/github", body, headers)
    assert unknown.status_code == 202 and "not followed by this engine" in unknown.json()["detail"]
    ping = await post(
        f"{base}/webhooks/github",
        b"{}",
        {"x-github-event": "ping", "x-hub-signature-256": signed(b"{}")},
    )
    assert ping.json()["detail"] == "pong"
    push = await post(
        f"{base}/webhooks/github",
        b"{}",
        {"x-github-event": "push", "x-hub-signature-256": signed(b"{}")},
    )
    assert push.status_code == 202
    garbage = b"not json"
    bad = await post(
        f"{base}/webhooks/github",
        garbage,
        {"x-github-event": "issues", "x-hub-signature-256": signed(garbage)},
    )
    assert bad.status_code == 400
    huge = b"x" * (1024 * 1024 + 1)
    assert (await post(f"{base}/webhooks/jira", huge, {})).status_code == 413
    body = jira_event("PAY-77", category="indeterminate")
    missing = await post(f"{base}/webhooks/jira", body, {})
    assert missing.status_code == 401  # a secret is set: an unsigned delivery is refused
    other = json.dumps({"webhookEvent": "comment_created"}).encode()
    assert (
        await post(f"{base}/webhooks/jira", other, {"x-hub-signature": signed(other)})
    ).status_code == 202


async def test_github_without_a_secret_is_refused(tmp_path: Path, dev_env: WorkflowEnvironment):
    settings = Settings(
        data_dir=tmp_path / "data", teams_file=tmp_path / "none.toml", api_port=free_port()
    )
    async with scenario.serving_api(settings, dev_env.client) as base:
        answer = await post(f"{base}/webhooks/github", b"{}", {"x-github-event": "issues"})
        assert answer.status_code == 403
        assert "PM_WEBHOOK_SECRET_GITHUB" in answer.json()["detail"]


async def test_a_reopened_ticket_reopens_its_action(dev_env, stack, emulators):
    settings, suffix, base = stack
    _, github = emulators
    handle = await reviewed(dev_env, settings, suffix)

    async def github_action() -> Any:
        state: PostmortemState = await handle.query(PostmortemWorkflow.status)
        return state.actions[1]

    async def deliver(action: str) -> httpx.Response:
        body = github_event(github.repo_name, 1, action=action)
        headers = {
            "x-github-event": "issues",
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": signed(body),
        }
        return await post(f"{base}/webhooks/github", body, headers)

    github.close(1)
    assert (await deliver("closed")).status_code == 200
    await until(github_action, lambda a: a.state is ActionState.DONE)
    child = dev_env.client.get_workflow_handle(f"{handle.id}/action-in-github")
    first_run = (await child.describe()).run_id
    await until(child.describe, lambda d: d.status.name == "COMPLETED")

    # A "reopened" the tracker does not confirm (stale, or forged with the secret): the
    # post-mortem reads the ticket, finds it closed, and reopens nothing.
    stale = await deliver("reopened")
    assert stale.status_code == 200, stale.text

    async def ticket_read_after_the_hint() -> bool:
        events = list((await handle.fetch_history()).events)
        hints = [
            i
            for i, e in enumerate(events)
            if e.workflow_execution_signaled_event_attributes.signal_name == "action_reopened"
        ]
        return bool(hints) and any(
            e.HasField("activity_task_completed_event_attributes") for e in events[hints[-1] :]
        )

    await until(ticket_read_after_the_hint, lambda read: read)
    assert (await github_action()).state is ActionState.DONE
    assert (await child.describe()).run_id == first_run

    github.reopen(1)
    reopened = await deliver("reopened")
    assert reopened.status_code == 200, reopened.text
    assert "action in-github is open again" in reopened.json()["detail"]
    action = await until(github_action, lambda a: a.state is ActionState.OPEN)
    assert action.state_reason == "reopened in the tracker" and action.completed_at is None
    # A new run of the same follow-up id watches the ticket again.
    await until(child.describe, lambda d: d.run_id != first_run and d.status.name == "RUNNING")

    github.close(1)
    assert (await deliver("closed")).status_code == 200
    await until(github_action, lambda a: a.state is ActionState.DONE)
    assert (await handle.query(PostmortemWorkflow.phase)) is Phase.FOLLOWING_UP  # Jira still open
    await record("reopened", handle)
