"""Typed problems: what went wrong is shown with its kind, its action and since when, and
is cleared by what fixes it. A step that no retry can fix (a bug, impossible data) fails
once, is shown, and runs again on `postmortem retry`; nothing retries it forever."""

from __future__ import annotations

import typing
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
from domain import updates
from domain.messages import CancelInput, CompleteReviewInput, RetryFilingInput, RouteInput
from domain.models import Findings, Phase, ProblemKind, action_workflow_id
from tests import scenario
from tests.scenario import idle, until
from tests.test_lifecycle import record
from worker import WORKFLOWS, activities_for
from workflows.postmortem import PostmortemWorkflow


def name_of(fn: Any) -> str:
    return str(activity._Definition.must_from_callable(fn).name)


def with_fault(client: Any, settings: Any, name: str, fault: Callable[[Any], None]) -> Worker:
    """The real worker, its activity `name` given a fault (injected into our own activity:
    `fault` raises for the requests it picks, as a bug would, every time)."""
    real = activities_for(settings, client)
    wrapped = next(a for a in real if name_of(a) == name)

    def faulty(request: Any) -> Any:
        fault(request)
        return wrapped(request)

    hints = typing.get_type_hints(wrapped)  # the converter decodes by these
    faulty.__annotations__ = {"request": next(iter(hints.values())), "return": hints["return"]}
    faulty = activity.defn(name=name)(maps_integration_errors(faulty))
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[a for a in real if name_of(a) != name] + [faulty],
        activity_executor=ThreadPoolExecutor(4),
    )


def with_planner(client: Any, settings: Any, fault: Callable[[PlanReviewInput], None]) -> Worker:
    return with_fault(client, settings, "routing.plan_review", fault)


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
    # Kept on the action too: with its problem evicted by 50 newer ones, the retry still
    # finds what to do.
    assert (canary.filing_error or "").startswith("follow-up not started")
    updates.retry_filing(
        state.model_copy(update={"problems": []}), RetryFilingInput(action_id="canary")
    )

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


async def test_a_blameless_check_that_cannot_run_holds_publication_until_it_runs(
    env, client, settings, tracker
):
    """Failing closed: a check that could not run is not a clean check. Publication waits
    (actions are filed meanwhile), the problem says why, and `postmortem retry` after the
    fix runs it again."""
    broken = {"on": True}

    def word_list_broken(request: Any) -> None:
        if broken["on"]:
            raise ValueError("domain/lexicon/en.toml: line 3: invalid key")

    async with with_fault(client, settings, "blameless.check", word_list_broken):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        accepted = await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
        )
        assert accepted.blameless == []
        await until(lambda: idle(handle), lambda quiet: quiet)
        state = await handle.query(PostmortemWorkflow.status)
        assert state.blameless_unchecked and state.publication_held
        assert state.phase is Phase.PUBLISHED and state.published_url is None  # held
        assert all(a.ticket is not None for a in state.actions)  # filed meanwhile
        (problem,) = [p for p in state.problems if p.kind is ProblemKind.BLAMELESS_CHECK]
        assert "invalid key" in problem.message
        comments = [c.body for t in tracker.list_tickets() for c in t.comments]
        assert any("could not run" in c and "postmortem retry" in c for c in comments)

        await handle.execute_update(PostmortemWorkflow.retry)  # still broken: still held
        await until(lambda: idle(handle), lambda quiet: quiet)
        state = await handle.query(PostmortemWorkflow.status)
        assert state.blameless_unchecked and state.published_url is None

        broken["on"] = False  # the word list fixed
        await handle.execute_update(PostmortemWorkflow.retry)
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: s.phase is Phase.FOLLOWING_UP,
        )
        assert not state.blameless_unchecked and state.published_url is not None
        assert not any(p.kind is ProblemKind.BLAMELESS_CHECK for p in state.problems)
        await until(lambda: idle(handle), lambda quiet: quiet)
        await record("blameless-unchecked", handle)


async def test_a_record_write_no_retry_fixes_is_shown_and_never_holds_the_post_mortem(
    env, client, settings
):
    """A bug in the record's write (injected into our own activity) is a problem on the
    post-mortem, which goes on, and ends when cancelled, instead of failing or waiting."""

    def bug(request: Any) -> None:
        raise ValueError("a bug in the projection")

    async with with_fault(client, settings, "record.project", bug):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: (
                s.phase.awaits_review and any(p.kind is ProblemKind.RECORD for p in s.problems)
            ),
        )
        (problem,) = [p for p in state.problems if p.kind is ProblemKind.RECORD]
        assert "a bug in the projection" in problem.message
        await handle.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="test over"))
        final = await handle.result()
        assert final.phase is Phase.CANCELLED
