"""The whole lifecycle on the time-skipping test server: months of deadlines in seconds."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.messages import (
    ActionStateChange,
    CancelInput,
    CompleteReviewInput,
    MoveDeadlineInput,
    PostmortemInput,
)
from domain.models import ActionState, Findings, Phase, PostmortemState, TimelineEntry
from engine import start_postmortem
from integrations.local import LocalTracker
from tests import scenario
from tests.scenario import until
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

T = TypeVar("T")
HISTORIES = Path(__file__).parent / "histories"


def status_of(handle: WorkflowHandle[Any, Any]) -> Callable[[], Awaitable[PostmortemState]]:
    async def probe() -> PostmortemState:
        return await handle.query(PostmortemWorkflow.status)

    return probe


def comments(tracker: LocalTracker, key: str) -> Callable[[], Awaitable[list[str]]]:
    async def probe() -> list[str]:
        ticket = tracker.get(key)
        return [c.body for c in ticket.comments] if ticket else []

    return probe


async def reviewed(env: WorkflowEnvironment, client: Client, settings: Settings, **findings: Any):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    accepted = await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now, **findings))),
    )
    state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
    return handle, now, accepted, state


async def test_full_lifecycle_reminds_escalates_and_closes(env, client, settings, worker, tracker):
    handle, _, accepted, state = await reviewed(env, client, settings)
    assert accepted.action_ids == ["canary", "alert"]

    # Drafting left a tracking ticket, a review inside the SEV2 window, the owner.
    assert state.owner == "owner@example.com"
    assert state.tracking_ticket is not None and state.tracking_ticket.key == "PAY-1"
    assert state.review is not None and state.review.start < state.review.window_end
    assert not state.review.outside_window
    # Review corrections joined the timeline; findings kept proximate and root cause apart.
    assert [e.source for e in state.timeline] == ["review"]
    assert (
        state.findings is not None and state.findings.root_cause != state.findings.proximate_cause
    )
    # One ticket per action, each in its own team's project, exactly once.
    canary, alert = state.actions
    assert canary.ticket is not None and canary.ticket.key == "PAY-2"
    assert alert.ticket is not None and alert.ticket.key == "PLAT-1"
    assert [t.key for t in tracker.list_tickets()] == ["PAY-1", "PAY-2", "PLAT-1"]
    assert state.published_url is not None
    published = Path(state.published_url.removeprefix("file://"))
    assert "Add canary stage to config pushes" in published.read_text()

    # 23 days on: the 7-day reminder has reached both owners, nothing is overdue yet.
    await env.sleep(timedelta(days=23, hours=1))
    notes = await until(comments(tracker, "PAY-2"), lambda c: len(c) >= 1)
    assert notes[0].startswith("@alex@example.com: reminder")
    state = await handle.query(PostmortemWorkflow.status)
    assert state.actions[0].reminders_sent == 1 and not state.actions[0].overdue

    # Past the deadline and the 2-day grace: overdue, and the manager hears of it.
    await env.sleep(timedelta(days=9))
    notes = await until(
        comments(tracker, "PAY-2"), lambda c: any("dana.manager@example.com" in n for n in c)
    )
    assert sum("reminder" in n for n in notes) == 2  # 7 days and 1 day before
    escalation = next(n for n in notes if "dana.manager" in n)
    assert "passed its due date" in escalation and "(notice 1)" in escalation
    state = await until(status_of(handle), lambda s: s.actions[0].escalation_level == 1)
    assert state.actions[0].overdue and len(state.overdue_actions) == 2
    assert state.phase is Phase.FOLLOWING_UP

    # The owner closes the ticket in the tracker: the next poll (6 h) marks the action done.
    tracker.set_state("PAY-2", closed=True)
    await env.sleep(timedelta(hours=7))
    state = await until(status_of(handle), lambda s: s.actions[0].state is ActionState.DONE)
    assert state.actions[0].state_reason == "closed in the tracker"

    # The other is done by hand (no tracker reports it); the post-mortem closes.
    await handle.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="alert", state=ActionState.DONE, reason="alert live"),
    )
    final = await handle.result()
    assert final.phase is Phase.CLOSED
    assert [a.state for a in final.actions] == [ActionState.DONE, ActionState.DONE]
    assert "Phase: closed" in published.read_text()
    assert "2 of 2 corrective action(s) done" in published.read_text()  # the closing summary
    tracking = await comments(tracker, "PAY-1")()
    assert tracking[-1].startswith("Post-mortem closed: 2 corrective action(s) done")
    assert (
        "Marked done in the post-mortem engine: alert live" in await comments(tracker, "PLAT-1")()
    )
    # (describe() is avoided on the test server: it mis-encodes an unset Datetime attribute.)
    child = client.get_workflow_handle_for(ActionFollowUpWorkflow.run, f"{handle.id}/action-alert")
    assert (await child.result()).state is ActionState.DONE

    if os.environ.get("PM_RECORD_HISTORIES"):
        canary = client.get_workflow_handle(f"{handle.id}/action-canary")
        await record("lifecycle", handle)
        await record("action-followup", canary)


async def record(name: str, handle: WorkflowHandle[Any, Any]) -> None:
    """With PM_RECORD_HISTORIES=1, `<name>.json`; with another value V, `<name>-V.json`:
    a new version beside the old ones, which must keep replaying."""
    version = os.environ.get("PM_RECORD_HISTORIES", "")
    if not version:
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    document = {"workflow_id": handle.id, "history": json.loads(history.to_json())}
    suffix = "" if version == "1" else f"-{version}"
    (HISTORIES / f"{name}{suffix}.json").write_text(json.dumps(document))


async def test_moved_deadline_delays_escalation(env, client, settings, worker, tracker):
    handle, _, _, state = await reviewed(env, client, settings)
    new_due = state.actions[0].due + timedelta(days=20)
    moved = await handle.execute_update(
        PostmortemWorkflow.move_deadline,
        MoveDeadlineInput(action_id="canary", due=new_due, reason="Waiting on the deploy freeze"),
    )
    assert moved.due == new_due

    # Past the old deadline and its grace: no escalation for the moved action.
    await env.sleep(timedelta(days=33))
    await until(
        comments(tracker, "PLAT-1"), lambda c: any("lee.manager" in n or "dana" in n for n in c)
    )
    notes = await comments(tracker, "PAY-2")()
    assert any("Due date moved to" in n and "deploy freeze" in n for n in notes)
    assert not any("passed its due date" in n for n in notes)
    state = await handle.query(PostmortemWorkflow.status)
    assert not state.actions[0].overdue and state.actions[1].overdue

    # Past the new one: now it escalates.
    await env.sleep(timedelta(days=20))
    await until(comments(tracker, "PAY-2"), lambda c: any("passed its due date" in n for n in c))


async def test_cancel_stops_follow_up(env, client, settings, worker, tracker):
    handle, *_ = await reviewed(env, client, settings)
    with pytest.raises(ValidationError, match="at least 1 character"):
        CancelInput(reason=" ")  # refused before it leaves the client
    await handle.execute_update(
        PostmortemWorkflow.cancel, CancelInput(reason="Duplicate of INC-41")
    )
    final = await handle.result()
    assert final.phase is Phase.CANCELLED and final.cancel_reason == "Duplicate of INC-41"
    assert {a.state for a in final.actions} == {ActionState.DROPPED}
    for action_id in ("canary", "alert"):
        child = client.get_workflow_handle(f"{handle.id}/action-{action_id}")
        with pytest.raises(WorkflowFailureError) as caught:
            await child.result()
        assert isinstance(caught.value.cause, CancelledError)
    assert (await comments(tracker, "PAY-1")())[-1] == "Post-mortem cancelled: Duplicate of INC-41"


async def test_cancel_before_review(env, client, settings, worker):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    await handle.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="False alarm"))
    assert (await handle.result()).phase is Phase.CANCELLED


async def test_duplicate_start_reaches_the_same_workflow(env, client, settings, worker):
    now = await env.get_current_time()
    inp = PostmortemInput(incident=scenario.incident(now))
    first = await start_postmortem(client, settings.task_queue, inp)
    again = await start_postmortem(client, settings.task_queue, inp)
    assert first.started and not again.started
    assert first.handle.id == again.handle.id == f"postmortem-manual-{inp.incident.id}"
    assert first.handle.result_run_id == again.handle.result_run_id


async def test_late_review_escalates_to_the_manager_and_repeats(
    env, client, settings, worker, tracker
):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    state = await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    assert state.review is not None
    await env.sleep(state.review.start - now + timedelta(minutes=1))
    state = await until(status_of(handle), lambda s: s.phase is Phase.IN_REVIEW)
    assert state.review is not None
    await env.sleep(state.review.window_end - state.review.start + timedelta(days=8))
    notes = await until(
        comments(tracker, "PAY-1"), lambda c: sum("review window closed" in n for n in c) == 2
    )
    # The day-before reminder, unless the review was planned less than a day ahead (then the
    # invitation was the reminder): whichever hour this runs at.
    reminded = any(n.startswith("Reminder: the post-mortem review is at") for n in notes)
    lead = state.review.start - now
    if abs(lead - timedelta(days=1)) > timedelta(minutes=1):  # at the boundary, ms decide
        assert reminded is (lead > timedelta(days=1))
    assert all("@dana.manager@example.com" in n for n in notes if "window closed" in n)
    assert (await handle.query(PostmortemWorkflow.status)).review_escalations == 2


async def test_bad_updates_are_refused_and_change_nothing(env, client, settings, worker):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    before = await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)

    async def refused(update: Any, arg: Any) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(update, arg)
        cause = caught.value.cause
        return str(getattr(cause, "message", cause))

    def findings(**overrides: Any) -> CompleteReviewInput:
        return CompleteReviewInput(
            findings=Findings.model_validate(scenario.findings(now, **overrides))
        )

    base = scenario.findings(now)["actions"][0]
    assert "team 'logistics' is not in the routing file" in await refused(
        PostmortemWorkflow.complete_review, findings(actions=[{**base, "team": "logistics"}])
    )
    assert "is in the past" in await refused(
        PostmortemWorkflow.complete_review,
        findings(actions=[{**base, "due": (now - timedelta(days=1)).isoformat()}]),
    )
    assert "repeats the proximate cause" in await refused(
        PostmortemWorkflow.complete_review,
        findings(root_cause="A config push set the payment timeout to 0 ms"),
    )
    assert "no action 'nope'" in await refused(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="nope", state=ActionState.DONE),
    )
    assert "add them after the review" in await refused(
        PostmortemWorkflow.add_action, findings().findings.actions[0]
    )
    after = await handle.query(PostmortemWorkflow.status)
    assert after == before

    # A timeline entry is accepted and sorted in.
    await handle.execute_update(
        PostmortemWorkflow.add_timeline_entry,
        TimelineEntry(at=now - timedelta(hours=3), text="Config pushed", known="Believed harmless"),
    )
    assert [e.text for e in (await handle.query(PostmortemWorkflow.status)).timeline] == [
        "Config pushed"
    ]


async def test_action_added_after_review_is_filed_and_followed(
    env, client, settings, worker, tracker
):
    handle, now, *_ = await reviewed(env, client, settings)
    spec = scenario.findings(now)["actions"][0] | {
        "id": None,
        "title": "Write the rollback runbook",
    }
    from domain.models import ActionSpec

    action_id = await handle.execute_update(
        PostmortemWorkflow.add_action, ActionSpec.model_validate(spec)
    )
    assert action_id == "a1"
    state = await until(status_of(handle), lambda s: s.actions[-1].ticket is not None)
    assert state.actions[-1].ticket is not None and state.actions[-1].ticket.key == "PAY-3"
    child = client.get_workflow_handle_for(ActionFollowUpWorkflow.run, f"{handle.id}/action-a1")
    assert (await child.query(ActionFollowUpWorkflow.status)).title == "Write the rollback runbook"


async def test_follow_up_continues_as_new_and_keeps_its_state(
    env, client, settings, worker, tracker
):
    handle, _, _, state = await reviewed(env, client, settings)
    from domain.messages import ActionFollowUpInput

    # A dedicated follow-up with a tiny budget of loop turns per run.
    action = state.actions[0].model_copy(update={"id": "solo"})
    assert state.follow_up is not None
    child = await client.start_workflow(
        ActionFollowUpWorkflow.run,
        ActionFollowUpInput(
            postmortem_id=handle.id,
            incident_id=state.incident.id,
            severity=state.incident.severity,
            manager="dana.manager@example.com",
            action=action,
            policy=state.follow_up,
            continue_after=3,
        ),
        id=f"{handle.id}/action-solo",
        task_queue=settings.task_queue,
    )
    first_run = child.result_run_id
    await env.sleep(timedelta(days=24))
    snapshot = await until(
        lambda: child.query(ActionFollowUpWorkflow.status), lambda a: a.reminders_sent == 1
    )
    latest = client.get_workflow_handle(child.id)
    history = await latest.fetch_history()  # the latest run's history
    assert history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    assert first_run is not None
    assert snapshot.due == action.due and snapshot.ticket == action.ticket


async def test_jira_and_github_teams_in_one_review_close_by_poll(env, tmp_path, monkeypatch):
    """One review files to a Jira team and a GitHub team at once; the 6-hourly poll reads
    each tracker's word (status category, state_reason) and the post-mortem closes."""
    from tests.fakes.github import GitHubEmulator
    from tests.fakes.jira import JiraEmulator
    from tests.test_tracker_routing import routing
    from worker import build_worker

    jira, github = JiraEmulator().start(), GitHubEmulator().start()
    try:
        monkeypatch.setenv("PM_TEST_JIRA_TOKEN", jira.token)
        monkeypatch.setenv("PM_GITHUB_TOKEN__GH_T", github.token)
        teams = tmp_path / "teams.toml"
        teams.write_text(routing("t", jira, github, project="PAY"))
        settings = Settings(data_dir=tmp_path / "data", teams_file=teams, task_queue="mixed")
        async with build_worker(env.client, settings):
            now = await env.get_current_time()
            handle = await scenario.start(env.client, "mixed", scenario.incident(now, team="pay-t"))
            await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
            await handle.execute_update(
                PostmortemWorkflow.complete_review, scenario.two_tracker_review(now, "t")
            )
            state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
            assert [a.ticket.key for a in state.actions if a.ticket] == [
                "PAY-1",
                f"{github.repo_name}#1",
            ]
            # A reminder reaches each tracker as a comment, 7 days before the deadline.
            await env.sleep(timedelta(days=23, hours=1))
            await until(lambda: _async(jira.state.comments.get("PAY-1", [])), lambda c: len(c) == 1)
            await until(lambda: _async(github.state.comments.get(1, [])), lambda c: len(c) == 1)
            # Done in Jira (category, whatever the name), not planned on GitHub.
            jira.set_status("PAY-1", "done", resolution="Done")
            github.close(1, "not_planned")
            await env.sleep(timedelta(hours=7))
            final = await handle.result()
            assert final.phase is Phase.CLOSED
            assert [(a.state, a.state_reason) for a in final.actions] == [
                (ActionState.DONE, "closed in the tracker"),
                (ActionState.DROPPED, "closed in the tracker as not planned"),
            ]
    finally:
        jira.stop()
        github.stop()


async def _async(value: T) -> T:
    return value
