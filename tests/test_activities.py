"""Activities in isolation (ActivityEnvironment) over the real SQLite tracker and real files."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publishing import PublishingActivities, PublishInput
from activities.routing import (
    PlanReviewInput,
    PrepareActionsInput,
    ResolveContextInput,
    RoutingActivities,
)
from activities.tracker import CommentInput, TicketStatusInput, TrackerActivities
from config import Settings, load_routing
from domain.models import ActionSpec, ActionType, Incident, PostmortemState, Severity, TicketRef
from integrations.local import LocalTracker
from integrations.publishing import FolderPublisher
from integrations.tracker import TicketRequest
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
    assert heartbeats == [("PAY-1",), ("PAY-1",), ("PLAT-1",)]


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
    return RoutingActivities(lambda: load_routing(settings.teams_file))


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


def test_publish_writes_the_document_and_replaces_it(tmp_path: Path):
    incident = Incident(
        id="INC-9", title="Disk full", severity=Severity.SEV2, team="payments", resolved_at=NOW
    )
    activities = PublishingActivities(lambda team: FolderPublisher(tmp_path))
    env = ActivityEnvironment()
    state = PostmortemState(workflow_id=incident.workflow_id, incident=incident)
    first = env.run(activities.publish, PublishInput(state=state, rendered_at=NOW))
    path = tmp_path / "2026" / "inc-9-disk-full.md"
    assert first.location == path.as_uri()
    assert "Last update: 2026-11-26 12:00 UTC" in path.read_text()
    env.run(activities.publish, PublishInput(state=state, rendered_at=NOW + timedelta(days=1)))
    assert "Last update: 2026-11-27 12:00 UTC" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["inc-9-disk-full.md"]


def test_local_tracker_survives_reopening(settings):
    first = LocalTracker(settings.tracker_db, {"payments": "PAY"})
    ref = first.create_ticket(request())
    second = LocalTracker(settings.tracker_db, {"payments": "PAY"})
    assert second.find_ticket(request().idempotency_key, "payments") == ref
    assert second.create_ticket(request("other")).key == "PAY-2"
