"""Activities of the review: the blameless check on its text, and its invitation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain import limits, notices
from domain.blameless import Lexicon, check_postmortem
from domain.invitation import Method, invitation_message, is_address, review_event
from domain.models import BlamelessNote, CorrectiveAction, PostmortemDocument
from integrations.email import Attachment, Mailer


class BlamelessCheckInput(BaseModel):
    state: PostmortemDocument


class BlamelessReport(BaseModel):
    notes: list[BlamelessNote]
    # False with PM_BLAMELESS_MODE=warn: findings are shown, publication does not wait.
    enforced: bool


class BlamelessActivities:
    """In an activity, not the workflow: the word list is data read from a file, and the mode
    is the worker's setting; both may change between runs without touching history."""

    def __init__(
        self,
        lexicon: Callable[[], Lexicon],
        *,
        enforced: bool,
        teams: Callable[[], list[str]] = list,
    ) -> None:
        self._lexicon = lexicon
        self._enforced = enforced
        self._teams = teams  # the routing file's team names: agents a sentence may blame

    @activity.defn(name="blameless.check")
    @maps_integration_errors
    def check(self, request: BlamelessCheckInput) -> BlamelessReport:
        findings = check_postmortem(request.state, self._lexicon(), self._teams())
        notes = {f.id: f for f in findings}  # one per sentence and rule
        activity.logger.info("blameless check", extra={"findings": len(notes)})
        # At most limits.BLAMELESS_NOTES, the first in the text: a report of any size fits a
        # payload, and publication waits for these all the same.
        kept = list(notes.values())[: limits.BLAMELESS_NOTES]
        return BlamelessReport(notes=kept, enforced=self._enforced)


InvitationKind = Literal["request", "cancel", "reminder"]


class InvitationInput(BaseModel):
    state: PostmortemDocument
    kind: InvitationKind
    now: datetime


class Delivery(BaseModel):
    sent: bool
    recipients: list[str] = []
    reason: str = ""  # why nothing was sent


class VerificationAsk(BaseModel):
    """One owner's actions whose time came to ask whether they worked (not the whole
    document: one of these per owner goes into the history)."""

    workflow_id: str
    incident: str  # its id, as the subject names it
    owner: str
    actions: list[CorrectiveAction]


class InvitationActivities:
    """The review's invitation (iCalendar REQUEST), its cancellation (CANCEL, same UID) and
    the reminder the day before, by email to the participants who have an address; and,
    long after, the question whether an action worked, to its owner when an address."""

    def __init__(self, mailer: Mailer | None, *, base_url: str) -> None:
        self._mailer = mailer
        self._base_url = base_url

    @activity.defn(name="review.send_invitation")
    @maps_integration_errors
    def send_invitation(self, request: InvitationInput) -> Delivery:
        state, slot = request.state, request.state.review
        assert slot is not None
        if self._mailer is None:
            return Delivery(sent=False, reason="email is off (PM_SMTP_HOST is not set)")
        recipients = [p for p in slot.participants if is_address(p)]
        if not recipients:
            return Delivery(sent=False, reason="no participant has an email address")
        method: Method = "CANCEL" if request.kind == "cancel" else "REQUEST"
        ics = review_event(
            state,
            method=method,
            organizer=self._mailer.sender,
            base_url=self._base_url,
            stamp=request.now,
        )
        subject, text = invitation_message(state, request.kind, self._base_url)
        self._mailer.send(
            recipients,
            subject,
            text,
            attachments=(
                Attachment("review.ics", f"text/calendar; method={method}; charset=utf-8", ics),
            ),
            message_id=(f"<{state.workflow_id}.{request.kind}.{slot.sequence}@postmortem-engine>"),
        )
        activity.logger.info(
            "review invitation sent", extra={"kind": request.kind, "recipients": len(recipients)}
        )
        return Delivery(sent=True, recipients=recipients)

    @activity.defn(name="review.ask_verification")
    @maps_integration_errors
    def ask_verification(self, request: VerificationAsk) -> Delivery:
        if self._mailer is None:
            return Delivery(sent=False, reason="email is off (PM_SMTP_HOST is not set)")
        if not is_address(request.owner):
            return Delivery(sent=False, reason=f"{request.owner!r} has no email address")
        subject, text = notices.verification_email(
            request.workflow_id, request.incident, request.actions, self._base_url
        )
        first = request.actions[0].id
        at = request.actions[0].verification_asked_at
        asked = f"{at:%Y%m%dT%H%M%S}" if at else "0"  # asked again after a reopening: anew
        self._mailer.send(
            [request.owner],
            subject,
            text,
            # Stable per post-mortem, owner's first action and asking: a retry is known.
            message_id=f"<{request.workflow_id}.verify.{first}.{asked}@postmortem-engine>",
        )
        activity.logger.info("verification asked", extra={"actions": len(request.actions)})
        return Delivery(sent=True, recipients=[request.owner])
