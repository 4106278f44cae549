"""Bounded state: every text and list has a limit (domain/limits.py), the whole record has
one, and the largest state the limits allow still answers `status` within Temporal's
payload limit. Input past a limit is refused with the reason and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain import limits, updates
from domain.findings import check_findings
from domain.messages import AcknowledgeInput, CompleteReviewInput, PostmortemInput
from domain.models import (
    ActionState,
    BlamelessNote,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Findings,
    Phase,
    PhaseChange,
    PostmortemState,
    Problem,
    ProblemKind,
    ReviewOutcome,
    TicketRef,
    TimelineEntry,
)
from domain.policy import FollowUpPolicy
from engine import start_postmortem
from tests import scenario
from tests.scenario import idle, until
from workflows.postmortem import PostmortemWorkflow

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def findings(**overrides: Any) -> dict[str, Any]:
    return scenario.findings(NOW, **overrides)


@pytest.mark.parametrize(
    ("field", "value", "largest"),
    [
        (
            "contributing_factors",
            [{"category": "other", "description": "x"}] * (limits.FACTORS + 1),
            [{"category": "other", "description": "x"}] * limits.FACTORS,
        ),
        ("went_well", ["fine"] * (limits.LIST_ITEMS + 1), ["fine"] * limits.LIST_ITEMS),
        ("went_badly", ["x" * (limits.NOTE + 1)], ["x" * limits.NOTE]),
        ("summary", "s" * (limits.TEXT + 1), "s" * limits.TEXT),
        (
            "timeline_corrections",
            [{"at": NOW.isoformat(), "text": "t", "known": "k" * (limits.NOTE + 1)}],
            [{"at": NOW.isoformat(), "text": "t", "known": "k" * limits.NOTE}],
        ),
    ],
)
def test_each_list_and_text_has_a_limit(field: str, value: Any, largest: Any):
    """Checked with the findings (the CLI, the API, the workflow's validator all call it);
    the models themselves stay as released, so recorded histories always decode."""
    refused = check_findings(Findings.model_validate(findings(**{field: value})), now=NOW)
    assert any(p.startswith(field) and "at most" in p for p in refused), refused
    # The largest allowed passes: the limit is where it says.
    assert check_findings(Findings.model_validate(findings(**{field: largest})), now=NOW) == []


def test_a_payload_recorded_before_the_limits_still_decodes():
    """An acknowledgement note of 600 characters was accepted before the 500 limit: its
    recorded update must still decode on replay; only new ones are refused."""
    recorded = AcknowledgeInput(finding_ids=["x"], note="n" * 600)
    state = PostmortemState(
        workflow_id="w",
        incident=scenario.incident(NOW),
        blameless=[
            BlamelessNote(
                id="x", rule="r", kind="k", field="f", sentence="s", reason="r", suggestion="s"
            )
        ],
    )
    with pytest.raises(ValueError, match="note: at most 500 characters"):
        updates.acknowledgement(state, recorded)
    long_key = TicketRef(tracker="github", key="o" * 39 + "/" + "r" * 100 + "#12345", url="u")
    assert len(long_key.key) > limits.TICKET_KEY  # GitHub's longest names are accepted


def test_the_record_limit_counts_room_for_every_action():
    reserve = limits.action_reserve()
    assert 300 < reserve < 500  # a ticket at its limits, three timestamps, two counters
    assert limits.record_problem(limits.RECORD_BYTES - 10, 10) is None
    assert limits.record_problem(limits.RECORD_BYTES - 10, 11) is not None
    assert limits.record_problem(limits.RECORD_BYTES - reserve, 0, 1) is None
    assert "over its limit of 1.80 MB" in (
        limits.record_problem(limits.RECORD_BYTES - reserve, 1, 1) or ""
    )


def largest_state(now: datetime) -> PostmortemState:
    """The largest state the limits allow: people's input fills the record to RECORD_BYTES
    (actions grown to their reserve: tickets, reminders, closing; then the timeline), and
    every addition of the engine's is at its limit (problems, phase changes, blameless
    findings with notes, publication notes)."""
    incident = scenario.incident(now, summary="s" * limits.TEXT, responders=["r" * 200] * 200)
    ticket = TicketRef(
        tracker="t" * limits.TICKET_TRACKER,
        key="k" * limits.TICKET_KEY,
        url="u" * limits.TICKET_URL,
    )
    state = PostmortemState(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.FOLLOWING_UP,
        follow_up=FollowUpPolicy(),
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=FactorCategory.OTHER, description="f" * 100)
            ],
            proximate_cause="p",
            root_cause="r",
            accepted_at=now,
        ),
    )

    def grown(n: int) -> CorrectiveAction:
        return CorrectiveAction(
            id=f"a{n}",
            title=f"Action {n}",
            type="repair",
            owner="alex@example.com",
            team="payments",
            due=now + timedelta(days=30),
            state=ActionState.OPEN,  # followed up: the workflow waits, the query reads
            ticket=ticket,
            reminders_sent=999,
            last_reminder_at=now,
            escalation_level=999,
            last_escalation_at=now,
            completed_at=now,
        )

    each = limits.json_bytes(grown(limits.ACTIONS)) + 1
    fits = (limits.RECORD_BYTES - limits.json_bytes(state)) // each
    state.actions = [grown(n) for n in range(min(limits.ACTIONS, fits - 100))]
    # The timeline takes what is left of the record, within its own limits.
    entry = TimelineEntry(at=now, text="t" * limits.TEXT, known="k" * limits.NOTE)
    size = limits.json_bytes(entry) + 1
    room = min(limits.RECORD_BYTES - limits.json_bytes(state), limits.TIMELINE_BYTES)
    state.timeline = [entry] * min(room // size, limits.TIMELINE_ENTRIES)
    room = limits.RECORD_BYTES - limits.json_bytes(state) - 200
    while room > 100 and len(state.timeline) < limits.TIMELINE_ENTRIES:
        text = "t" * min(room, limits.TEXT)
        state.timeline.append(TimelineEntry(at=now, text=text))
        room = limits.RECORD_BYTES - limits.json_bytes(state) - 200
    record = limits.json_bytes(state)
    assert limits.RECORD_BYTES - 500 < record <= limits.RECORD_BYTES
    # The engine's additions, each at its limit.
    state.problems = [
        Problem(
            kind=ProblemKind.TIMELINE_IMPORT,
            message="m" * limits.PROBLEM_TEXT,
            action_id="a" * 40,
            since=now,
        )
    ] * limits.PROBLEMS
    state.phase_history = [
        PhaseChange(phase=Phase.REVIEW_SCHEDULED, at=now, note="n" * limits.PHASE_NOTE)
    ] * limits.PHASE_CHANGES
    state.blameless = [
        BlamelessNote(
            id="i" * 40,
            rule="r" * 40,
            kind="k" * 40,
            field="f" * 60,
            sentence="s" * limits.SENTENCE,
            reason="r" * limits.NOTE_TEXT,
            suggestion="s" * limits.NOTE_TEXT,
            acknowledged=True,
            note="n" * limits.ACK_NOTE,
        )
    ] * limits.BLAMELESS_NOTES
    state.tracking_ticket = ticket
    state.published_locations = ["l" * limits.LOCATION] * limits.LOCATIONS
    state.publication_note = "p" * limits.PROBLEM_TEXT
    assert limits.json_bytes(state) - record <= limits.engine_extras()
    return state


async def test_the_largest_state_answers_status(env, client, settings, worker):
    now = await env.get_current_time()
    state = largest_state(now)
    size = limits.json_bytes(state)
    assert size >= limits.RECORD_BYTES  # it is the largest, not a comfortable one
    assert size < limits.PAYLOAD_BYTES
    handle = (
        await start_postmortem(
            client,
            settings.task_queue,
            PostmortemInput(incident=state.incident, resume=state),
        )
    ).handle
    answered: PostmortemState = await handle.query(PostmortemWorkflow.status)
    assert answered.model_dump() == state.model_dump()
    print(f"largest state: {size:,} bytes through status (limit {limits.PAYLOAD_BYTES:,})")
    await handle.terminate("read")


async def test_a_timeline_past_its_limit_is_refused_and_nothing_changes(
    env, client, settings, worker
):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    big = "t" * limits.TEXT
    added = 0
    while True:
        entry = TimelineEntry(at=now - timedelta(minutes=added + 1), text=big, known="k" * 4000)
        try:
            await handle.execute_update(PostmortemWorkflow.add_timeline_entry, entry)
        except WorkflowUpdateFailedError as refused:
            message = str(refused.cause)
            break
        added += 1
        assert added < 100, "never refused"
    assert "the timeline would be" in message and "over its limit of 600 kB" in message
    state = await handle.query(PostmortemWorkflow.status)
    assert len(state.timeline) == added
    assert limits.json_bytes(state.timeline) <= limits.TIMELINE_BYTES
    # The review still has the rest of the record: findings are accepted.
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
    )
    await until(lambda: idle(handle), lambda quiet: quiet)
    state = await handle.query(PostmortemWorkflow.status)
    assert state.findings is not None and len(state.actions) == 2


def many_actions(now: datetime, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"a{n}",
            "title": f"Fix {n}",
            "type": "repair",
            "owner": "alex@example.com",
            "team": "payments",
            "due": (now + timedelta(days=30)).isoformat(),
        }
        for n in range(count)
    ]


async def test_a_review_with_2500_actions_files_each_once_in_batches(
    env, client, settings, worker, tracker
):
    """Tickets and follow-ups start limits.FILING_BATCH at a time; the history continues as
    new past its budget, and the next run files what is left, none twice."""
    now = await env.get_current_time()
    incident = scenario.incident(now)
    handle = (
        await start_postmortem(
            client,
            settings.task_queue,
            PostmortemInput(incident=incident, continue_after_events=4_000),
        )
    ).handle
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    loop = asyncio.get_running_loop()
    started = loop.time()
    findings = Findings.model_validate(
        scenario.findings(now, actions=many_actions(now, limits.ACTIONS))
    )
    accepted = await handle.execute_update(
        PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings)
    )
    assert len(accepted.action_ids) == limits.ACTIONS
    latest = client.get_workflow_handle(handle.id)  # the newest run, across continue-as-new

    async def tickets() -> int:
        await asyncio.sleep(1)  # a local SQLite read; the worker is busy enough
        return len(tracker.list_tickets())

    await until(tickets, lambda n: n >= limits.ACTIONS + 1, seconds=900)

    async def settled() -> PostmortemState | None:
        try:
            return await latest.query(PostmortemWorkflow.status)
        except RPCError:  # a query waits behind 2,500 follow-ups' first tasks: ask again
            return None

    state = await until(
        settled,
        lambda s: (
            s is not None and s.phase is Phase.FOLLOWING_UP and all(a.ticket for a in s.actions)
        ),
        seconds=300,
    )
    assert state is not None
    elapsed = loop.time() - started
    keys = [a.ticket.key for a in state.actions if a.ticket]
    assert len(set(keys)) == limits.ACTIONS and not state.problems
    # Exactly once in the tracker: the tracking ticket and one per action.
    assert len(tracker.list_tickets()) == limits.ACTIONS + 1
    # Each run of the chain, from the one that accepted the review to the newest.
    run_id, lengths = handle.result_run_id, []
    while run_id:
        events = [
            e
            async for e in client.get_workflow_handle(
                handle.id, run_id=run_id
            ).fetch_history_events()
        ]
        lengths.append(len(events))
        last = events[-1]
        continued = last.event_type is EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if continued
            else None
        )
    assert len(lengths) > 1 and max(lengths) < 10_240  # Temporal warns past 10,240 events
    print(
        f"2,500-action review: filed and followed up in {elapsed:.0f} s, over "
        f"{len(lengths)} runs of {', '.join(map(str, lengths))} events"
    )


async def test_a_year_of_follow_up_keeps_the_parent_history_short(
    env, client, settings, worker, tracker
):
    """Two actions never done, followed up for a year: reminders, a poll every 6 hours,
    weekly escalations, each reported to the post-mortem. Its history stays far under
    10,000 events (the figure is printed for the README)."""
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
    )
    for _ in range(12):
        await env.sleep(timedelta(days=30, hours=10))
        await until(lambda: idle(handle), lambda quiet: quiet, seconds=120)
    state = await handle.query(PostmortemWorkflow.status)
    assert state.phase is Phase.FOLLOWING_UP and len(state.overdue_actions) == 2
    assert all(a.escalation_level >= 40 for a in state.actions)  # weekly, for 11 months
    events = len([e async for e in handle.fetch_history_events()])
    assert events < 10_000
    print(f"a year of follow-up: post-mortem history {events} events")


async def test_findings_past_the_record_limit_are_refused_and_nothing_changes(
    env, client, settings, worker, tracker
):
    """Each field within its limit, but together more than the record holds: refused with
    the sizes, nothing recorded, nothing filed; a smaller review is then accepted."""
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    before = await handle.query(PostmortemWorkflow.status)
    actions = [a | {"description": "d" * 1_500} for a in many_actions(now, 1_000)]
    findings = Findings.model_validate(scenario.findings(now, actions=actions))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings)
        )
    message = getattr(refused.value.cause, "message", "")
    assert "this post-mortem's record would be 2." in message
    assert "over its limit of 1.80 MB" in message
    after = await handle.query(PostmortemWorkflow.status)
    assert after.findings is None and after.actions == [] and after == before
    assert len(tracker.list_tickets()) == 1  # the tracking ticket alone
    smaller = Findings.model_validate(scenario.findings(now, actions=actions[:300]))
    accepted = await handle.execute_update(
        PostmortemWorkflow.complete_review, CompleteReviewInput(findings=smaller)
    )
    assert len(accepted.action_ids) == 300
