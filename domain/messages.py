"""Inputs and results of the workflows' runs, updates and signals: one model each."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from domain import limits
from domain.models import (
    ActionId,
    ActionState,
    BlamelessNote,
    CorrectiveAction,
    Findings,
    Incident,
    Model,
    Name,
    PostmortemState,
    Severity,
    TimelineEntry,
)
from domain.policy import FollowUpPolicy

Reason = Annotated[str, StringConstraints(max_length=limits.REASON, strip_whitespace=True)]


class PostmortemInput(Model):
    incident: Incident
    owner: str | None = Field(default=None, max_length=limits.NAME)
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=limits.TIMELINE_ENTRIES)
    # Set by continue-as-new: the state to carry on from.
    resume: PostmortemState | None = None
    # Continue as new past this many history events while following up (None: when Temporal
    # suggests it). Follow-ups of long-overdue actions keep signalling; history stays bounded.
    continue_after_events: int | None = Field(default=None, ge=20)
    # The policy makes this severity's post-mortem optional: recorded and listed, not started
    # until an operator begins it (the `begin` update).
    optional: bool = False

    @model_validator(mode="after")
    def _timeline_fits(self) -> PostmortemInput:
        problem = limits.timeline_problem([], self.timeline)
        if problem:
            raise ValueError(f"timeline: {problem}")
        return self


class BeginInput(Model):
    """An operator starts an optional post-mortem."""

    reason: Reason = ""


class CompleteReviewInput(Model):
    findings: Findings


class ReviewAccepted(Model):
    action_ids: list[str]
    # The blameless check's findings on the text, and whether publication waits for them.
    blameless: list[BlamelessNote] = Field(default_factory=list)
    publication_held: bool = False


class ReviseFindingsInput(Model):
    """The review's narrative, reworded: actions stay as they are (add or move them)."""

    findings: Findings


class AcknowledgeInput(Model):
    finding_ids: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        min_length=1, max_length=limits.BLAMELESS_NOTES
    )
    note: Annotated[
        str, StringConstraints(min_length=1, max_length=limits.ACK_NOTE, strip_whitespace=True)
    ]


class RescheduleReviewInput(Model):
    at: AwareDatetime
    reason: Reason = ""


class ActionStateChange(Model):
    action_id: ActionId
    state: ActionState
    reason: Reason = ""


class MoveDeadlineInput(Model):
    action_id: ActionId
    due: AwareDatetime
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=limits.REASON, strip_whitespace=True)
    ]


class RetryFilingInput(Model):
    action_id: ActionId


class CancelInput(Model):
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=limits.REASON, strip_whitespace=True)
    ]


class RouteInput(Model):
    """An operator places a post-mortem with a team (an unrouted one, or a wrong guess)."""

    team: Name
    reason: Reason = ""


class ActionFollowUpInput(Model):
    postmortem_id: str
    incident_id: str
    severity: Severity
    manager: str
    action: CorrectiveAction
    policy: FollowUpPolicy
    last_poll_at: AwareDatetime | None = None
    # When the action was first filed: kept across continue-as-new and reopening.
    opened_at: AwareDatetime | None = None
    # Loop turns per run before continue-as-new keeps history bounded.
    continue_after: int = Field(default=200, ge=1)


class ActionReopened(Model):
    action_id: ActionId
    reason: str = "reopened in the tracker"


class ActionProgress(Model):
    """A child's snapshot of its action, signalled to the post-mortem after each change."""

    action: CorrectiveAction


class ChildStateChange(Model):
    state: ActionState
    reason: str = ""
    at: AwareDatetime


class ChildDeadlineMove(Model):
    due: AwareDatetime
    reason: str


# The error type of an update refused because what it carries is already recorded (a
# redelivered webhook): the sender's effect happened, so it is answered as a success.
ALREADY_RECORDED = "AlreadyRecorded"


class TrackerStatusSignal(Model):
    """The tracker's word on a ticket, from a webhook or a poll."""

    done: bool
    resolution: str = ""


class DigestInput(Model):
    team: str
    kind: Literal["weekly", "sev1-daily"]
