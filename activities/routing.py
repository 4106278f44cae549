"""Activities that read the team routing: context of a post-mortem, review slots, actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import INVALID_INPUT, maps_integration_errors
from config import Routing
from domain.findings import check_actions, resolve_actions
from domain.models import ActionSpec, CorrectiveAction, ReviewSlot, Severity, TeamInfo
from domain.policy import FollowUpPolicy, SeverityPolicy
from domain.scheduling import (
    WorkingHours,
    choose_facilitator,
    plan_review,
    review_participants,
)


class ResolveContextInput(BaseModel):
    team: str
    severity: Severity
    owner: str | None = None


class PostmortemContext(BaseModel):
    team: TeamInfo
    policy: SeverityPolicy
    follow_up: FollowUpPolicy
    owner: str
    public_url: str | None = None


class PlanReviewInput(BaseModel):
    team: str
    resolved_at: datetime
    now: datetime
    window_business_days: int
    # For the facilitator's turn and the invitation's attendees.
    workflow_id: str = ""
    responders: list[str] = []
    owner: str | None = None


class PrepareActionsInput(BaseModel):
    actions: list[ActionSpec]
    now: datetime
    existing_action_ids: list[str] = []


class Rotation(Protocol):
    """Whose turn a post-mortem got (the record: shared by every worker)."""

    def turn(self, team: str, postmortem: str) -> int: ...


class RoutingActivities:
    def __init__(
        self, routing: Callable[[], Routing], rotation: Rotation, public_url: str = ""
    ) -> None:
        self._routing = routing
        self._rotation = rotation
        self._public_url = public_url or None

    @activity.defn(name="routing.resolve_context")
    @maps_integration_errors
    def resolve_context(self, request: ResolveContextInput) -> PostmortemContext:
        routing = self._routing()
        team = routing.team_info(request.team)
        return PostmortemContext(
            team=team,
            policy=routing.policy.for_severity(request.severity),
            follow_up=routing.policy.follow_up.to_policy(),
            owner=request.owner or team.postmortem_owner or team.manager,
            public_url=self._public_url,
        )

    @activity.defn(name="routing.plan_review")
    @maps_integration_errors
    def plan_review(self, request: PlanReviewInput) -> ReviewSlot:
        """The first slot inside the window and working hours, off weekends, public holidays
        and blackout days; the facilitator whose turn it is; everyone who should be there."""
        routing = self._routing()
        team = routing.team(request.team)
        years = range(min(request.resolved_at.year, request.now.year), request.now.year + 2)
        slot = plan_review(
            resolved_at=request.resolved_at,
            now=request.now,
            tz=ZoneInfo(team.timezone),
            window_business_days=request.window_business_days,
            hours=WorkingHours.parse(team.working_hours),
            holidays=team.days_off(years, routing.blackout),
            weekend=team.weekend_days(),
        )
        facilitator, note = None, ""
        if team.facilitators and request.workflow_id:
            turn = self._rotation.turn(request.team, request.workflow_id)
            facilitator, note = choose_facilitator(team.facilitators, request.responders, turn)
        if note:
            activity.logger.info("facilitator chosen: %s", note)
        return slot.model_copy(
            update={
                "duration_minutes": team.review_minutes,
                "location": team.review_location,
                "facilitator": facilitator,
                "participants": review_participants(
                    request.responders, request.owner, facilitator, team.manager
                ),
            }
        )

    @activity.defn(name="routing.prepare_actions")
    @maps_integration_errors
    def prepare_actions(self, request: PrepareActionsInput) -> list[CorrectiveAction]:
        """Check actions against the current routing and give each an id and a due instant."""
        calendars = self._routing().calendars()
        problems = check_actions(
            request.actions,
            now=request.now,
            teams=calendars,
            existing_action_ids=request.existing_action_ids,
        )
        if problems:
            raise ApplicationError(
                "; ".join(problems), problems, type=INVALID_INPUT, non_retryable=True
            )
        return resolve_actions(
            request.actions, teams=calendars, existing_action_ids=request.existing_action_ids
        )
