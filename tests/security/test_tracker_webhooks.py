"""Tracker webhooks are hints, not truth: unsigned Jira deliveries are refused unless their
network is trusted, and even an accepted delivery closes nothing the tracker has not closed
(dev server, the real API, the Jira and GitHub emulators)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.models import ActionState, PostmortemState
from tests import scenario
from tests.test_tracker_routing import routing
from tests.test_webhooks import (
    SECRET,
    free_port,
    github_event,
    jira_event,
    post,
    reads_after_signal,
    reviewed,
    signed,
)
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow


async def open_stack(tmp_path: Path, emulators: Any, monkeypatch: Any, env: Any, **extra: Any):
    jira, github = emulators
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PM_TEST_JIRA_TOKEN", jira.token)
    monkeypatch.setenv(f"PM_GITHUB_TOKEN__GH_{suffix.upper()}", github.token)
    teams = tmp_path / "teams.toml"
    teams.write_text(routing(suffix, jira, github, project=next(iter(jira.state.projects))))
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"tq-{suffix}",
        api_port=free_port(),
        webhook_secret_github=SecretStr(SECRET),
        **extra,
    )
    return settings, suffix


@pytest.fixture
async def unsigned_jira(
    tmp_path: Path, emulators, monkeypatch, dev_env: WorkflowEnvironment
) -> AsyncIterator[tuple[Settings, str, str]]:
    """No Jira secret, no trusted network: the default a new user gets."""
    settings, suffix = await open_stack(tmp_path, emulators, monkeypatch, dev_env)
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        yield settings, suffix, base


async def test_an_unsigned_jira_closure_is_refused_and_changes_nothing(
    dev_env, unsigned_jira, emulators
):
    settings, suffix, base = unsigned_jira
    jira, _ = emulators
    handle = await reviewed(dev_env, settings, suffix)
    key = f"{next(iter(jira.state.projects))}-1"
    body = jira_event(key)
    for content_type in ("application/json", "text/plain"):
        refused = await post(
            f"{base}/webhooks/jira",
            body,
            {"content-type": content_type, "x-atlassian-webhook-identifier": str(uuid.uuid4())},
        )
        assert refused.status_code == 403, refused.text
        assert "PM_JIRA_WEBHOOK_NETWORKS" in refused.json()["detail"]
    assert await signals(dev_env, f"{handle.id}/action-in-jira") == 0
    state: PostmortemState = await handle.query(PostmortemWorkflow.status)
    assert [a.state for a in state.actions] == [ActionState.OPEN, ActionState.OPEN]


async def test_a_trusted_network_is_heard_but_only_the_tracker_is_believed(
    tmp_path, dev_env, emulators, monkeypatch
):
    settings, suffix = await open_stack(
        tmp_path,
        emulators,
        monkeypatch,
        dev_env,
        jira_webhook_networks=[ipaddress.ip_network("127.0.0.0/8")],
    )
    jira, github = emulators
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        handle = await reviewed(dev_env, settings, suffix)
        key = f"{next(iter(jira.state.projects))}-1"
        # Unsigned from loopback (a trusted network here): accepted as a hint; Jira says the
        # ticket is open, so it stays open.
        hint = await post(
            f"{base}/webhooks/jira",
            jira_event(key),
            {"x-atlassian-webhook-identifier": str(uuid.uuid4())},
        )
        assert hint.status_code == 200, hint.text
        follow_up = f"{handle.id}/action-in-jira"
        await scenario.until(lambda: reads_after_signal(dev_env.client, follow_up), bool, 60)
        # A genuinely signed GitHub "closed" for an issue that is still open: the same.
        body = github_event(github.repo_name, 1)
        signed_hint = await post(
            f"{base}/webhooks/github",
            body,
            {
                "x-github-event": "issues",
                "x-github-delivery": str(uuid.uuid4()),
                "x-hub-signature-256": signed(body),
            },
        )
        assert signed_hint.status_code == 200, signed_hint.text
        await scenario.until(
            lambda: reads_after_signal(dev_env.client, f"{handle.id}/action-in-github"), bool, 60
        )
        state: PostmortemState = await handle.query(PostmortemWorkflow.status)
        assert [a.state for a in state.actions] == [ActionState.OPEN, ActionState.OPEN]
        assert jira.state.issues[key]["fields"]["status"]["statusCategory"]["key"] == "new"


async def signals(dev_env: WorkflowEnvironment, workflow_id: str) -> int:
    history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
    return sum(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events)
