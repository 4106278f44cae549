"""Bounded state: every text and list has a limit (domain/limits.py), the whole record has
one, and the largest state the limits allow still answers `status` within Temporal's
payload limit. Input past a limit is refused with the reason and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain import blameless, limits, updates, verification
from domain.findings import check_findings
from domain.intake import EventKind, IncidentEvent, SourceMapping, map_event
from domain.messages import (
    AcknowledgeInput,
    ActionStateChange,
    CompleteReviewInput,
    PostmortemInput,
    RescheduleReviewInput,
    ReviseFindingsInput,
)
from domain.models import (
    ActionSpec,
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
    ReviewSlot,
    TicketRef,
    TimelineEntry,
    Verification,
)
from domain.policy import FollowUpPolicy
from engine import start_postmortem
from tests import scenario
from tests.scenario import idle, until
from tests.test_lifecycle import reviewed
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
    # GitHub's longest key (owner 39, repository 100, a ten-digit number) is kept whole.
    longest = "o" * 39 + "/" + "r" * 100 + "#" + "9" * 10
    assert limits.text_bytes(longest) <= limits.TICKET_KEY


def test_the_record_limit_counts_room_for_every_action():
    reserve = limits.action_reserve()
    # A ticket and a filing error at their limits, timestamps, the verification's state.
    assert 1_000 < reserve < 1_500
    assert limits.record_problem(limits.RECORD_BYTES - 10, 10) is None
    assert limits.record_problem(limits.RECORD_BYTES - 10, 11) is not None
    assert limits.record_problem(limits.RECORD_BYTES - reserve, 0, 1) is None
    assert "over its limit of 1.80 MB" in (
        limits.record_problem(limits.RECORD_BYTES - reserve, 1, 1) or ""
    )


# Six bytes in the state's JSON (an escape): the most one character can take there.
WORST = "\x01"
TEXTS = st.sampled_from(["a", "é", "😀", WORST, '"'])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=700), limit=st.integers(min_value=4, max_value=600))
def test_clip_bytes_keeps_within_its_bytes_whatever_the_characters(text: str, limit: int):
    text = text.encode("utf-8", "replace").decode()  # lone surrogates never reach the state
    clipped = limits.clip_bytes(text, limit)
    assert len(pydantic_core.to_json(clipped)) - 2 <= limit  # as Temporal's converter writes
    if len(pydantic_core.to_json(text)) - 2 <= limit:
        assert clipped == text
    else:
        assert clipped.endswith("…") and text.startswith(clipped[:-1])


@settings(max_examples=100, deadline=None)
@given(
    char=TEXTS,
    title=st.integers(1, limits.NAME),
    description=st.integers(0, limits.NOTE),
    owner=st.integers(1, limits.NAME),
)
def test_an_action_never_grows_past_what_the_record_counts_for_it(
    char: str, title: int, description: int, owner: int
):
    """Whatever its text, an action tracked at its largest (ticket, filing error, counters,
    closing) takes at most what the record counted when it was accepted."""
    spec = ActionSpec(
        title=char * title,
        description=char * description,
        type="repair",
        owner=char * owner,
        team=char * owner,
        due=NOW.date(),
    )
    accepted_as = limits.json_bytes(spec) + limits.action_reserve()
    tracked = worst_action(spec, 999)
    assert limits.json_bytes(tracked) <= limits.action_bytes(tracked) == accepted_as


def worst_action(spec: ActionSpec, n: int) -> CorrectiveAction:
    """`spec` tracked at its largest: the engine's every addition at its limit."""
    moment = datetime(2026, 6, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9)))
    return CorrectiveAction(
        **spec.model_dump(exclude={"id", "due", "verify_after_days", "verify_question"}),
        id=f"a{n:039d}",
        verify_after_days=limits.VERIFY_DAYS,
        verify_question=verification.own_question(spec),
        verification=Verification.INEFFECTIVE,
        verification_asked_at=moment,
        verified_at=moment,
        due=moment,
        state=ActionState.OPEN,  # followed up: the workflow waits, the query reads
        state_reason="r" * limits.ENGINE_REASON,
        ticket=TicketRef(
            tracker="t" * limits.TICKET_TRACKER,
            key="k" * limits.TICKET_KEY,
            url="u" * limits.TICKET_URL,
        ),
        filing_error=limits.clip_bytes(WORST * limits.FILING_ERROR, limits.FILING_ERROR),
        overdue=True,
        reminders_sent=999_999,
        last_reminder_at=moment,
        escalation_level=999_999,
        last_escalation_at=moment,
        completed_at=moment,
    )


def with_engine_extras_at_their_limits(state: PostmortemState, now: datetime) -> None:
    """Every addition of the engine's at its limit in bytes, made by the code that makes it
    (so its clipping is what is measured): problems, phase changes, blameless findings,
    publication, the tracking ticket."""
    worst = WORST * 2_000
    state.problems = [
        Problem(
            kind=ProblemKind.TIMELINE_IMPORT,
            message=limits.clip_bytes(worst, limits.PROBLEM_TEXT),
            action_id="a" * 40,
            since=now,
        )
    ] * limits.PROBLEMS
    state.phase_history = [
        PhaseChange(
            phase=Phase.REVIEW_SCHEDULED,
            at=now,
            note=limits.clip_bytes(worst, limits.PHASE_NOTE),
        )
    ] * limits.PHASE_CHANGES
    # Acknowledgements' notes are people's input (the record counts them): kept.
    notes = [n.note for n in state.blameless][: limits.BLAMELESS_NOTES]
    notes += [""] * (limits.BLAMELESS_NOTES - len(notes))
    finding = blameless._finding(worst, worst, worst, worst, worst, worst)
    state.blameless = [
        finding.model_copy(update={"acknowledged": True, "note": note}) for note in notes
    ]
    state.tracking_ticket = worst_action(ActionSpec.model_validate(SPEC), 0).ticket
    state.published_url = limits.clip_bytes(worst, limits.LOCATION)
    state.published_locations = [limits.clip_bytes(worst, limits.LOCATION)] * limits.LOCATIONS
    state.publication_note = limits.clip_bytes(worst, limits.PROBLEM_TEXT)
    # Related post-mortems, each made by domain/related.py from texts past every limit.
    state.related = [limits.largest_related()] * limits.RELATED
    state.related_summary = limits.clip_bytes(worst, limits.PROBLEM_TEXT)


SPEC = {"title": "t", "type": "repair", "owner": "o", "team": "payments", "due": "2026-07-01"}


def largest_state(now: datetime) -> PostmortemState:
    """The largest state the limits allow: the most actions, each grown to its largest; a
    full timeline and findings of six-byte characters filling the record to RECORD_BYTES as
    the validators count it (acknowledgement notes included); every addition of the
    engine's at its limit."""
    incident = scenario.incident(
        now, title=WORST * limits.NAME, summary="s" * limits.TEXT, responders=["r" * 200] * 200
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
    state.blameless = [
        BlamelessNote(
            id=f"n{n}",
            rule="r",
            kind="k",
            field="f",
            sentence="s",
            reason="r",
            suggestion="s",
            note=WORST * limits.ACK_NOTE,
        )
        for n in range(limits.BLAMELESS_NOTES)
    ]
    with_engine_extras_at_their_limits(state, now)
    spec = ActionSpec.model_validate(SPEC)
    # The most actions that fit beside the rest, most of the record's room (1,000 at their
    # largest and every acknowledgement note at its limit no longer fit together).
    per_action = limits.action_bytes(worst_action(spec, 0))
    room = (limits.RECORD_BYTES - updates.record_bytes(state)) * 9 // 10
    state.actions = [worst_action(spec, n) for n in range(min(limits.ACTIONS, room // per_action))]
    # The timeline, within its own limit and the record's, then the findings' texts.
    entry = TimelineEntry(at=now, text=WORST * limits.TEXT, known=WORST * limits.NOTE)

    def fits(added: TimelineEntry) -> bool:
        grown = [*state.timeline, added]
        return (
            limits.json_bytes(grown) <= limits.TIMELINE_BYTES
            and updates.record_bytes(state) + limits.json_bytes(added) + 1 <= limits.RECORD_BYTES
        )

    while fits(entry):
        state.timeline.append(entry)
    for field in ("summary", "impact", "proximate_cause", "root_cause"):
        current = limits.text_bytes(getattr(state.findings, field))
        room = (limits.RECORD_BYTES - updates.record_bytes(state) + current) // 6
        if room >= 1:
            setattr(state.findings, field, WORST * min(room, limits.TEXT))
    assert limits.RECORD_BYTES - 1_000 < updates.record_bytes(state) <= limits.RECORD_BYTES
    return state


def test_the_largest_state_fits_every_payload_it_travels_in():
    state = largest_state(NOW)
    record = updates.record_bytes(state)
    size = limits.json_bytes(state)
    assert size <= record + limits.engine_extras()  # the accounting holds
    continued = PostmortemInput(incident=state.incident.carried(), resume=state)
    assert limits.json_bytes(continued) <= limits.RECORD_BYTES + limits.engine_extras()
    assert limits.RECORD_BYTES + limits.engine_extras() < limits.PAYLOAD_BYTES


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, str, int, int]:
    """One piece of people's input: what, in which characters, how long (often the most),
    and how many times it is offered (until refused: so records fill to their limit)."""
    kind = draw(st.sampled_from(["entry", "action", "reason", "revision", "ack"]))
    size = draw(st.one_of(st.just(-1), st.integers(1, 3_000)))  # -1: the field's limit
    return kind, draw(TEXTS), size, draw(st.sampled_from([1, 5, 2_000]))


def offer(state: PostmortemState, kind: str, char: str, size: int, n: int) -> bool:
    """Offers one input through its validator and, when accepted, applies it as the
    workflow's handler does. True when accepted."""

    def text(limit: int) -> str:
        return char * (limit if size < 0 else min(size, limit))

    try:
        if kind == "entry":
            entry = TimelineEntry(
                at=NOW - timedelta(minutes=n), text=text(limits.TEXT), known=text(limits.NOTE)
            )
            updates.timeline_entry(state, entry)
            state.timeline.append(entry)
        elif kind == "action":
            spec = ActionSpec.model_validate(SPEC | {"description": text(limits.NOTE)})
            updates.add_action(state, spec, NOW)
            state.actions.append(
                CorrectiveAction(**spec.model_dump(exclude={"id", "due"}), id=f"a{n}", due=NOW)
            )
        elif kind == "reason":
            action = next((a for a in state.actions if not a.state.is_terminal), None)
            if action is None:
                return False
            change = ActionStateChange(
                action_id=action.id, state="dropped", reason=text(limits.REASON)
            )
            updates.action_state(state, change)
            action.state, action.state_reason = ActionState.DROPPED, change.reason
        elif kind == "revision":
            revised = Findings.model_validate(
                findings(actions=[], summary=text(limits.TEXT), impact=text(limits.TEXT))
            )
            updates.revision(state, ReviseFindingsInput(findings=revised), NOW)
            assert state.findings is not None
            state.findings = ReviewOutcome.model_validate(
                revised.model_dump(exclude={"actions", "timeline_corrections"})
                | {"accepted_at": NOW}
            )
        else:
            open_ids = [x.id for x in state.blameless if not x.acknowledged]
            if not open_ids:  # a new finding to acknowledge (the oldest makes room)
                state.blameless = [
                    *state.blameless[1 - limits.BLAMELESS_NOTES :],
                    blameless._finding("r", "k", f"f{n}", "s", "r", "h"),
                ]
                open_ids = [state.blameless[-1].id]
            ack = AcknowledgeInput(finding_ids=open_ids[:1], note=text(limits.ACK_NOTE))
            updates.acknowledgement(state, ack)
            for note in state.blameless:
                if note.id in ack.finding_ids:
                    note.acknowledged, note.note = True, ack.note
    except ValueError:
        return False  # refused: nothing applied
    return True


@settings(max_examples=12, deadline=None)
@given(steps=st.lists(inputs(), min_size=5, max_size=25))
def test_whatever_was_accepted_still_fits_when_the_engine_adds_its_most(
    steps: list[tuple[str, str, int, int]],
):
    """Model-based: people's input is offered through the validators (as the workflow's
    handlers are), applied when accepted; then every action grows to its largest and every
    addition of the engine's is at its limit. The state still fits every payload."""
    state = largest_state(NOW).model_copy(
        update={"timeline": [], "actions": [], "blameless": [], "problems": []}
    )
    state.incident = scenario.incident(NOW)
    state.findings = ReviewOutcome.model_validate(
        Findings.model_validate(findings()).model_dump(exclude={"actions", "timeline_corrections"})
        | {"accepted_at": NOW}
    )
    with_engine_extras_at_their_limits(state, NOW)
    n = 0
    for kind, char, size, times in steps:
        for _ in range(times):
            n += 1
            if not offer(state, kind, char, size, n):
                break
        assert updates.record_bytes(state) <= limits.RECORD_BYTES
    # The engine adds its most: each action grown to its largest, state reasons kept.
    state.actions = [
        worst_action(
            ActionSpec.model_validate(
                a.model_dump(include=set(SPEC) | {"description"}) | {"due": "2026-07-01"}
            ),
            n,
        ).model_copy(update={"state_reason": a.state_reason or "r" * limits.ENGINE_REASON})
        for n, a in enumerate(state.actions)
    ]
    with_engine_extras_at_their_limits(state, NOW)
    continued = PostmortemInput(incident=state.incident.carried(), resume=state)
    target(float(updates.record_bytes(state)))  # towards the fullest records
    assert limits.json_bytes(continued) <= limits.RECORD_BYTES + limits.engine_extras()


async def test_the_largest_state_answers_status(env, client, settings, worker):
    now = await env.get_current_time()
    state = largest_state(now)
    size = limits.json_bytes(state)
    assert size < limits.PAYLOAD_BYTES
    handle = (
        await start_postmortem(
            client,
            settings.task_queue,
            PostmortemInput(incident=state.incident, resume=state),
        )
    ).handle
    answered: PostmortemState = await handle.query(PostmortemWorkflow.status)
    assert answered.model_dump(exclude={"record_version"}) == state.model_dump(
        exclude={"record_version"}
    )
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


async def test_a_review_with_the_most_actions_files_each_once_in_batches(
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
            PostmortemInput(incident=incident, continue_after_events=2_000),
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
        except RPCError:  # a query waits behind 1,000 follow-ups' first tasks: ask again
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
    # One more is refused, with the limit named.
    spec = ActionSpec.model_validate(SPEC | {"due": (now + timedelta(days=9)).date()})
    reason = await scenario.refused(latest, PostmortemWorkflow.add_action, spec)
    assert f"at most {limits.ACTIONS} corrective actions" in reason
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
        f"{limits.ACTIONS:,}-action review: filed and followed up in {elapsed:.0f} s, over "
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
    assert "this post-mortem's record would be 3." in message
    assert "over its limit of 1.80 MB" in message
    after = await handle.query(PostmortemWorkflow.status)
    assert after.findings is None and after.actions == [] and after == before
    assert len(tracker.list_tickets()) == 1  # the tracking ticket alone
    smaller = Findings.model_validate(scenario.findings(now, actions=actions[:300]))
    accepted = await handle.execute_update(
        PostmortemWorkflow.complete_review, CompleteReviewInput(findings=smaller)
    )
    assert len(accepted.action_ids) == 300


async def test_updates_racing_each_other_are_checked_again_where_they_apply(
    env, client, settings, worker, monkeypatch
):
    """Two actions added at once, with room for one: each validator sees room (it runs
    before the other's handler has applied), so each handler checks again where it applies
    its change: one is accepted, one refused, and the limit holds."""
    monkeypatch.setattr(limits, "ACTIONS", 3)  # the worker runs here: it reads the same
    handle, now, _, _ = await reviewed(env, client, settings)
    specs = [
        ActionSpec.model_validate(SPEC | {"id": name, "due": (now + timedelta(days=9)).date()})
        for name in ("first", "second")
    ]
    results = await asyncio.gather(
        *(handle.execute_update(PostmortemWorkflow.add_action, s) for s in specs),
        return_exceptions=True,
    )
    refusals = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(refusals) == 1, results
    assert "at most 3 corrective actions" in str(getattr(refusals[0].cause, "message", ""))
    state = await handle.query(PostmortemWorkflow.status)
    assert len(state.actions) == 3


def test_an_unrouted_reason_quoting_the_sender_is_clipped_by_bytes():
    """The reason an incident is unrouted quotes the sender's team name (its repr: a two-byte
    character may take five there): clipped by bytes, so a webhook body under 1 MiB cannot
    fill the record before anyone writes."""
    event = IncidentEvent(
        source="generic",
        kind=EventKind.RESOLVED,
        incident_id="INC-1",
        title="t",
        resolved_at=NOW,
        severity="SEV2",
        team="\x85" * 417_900,
    )
    mapped = map_event(event, SourceMapping(), {"payments"}, triage_team="payments")
    assert mapped.incident is not None and mapped.incident.team == "payments"
    assert limits.text_bytes(mapped.incident.unrouted) <= limits.PROBLEM_TEXT
    assert mapped.incident.unrouted.endswith("… is not in the routing file")
    # And a start that says more than that is refused, the field named.
    start = PostmortemInput(incident=mapped.incident.model_copy(update={"unrouted": "u" * 501}))
    assert any(p.startswith("unrouted: at most 500") for p in limits.start_problems(start))


def test_a_reschedule_reason_is_counted_in_the_record():
    state = largest_state(NOW)
    state.phase = Phase.REVIEW_SCHEDULED
    state.findings = None
    state.review = ReviewSlot(
        start=NOW + timedelta(days=1), window_end=NOW + timedelta(days=2), timezone="UTC"
    )
    room = limits.RECORD_BYTES - updates.record_bytes(state)
    state.incident.summary += "s" * (room - 500)  # the record all but full
    request = RescheduleReviewInput(at=NOW + timedelta(days=3), reason=WORST * 100)
    with pytest.raises(ValueError, match="over its limit"):
        updates.schedule(state, request, NOW)
    updates.schedule(state, request.model_copy(update={"reason": "the facilitator is ill"}), NOW)


def test_corrections_are_counted_as_stored():
    """Stored corrections are marked as the review's: the checks count them so."""
    sent = Findings.model_validate(
        findings(timeline_corrections=[{"at": NOW.isoformat(), "text": "t", "source": ""}] * 50)
    )
    stored = updates.as_stored(sent)
    assert {e.source for e in stored.timeline_corrections} == {"review"}
    assert limits.json_bytes(stored) == limits.json_bytes(sent) + 50 * len("review")


def test_a_ticket_is_kept_within_its_room():
    from workflows.postmortem import _kept_ref

    longest = TicketRef(tracker="github", key="o" * 39 + "/" + "r" * 100 + "#" + "9" * 10, url="u")
    assert _kept_ref(longest) == (longest, None)
    long_link = longest.model_copy(update={"url": "https://x/" + "u" * limits.TICKET_URL})
    assert _kept_ref(long_link) == (longest.model_copy(update={"url": ""}), None)
    ref, error = _kept_ref(longest.model_copy(update={"key": "k" * (limits.TICKET_KEY + 1)}))
    assert ref is None and error is not None and "ticket key of 161 bytes" in error


async def test_revisions_racing_each_other_keep_the_timeline_within_its_limit(
    env, client, settings, worker
):
    """Revisions sent at once while the first holds the lock (its blameless check): each
    validator saw room; each handler checks again where it applies, so the timeline's limit
    holds and the ones without room are refused."""
    handle, now, _, _ = await reviewed(env, client, settings)

    def revision(n: int) -> ReviseFindingsInput:
        corrections = [
            {"at": (now - timedelta(minutes=n * 10 + k)).isoformat(), "text": f"{n}{k}" * 9_500}
            for k in range(10)
        ]
        return ReviseFindingsInput(
            findings=Findings.model_validate(
                scenario.findings(now, actions=[], timeline_corrections=corrections)
            )
        )

    results = await asyncio.gather(
        *(handle.execute_update(PostmortemWorkflow.revise_findings, revision(n)) for n in range(4)),
        return_exceptions=True,
    )
    refusals = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert 1 <= len(refusals) < 4, results
    assert all("over its limit of 600 kB" in str(getattr(r.cause, "message", "")) for r in refusals)
    state = await handle.query(PostmortemWorkflow.status)
    assert limits.json_bytes(state.timeline) <= limits.TIMELINE_BYTES
    assert updates.record_bytes(state) <= limits.RECORD_BYTES
