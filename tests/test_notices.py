"""Notices from now, not from the past: on the time-skipping server, over random resolution
ages (a backfill is, to the workflow, an outage as long as the age), spans and closes, a late
review's notices to the manager never come before their time, never after the work ended,
and number at most 1 + span / interval over any span between two looks (7 days here).

Worker outages proper are not simulated here: this server does not move its clock while a
workflow task waits for a worker. The pure rule is checked against random wake-ups, weeks
apart included, in tests/test_rules_followup_timing.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import config
from domain.messages import CompleteReviewInput, PostmortemInput
from domain.models import Findings, Phase, PostmortemState
from engine import start_postmortem
from integrations.local import LocalTracker
from tests import scenario
from tests.conftest import CLOCK_SPEC, ROUTING, binary, skip_to
from tests.scenario import idle, until
from tests.test_lifecycle import record
from worker import build_worker, register_search_attributes
from workflows.postmortem import PostmortemWorkflow

WEEK = timedelta(days=7)  # escalate_every in ROUTING
LATE_REVIEW, ESCALATION = "review window closed", "passed its due date"
EXAMPLES = settings(
    max_examples=6,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run
    suppress_health_check=list(HealthCheck),
)


class Looks:
    """Counts of one kind of notice at moments of the server's clock."""

    def __init__(self) -> None:
        self.seen: list[tuple[datetime, int]] = []

    def add(self, at: datetime, count: int) -> None:
        if self.seen:
            before, earlier = self.seen[-1]
            # Over any span between two looks: at most 1 + span / interval more.
            assert count - earlier <= 1 + (at - before) / WEEK, (self.seen, at, count)
        self.seen.append((at, count))


def notices(tracker: LocalTracker, key: str, words: str) -> int:
    ticket = tracker.get(key)
    return sum(words in c.body for c in ticket.comments) if ticket else 0


async def run_review_example(
    tmp: Path, age_days: int, steps: list[int], close_at: int | None
) -> None:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        await register_search_attributes(environment.client, "default")
        if CLOCK_SPEC:
            await skip_to(environment, datetime.now(UTC))
        current = settings_in(tmp)
        tracker = LocalTracker(current.tracker_db, {"payments": "PAY", "platform": "PLAT"})
        now = await environment.get_current_time()
        incident = scenario.incident(
            now,
            resolved_at=now - timedelta(days=age_days, minutes=5),
            started_at=now - timedelta(days=age_days, hours=2),
        )
        client = environment.client
        looks = Looks()
        looks.add(now, 0)  # the engine can first speak when the post-mortem starts
        async with build_worker(client, current):
            handle = (
                await start_postmortem(
                    client, current.task_queue, PostmortemInput(incident=incident)
                )
            ).handle
            state: PostmortemState = await until(
                lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
            )
            assert state.review is not None and state.tracking_ticket is not None
            key, window_end = state.tracking_ticket.key, state.review.window_end
            await until(lambda: idle(handle), lambda quiet: quiet)
            moment = await environment.get_current_time()
            looks.add(moment, notices(tracker, key, LATE_REVIEW))
            closed = False
            for index, days in enumerate(steps):
                await environment.sleep(timedelta(days=days, hours=1))
                if close_at == index and not closed:
                    findings = Findings.model_validate(
                        scenario.findings(await environment.get_current_time())
                    )
                    await handle.execute_update(
                        PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings)
                    )
                    closed = True
                    at_close = notices(tracker, key, LATE_REVIEW)
                await until(lambda: idle(handle), lambda quiet: quiet)
                moment = await environment.get_current_time()
                count = notices(tracker, key, LATE_REVIEW)
                if moment < window_end:
                    assert count == 0, (moment, window_end)  # none before its time
                if closed:
                    assert count == at_close  # none after the work ended
                looks.add(moment, count)
            await handle.terminate("example over")
    finally:
        await environment.shutdown()


def settings_in(tmp: Path) -> config.Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    teams = tmp / "teams.toml"
    teams.write_text(ROUTING)
    return config.Settings(data_dir=tmp / "data", teams_file=teams, task_queue=f"tq-{uuid.uuid4()}")


@EXAMPLES
@given(
    age_days=st.integers(min_value=0, max_value=600),
    steps=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=4),
    close_at=st.none() | st.integers(min_value=0, max_value=3),
)
def test_late_review_notices_are_bounded(
    tmp_path: Path, age_days: int, steps: list[int], close_at: int | None
):
    asyncio.run(run_review_example(tmp_path / uuid.uuid4().hex, age_days, steps, close_at))


async def test_a_review_backfilled_18_months_sends_one_notice_saying_how_late(
    env, client, settings, worker, tracker
):
    now = await env.get_current_time()
    age = timedelta(days=548)
    incident = scenario.incident(
        now, resolved_at=now - age, started_at=now - age - timedelta(hours=2)
    )
    handle = (
        await start_postmortem(client, settings.task_queue, PostmortemInput(incident=incident))
    ).handle
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    await until(lambda: idle(handle), lambda quiet: quiet)
    assert state.tracking_ticket is not None
    ticket = tracker.get(state.tracking_ticket.key)
    assert ticket is not None
    late = [c.body for c in ticket.comments if LATE_REVIEW in c.body]
    assert len(late) == 1, late  # the old rule sent 78 at once
    assert " days ago)" in late[0] and "(notice 1)" in late[0]
    history = len((await handle.fetch_history()).events)
    await env.sleep(3 * WEEK + timedelta(hours=1))
    await until(lambda: idle(handle), lambda quiet: quiet)
    ticket = tracker.get(state.tracking_ticket.key)
    assert ticket is not None
    assert sum(LATE_REVIEW in c.body for c in ticket.comments) == 4  # then one a week
    assert (await handle.query(PostmortemWorkflow.phase)) is Phase.IN_REVIEW
    await record("late-review", handle)
    print(f"backfilled 18 months: 1 notice at once, history {history} events")


async def test_a_worker_outage_ends_with_one_catch_up_notice_not_a_burst(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    """A real outage, on the dev server (its clock runs while no worker polls): an overdue
    action escalates every 10 s; the worker stops for over four intervals, its timers fire
    unheard; back, it sends one notice saying how late, not the four it missed."""
    every = timedelta(seconds=10)
    current = settings_in(tmp_path)
    current.teams_file.write_text(
        ROUTING.replace('escalate_after = "2d"', 'escalate_after = "1s"').replace(
            'escalate_every = "7d"', 'escalate_every = "10s"'
        )
    )
    current = current.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    client = dev_env.client
    tracker = LocalTracker(current.tracker_db, {"payments": "PAY", "platform": "PLAT"})
    incident = scenario.incident(datetime.now(UTC))
    async with build_worker(client, current):
        handle = (
            await start_postmortem(client, current.task_queue, PostmortemInput(incident=incident))
        ).handle
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        now = datetime.now(UTC)
        action = scenario.findings(now)["actions"][0] | {
            "due": (now + timedelta(seconds=3)).isoformat()
        }
        findings = Findings.model_validate(scenario.findings(now, actions=[action]))
        await handle.execute_update(
            PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings)
        )
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: bool(s.actions) and s.actions[0].ticket is not None,
        )
        ticket_ref = state.actions[0].ticket
        assert ticket_ref is not None
        key = ticket_ref.key

        async def escalations() -> int:
            return notices(tracker, key, ESCALATION)

        await until(escalations, lambda n: n >= 1, seconds=60)
    before, stopped = await escalations(), datetime.now(UTC)
    await asyncio.sleep(4.5 * every.total_seconds())  # the outage itself: no worker at all
    assert await escalations() == before  # nobody spoke meanwhile
    async with build_worker(client, current):
        await until(escalations, lambda n: n > before, seconds=60)
        caught_up = datetime.now(UTC)
        await until(lambda: idle(handle), lambda quiet: quiet)
        after = await escalations()
        assert after == before + 1  # one for the whole outage (the old rule: four or five)
        ticket = tracker.get(key)
        assert ticket is not None
        last = [c.body for c in ticket.comments if ESCALATION in c.body][-1]
        assert "(notice 2)" in last  # the next notice, not the fifth
        # Then one per interval again, never two within one.
        await until(escalations, lambda n: n > after, seconds=60)
        assert datetime.now(UTC) - caught_up >= every * 0.9
        await handle.terminate("outage example over")
    print(f"outage of {(caught_up - stopped).total_seconds():.0f} s: 1 catch-up notice")
