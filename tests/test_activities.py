"""Activities in isolation (ActivityEnvironment) over the real SQLite tracker and real files."""

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routing import (
    PlanReviewInput,
    PrepareActionsInput,
    ResolveContextInput,
    RoutingActivities,
)
from activities.tracker import CommentInput, TicketStatusInput, TrackerActivities
from config import ConfigError, Settings, load_routing
from domain.models import (
    ActionSpec,
    ActionType,
    ReviewSlot,
    Severity,
    TicketRef,
)
from integrations.local import LocalTracker
from integrations.tracker import TicketRequest
from record.store import open_record
from worker import TrackerDirectory

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def trackers(settings: Settings) -> TrackerActivities:
    return TrackerActivities(TrackerDirectory(settings))


def request(key: str = "postmortem-manual-INC-1/a1", team: str = "payments") -> TicketRequest:
    return TicketRequest(idempotency_key=key, team=team, title="Add canary", body="Why and what")


def test_create_ticket_is_idempotent_by_key(trackers, tracker):
    env = ActivityEnvironment()
    heartbeats: list = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    first = env.run(trackers.create_ticket, request())
    again = env.run(trackers.create_ticket, request())
    other = env.run(trackers.create_ticket, request("postmortem-manual-INC-1/a2", "platform"))
    assert first == again
    assert first.key == "PAY-1" and other.key == "PLAT-1"
    assert [t.key for t in tracker.list_tickets()] == ["PAY-1", "PLAT-1"]
    assert [d[0]["key"] for d in heartbeats] == ["PAY-1", "PAY-1", "PLAT-1"]


def test_a_retry_reads_what_the_attempt_before_noted_in_its_heartbeat():
    """A worker sends the create and dies before the answer: the next attempt, on another
    worker with an empty memory, gets the journal back from the heartbeat and waits for
    Jira Cloud's search (next_retry_delay) instead of filing a second ticket."""
    from tests.fakes.jira import JiraEmulator
    from tests.fakes.server import Fault
    from tests.test_jira import Clock, tracker_for

    jira = JiraEmulator(search_lag=2.0, clock=Clock()).start()
    try:
        clock = jira.clock
        assert isinstance(clock, Clock)
        ticket = TicketRequest(
            idempotency_key="postmortem-manual-INC-1/a1", team="payments", title="t", body="b"
        )

        def attempt(details: list[Any]) -> tuple[ActivityEnvironment, list[Any]]:
            env = ActivityEnvironment()
            env.info = dataclasses.replace(env.info, heartbeat_details=details)
            noted: list[Any] = []
            env.on_heartbeat = lambda *d: noted.append(d[0])
            return env, noted

        def worker() -> TrackerActivities:
            fresh = tracker_for(jira)  # a new process: nothing in memory
            return TrackerActivities(lambda team: fresh)

        jira.inject(Fault(method="POST", path=r".*/issue", lost=True))
        env, noted = attempt([])
        with pytest.raises(ApplicationError) as lost:
            env.run(worker().create_ticket, ticket)
        assert lost.value.type == "TrackerUnavailable"
        assert noted == [{"key": None, "attempted_at": clock.now}]  # noted before sending

        env, _ = attempt(noted[-1:])
        with pytest.raises(ApplicationError) as early:
            env.run(worker().create_ticket, ticket)
        assert early.value.next_retry_delay == timedelta(seconds=60)

        clock.advance(60)
        env, noted = attempt(noted[-1:])
        assert env.run(worker().create_ticket, ticket).key == "PAY-1"
        assert noted[-1] == {"key": "PAY-1", "attempted_at": None}
        assert list(jira.state.issues) == ["PAY-1"] and jira.count("POST", r".*/issue") == 1
    finally:
        jira.stop()


def test_status_and_comments_round_trip(trackers, tracker):
    env = ActivityEnvironment()
    ref = env.run(trackers.create_ticket, request())
    env.run(trackers.comment, CommentInput(team="payments", ref=ref, text="Reminder"))
    assert (
        env.run(trackers.ticket_status, TicketStatusInput(team="payments", ref=ref)).done is False
    )
    tracker.set_state(ref.key, closed=True, resolution="not_planned")
    status = env.run(trackers.ticket_status, TicketStatusInput(team="payments", ref=ref))
    assert status.done and status.resolution == "not_planned"
    assert [c.body for c in tracker.list_tickets()[0].comments] == ["Reminder"]


def test_missing_ticket_is_not_retried(trackers):
    ghost = TicketRef(tracker="local", key="PAY-99", url="local://tickets/PAY-99")
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(
            trackers.comment, CommentInput(team="payments", ref=ghost, text="x")
        )
    assert caught.value.type == "TicketNotFound" and caught.value.non_retryable


def test_unknown_team_is_a_configuration_error(trackers):
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(trackers.create_ticket, request(team="logistics"))
    assert caught.value.type == "ConfigurationError" and caught.value.non_retryable
    assert "unknown team 'logistics'" in str(caught.value)


def test_unusable_database_is_retryable(settings, tmp_path):
    broken = settings.model_copy(update={"local_tracker_db": tmp_path})  # a folder, not a file
    activities = TrackerActivities(TrackerDirectory(broken))
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(activities.create_ticket, request())
    assert caught.value.type == "TrackerUnavailable" and not caught.value.non_retryable


def routing_activities(settings: Settings) -> RoutingActivities:
    return RoutingActivities(lambda: load_routing(settings.teams_file), open_record(settings))


CALENDAR_ROUTING = """
blackout = ["2026-12-21..2027-01-01"]

[teams.berlin]
manager = "dana.manager@example.com"
timezone = "Europe/Berlin"
country = "DE"
subdivision = "BY"
blackout = ["2026-11-30"]
facilitators = ["sam@example.com", "Ria Patel", "joe@example.com"]
review_minutes = 90

[teams.ny]
manager = "lee.manager@example.com"
timezone = "America/New_York"
country = "US"
"""


@pytest.fixture
def calendar_settings(settings: Settings) -> Settings:
    settings.teams_file.write_text(CALENDAR_ROUTING)
    return settings


def review_for(settings: Settings, team: str, resolved: datetime, **fields) -> ReviewSlot:
    return ActivityEnvironment().run(
        routing_activities(settings).plan_review,
        PlanReviewInput(
            team=team, resolved_at=resolved, now=resolved, window_business_days=5, **fields
        ),
    )


def test_plan_review_skips_public_holidays_of_the_team_country(calendar_settings):
    # Wed 2026-11-25 evening in New York; Thursday is Thanksgiving: the slot is Friday.
    slot = review_for(calendar_settings, "ny", datetime(2026, 11, 25, 23, tzinfo=UTC))
    assert slot.start == datetime(2026, 11, 27, 14, tzinfo=UTC)  # Fri 09:00 EST
    assert slot.window_end == datetime(2026, 12, 3, 22, tzinfo=UTC)  # 5 bd, Thanksgiving skipped


def test_plan_review_skips_blackout_days_team_and_company_wide(calendar_settings):
    # Fri 2026-11-27 in Berlin; Monday 30th is the team's blackout day: Tuesday.
    slot = review_for(calendar_settings, "berlin", datetime(2026, 11, 27, 16, tzinfo=UTC))
    assert slot.start == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert slot.duration_minutes == 90
    # Resolved 2026-12-18 (Fri): the company freeze runs to 2027-01-01; Epiphany (Jan 6) is a
    # Bavarian holiday: the fifth business day is Mon 2027-01-11 (4, 5, 7, 8, 11 January).
    late = review_for(calendar_settings, "berlin", datetime(2026, 12, 18, 12, tzinfo=UTC))
    assert late.start == datetime(2027, 1, 4, 8, tzinfo=UTC)
    assert late.window_end == datetime(2027, 1, 11, 16, tzinfo=UTC)


def test_facilitator_rotates_and_skips_responders(calendar_settings):
    resolved = datetime(2026, 11, 25, 12, tzinfo=UTC)
    chosen = [
        review_for(calendar_settings, "berlin", resolved, workflow_id=f"pm-{n}").facilitator
        for n in range(4)
    ]
    assert chosen == ["sam@example.com", "Ria Patel", "joe@example.com", "sam@example.com"]
    # A retried activity gets the same turn; a responder is passed over for the next one.
    again = review_for(calendar_settings, "berlin", resolved, workflow_id="pm-1")
    assert again.facilitator == "Ria Patel"
    slot = review_for(
        calendar_settings,
        "berlin",
        resolved,
        workflow_id="pm-4",  # turn 4: Ria's turn, but she responded (as ria.patel@...)
        responders=["ria.patel@example.com", "kim@example.com"],
        owner="owner@example.com",
    )
    assert slot.facilitator == "joe@example.com"
    assert slot.participants == [
        "ria.patel@example.com",
        "kim@example.com",
        "owner@example.com",
        "joe@example.com",
        "dana.manager@example.com",
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('country = "XX"', "no public holidays known for country 'XX'"),
        ('country = "DE"\nsubdivision = "ZZ"', "country 'DE'"),
        ('subdivision = "BY"', "subdivision needs a country"),
        ('blackout = ["2026-12-31..2026-12-01"]', "ends before it starts"),
        ('blackout = ["next week"]', "is not a date (2026-12-24) or a range"),
    ],
)
def test_bad_calendars_are_refused_with_the_reason(settings, table, message):
    settings.teams_file.write_text(f"[teams.a]\nmanager = 'm'\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_routing(settings.teams_file)


def test_resolve_context_picks_owner_and_policy(settings):
    activities = routing_activities(settings)
    env = ActivityEnvironment()
    context = env.run(
        activities.resolve_context, ResolveContextInput(team="payments", severity=Severity.SEV1)
    )
    assert context.owner == "owner@example.com"  # the team's post-mortem owner
    assert context.policy.review_within_business_days == 3
    assert context.team.manager == "dana.manager@example.com"
    named = env.run(
        activities.resolve_context,
        ResolveContextInput(team="platform", severity=Severity.SEV2, owner="sam@example.com"),
    )
    assert named.owner == "sam@example.com"


def test_plan_review_uses_team_clock(settings):
    slot = ActivityEnvironment().run(
        routing_activities(settings).plan_review,
        PlanReviewInput(team="platform", resolved_at=NOW, now=NOW, window_business_days=5),
    )
    assert slot.timezone == "America/New_York"
    assert slot.start == datetime(2026, 11, 27, 14, tzinfo=UTC)  # Fri 09:00 New York


def test_prepare_actions_refuses_with_every_problem(settings):
    specs = [
        ActionSpec(
            title="x", type=ActionType.REPAIR, owner="o", team="nobody", due=NOW + timedelta(days=1)
        ),
        ActionSpec(
            title="y",
            type=ActionType.REPAIR,
            owner="o",
            team="payments",
            due=NOW - timedelta(days=1),
        ),
    ]
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(
            routing_activities(settings).prepare_actions,
            PrepareActionsInput(actions=specs, now=NOW),
        )
    assert caught.value.type == "InvalidInput" and caught.value.non_retryable
    assert "team 'nobody'" in caught.value.message and "is in the past" in caught.value.message


def test_local_tracker_survives_reopening(settings):
    first = LocalTracker(settings.tracker_db, {"payments": "PAY"})
    ref = first.create_ticket(request())
    second = LocalTracker(settings.tracker_db, {"payments": "PAY"})
    assert second.find_ticket(request().idempotency_key, "payments") == ref
    assert second.create_ticket(request("other")).key == "PAY-2"
