"""Activities on the owning team's tracker: create a ticket once, read its status, comment."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import TicketRef
from integrations.tracker import CreationJournal, TicketRequest, TicketStatus, Tracker


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
        # What an earlier attempt noted (a create sent, the ticket's key) comes back here, and
        # this attempt notes its own steps as they happen, before anything else can fail.
        details = activity.info().heartbeat_details
        journal = CreationJournal.from_details(details[0] if details else None)
        journal.on_change = lambda j: activity.heartbeat(j.as_details())
        ref = self._tracker_for(request.team).create_ticket(request, journal)
        activity.heartbeat(CreationJournal(key=ref.key).as_details())
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
