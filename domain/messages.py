"""Inputs and results of the workflows' runs, updates and signals: one model each."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

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
    Text,
    TimelineEntry,
)
from domain.policy import FollowUpPolicy


class PostmortemInput(Model):
    incident: Incident
    owner: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # Set by continue-as-new: the state to carry on from.
    resume: PostmortemState | None = None
    # Continue as new past this many history events while following up (None: when Temporal
    # suggests it). Follow-ups of long-overdue actions keep signalling; history stays bounded.
    continue_after_events: int | None = Field(default=None, ge=20)
    # The policy makes this severity's post-mortem optional: recorded and listed, not started
    # until an operator begins it (the `begin` update).
    optional: bool = False


class BeginInput(Model):
    """An operator starts an optional post-mortem."""

    reason: str = Field(default="", max_length=2000)


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
    finding_ids: list[str] = Field(min_length=1)
    note: Text


class RescheduleReviewInput(Model):
    at: AwareDatetime
    reason: str = ""


class ActionStateChange(Model):
    action_id: ActionId
    state: ActionState
    reason: str = ""


class VerifyActionInput(Model):
    """Did a done action work? Its owner's answer (domain/verification.py)."""

    action_id: ActionId
    worked: bool
    note: str = ""


class MoveDeadlineInput(Model):
    action_id: ActionId
    due: AwareDatetime
    reason: Text


class RetryFilingInput(Model):
    action_id: ActionId


class CancelInput(Model):
    reason: Text


class RouteInput(Model):
    """An operator places a post-mortem with a team (an unrouted one, or a wrong guess)."""

    team: Name
    reason: str = Field(default="", max_length=2000)


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
