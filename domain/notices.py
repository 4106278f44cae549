"""The words the engine writes on tickets: framed around the system, never around a person."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from domain import limits, verification
from domain.document import redact
from domain.invitation import review_links
from domain.models import (
    BlamelessNote,
    CorrectiveAction,
    Incident,
    PostmortemState,
    ReviewSlot,
    Verification,
)
from domain.verification import ANSWER_DAYS


def when(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%a %Y-%m-%d %H:%M} UTC"


def tracking_ticket(state: PostmortemState) -> tuple[str, str]:
    incident = state.incident
    title = f"Post-mortem: {incident.title} ({incident.severity}, {incident.id})"
    body = "\n".join(
        [
            f"Blameless post-mortem for incident {incident.id} ({incident.source}), "
            f"resolved {when(incident.resolved_at)}.",
            "",
            f"Owner: {state.owner or 'unassigned'}",
            f"Team: {incident.team}",
            f"Workflow: {state.workflow_id}",
            "",
            "The review asks what about the system allowed this to happen: process, tooling, "
            "ownership, safeguards, detection and documentation. It does not ask who.",
            *(["", *related_lines(state)] if state.related else []),
        ]
    )
    return title, body


def related_lines(state: PostmortemState, only: list[str] | None = None) -> list[str]:
    """The related post-mortems as ticket lines: the summary, then each with its reason and
    its actions still open or dropped."""
    lines = [f"Related: {state.related_summary}"] if state.related_summary and only is None else []
    for r in state.related:
        if only is not None and r.workflow_id not in only:
            continue
        when_ = f"{r.resolved_at:%Y-%m-%d}"
        lines.append(f"- {r.incident_id} ({when_}) {r.title} [{r.workflow_id}]")
        lines += [f"  why: {reason}" for reason in r.reasons]
        for a in r.actions:
            ticket = f" {a.ticket.key}" if a.ticket else ""
            lines.append(f"  {a.state.value}: {a.title} ({a.owner}, due {when(a.due)}){ticket}")
    return lines


def related_found(state: PostmortemState, new: list[str]) -> str:
    """Said on the tracking ticket when the findings relate it to post-mortems it did not
    name at the start."""
    return "\n".join(
        ["The findings resemble earlier post-mortems:", *related_lines(state, only=new)]
    )


def action_ticket(
    incident: Incident, action: CorrectiveAction, postmortem_id: str
) -> tuple[str, str]:
    title = f"[{action.type}] {action.title}"
    body = "\n".join(
        [
            action.description or action.title,
            "",
            f"Corrective action ({action.type}, {action.priority}) from the post-mortem of "
            f"incident {incident.id}: {incident.title}.",
            f"Owner: {action.owner} · Team: {action.team} · Due: {when(action.due)}",
            f"Post-mortem: {postmortem_id}",
            *(
                [
                    f"{action.verify_after_days} days after it is done, its owner will be "
                    f"asked whether it worked: {verification.question(action)}"
                ]
                if action.verify_after_days
                else []
            ),
        ]
    )
    return title, body


def _review_links(state: PostmortemState) -> str:
    if not state.public_url:
        return ""
    links = review_links(state.public_url, state.workflow_id)
    return f" Draft: {links['draft']} · Calendar invitation: {links['ics']}"


def review_scheduled(state: PostmortemState) -> str:
    slot = state.review
    assert slot is not None
    text = (
        f"Review scheduled for {when(slot.start)} ({slot.timezone}); the window closes "
        f"{when(slot.window_end)}. Owner: {state.owner or 'unassigned'}."
    )
    if slot.facilitator:
        text += f" Facilitator: {slot.facilitator}."
    if slot.participants:
        text += f" Participants: {', '.join(slot.participants)}."
    if slot.outside_window:
        text += f" Note: {slot.reason}."
    return text + _review_links(state)


def review_rescheduled(state: PostmortemState, reason: str) -> str:
    slot = state.review
    assert slot is not None
    text = f"Review moved to {when(slot.start)} ({slot.timezone})."
    if reason:
        text += f" Reason: {reason}"
    return text + _review_links(state)


def review_reminder(state: PostmortemState) -> str:
    slot = state.review
    assert slot is not None
    return (
        f"Reminder: the post-mortem review is at {when(slot.start)}. Please read the draft "
        "timeline beforehand and note what you knew at each decision point." + _review_links(state)
    )


def ago(then: datetime, now: datetime | None) -> str:
    """How late, for a notice: `(57 days ago)` when `now` is a day or more after `then`."""
    if now is None or now - then < timedelta(days=1):
        return ""
    days = (now - then).days
    return f" ({days} day{'s' if days != 1 else ''} ago)"


def review_late(slot: ReviewSlot, manager: str, count: int, now: datetime | None = None) -> str:
    return (
        f"@{manager}: the review window closed {when(slot.window_end)}{ago(slot.window_end, now)}"
        f" and no findings have been recorded yet (notice {count}). The team may need time or "
        "help to hold the review."
    )


def action_reminder(action: CorrectiveAction) -> str:
    return (
        f"@{action.owner}: reminder, this corrective action is due {when(action.due)}. "
        "If the due date no longer fits, move it with a reason so the plan stays honest."
    )


def action_escalation(
    action: CorrectiveAction, manager: str, level: int, now: datetime | None = None
) -> str:
    return (
        f"@{manager} @{action.owner}: this corrective action passed its due date "
        f"{when(action.due)}{ago(action.due, now)} (notice {level}). What is in the way: time, "
        "priority or ownership? Move the date with a reason, or drop the action with one."
    )


def publication_unchecked(workflow_id: str, problem: str) -> str:
    return (
        f"Publication waits for the blameless check, which could not run ({problem}). "
        f"Once that is fixed: postmortem retry {workflow_id}"
    )


def publication_held(workflow_id: str, notes: list[BlamelessNote]) -> str:
    lines = [
        f"Publication waits for the blameless check: {len(notes)} sentence(s) to reword or "
        "acknowledge with a note. Reword them in the findings "
        f"(postmortem review {workflow_id} --revise --findings FILE) or acknowledge "
        f"(postmortem review {workflow_id} --ack ID --note WHY).",
    ]
    lines += [
        f'- {n.id} ({n.field}): "{n.sentence}": {n.reason} Try: {n.suggestion}' for n in notes
    ]
    # The sentences quote the post-mortem, private timeline entries included: what looks
    # like a secret is masked before it goes to the tracker, as in published documents.
    return redact("\n".join(lines))[0]


def published(locations: list[str]) -> str:
    return f"The post-mortem is published: {' · '.join(locations)}"


def closed(state: PostmortemState) -> str:
    done = sum(1 for a in state.actions if a.state == "done")
    dropped = sum(1 for a in state.actions if a.state == "dropped")
    text = f"Post-mortem closed: {done} corrective action(s) done, {dropped} dropped with a reason."
    answers = Counter(a.verification for a in state.actions if a.verification)
    if answers:
        said = ", ".join(
            f"{answers[v]} {v}"
            for v in (Verification.VERIFIED, Verification.INEFFECTIVE, Verification.UNANSWERED)
            if answers[v]
        )
        text += f" Did they work: {said}."
    return text


def verification_question(workflow_id: str, action: CorrectiveAction) -> str:
    """On the action's ticket, when its owner is asked whether it worked."""
    done = when(action.completed_at) if action.completed_at else "earlier"
    return (
        f"@{action.owner}: this corrective action was done {done}. Did it work? "
        f"{verification.question(action)} Answer with `postmortem action verify {workflow_id} "
        f'{action.id} --worked` or `--did-not-work --note "what showed it"`, or on the '
        "post-mortem's page. An action that did not work opens a follow-up to revisit it; "
        "that is the method working, not a failure of the team."
    )


def verification_email(
    workflow_id: str, incident: str, actions: list[CorrectiveAction], base_url: str
) -> tuple[str, str]:
    """The subject and text of the email asking an owner whether their actions worked."""
    count = len(actions)
    subject = limits.clip(
        f"Did it work? {count} corrective action(s) of {incident}"
        if count > 1
        else f"Did it work? {' '.join(actions[0].title.split())} ({incident})",
        200,
    )
    lines = [
        f"Some time ago these corrective actions from the post-mortem of {incident} were done.",
        "Whether they worked is what tells the organisation it learned something: please "
        "answer for each.",
        "",
    ]
    for a in actions:
        lines += [f"- {a.id}: {a.title}", f"  {verification.question(a)}"]
        if a.ticket:
            lines.append(f"  Ticket: {a.ticket.key} {a.ticket.url}".rstrip())
    lines += [
        "",
        f"Answer on the post-mortem's page: {base_url.rstrip('/')}/postmortems/{workflow_id}",
        f"or: postmortem action verify {workflow_id} <action> --worked",
        f"    postmortem action verify {workflow_id} <action> --did-not-work --note ...",
        "",
        f"Unanswered after {ANSWER_DAYS} days, an action is recorded as unanswered.",
    ]
    return subject, "\n".join(lines)


def verification_unanswered(actions: list[CorrectiveAction]) -> str:
    listed = "; ".join(f"{a.id} ({a.title})" for a in actions[:20])
    more = f" and {len(actions) - 20} more" if len(actions) > 20 else ""
    return (
        f"Nobody said within {ANSWER_DAYS} days whether these corrective actions worked: "
        f"{listed}{more}. They are recorded as unanswered; an answer can no longer be given "
        "once the post-mortem closes."
    )


def verification_answered(action: CorrectiveAction, follow_up: str | None) -> str:
    if action.verification is Verification.VERIFIED:
        text = "Verified: this corrective action worked."
    else:
        text = "This corrective action did not work."
        if follow_up:
            text += f" A follow-up action ({follow_up}) revisits it."
    return text + (f" Note: {action.verification_note}" if action.verification_note else "")


def cancelled(reason: str) -> str:
    return f"Post-mortem cancelled: {reason}"
