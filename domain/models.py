"""The post-mortem's vocabulary: incidents, timelines, findings, corrective actions and state."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from domain import limits
from domain.policy import FollowUpPolicy, SeverityPolicy


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"
    SEV5 = "SEV5"


class Phase(StrEnum):
    # Recorded, not started: the policy makes this severity's post-mortem optional. An
    # operator starts it (`postmortem begin`); untouched, it ends after OPTIONAL_KEEP_DAYS.
    OPTIONAL = "optional"
    DRAFTING = "drafting"
    REVIEW_SCHEDULED = "review_scheduled"
    IN_REVIEW = "in_review"
    ACTIONS_FILED = "actions_filed"
    PUBLISHED = "published"
    FOLLOWING_UP = "following_up"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.CLOSED, Phase.CANCELLED)

    @property
    def awaits_review(self) -> bool:
        return self in (Phase.REVIEW_SCHEDULED, Phase.IN_REVIEW)


class FactorCategory(StrEnum):
    """System-level categories: each asks 'what about the system allowed this?'."""

    PROCESS_GAP = "process_gap"
    TOOLING_LIMITATION = "tooling_limitation"
    UNCLEAR_OWNERSHIP = "unclear_ownership"
    MISSING_SAFEGUARD = "missing_safeguard"
    MONITORING_GAP = "monitoring_gap"
    DOCUMENTATION_GAP = "documentation_gap"
    OTHER = "other"


class ActionType(StrEnum):
    """The Google SRE set of corrective action types."""

    INVESTIGATE = "investigate"
    MITIGATE = "mitigate"
    REPAIR = "repair"
    DETECT = "detect"
    PREVENT = "prevent"
    PROCESS = "process"


class Verification(StrEnum):
    """Whether a done corrective action worked (domain/verification.py): asked its owner
    `verify_after_days` after it was done, answered `verified` or `ineffective`, or left
    `unanswered` when nobody answered in time."""

    NONE = ""  # no answer and no question yet
    ASKED = "asked"
    VERIFIED = "verified"
    INEFFECTIVE = "ineffective"
    UNANSWERED = "unanswered"

    @property
    def answered(self) -> bool:
        return self in (Verification.VERIFIED, Verification.INEFFECTIVE)


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class ActionState(StrEnum):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"

    @property
    def is_terminal(self) -> bool:
        return self is not ActionState.OPEN


IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_ACTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} must start with a letter or digit and hold only letters, digits "
            "and . _ : - (at most 100 characters)"
        )
    return value


def _action_id(value: str) -> str:
    if not _ACTION_ID.match(value):
        raise ValueError(
            f"{value!r} must be lower-case letters, digits and dashes (at most 40), "
            "like 'canary-config'"
        )
    return value


# Identifiers end up in workflow ids, labels and file names: keep them to a safe alphabet.
Identifier = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_identifier)]
ActionId = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_action_id)]
# The models decode recorded histories too: a limit added later must not make an accepted
# payload unreadable on replay. So the models keep the limits they were released with; the
# newer ones (domain/limits.py) are checked where input comes in: the update validators
# (domain/updates.py), the findings checks, and engine.start_postmortem.
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.TEXT, strip_whitespace=True)
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.NAME, strip_whitespace=True)
]


class Model(BaseModel):
    # Unknown keys are errors at every boundary: a typo in a findings file must not vanish.
    model_config = ConfigDict(extra="forbid", frozen=False)


class TimelineEntry(Model):
    at: AwareDatetime
    text: Text
    known: str = Field(default="", description="What responders knew at this point")
    source: str = "manual"
    # Kept out of every published document (customer names, internal hosts...).
    private: bool = False
    # What an incident tool's event added (a reopening, a resolution after one): "" otherwise.
    event: Literal["", "reopened", "resolved_again"] = ""


def service_name(raw: str | None) -> str:
    """A service as the engine keeps it: one line, lower-case, spaces single, at most
    limits.SERVICE characters ("Checkout API" and "checkout  api" are one service)."""
    if not raw:
        return ""
    cleaned = "".join(c if c.isprintable() else " " for c in raw)
    return " ".join(cleaned.lower().split())[: limits.SERVICE].strip()


class Incident(Model):
    source: Identifier = "manual"
    id: Identifier
    title: Name
    severity: Severity
    team: Name
    resolved_at: AwareDatetime
    started_at: AwareDatetime | None = None
    summary: str = ""
    url: str | None = None
    external_id: str | None = None  # the source's own id for API calls, where it differs
    responders: list[str] = Field(default_factory=list)
    private: bool = False
    # Why the routing could not place it (it started under the triage team); "" once routed.
    unrouted: str = ""
    # The service (component, system) it was on: what repeats are found by. "" unknown.
    service: Annotated[str, AfterValidator(service_name)] = ""

    @property
    def workflow_id(self) -> str:
        return postmortem_workflow_id(self.source, self.id)

    def carried(self) -> Incident:
        """What a continue-as-new carries beside the state (which has the whole incident):
        its title, team and ids; limits.continued_incident_bytes() counts it."""
        return self.model_copy(
            update={
                "summary": "",
                "url": None,
                "external_id": None,
                "responders": [],
                "unrouted": "",
                "service": "",
            }
        )


# The workflow ids, defined here only: postmortem-<source>-<incident>[/action-<id>].
def postmortem_workflow_id(source: str, incident_id: str) -> str:
    return f"postmortem-{source}-{incident_id}"


def action_workflow_id(postmortem_id: str, action_id: str) -> str:
    return f"{postmortem_id}/action-{action_id}"


# A source may hold a dash (grafana-oncall); an incident id holds no slash.
_WORKFLOW_ID = re.compile(
    r"^postmortem-(?P<source>grafana-oncall|[a-z0-9]+)-(?P<incident>[^/]+)"
    r"(?:/action-(?P<action>.+))?$"
)


def parse_workflow_id(workflow_id: str) -> tuple[str, str, str | None] | None:
    """(source, incident id, action id or None) of one of our ids; None for another."""
    match = _WORKFLOW_ID.match(workflow_id)
    return (match["source"], match["incident"], match["action"]) if match else None


class ContributingFactor(Model):
    category: FactorCategory
    description: Text


class TicketRef(Model):
    tracker: str
    key: str
    url: str


class ActionSpec(Model):
    """A corrective action as a person writes it in the review's findings."""

    id: ActionId | None = None
    title: Name
    description: str = ""
    type: ActionType
    priority: Priority = Priority.P2
    owner: Name
    team: Name
    # A bare date means the end of that day in the owning team's time zone.
    due: AwareDatetime | date
    # How long after it is done its owner is asked whether it worked, and what (both
    # defaulted by its type, domain/verification.py; 0 days: never asked).
    verify_after_days: int | None = Field(default=None, ge=0, le=limits.VERIFY_DAYS)
    verify_question: str | None = None


class CorrectiveAction(Model):
    """A corrective action as the engine tracks it."""

    id: ActionId
    title: Name
    description: str = ""
    type: ActionType
    priority: Priority = Priority.P2
    owner: Name
    team: Name
    due: AwareDatetime
    state: ActionState = ActionState.OPEN
    state_reason: str = ""
    ticket: TicketRef | None = None
    filing_error: str | None = None
    overdue: bool = False
    reminders_sent: int = 0
    last_reminder_at: AwareDatetime | None = None
    escalation_level: int = 0
    last_escalation_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    # Did it work? (domain/verification.py; absent from actions recorded before)
    verify_after_days: int = 0
    verify_question: str = ""
    verification: Verification = Verification.NONE
    verification_note: str = ""
    verification_asked_at: AwareDatetime | None = None
    verified_at: AwareDatetime | None = None  # answered, or left unanswered


class Findings(Model):
    """What the review produced. Proximate and root cause are separate on purpose."""

    summary: str = ""
    impact: str = ""
    timeline_corrections: list[TimelineEntry] = Field(default_factory=list)
    contributing_factors: list[ContributingFactor] = Field(min_length=1)
    proximate_cause: Text
    root_cause: Text
    went_well: list[str] = Field(default_factory=list)
    went_badly: list[str] = Field(default_factory=list)
    got_lucky: list[str] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)


class ReviewOutcome(Model):
    """Accepted findings, as stored on the post-mortem (actions live in state.actions)."""

    summary: str = ""
    impact: str = ""
    contributing_factors: list[ContributingFactor]
    proximate_cause: str
    root_cause: str
    went_well: list[str] = Field(default_factory=list)
    went_badly: list[str] = Field(default_factory=list)
    got_lucky: list[str] = Field(default_factory=list)
    accepted_at: AwareDatetime
    revised_at: AwareDatetime | None = None


class TeamInfo(Model):
    """The slice of a team's routing that a post-mortem keeps for its whole life."""

    name: str
    tracker: str
    manager: str
    timezone: str
    postmortem_owner: str | None = None


class ReviewSlot(Model):
    start: AwareDatetime
    window_end: AwareDatetime
    timezone: str
    outside_window: bool = False
    reason: str = ""
    duration_minutes: int = 60
    location: str = ""  # a room or a video link
    facilitator: str | None = None
    # Responders, the post-mortem owner, the facilitator and the manager, without repeats.
    participants: list[str] = Field(default_factory=list)
    # The invitation's SEQUENCE (RFC 5545): one more for each reschedule of the same event.
    sequence: int = 0


class BlamelessNote(Model):
    """A finding of the blameless check on the post-mortem's text, and what became of it."""

    id: str
    rule: str
    kind: str
    field: str
    sentence: str
    reason: str
    suggestion: str
    acknowledged: bool = False
    note: str = ""


class ProblemKind(StrEnum):
    """What went wrong, and so what fixes it."""

    TRACKING_TICKET = "tracking_ticket"  # the post-mortem's own ticket was not filed
    FILING = "filing"  # an action's ticket was refused: fix, then `action retry`
    FOLLOW_UP = "follow_up"  # an action's follow-up did not start: `action retry`
    TIMELINE_IMPORT = "timeline_import"  # the incident tool's log was not (all) imported
    PUBLICATION = "publication"  # not published: fix, then `postmortem publish`
    INVITATION = "invitation"  # the review's email was not sent
    BLAMELESS_CHECK = "blameless_check"  # the check could not run on the text
    STEP_FAILED = "step_failed"  # an unexpected error no retry fixes: `postmortem retry`
    RECORD = "record"  # a change could not be written to the record: the next one tries
    VERIFICATION = "verification"  # an owner could not be asked whether an action worked
    OTHER = "other"


class Problem(Model):
    """Something the engine could not do, until what fixes it happens."""

    kind: ProblemKind
    message: str
    action_id: str | None = None
    since: AwareDatetime | None = None

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """One line, the same wherever it is shown (CLI, dashboard)."""
        where = f" {self.action_id}" if self.action_id else ""
        since = f" (since {self.since:%Y-%m-%d %H:%M} UTC)" if self.since else ""
        return f"[{self.kind.value}{where}] {self.message}{since}"


_LEGACY_ACTION = re.compile(r"^action ([a-z0-9][a-z0-9-]*)(:| \()")


def _legacy_problem(text: str) -> dict[str, object]:
    """A problem recorded as text by an earlier version, typed from its wording."""
    kind, action_id = ProblemKind.OTHER, None
    match = _LEGACY_ACTION.match(text)
    if match:
        action_id = match.group(1)
        kind = ProblemKind.FOLLOW_UP if "follow-up not started" in text else ProblemKind.FILING
    elif text.startswith("tracking ticket not filed"):
        kind = ProblemKind.TRACKING_TICKET
    elif text.startswith("timeline not imported"):
        kind = ProblemKind.TIMELINE_IMPORT
    elif text.startswith("not published:"):
        kind = ProblemKind.PUBLICATION
    elif text.startswith("review ") and "not emailed" in text:
        kind = ProblemKind.INVITATION
    return {"kind": kind, "message": text, "action_id": action_id}


class RelatedAction(Model):
    """An action of a related post-mortem that did not get done: still open, or dropped."""

    id: str
    title: str
    state: ActionState
    owner: str
    due: AwareDatetime
    state_reason: str = ""
    ticket: TicketRef | None = None


class RelatedPostmortem(Model):
    """Another post-mortem this one repeats or resembles, and why (domain/related.py)."""

    workflow_id: str
    incident_id: str
    title: str
    service: str = ""
    team: str = ""
    resolved_at: AwareDatetime
    reasons: list[str] = Field(default_factory=list)
    actions: list[RelatedAction] = Field(default_factory=list)  # open or dropped
    similarity: float = 0.0  # of the closest pair of findings; 0 for the same service alone
    later: bool = False  # it came after this one (it found this one): shown, never stored
    # The same service and factor category again, after an action of the earlier one was
    # verified as working (domain/verification.py): shown on both.
    verified_repeat: bool = False


class PhaseChange(Model):
    phase: Phase
    at: AwareDatetime
    note: str = ""


class PostmortemDocument(Model):
    """What a document, an invitation and the blameless check read of a post-mortem: its
    record, without the engine's bookkeeping. Activities get this, never the whole state
    (a state passed where a document is declared is sent as one)."""

    # An activity scheduled before documents existed was given the whole state: read it.
    model_config = ConfigDict(extra="ignore")

    workflow_id: str
    incident: Incident
    phase: Phase = Phase.DRAFTING
    owner: str | None = None
    team: TeamInfo | None = None
    review: ReviewSlot | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    findings: ReviewOutcome | None = None
    actions: list[CorrectiveAction] = Field(default_factory=list)
    phase_history: list[PhaseChange] = Field(default_factory=list)
    cancel_reason: str | None = None
    published_url: str | None = None
    # Where people reach the API (links to the draft and the invitation), from the worker.
    public_url: str | None = None
    # Earlier post-mortems of the same service or with similar findings, closest first,
    # found when it starts and when its findings are recorded; and the line that says it.
    related: list[RelatedPostmortem] = Field(default_factory=list)
    related_summary: str = ""


class PostmortemState(PostmortemDocument):
    model_config = ConfigDict(extra="forbid")

    policy: SeverityPolicy | None = None
    follow_up: FollowUpPolicy | None = None
    review_reminder_sent: bool = False
    review_escalations: int = 0
    review_escalated_at: AwareDatetime | None = None  # the last late-review notice sent
    tracking_ticket: TicketRef | None = None
    problems: list[Problem] = Field(default_factory=list)
    updated_at: datetime | None = None
    # The blameless check's findings on the review's text; with `blameless_enforced`, the
    # document is published once each is fixed (gone from the text) or acknowledged.
    blameless: list[BlamelessNote] = Field(default_factory=list)
    blameless_enforced: bool = True
    # The check could not run on the text as it is (its problem says why): publication
    # waits for it, as it waits for open findings.
    blameless_unchecked: bool = False
    publication_held: bool = False
    # The version of the last projection into the record: monotonic across continue-as-new.
    record_version: int = 0
    invitation_sent: bool = False
    published_locations: list[str] = Field(default_factory=list)
    publication_note: str = ""  # why it was not published, or what was redacted

    @field_validator("problems", mode="before")
    @classmethod
    def _typed_problems(cls, value: object) -> object:
        if isinstance(value, list):
            return [_legacy_problem(p) if isinstance(p, str) else p for p in value]
        return value

    @property
    def blameless_open(self) -> list[BlamelessNote]:
        return [n for n in self.blameless if not n.acknowledged]

    @property
    def blameless_holds(self) -> bool:
        """Open findings with the gate on: publication waits for them."""
        return self.blameless_enforced and bool(self.blameless_open)

    @property
    def open_actions(self) -> list[CorrectiveAction]:
        return [a for a in self.actions if a.state is ActionState.OPEN]

    @property
    def overdue_actions(self) -> list[CorrectiveAction]:
        return [a for a in self.open_actions if a.overdue]

    def action(self, action_id: str) -> CorrectiveAction | None:
        return next((a for a in self.actions if a.id == action_id), None)

    def document(self) -> PostmortemDocument:
        """The record alone, for an activity or a renderer."""
        return PostmortemDocument(**{name: getattr(self, name) for name in _DOCUMENT_FIELDS})


_DOCUMENT_FIELDS = tuple(PostmortemDocument.model_fields)
