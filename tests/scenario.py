"""Builders for the inputs tests send: incidents, findings, and ways to start a post-mortem."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from domain.messages import PostmortemInput
from domain.models import Incident, Severity, TimelineEntry
from workflows.postmortem import PostmortemWorkflow


def incident(now: datetime, incident_id: str | None = None, **overrides: Any) -> Incident:
    """An incident; its id is unique unless given, since tests share one server."""
    fields: dict[str, Any] = {
        "id": incident_id or f"INC-{uuid.uuid4().hex[:10]}",
        "title": "Checkout errors",
        "severity": Severity.SEV2,
        "team": "payments",
        "started_at": now - timedelta(hours=2),
        "resolved_at": now - timedelta(minutes=5),
        "responders": ["sam@example.com"],
    }
    fields.update(overrides)
    return Incident(**fields)


def findings(now: datetime, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "summary": "Checkout returned errors for 2 hours after a config push.",
        "impact": "12% of checkouts failed.",
        "timeline_corrections": [
            {
                "at": (now - timedelta(hours=1)).isoformat(),
                "text": "Rollback started",
                "known": "Errors correlated with the config push",
            }
        ],
        "contributing_factors": [
            {"category": "missing_safeguard", "description": "Config pushes skip canary checks"},
            {"category": "monitoring_gap", "description": "No alert on checkout error rate"},
        ],
        "proximate_cause": "A config push set the payment timeout to 0 ms.",
        "root_cause": "Config changes reach production without validation or a canary stage.",
        "went_well": ["Rollback took 4 minutes"],
        "went_badly": ["Detection took 90 minutes"],
        "got_lucky": ["Low traffic hour"],
        "actions": [
            {
                "id": "canary",
                "title": "Add canary stage to config pushes",
                "type": "prevent",
                "priority": "P1",
                "owner": "alex@example.com",
                "team": "payments",
                "due": (now + timedelta(days=30)).isoformat(),
                # Not asked whether it worked (tests/test_verification.py asks): a test that
                # closes a post-mortem on the dev server would wait a month of real time.
                "verify_after_days": 0,
            },
            {
                "id": "alert",
                "title": "Alert on checkout error rate above 1%",
                "type": "detect",
                "owner": "kim@example.com",
                "team": "platform",
                "due": (now + timedelta(days=30)).isoformat(),
                "verify_after_days": 0,
            },
        ],
    }
    data.update(overrides)
    return data


async def start(
    client: Client, task_queue: str, inc: Incident, timeline: list[TimelineEntry] | None = None
) -> WorkflowHandle[PostmortemWorkflow, Any]:
    return await client.start_workflow(
        PostmortemWorkflow.run,
        PostmortemInput(incident=inc, timeline=timeline or []),
        id=inc.workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], seconds: float = 30
) -> T:
    """Poll in real time (not workflow time) until `ok`; fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await probe()
        if ok(value):
            return value
        if loop.time() > deadline:
            pytest.fail(f"not met within {seconds}s; last value: {value!r}"[:2000])
        await asyncio.sleep(0.05)


def two_tracker_review(now: datetime, suffix: str) -> Any:
    """The review of tests.test_tracker_routing.routing(): one action for its Jira team
    (`in-jira`), one for its GitHub team (`in-github`), both due in 30 days."""
    from domain.messages import CompleteReviewInput
    from domain.models import Findings

    base = findings(now)["actions"][0]
    actions = [
        base | {"id": "in-jira", "team": f"jira-{suffix}", "owner": "alex@example.com"},
        base | {"id": "in-github", "team": f"gh-{suffix}", "owner": "kim@example.com"},
    ]
    return CompleteReviewInput(findings=Findings.model_validate(findings(now, actions=actions)))


@contextlib.asynccontextmanager
async def serving_api(settings: Any, client: Any) -> AsyncIterator[str]:
    """The API under uvicorn in this event loop, on settings.api_port; yields its base URL."""
    from worker import api_server

    server = api_server(settings, client)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raise what stopped it
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        await serving


async def refused(handle: WorkflowHandle[Any, Any], update: Any, arg: Any) -> str:
    """Send an update that must be refused; its reason."""
    from temporalio.client import WorkflowUpdateFailedError

    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(update, arg)
    cause = caught.value.cause
    return str(getattr(cause, "message", cause))


async def idle(handle: WorkflowHandle[Any, Any]) -> bool:
    """Nothing in flight: every activity scheduled has ended and no workflow task is pending,
    so its history grows only if something reaches it. From history alone: describe() cannot
    read the time-skipping server's dates."""
    from temporalio.api.enums.v1 import EventType

    events = (await handle.fetch_history()).events
    scheduled = sum(e.HasField("activity_task_scheduled_event_attributes") for e in events)
    ended = sum(
        e.HasField("activity_task_completed_event_attributes")
        or e.HasField("activity_task_failed_event_attributes")
        or e.HasField("activity_task_timed_out_event_attributes")
        or e.HasField("activity_task_canceled_event_attributes")
        for e in events
    )
    # A workflow task scheduled or running: the workflow is still at work.
    busy = events[-1].event_type in (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    )
    waiting = not busy
    return scheduled == ended and waiting
