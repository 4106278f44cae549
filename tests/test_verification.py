"""Did the action work? (issue 16, part 4): a done action's owner is asked, `verify_after_days`
after it was done, on its ticket and by email; the answer makes it verified or ineffective
(an ineffective one opens a follow-up to revisit it); nobody answering leaves it unanswered;
and an incident that repeats the service and factor category of an earlier one after an
action of it was verified as working is flagged on both.

The rules are tested on given moments; the workflow on the time-skipping server, with a real
SMTP server and the local tracker; the record on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.client import WorkflowUpdateStage
from temporalio.worker import Worker

from activities.routing import PrepareActionsInput
from activities.tracker import CommentInput
from domain import limits, updates, verification
from domain.findings import TeamCalendar, resolve_actions
from domain.messages import (
    ActionProgress,
    ActionStateChange,
    CompleteReviewInput,
    PostmortemInput,
    VerifyActionInput,
)
from domain.models import (
    ActionSpec,
    ActionState,
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Findings,
    Phase,
    PostmortemDocument,
    PostmortemState,
    ReviewOutcome,
    Verification,
)
from integrations.local import LocalTracker
from record import related as related_reads
from record.learning import LearningFilter, csv_table, learning
from record.store import Record
from tests import scenario
from tests.conftest import Inbox
from tests.scenario import idle, refused, until
from tests.test_lifecycle import comments, status_of
from tests.test_lifecycle import record as record_history
from tests.test_related import NOW, archived
from tests.test_webhooks import free_port
from worker import WORKFLOWS, activities_for, build_worker
from workflows.postmortem import PostmortemWorkflow

# -- the rules, on given moments -----------------------------------------------------------


def _spec(kind: str, **fields: object) -> ActionSpec:
    return ActionSpec.model_validate(
        {"title": f"A {kind} action", "type": kind, "owner": "o@example.com", "team": "payments",
         "due": "2026-07-01"} | fields
    )  # fmt: skip


CALENDARS = {"payments": TeamCalendar(timezone=ZoneInfo("Europe/Berlin"))}


def test_each_type_has_its_verification_and_a_spec_may_set_its_own():
    specs = [_spec(t.value) for t in ActionType]
    for spec, action in zip(specs, resolve_actions(specs, teams=CALENDARS), strict=True):
        assert action.verify_after_days == verification.DEFAULT_DAYS[spec.type]
        assert action.verify_question == ""  # the type's question is not stored on it
        assert verification.question(action) == verification.DEFAULT_QUESTION[spec.type]
    assert verification.DEFAULT_DAYS[ActionType.INVESTIGATE] == 0  # no loop of revisits
    assert verification.DEFAULT_DAYS[ActionType.REPAIR] == 30
    own = _spec("repair", verify_after_days=7, verify_question="  Any 5xx\nsince?  ")
    never = _spec("prevent", verify_after_days=0)
    (a, b) = resolve_actions([own, never], teams=CALENDARS)
    assert (a.verify_after_days, a.verify_question, verification.question(a)) == (
        7,
        "Any 5xx since?",
        "Any 5xx since?",
    )
    assert b.verify_after_days == 0 and verification.ask_at(b) is None
    with pytest.raises(ValueError, match="less than or equal to 365"):
        _spec("repair", verify_after_days=limits.VERIFY_DAYS + 1)


def _done(days: int = 30, **fields: object) -> CorrectiveAction:
    return CorrectiveAction.model_validate(
        {"id": "fix", "title": "Fix it", "type": "repair", "owner": "alex@example.com",
         "team": "payments", "due": NOW, "state": "done", "completed_at": NOW,
         "verify_after_days": days} | fields
    )  # fmt: skip


def test_a_done_action_is_asked_once_its_time_comes_and_left_unanswered_after_30_days():
    action = _done()
    asked_at = NOW + timedelta(days=30)
    assert verification.ask_at(action) == asked_at
    assert verification.next_moment([action]) == asked_at
    assert verification.due_to_ask([action], asked_at - timedelta(microseconds=1)) == []
    assert verification.due_to_ask([action], asked_at) == [action]
    assert verification.waiting(action)
    # Not done, never asked, or asked already: nothing to ask.
    for other in (
        _done(state="open", completed_at=None),
        _done(state="dropped"),
        _done(days=0),
        _done(verification="verified"),
    ):
        assert verification.ask_at(other) is None
    asked = _done(verification="asked", verification_asked_at=asked_at)
    assert verification.ask_at(asked) is None
    gone = asked_at + timedelta(days=verification.ANSWER_DAYS)
    assert verification.expires_at(asked) == gone == verification.next_moment([asked])
    assert verification.next_moment([asked, action]) == asked_at  # the sooner
    assert verification.due_to_expire([asked], gone - timedelta(microseconds=1)) == []
    assert verification.due_to_expire([asked], gone) == [asked]
    for answered in ("verified", "ineffective", "unanswered"):
        settled = _done(verification=answered, verification_asked_at=asked_at)
        assert not verification.waiting(settled)
        assert verification.next_moment([settled]) is None


def _state(*actions: CorrectiveAction) -> PostmortemState:
    incident = scenario.incident(NOW)
    return PostmortemState(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.FOLLOWING_UP,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=FactorCategory.MISSING_SAFEGUARD, description="f")
            ],
            proximate_cause="p",
            root_cause="r",
            accepted_at=NOW,
        ),
        actions=list(actions),
    )


def test_an_answer_is_refused_with_its_reason_and_the_state_stays_as_it_was():
    state = _state(_done(), _done(id="open", state="open", completed_at=None))
    before = state.model_copy(deep=True)
    later = NOW + timedelta(days=31)
    cases = {
        "no action 'nope'": VerifyActionInput(action_id="nope", worked=True),
        "only a done action can be verified": VerifyActionInput(action_id="open", worked=True),
        "needs a note": VerifyActionInput(action_id="fix", worked=False, note="   "),
        "note: at most 2,000 characters": VerifyActionInput(
            action_id="fix", worked=True, note="n" * (limits.REASON + 1)
        ),
    }
    for reason, answer in cases.items():
        with pytest.raises(ValueError, match=reason):
            updates.verify_action(state, answer, later)
        assert state == before
    updates.verify_action(state, VerifyActionInput(action_id="fix", worked=True), later)
    state.actions[0].verification = Verification.VERIFIED
    state.actions[0].verified_at = later
    with pytest.raises(ValueError, match="already answered verified"):
        updates.verify_action(
            state, VerifyActionInput(action_id="fix", worked=False, note="x"), later
        )
    closed = _state(_done()).model_copy(update={"phase": Phase.CLOSED})
    with pytest.raises(ValueError, match="this post-mortem is closed"):
        updates.verify_action(closed, VerifyActionInput(action_id="fix", worked=True), later)


def test_an_ineffective_answer_must_leave_room_for_its_follow_up():
    """At the record's limit, "did not work" is refused whole (its follow-up would not fit);
    "worked" with a short note still fits."""
    state = _state(_done())
    room = limits.RECORD_BYTES - updates.record_bytes(state)
    state.findings = state.findings.model_copy(  # type: ignore[union-attr]
        update={"summary": "s" * (room - limits.action_reserve() // 2)}
    )
    answer = VerifyActionInput(action_id="fix", worked=False, note="It came back")
    with pytest.raises(ValueError, match=r"over its limit of 1\.80 MB"):
        updates.verify_action(state, answer, NOW)
    updates.verify_action(state, VerifyActionInput(action_id="fix", worked=True, note="ok"), NOW)


def test_the_follow_up_of_an_ineffective_action_revisits_it_as_an_investigation():
    action = _done(title="T" * limits.NAME, priority="P1")
    spec = verification.revisit(action, "The alert stayed silent in the drill", NOW)
    assert spec.title.startswith("Revisit: TTT") and len(spec.title) == limits.NAME
    assert spec.type is ActionType.INVESTIGATE and verification.verify_days(spec) == 0
    assert (spec.owner, spec.team, spec.priority) == ("alex@example.com", "payments", "P1")
    assert spec.due == date(2026, 6, 15)
    assert "did not work" in spec.description and "silent in the drill" in spec.description


# -- the workflow, on the time-skipping server -------------------------------------------------


async def test_a_done_action_is_asked_on_its_ticket_and_by_email_and_the_answers_count(
    env, client, settings, inbox: Inbox, tracker
):
    mailing = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
            "smtp_security": "none",
            "public_url": "https://pm.example.com",
        }
    )
    async with build_worker(client, mailing):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
        data = scenario.findings(now)
        data["actions"][0] |= {
            "verify_after_days": 10,
            "verify_question": "Has a bad config reached production since?",
        }
        del data["actions"][1]["verify_after_days"]  # the type's: 60 days for a detection
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(data)),
        )
        state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
        canary, alert = state.actions
        assert (canary.verify_after_days, alert.verify_after_days) == (10, 60)
        ticket = tracker.get("PAY-2")
        assert (
            ticket is not None
            and (
                "10 days after it is done, its owner will be asked whether it worked: Has a bad "
                "config reached production since?"
            )
            in ticket.body
        )
        invitations = len(inbox.messages)

        # Open: nothing to answer yet, and nothing changes.
        await until(lambda: idle(handle), lambda quiet: quiet)  # the follow-ups' reports in
        before = await handle.query(PostmortemWorkflow.status)
        reason = await refused(
            handle,
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id="alert", worked=True),
        )
        assert "only a done action can be verified" in reason
        assert await handle.query(PostmortemWorkflow.status) == before

        await handle.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id="canary", state=ActionState.DONE, reason="live"),
        )
        # Ten days after it was done: asked once, on its ticket and by email to its owner.
        await env.sleep(timedelta(days=10, hours=1))
        state = await until(
            status_of(handle), lambda s: s.actions[0].verification is Verification.ASKED
        )
        notes = await until(
            comments(tracker, "PAY-2"), lambda c: any("Did it work?" in n for n in c)
        )
        (asked,) = [n for n in notes if "Did it work?" in n]
        assert asked.startswith("@alex@example.com: this corrective action was done")
        assert "Has a bad config reached production since?" in asked
        assert f"postmortem action verify {handle.id} canary --worked" in asked
        await until(lambda: _count(inbox), lambda n: n == invitations + 1)
        to, message = inbox.messages[-1]
        assert to == ["alex@example.com"]
        assert (
            message["Subject"]
            == f"Did it work? Add canary stage to config pushes ({state.incident.id})"
        )
        body = message.get_content()
        assert "Has a bad config reached production since?" in body
        assert f"https://pm.example.com/postmortems/{handle.id}" in body
        assert state.phase is Phase.FOLLOWING_UP

        # "Did not work" needs what showed it; then it is ineffective, and a follow-up opens.
        reason = await refused(
            handle,
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id="canary", worked=False),
        )
        assert "needs a note" in reason
        answered = await handle.execute_update(
            PostmortemWorkflow.verify_action,
            VerifyActionInput(
                action_id="canary", worked=False, note="A bad push reached production again"
            ),
        )
        assert answered.verification is Verification.INEFFECTIVE
        state = await until(
            status_of(handle), lambda s: len(s.actions) == 3 and s.actions[2].ticket is not None
        )
        revisit = state.actions[2]
        assert revisit.title == "Revisit: Add canary stage to config pushes"
        assert (revisit.type, revisit.owner, revisit.verify_after_days) == (
            ActionType.INVESTIGATE,
            "alex@example.com",
            0,
        )
        assert state.actions[0].verification_note == "A bad push reached production again"
        notes = await until(
            comments(tracker, "PAY-2"), lambda c: any("did not work" in n for n in c)
        )
        assert f"A follow-up action ({revisit.id}) revisits it" in notes[-1]
        # Answered once: a second answer is refused, and nothing changes.
        await until(lambda: idle(handle), lambda quiet: quiet)  # the follow-ups' reports in
        before = await handle.query(PostmortemWorkflow.status)
        reason = await refused(
            handle,
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id="canary", worked=True),
        )
        assert "already answered ineffective" in reason
        assert await handle.query(PostmortemWorkflow.status) == before

        # The rest done; the detection is asked 60 days on, nobody answers: unanswered, closed.
        for action_id in ("alert", revisit.id):
            await handle.execute_update(
                PostmortemWorkflow.set_action_state,
                ActionStateChange(action_id=action_id, state=ActionState.DONE),
            )
        final = await handle.result()
        assert final.phase is Phase.CLOSED
        assert [a.verification for a in final.actions] == [
            Verification.INEFFECTIVE,
            Verification.UNANSWERED,
            Verification.NONE,  # an investigation is not asked
        ]
        alert_done = final.actions[1].completed_at
        assert alert_done is not None and final.phase_history[-1].at >= alert_done + timedelta(
            days=60 + verification.ANSWER_DAYS
        )
        tracking = await comments(tracker, "PAY-1")()
        assert any("Nobody said within 30 days" in n and "alert" in n for n in tracking)
        assert tracking[-1].endswith("Did they work: 1 ineffective, 1 unanswered.")
        # Two questions in all, one per action asked: never again for the same one.
        assert [m["Subject"][:12] for _, m in inbox.messages[invitations:]] == ["Did it work?"] * 2
        assert sum("Did it work?" in n for n in await comments(tracker, "PLAT-1")()) == 1
        await record_history("verification", handle)


async def _count(inbox: Inbox) -> int:
    return len(inbox.messages)


async def _following_up(client: Any, settings: Any, now: datetime) -> Any:
    """A post-mortem following up its two actions, each verified as its type says (a
    prevention 90 days after it is done, a detection 60)."""
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    data = scenario.findings(now)
    for action in data["actions"]:
        del action["verify_after_days"]
    await handle.execute_update(
        PostmortemWorkflow.complete_review,
        CompleteReviewInput(findings=Findings.model_validate(data)),
    )
    await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
    return handle


async def test_a_verified_action_lets_the_post_mortem_close_when_answered(
    env, client, settings, worker, tracker
):
    """Answered "worked" before its question is asked: nothing is asked, it closes at once."""
    now = await env.get_current_time()
    handle = await _following_up(client, settings, now)
    for action_id in ("canary", "alert"):
        await handle.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id=action_id, state=ActionState.DONE),
        )
        await handle.execute_update(
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id=action_id, worked=True, note="no repeat in a drill"),
        )
    final = await handle.result()
    assert final.phase is Phase.CLOSED
    assert [a.verification for a in final.actions] == [Verification.VERIFIED] * 2
    assert final.phase_history[-1].at < now + timedelta(days=1)  # no question waited for
    assert not any("Did it work?" in n for n in await comments(tracker, "PAY-2")())
    assert (await comments(tracker, "PAY-1")())[-1].endswith("Did they work: 2 verified.")


# -- a repeat after a verified action, in the record -------------------------------------------


def test_a_repeat_after_a_verified_action_is_flagged_on_both(record: Record):
    """Same service and factor category, after an action of the earlier one was verified as
    working: flagged with the reason, on the later one's list and the earlier one's."""
    verified_at = NOW - timedelta(days=20)

    def earlier(
        n: int, service: str, verdict: Verification, done_days_before: int
    ) -> PostmortemDocument:
        doc = archived(n, service=service, factors=[f"factor {n}"], days_before=40)
        done = NOW - timedelta(days=done_days_before)
        doc.actions[1] = doc.actions[1].model_copy(
            update={"completed_at": done, "verification": verdict, "verified_at": verified_at}
        )
        assert record.project(doc, 1)
        return doc

    flagged = earlier(1, "checkout-api", Verification.VERIFIED, 30)
    earlier(2, "checkout-api", Verification.INEFFECTIVE, 30)  # did not work: a repeat, no flag
    earlier(3, "search-api", Verification.VERIFIED, 30)  # another service
    late = earlier(4, "checkout-api", Verification.VERIFIED, 0)  # done after it began
    mine = archived(9, service="checkout-api", factors=["something new"], days_before=0)
    found = related_reads.find(record, mine, 90)
    by_id = {r.incident_id: r for r in found.related}
    assert set(by_id) == {"INC-1", "INC-2", "INC-4"}
    assert [i for i, r in by_id.items() if r.verified_repeat] == ["INC-1"]
    assert by_id["INC-1"].reasons[0] == (
        'missing_safeguard factors again after its action "Action 1 of INC-1" was verified as '
        "working"
    )
    assert late.incident.id == "INC-4" and not by_id["INC-4"].verified_repeat
    # Another category: not the same failure coming back.
    other = mine.model_copy(deep=True)
    assert other.findings is not None
    other.findings.contributing_factors[0].category = FactorCategory.TOOLING_LIMITATION
    assert not any(r.verified_repeat for r in related_reads.find(record, other, 90).related)

    # Written with what it found: the earlier one shows the flag too.
    mine.related = found.related
    assert record.project(mine, 1)
    (back,) = related_reads.later(record, flagged.workflow_id)
    assert back.later and back.verified_repeat and back.workflow_id == mine.workflow_id
    assert back.reasons[0].startswith("missing_safeguard factors again after its action")


def test_an_answer_given_after_the_later_one_looked_flags_both_as_the_record_says_now(
    record: Record,
):
    """The later post-mortem looked (at its start, its findings) before the earlier one's
    action was answered "worked": both show the flag from then on (status and the page read
    it from the record), with no lookup again; an answer of "did not work", a done time after
    the later incident began, or another category do not flag."""
    began = NOW - timedelta(days=1)
    earlier = archived(1, service="checkout-api", factors=["factor 1"], days_before=40)
    earlier.actions[1] = earlier.actions[1].model_copy(
        update={"completed_at": NOW - timedelta(days=30)}
    )
    assert record.project(earlier, 1)
    later_one = archived(9, service="checkout-api", factors=["something new"], days_before=0)
    later_one.incident.started_at = began
    later_one.related = related_reads.find(record, later_one, 90).related
    assert [r.verified_repeat for r in later_one.related] == [False]
    assert record.project(later_one, 1)

    def flags() -> tuple[bool, bool]:
        (mine,) = related_reads.both_ways(
            record, PostmortemState.model_validate(later_one.model_dump())
        ).related
        (theirs,) = [
            r
            for r in related_reads.both_ways(
                record, PostmortemState.model_validate(earlier.model_dump())
            ).related
            if r.later
        ]
        return mine.verified_repeat, theirs.verified_repeat

    assert flags() == (False, False)
    for verdict, done, flagged in [
        (Verification.INEFFECTIVE, NOW - timedelta(days=30), False),
        (Verification.VERIFIED, began + timedelta(minutes=1), False),  # done after it began
        (Verification.VERIFIED, began - timedelta(minutes=1), True),
    ]:
        earlier.actions[1] = earlier.actions[1].model_copy(
            update={"completed_at": done, "verification": verdict, "verified_at": NOW}
        )
        assert record.project(earlier, 1, same_version=True)
        assert flags() == (flagged, flagged), (verdict, done)
    mine = related_reads.both_ways(
        record, PostmortemState.model_validate(later_one.model_dump())
    ).related[0]
    assert mine.reasons[0] == (
        'missing_safeguard factors again after its action "Action 1 of INC-1" was verified as '
        "working"
    )
    # Another category on the later one: not the same failure coming back.
    assert later_one.findings is not None
    later_one.findings.contributing_factors[0].category = FactorCategory.TOOLING_LIMITATION
    assert record.project(later_one, 2)
    assert flags() == (False, False)


# -- what the learning view counts ---------------------------------------------------------------


def test_the_learning_view_counts_the_answers_given_in_the_period(record: Record):
    """By type, the answers given (or left unanswered) within the period: its first instant
    counts, its end does not; another team's actions count only for their team."""
    period = LearningFilter.last(90, NOW)
    answers = [
        ("repair", Verification.VERIFIED, period.since, "payments"),  # the first instant
        ("repair", Verification.VERIFIED, NOW - timedelta(days=3), "payments"),
        ("repair", Verification.INEFFECTIVE, NOW - timedelta(days=2), "payments"),
        ("detect", Verification.UNANSWERED, NOW - timedelta(days=1), "platform"),
        ("detect", Verification.VERIFIED, period.until, "payments"),  # the end: not in it
        ("detect", Verification.VERIFIED, period.since - timedelta(microseconds=1), "payments"),
        ("prevent", Verification.ASKED, NOW - timedelta(days=1), "payments"),  # no answer yet
    ]
    doc = archived(1, service="checkout-api", factors=["f"], days_before=10)
    doc.actions = [
        _done(id=f"v{n}", type=kind, verification=said, verified_at=at, team=team)
        for n, (kind, said, at, team) in enumerate(answers)
    ]
    assert record.project(doc, 1)
    data = learning(record, period, NOW, 90)
    counts = {
        k: (v.verified, v.ineffective, v.unanswered, v.worked_share)
        for k, v in data.verified_by_type.items()
        if v.verified or v.ineffective or v.unanswered
    }
    assert counts == {"repair": (2, 1, 0, 0.667), "detect": (0, 0, 1, None)}
    mine = learning(record, LearningFilter.last(90, NOW, team="platform"), NOW, 90)
    assert mine.verified_by_type["detect"].unanswered == 1
    assert mine.verified_by_type["repair"].verified == 0
    assert csv_table(data, "verified").splitlines()[:2] == [
        "type,verified,ineffective,unanswered,worked_share",
        "investigate,0,0,0,",
    ]
    assert "repair,2,1,0,0.667" in csv_table(data, "verified")


# -- the API and the page ----------------------------------------------------------------------

VIEWER, OPERATOR = "viewer-token-v1", "operator-token-v2"


async def test_the_api_and_the_page_take_an_answer_and_refuse_the_rest_changing_nothing(
    env, client, settings, worker, tracker
):
    handle = await _following_up(client, settings, await env.get_current_time())
    for action_id in ("canary", "alert"):
        await handle.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id=action_id, state=ActionState.DONE),
        )
    served = settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(VIEWER),
            "operator_tokens": SecretStr(OPERATOR),
        }
    )
    async with (
        scenario.serving_api(served, client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        url = f"/api/postmortems/{handle.id}/actions/canary/verify"
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        await until(lambda: idle(handle), lambda quiet: quiet)  # the follow-ups' reports in
        before = await handle.query(PostmortemWorkflow.status)
        for headers, body, status, said in [
            ({}, {"worked": True}, 401, ""),  # no token
            ({"Authorization": f"Bearer {VIEWER}"}, {"worked": True}, 403, ""),
            ({"Authorization": "Bearer forged"}, {"worked": True}, 401, ""),
            (operator, {"worked": "maybe"}, 422, ""),
            (operator, {"worked": True, "extra": 1, "note": "n" * 20_001}, 422, ""),
            (operator, {"worked": False}, 409, "needs a note"),
        ]:
            answer = await http.post(url, json=body, headers=headers)
            assert answer.status_code == status, answer.text
            assert said in answer.text
        bad_id = await http.post(
            f"/api/postmortems/{handle.id}/actions/..%2Fx/verify",
            json={"worked": True},
            headers=operator,
        )
        assert bad_id.status_code in (404, 422)
        assert await handle.query(PostmortemWorkflow.status) == before  # nothing changed

        answer = await http.post(
            url, json={"worked": True, "note": "no bad push since"}, headers=operator
        )
        assert answer.status_code == 200 and answer.json()["done"] is True
        again = await http.post(url, json={"worked": False, "note": "x"}, headers=operator)
        assert again.status_code == 409 and "already answered verified" in again.json()["error"]

        # The page: an operator's form, with its token; the answered one is no longer offered.
        await http.post("/login", data={"token": OPERATOR, "next": "/"})
        page = await http.get(f"/postmortems/{handle.id}")
        assert "verified: it worked" in page.text and 'id="verify"' in page.text
        assert '<option value="canary">' not in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        form = {"operation": "verify", "action_id": "alert", "csrf": token.group(1)}

        async def operate(fields: dict[str, str]) -> httpx.Response:
            return await http.post(
                f"/postmortems/{handle.id}/operate",
                data=fields,
                headers={"Origin": base},
                follow_redirects=False,
            )

        unsaid = await operate(form)
        assert "error=" in unsaid.headers["location"]  # neither worked nor did not
        forged = await operate(form | {"worked": "yes", "csrf": "x"})
        assert forged.status_code == 403
        done = await operate(form | {"worked": "no", "note": "the alert stayed silent in a drill"})
        assert done.status_code == 303 and "done=verify" in done.headers["location"]
    state = await until(
        status_of(handle), lambda s: len(s.actions) == 3 and s.actions[2].ticket is not None
    )
    assert [a.verification for a in state.actions[:2]] == [
        Verification.VERIFIED,
        Verification.INEFFECTIVE,
    ]
    assert state.actions[2].title == "Revisit: Alert on checkout error rate above 1%"


async def test_an_answer_lands_on_the_action_even_when_its_follow_up_reports_meanwhile(
    env, client, settings, worker, tracker
):
    """The follow-up's report of "done" replaces the post-mortem's copy of the action; an
    answer whose follow-up action was being prepared meanwhile still lands on the action
    (found by an independent review: it landed on the replaced copy and was lost)."""
    handle = await _following_up(client, settings, await env.get_current_time())
    await handle.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="canary", state=ActionState.DONE),
    )
    await until(lambda: idle(handle), lambda quiet: quiet)
    done = (await handle.query(PostmortemWorkflow.status)).actions[0]
    answer = await handle.start_update(
        PostmortemWorkflow.verify_action,
        VerifyActionInput(action_id="canary", worked=False, note="it came back"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    # What the follow-up sends after it commented "Marked done": its snapshot of the action.
    await handle.signal(PostmortemWorkflow.action_progress, ActionProgress(action=done))
    assert (await answer.result()).verification is Verification.INEFFECTIVE
    state = await handle.query(PostmortemWorkflow.status)
    assert state.actions[0].verification is Verification.INEFFECTIVE
    assert [a.id for a in state.actions] == ["canary", "alert", "a1"]
    reason = await refused(
        handle,
        PostmortemWorkflow.verify_action,
        VerifyActionInput(action_id="canary", worked=False, note="again"),
    )
    assert "already answered" in reason


async def test_an_answer_given_as_the_run_continues_as_new_is_still_said_on_its_ticket(
    dev_env, dev_settings
):
    """An answer whose handler was still preparing its follow-up action when the run went to
        continue as new (it waits for every handler to end): the answer, kept in the run's memory
        until it is said, is said on the action's ticket before the next run begins (found by an
        independent review: it was lost with the run). The follow-up's preparation is held by a
        gate around the real activity, so that the run reaches its continue-as-new first. On the
    dev server: the time-skipping one loses a run now and then when queries meet its
    continue-as-new at every turn (its budget here is 20 events)."""
    from config import load_routing

    client, settings = dev_env.client, dev_settings
    team = next(t for t in load_routing(settings.teams_file).teams if t.startswith("payments"))
    tracker = LocalTracker(settings.tracker_db, {team: "PAY"})

    gate, held = threading.Event(), threading.Event()
    gate.set()
    found = activities_for(settings, client)
    (real,) = [f for f in found if getattr(f, "__name__", "") == "prepare_actions"]

    @activity.defn(name="routing.prepare_actions")
    def gated(request: PrepareActionsInput) -> list[Any]:
        if not gate.is_set():
            held.set()
            gate.wait(120)
        return real(request)

    activities = [gated if f is real else f for f in found]
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        activity_executor=ThreadPoolExecutor(4),
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        now = await dev_env.get_current_time()
        incident = scenario.incident(now, team=team)
        started = await client.start_workflow(
            PostmortemWorkflow.run,
            PostmortemInput(incident=incident, continue_after_events=20),
            id=incident.workflow_id,
            task_queue=settings.task_queue,
        )
        # Its latest run, whichever: it may continue as new at any turn of its loops.
        handle = client.get_workflow_handle_for(PostmortemWorkflow.run, started.id)
        await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
        data = scenario.findings(now)
        for action in data["actions"]:
            action["team"] = team
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(data)),
        )
        await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
        await handle.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id="canary", state=ActionState.DONE),
        )
        await until(lambda: idle(handle), lambda quiet: quiet)
        done = (await handle.query(PostmortemWorkflow.status)).actions[0]
        assert done.ticket is not None

        async def current_run() -> str:
            return (await client.get_workflow_handle(handle.id).fetch_history()).run_id

        before = await current_run()
        gate.clear()
        answer = await handle.start_update(
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id="canary", worked=False, note="it came back"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        assert await asyncio.to_thread(held.wait, 60)  # its follow-up being prepared
        # The loop wakes (a report from the action's follow-up), finds its history long and
        # goes to continue as new, waiting for the answer's handler to end.
        await handle.signal(PostmortemWorkflow.action_progress, ActionProgress(action=done))
        await handle.query(PostmortemWorkflow.status)  # the signal's task is done
        gate.set()
        assert (await answer.result()).verification is Verification.INEFFECTIVE
        notes = await until(
            comments(tracker, done.ticket.key), lambda c: any("did not work" in n for n in c)
        )
        assert sum("did not work" in n for n in notes) == 1
        await until(current_run, lambda run: run != before)  # it did continue as new
        state = await handle.query(PostmortemWorkflow.status)
        assert state.actions[0].verification is Verification.INEFFECTIVE


async def test_a_run_that_never_asks_promises_no_question_on_an_added_actions_ticket(
    env, client, settings, tracker, monkeypatch
):
    """A post-mortem that was following up before verification was released replays without
    it and never asks; an action added to it now is not told on its ticket that its owner
    will be asked (found by an independent review). Such a run is made here by answering
    False for that patch, as a replay of the older history does."""
    from temporalio import workflow as temporal_workflow
    from temporalio.worker import UnsandboxedWorkflowRunner

    from domain.models import ActionSpec
    from workflows.patches import ACTION_VERIFICATION

    real_patched = temporal_workflow.patched
    monkeypatch.setattr(
        temporal_workflow,
        "patched",
        lambda patch_id: patch_id != ACTION_VERIFICATION and real_patched(patch_id),
    )
    async with build_worker(client, settings, workflow_runner=UnsandboxedWorkflowRunner()):
        now = await env.get_current_time()
        handle = await _following_up(client, settings, now)
        spec = scenario.findings(now)["actions"][0] | {
            "id": None,
            "title": "Write the rollback runbook",
            "verify_after_days": 10,
        }
        action_id = await handle.execute_update(
            PostmortemWorkflow.add_action, ActionSpec.model_validate(spec)
        )
        state = await until(status_of(handle), lambda s: s.actions[-1].ticket is not None)
        added = state.actions[-1]
        assert (added.id, added.verify_after_days) == (action_id, 0)
        assert added.ticket is not None
        body = tracker.get(added.ticket.key).body
        assert "Write the rollback runbook" in body and "will be asked" not in body


async def test_an_answer_given_while_the_last_question_goes_out_is_said_before_the_close(
    env, client, settings, tracker
):
    """The last question's comment is on its way when its answer comes ("worked"): the run
    has nothing left to wait for and closes; the answer is said on the action's ticket first
    (found by an independent review: it was lost with the run). The question's comment is
    held by a gate around the real activity."""
    gate, held = threading.Event(), threading.Event()
    gate.set()
    found = activities_for(settings, client)
    (real,) = [f for f in found if getattr(f, "__name__", "") == "comment"]

    @activity.defn(name="tracker.comment")
    def gated(request: CommentInput) -> None:
        if "Did it work?" in request.text and not gate.is_set():
            held.set()
            gate.wait(120)
        real(request)

    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[gated if f is real else f for f in found],
        activity_executor=ThreadPoolExecutor(4),
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
        data = scenario.findings(now)
        data["actions"][0]["verify_after_days"] = 10
        data["actions"][1]["verify_after_days"] = 0  # never asked
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(data)),
        )
        await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
        for action_id in ("alert", "canary"):
            await handle.execute_update(
                PostmortemWorkflow.set_action_state,
                ActionStateChange(action_id=action_id, state=ActionState.DONE),
            )
        await until(lambda: idle(handle), lambda quiet: quiet)
        gate.clear()
        # The server skips time only while nothing runs: its sleep ends after the gate opens.
        sleeping = asyncio.create_task(env.sleep(timedelta(days=10, hours=1)))
        assert await asyncio.to_thread(held.wait, 60)  # the question on its way
        answer = await handle.start_update(
            PostmortemWorkflow.verify_action,
            VerifyActionInput(action_id="canary", worked=True, note="no bad push since"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        gate.set()
        assert (await answer.result()).verification is Verification.VERIFIED
        await sleeping
        final = await handle.result()
        assert final.phase is Phase.CLOSED
        notes = await comments(tracker, "PAY-2")()
        assert sum("Did it work?" in n for n in notes) == 1
        assert any("worked" in n and "no bad push since" in n for n in notes), notes
