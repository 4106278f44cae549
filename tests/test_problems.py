"""Typed problems: what went wrong is shown with its kind, its action and since when, and
is cleared by what fixes it. A step that no retry can fix (a bug, impossible data) fails
once, is shown, and runs again on `postmortem retry`; nothing retries it forever."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import Worker

from activities.errors import maps_integration_errors
from activities.routing import PlanReviewInput
from domain.messages import CompleteReviewInput, RetryFilingInput, RouteInput
from domain.models import Findings, Phase, ProblemKind, ReviewSlot, action_workflow_id
from tests import scenario
from tests.scenario import idle, until
from tests.test_lifecycle import record
from worker import WORKFLOWS, activities_for
from workflows.postmortem import PostmortemWorkflow


def name_of(fn: Any) -> str:
    return str(activity._Definition.must_from_callable(fn).name)


def with_planner(client: Any, settings: Any, fault: Callable[[PlanReviewInput], None]) -> Worker:
    """The real worker, its review planning given a fault (injected into our own activity:
    `fault` raises for the requests it picks, as a bug would, every time)."""
    real = activities_for(settings, client)
    plan = next(a for a in real if name_of(a) == "routing.plan_review")

    @activity.defn(name="routing.plan_review")
    @maps_integration_errors
    def plan_review(request: PlanReviewInput) -> ReviewSlot:
        fault(request)
        result: ReviewSlot = plan(request)
        return result

    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[a for a in real if name_of(a) != "routing.plan_review"] + [plan_review],
        activity_executor=ThreadPoolExecutor(4),
    )


async def test_a_step_no_retry_fixes_waits_for_postmortem_retry(env, client, settings):
    calls: list[str] = []

    def first_call_fails(request: PlanReviewInput) -> None:
        calls.append("called")
        if len(calls) == 1:
            raise ValueError("year 10000 is out of range")

    async with with_planner(client, settings, first_call_fails):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: any(p.kind is ProblemKind.STEP_FAILED for p in s.problems),
        )
        (problem,) = state.problems
        assert state.phase is Phase.DRAFTING and problem.since is not None
        assert problem.message == (
            "drafting stopped: the review could not be planned: "
            "unexpected ValueError: year 10000 is out of range"
        )
        assert problem.describe().startswith("[step_failed] drafting stopped")
        await until(lambda: idle(handle), lambda quiet: quiet)
        assert calls == ["called"]  # not retried: the same input fails the same way

        await handle.execute_update(PostmortemWorkflow.retry)  # after the fix
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        assert state.problems == [] and state.review is not None and len(calls) == 2
        # Nothing waits for a retry now: refused, and nothing changes.
        await until(lambda: idle(handle), lambda quiet: quiet)
        await record("step-retried", handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(PostmortemWorkflow.retry)
        assert getattr(refused.value.cause, "message", "").startswith(
            "no step of this post-mortem is waiting for a retry"
        )


async def test_a_follow_up_that_did_not_start_is_retried_and_its_problem_clears(
    env, client, settings, worker
):
    now = await env.get_current_time()
    incident = scenario.incident(now)
    handle = await scenario.start(client, settings.task_queue, incident)
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    # Something else already runs under the follow-up's id: its start fails.
    blocker = await client.start_workflow(
        "Nothing",
        id=action_workflow_id(incident.workflow_id, "canary"),
        task_queue="nobody-listens",
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
    )
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status),
        lambda s: any(p.kind is ProblemKind.FOLLOW_UP for p in s.problems),
    )
    (problem,) = state.problems
    assert problem.action_id == "canary" and "follow-up not started" in problem.message
    canary = state.action("canary")
    assert canary is not None and canary.ticket is not None  # filed once, kept

    await blocker.terminate("in the way")
    await handle.execute_update(
        PostmortemWorkflow.retry_filing, RetryFilingInput(action_id="canary")
    )
    state = await until(lambda: handle.query(PostmortemWorkflow.status), lambda s: not s.problems)
    follow_up = client.get_workflow_handle(action_workflow_id(incident.workflow_id, "canary"))
    assert (await follow_up.query("status")).get("id") == "canary"
    after = state.action("canary")
    assert after is not None and after.ticket == canary.ticket  # not filed again
    await until(lambda: idle(handle), lambda quiet: quiet)
    await record("follow-up-retried", handle)
    # With nothing left to retry, the update is refused.
    reason = await scenario.refused(
        handle, PostmortemWorkflow.retry_filing, RetryFilingInput(action_id="canary")
    )
    assert "no refused ticket to retry" in reason


async def test_a_routing_whose_review_cannot_be_planned_changes_nothing(env, client, settings):
    def platform_fails(request: PlanReviewInput) -> None:
        if request.team == "platform":  # a bug in this team's calendar, say
            raise ValueError("platform's calendar is broken")

    async with with_planner(client, settings, platform_fails):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        before = await handle.query(PostmortemWorkflow.status)
        reason = await scenario.refused(
            handle, PostmortemWorkflow.route, RouteInput(team="platform", reason="theirs")
        )
        assert reason.startswith("cannot route to 'platform': its review could not be planned")
        after = await handle.query(PostmortemWorkflow.status)
        assert after.incident.team == "payments" and after.team == before.team
        assert after.review == before.review and after.owner == before.owner
