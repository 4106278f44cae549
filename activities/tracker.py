"""Activities on the owning team's tracker: create a ticket once, read its status, comment."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import TicketRef
from integrations.tracker import TicketRequest, TicketStatus, Tracker


class TicketStatusInput(BaseModel):
    team: str
    ref: TicketRef


class CommentInput(BaseModel):
    team: str
    ref: TicketRef
    text: str


class TrackerActivities:
    """`tracker_for` maps a team name to its tracker client (built by the worker)."""

    def __init__(self, tracker_for: Callable[[str], Tracker]) -> None:
        self._tracker_for = tracker_for

    @activity.defn(name="tracker.create_ticket")
    @maps_integration_errors
    def create_ticket(self, request: TicketRequest) -> TicketRef:
        ref = self._tracker_for(request.team).create_ticket(request)
        # Recorded before completion: a retry after a crash finds it by the key anyway.
        activity.heartbeat(ref.key)
        activity.logger.info("ticket filed", extra={"ticket": ref.key, "team": request.team})
        return ref

    @activity.defn(name="tracker.ticket_status")
    @maps_integration_errors
    def ticket_status(self, request: TicketStatusInput) -> TicketStatus:
        return self._tracker_for(request.team).ticket_status(request.ref)

    @activity.defn(name="tracker.comment")
    @maps_integration_errors
    def comment(self, request: CommentInput) -> None:
        self._tracker_for(request.team).comment(request.ref, request.text)
