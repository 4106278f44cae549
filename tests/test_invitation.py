"""The review's invitation: a real iCalendar event, emailed over SMTP to a local aiosmtpd
server and parsed back; updated in place on reschedule, a reminder the day before, METHOD:CANCEL
on cancellation; the same event downloadable from the API (time-skipping server)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import httpx
import icalendar

from domain.messages import CancelInput, RescheduleReviewInput
from domain.models import Phase
from tests import scenario
from tests.conftest import Inbox, shifted_moment, skip_to
from tests.scenario import until
from tests.test_lifecycle import comments, record, status_of
from tests.test_webhooks import free_port
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow


def event_of(message: EmailMessage) -> tuple[str, icalendar.Event]:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(part.get_content())
    (event,) = calendar.walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    return str(calendar["METHOD"]), event


def attendees(event: icalendar.Event) -> list[str]:
    found = event.get("ATTENDEE")
    found = found if isinstance(found, list) else [found]
    return [str(a).removeprefix("mailto:") for a in found]


async def test_invitation_reschedule_reminder_and_cancel(env, client, settings, inbox, tracker):
    mailing = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
            "smtp_security": "none",
            "smtp_from": "postmortems@example.com",
            "public_url": "https://pm.example.com",
        }
    )
    async with build_worker(client, mailing):
        now = await env.get_current_time()
        inc = scenario.incident(now, responders=["sam@example.com", "Ria Patel"])
        handle = await scenario.start(client, settings.task_queue, inc)
        state = await until(status_of(handle), lambda s: s.invitation_sent)
        review = state.review
        assert review is not None and state.phase is Phase.REVIEW_SCHEDULED
        assert review.participants == [
            "sam@example.com",
            "Ria Patel",
            "owner@example.com",
            "dana.manager@example.com",
        ]

        # The invitation: to everyone with an address, one event with a stable UID.
        ((to, message),) = inbox.messages
        assert sorted(to) == ["dana.manager@example.com", "owner@example.com", "sam@example.com"]
        assert message["Subject"].startswith(f"Invitation: post-mortem review of {inc.id}")
        method, event = event_of(message)
        uid = f"{handle.id}@postmortem-engine"
        assert method == "REQUEST" and str(event["UID"]) == uid and event["SEQUENCE"] == 0
        assert event.decoded("DTSTART") == review.start
        assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=60)
        assert str(event["ORGANIZER"]) == "mailto:postmortems@example.com"
        assert sorted(attendees(event)) == sorted(to)
        assert f"https://pm.example.com/postmortems/{handle.id}/draft" in str(event["DESCRIPTION"])
        assert "Ria Patel" in str(event["DESCRIPTION"])  # named, though she has no address
        notes = await until(comments(tracker, "PAY-1"), lambda c: len(c) >= 1)
        assert f"https://pm.example.com/postmortems/{handle.id}/review.ics" in notes[0]

        # Rescheduled: the same event, one SEQUENCE higher.
        moved = review.start + timedelta(days=1)
        await handle.execute_update(
            PostmortemWorkflow.schedule_review,
            RescheduleReviewInput(at=moved, reason="the database team is at an offsite"),
        )
        await until(lambda: _count(inbox), lambda n: n == 2)
        method, event = event_of(inbox.messages[1][1])
        assert inbox.messages[1][1]["Subject"].startswith("Updated invitation:")
        assert (method, str(event["UID"]), event["SEQUENCE"]) == ("REQUEST", uid, 1)
        assert event.decoded("DTSTART") == moved

        # A day before: the reminder with the draft's link.
        await env.sleep(moved - timedelta(days=1) - now + timedelta(minutes=1))
        await until(lambda: _count(inbox), lambda n: n == 3)
        reminder = inbox.messages[2][1]
        assert reminder["Subject"].startswith("Reminder, tomorrow:")
        body = reminder.get_body(("plain",))
        assert body is not None and "/draft" in body.get_content()

        # The API serves the same event, and the draft for the participants.
        api = mailing.model_copy(update={"api_port": free_port()})
        async with scenario.serving_api(api, client) as base, httpx.AsyncClient() as http:
            answer = await http.get(f"{base}/postmortems/{handle.id}/review.ics")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/calendar")
            served = icalendar.Calendar.from_ical(answer.content)
            (served_event,) = served.walk("VEVENT")
            assert str(served["METHOD"]) == "PUBLISH"
            assert (str(served_event["UID"]), served_event["SEQUENCE"]) == (uid, 1)
            draft = await http.get(f"{base}/postmortems/{handle.id}/draft")
            assert draft.status_code == 200 and "Draft: read it before the review" in draft.text
            assert (await http.get(f"{base}/postmortems/postmortem-manual-nope/review.ics")).json()[
                "error"
            ] == "no post-mortem 'postmortem-manual-nope'"
            assert (await http.get(f"{base}/postmortems/bad%20id/draft")).status_code == 404

        # Cancelled before the review: calendars drop the event.
        await handle.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="false alarm"))
        await until(lambda: _count(inbox), lambda n: n == 4)
        method, event = event_of(inbox.messages[3][1])
        assert (method, str(event["UID"]), event["SEQUENCE"]) == ("CANCEL", uid, 2)
        assert str(event["STATUS"]) == "CANCELLED"
        await until(status_of(handle), lambda s: s.phase is Phase.CANCELLED)
        await record("invitation", handle)


async def test_a_review_less_than_a_day_away_gets_no_reminder_behind_its_invitation(
    env, client, settings, inbox, tracker
):
    """Resolved on a weekday morning UTC, the review lands the next morning, inside the
    reminder's lead time: the invitation is the only message, up to the review itself."""
    mailing = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_security": "none"}
    )
    now = await env.get_current_time()
    await skip_to(env, shifted_moment("wednesday 08:37", now))
    async with build_worker(client, mailing):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        state = await until(status_of(handle), lambda s: s.invitation_sent)
        assert state.review is not None
        assert state.review.start - now < timedelta(days=1)  # what this test is about
        await env.sleep(state.review.start - now + timedelta(minutes=1))
        state = await until(status_of(handle), lambda s: s.phase is Phase.IN_REVIEW)
        assert [m["Subject"].split(":")[0] for _, m in inbox.messages] == ["Invitation"]
        assert not [n for n in await comments(tracker, "PAY-1")() if n.startswith("Reminder:")]


async def test_without_smtp_the_review_goes_on_and_says_why(env, client, settings, worker):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    state = await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    assert not state.invitation_sent and state.problems == []


async def test_an_unreachable_smtp_server_is_a_problem_not_a_stop(env, client, settings):
    broken = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "none"}
    )
    async with build_worker(client, broken):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
        await env.sleep(timedelta(hours=1))  # the retries (about 40 minutes) run out
        state = await until(
            status_of(handle), lambda s: any("not emailed" in p.message for p in s.problems)
        )
        assert state.phase is Phase.REVIEW_SCHEDULED and not state.invitation_sent
        problem = next(p.message for p in state.problems if "not emailed" in p.message)
        # The request's problem, or, when the review falls within a day of now (the hour of
        # the day decides), the reminder's, failing on the same server just after it: either
        # way one problem of the invitation, saying why, and the review goes on.
        failed = " not emailed: DeliveryFailed: cannot send mail through 127.0.0.1:"
        assert problem.startswith(("review request", "review reminder")) and failed in problem
    assert "Connection refused" in problem


async def _count(inbox: Inbox) -> int:
    return len(inbox.messages)
