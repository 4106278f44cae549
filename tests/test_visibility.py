"""Managers' lists on the real dev server: the CLI's from the record, which follows the
workflows; visibility still finds a post-mortem across its runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

import engine
from config import Settings, load_routing
from domain.messages import ActionStateChange, CompleteReviewInput, PostmortemInput
from domain.models import ActionState, Findings, Phase, PostmortemState
from tests import scenario
from tests.scenario import until
from workflows.postmortem import PostmortemWorkflow

POSTMORTEM = str(Path(sys.executable).parent / "postmortem")


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "PM_TEAMS_FILE": str(settings.teams_file),
        "PM_DATA_DIR": str(settings.data_dir),
        "PM_TASK_QUEUE": settings.task_queue,
    }


def cli_json(settings: Settings, *args: str) -> Any:
    done = subprocess.run(
        [POSTMORTEM, *args, "--json"],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_overdue_lists_exactly_the_overdue_postmortems(
    dev_env: WorkflowEnvironment, dev_settings: Settings, dev_worker
):
    client = dev_env.client
    team, other_team = sorted(load_routing(dev_settings.teams_file).teams)
    now = await dev_env.get_current_time()

    async def postmortem(due_in: timedelta | None):
        started = await engine.start_postmortem(
            client,
            dev_settings.task_queue,
            PostmortemInput(incident=scenario.incident(now, team=team)),
        )
        handle = started.handle
        await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        if due_in is not None:
            action = scenario.findings(now)["actions"][0] | {
                "team": other_team,
                "due": (now + due_in).isoformat(),
            }
            await handle.execute_update(
                PostmortemWorkflow.complete_review,
                CompleteReviewInput(
                    findings=Findings.model_validate(scenario.findings(now, actions=[action]))
                ),
            )
        return handle

    late_a = await postmortem(timedelta(seconds=4))
    late_b = await postmortem(timedelta(seconds=4))
    on_time = await postmortem(timedelta(days=20))
    unreviewed = await postmortem(None)

    def listed(*args: str) -> Any:
        return asyncio.to_thread(cli_json, dev_settings, "list", "--team", team, *args)

    def ids(rows: list[dict[str, Any]]) -> set[str]:
        return {row["workflow_id"] for row in rows}

    # The CLI lists from the record, which follows the workflows a moment later.
    listed_overdue = await until(lambda: listed("--overdue"), lambda rows: len(rows) == 2)
    assert ids(listed_overdue) == {late_a.id, late_b.id}
    assert all(
        row["overdue_actions"] == 1 and row["phase"] == "following_up" for row in listed_overdue
    )
    everything = cli_json(dev_settings, "list", "--team", team)
    assert {row["workflow_id"] for row in everything} == {
        late_a.id,
        late_b.id,
        on_time.id,
        unreviewed.id,
    }
    # Each post-mortem's last change reaches the record a moment after its own.
    in_review = await until(
        lambda: listed("--phase", "review_scheduled"), lambda rows: len(rows) == 1
    )
    assert [row["workflow_id"] for row in in_review] == [unreviewed.id]
    actions = cli_json(dev_settings, "overdue", "--team", other_team)
    assert {a["postmortem_id"] for a in actions} == {late_a.id, late_b.id}
    assert all(
        a["action_id"] == "canary" and a["ticket"]["key"].startswith("PLAT") for a in actions
    )

    # Done by hand: it leaves the overdue list; the post-mortem closes.
    await late_a.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="canary", state=ActionState.DONE, reason="shipped"),
    )
    assert ids(await until(lambda: listed("--overdue"), lambda rows: len(rows) == 1)) == {late_b.id}
    assert (await late_a.result()).phase is Phase.CLOSED
    closed = await until(lambda: listed("--phase", "closed"), lambda rows: len(rows) == 1)
    assert [row["workflow_id"] for row in closed] == [late_a.id]


async def test_post_mortem_continues_as_new_and_children_follow_it(
    dev_env: WorkflowEnvironment, dev_settings: Settings, dev_worker
):
    """A long follow-up starts a new run; the children's signals reach it by workflow id, and
    managers' lists still show it with its title and counts."""
    client = dev_env.client
    team, other_team = sorted(load_routing(dev_settings.teams_file).teams)
    now = await dev_env.get_current_time()
    started = await engine.start_postmortem(
        client,
        dev_settings.task_queue,
        PostmortemInput(incident=scenario.incident(now, team=team), continue_after_events=60),
    )
    handle = started.handle
    first_run = handle.result_run_id
    await until(lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review)
    actions = [
        scenario.findings(now)["actions"][0]
        | {"id": f"a{i}", "team": other_team, "due": (now + timedelta(seconds=3)).isoformat()}
        for i in range(3)
    ]
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(
            findings=Findings.model_validate(scenario.findings(now, actions=actions))
        ),
    )
    latest = client.get_workflow_handle(handle.id, result_type=PostmortemState)

    async def overdue_count() -> int:
        state = await latest.query(PostmortemWorkflow.status)
        return len(state.overdue_actions)

    # The children's "overdue" signals land in the run that is current when they arrive.
    await until(overdue_count, lambda n: n == 3)
    assert (await latest.describe()).run_id != first_run

    async def listed() -> list[tuple[str, str, int]]:
        query = engine.postmortem_query(team=team)
        return [
            (r.workflow_id, r.title, r.overdue_actions)
            async for r in engine.list_postmortems(client, query)
        ]

    assert await until(listed, lambda rows: rows == [(handle.id, "Checkout errors", 3)])
    for i in range(3):
        await latest.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id=f"a{i}", state=ActionState.DONE),
        )
    final = await latest.result()
    assert final.phase is Phase.CLOSED
    assert [a.state for a in final.actions] == [ActionState.DONE] * 3
