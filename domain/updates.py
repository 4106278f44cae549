"""What a post-mortem accepts: the update validators, as pure functions of its state, the
request and the time. A ValueError refuses the update with its reason, and a refused update
leaves no trace in the workflow's history. The workflow calls these; tests call them too."""

from __future__ import annotations

from datetime import datetime

from domain import limits, verification
from domain.findings import check_actions, check_findings
from domain.messages import (
    AcknowledgeInput,
    ActionStateChange,
    CompleteReviewInput,
    MoveDeadlineInput,
    RescheduleReviewInput,
    RetryFilingInput,
    ReviseFindingsInput,
    RouteInput,
    VerifyActionInput,
)
from domain.models import (
    ActionSpec,
    ActionState,
    CorrectiveAction,
    Findings,
    Phase,
    PostmortemState,
    ProblemKind,
    TimelineEntry,
)


class AlreadyRecorded(ValueError):
    """The same entry again (a redelivered webhook): refused, and the sender told so."""


def timeline_entry(s: PostmortemState, entry: TimelineEntry) -> None:
    not_finished(s)
    _refuse(limits.entry_problems(entry))
    problem = limits.timeline_problem(s.timeline, [entry])
    if problem:
        raise ValueError(problem)
    within_record(s, entry)
    # A redelivered webhook (a replay, a retry with a new delivery id) adds nothing.
    # "Resolved again" at the incident's own resolution is that resolution, redelivered.
    same_resolution = entry.event == "resolved_again" and entry.at == s.incident.resolved_at
    if same_resolution or any(
        (e.at, e.text, e.source) == (entry.at, entry.text, entry.source) for e in s.timeline
    ):
        raise AlreadyRecorded(
            f"already on the timeline: {entry.text[:80]!r} at {entry.at.isoformat()}"
        )


def schedule(s: PostmortemState, request: RescheduleReviewInput, now: datetime) -> None:
    _refuse(limits.too_long("reason", request.reason, limits.REASON))
    if not s.phase.awaits_review or s.review is None:
        raise ValueError(f"the review can only be rescheduled before findings; phase is {s.phase}")
    if request.at <= now:
        raise ValueError(f"the review time {request.at.isoformat()} is in the past")
    if request.at > s.review.window_end and not request.reason.strip():
        raise ValueError(
            f"{request.at.isoformat()} is after the review window closes "
            f"({s.review.window_end.isoformat()}); give a reason to schedule it anyway"
        )
    within_record(s, request.reason, replaced=s.review.reason)


def review(s: PostmortemState, request: CompleteReviewInput, now: datetime) -> None:
    if not s.phase.awaits_review or s.findings is not None:
        raise ValueError(
            f"findings are accepted while the review is scheduled or in progress; "
            f"this post-mortem is {s.phase}"
        )
    _findings_hold(s, request.findings, now)
    within_actions(s, len(request.findings.actions))
    within_record(s, as_stored(request.findings), len(request.findings.actions))


def revision(s: PostmortemState, request: ReviseFindingsInput, now: datetime) -> None:
    not_finished(s)
    if s.findings is None:
        raise ValueError("there are no findings to revise yet; record the review first")
    if request.findings.actions:
        raise ValueError(
            "a revision rewords the findings; add actions with 'action add', "
            "move or drop the existing ones"
        )
    _findings_hold(s, request.findings, now)
    within_record(s, as_stored(request.findings), replaced=s.findings)


def republish(s: PostmortemState) -> None:
    not_finished(s)
    if s.phase is not Phase.FOLLOWING_UP:
        waiting = (
            "the blameless check's findings to be reworded or acknowledged"
            if s.publication_held
            else "the review's findings"
        )
        raise ValueError(f"this post-mortem is {s.phase}; publication waits for {waiting}")


def acknowledgement(s: PostmortemState, ack: AcknowledgeInput) -> None:
    not_finished(s)
    _refuse(
        limits.too_long("note", ack.note, limits.ACK_NOTE)
        + limits.too_many("finding_ids", ack.finding_ids, limits.BLAMELESS_NOTES)
    )
    notes = {n.id: n for n in s.blameless}
    unknown = [i for i in ack.finding_ids if i not in notes]
    if unknown:
        known = ", ".join(n.id for n in s.blameless_open) or "none open"
        raise ValueError(
            f"no blameless finding {', '.join(unknown)} on this post-mortem (open: {known})"
        )
    done = [i for i in ack.finding_ids if notes[i].acknowledged]
    if done:
        raise ValueError(f"already acknowledged: {', '.join(done)}")
    within_record(s, [ack.note] * len(ack.finding_ids))


def add_action(s: PostmortemState, spec: ActionSpec, now: datetime) -> None:
    not_finished(s)
    if s.findings is None:
        raise ValueError("actions come with the review's findings; add them after the review")
    problems = check_actions([spec], now=now, existing_action_ids=[a.id for a in s.actions])
    if problems:
        raise ValueError("; ".join(problems))
    within_actions(s, 1)
    within_record(s, spec, 1)


def action_state(s: PostmortemState, change: ActionStateChange) -> None:
    not_finished(s)
    _refuse(limits.too_long("reason", change.reason, limits.REASON))
    action = known_action(s, change.action_id)
    if change.state is ActionState.OPEN:
        raise ValueError("reopening an action is done in its tracker")
    if action.state is change.state:
        raise ValueError(f"action {action.id} is already {action.state}")
    if action.state.is_terminal:
        raise ValueError(f"action {action.id} is {action.state}; it cannot become {change.state}")
    if change.state is ActionState.DROPPED and not change.reason.strip():
        raise ValueError("dropping an action needs a reason, so the record stays honest")
    within_record(s, change.reason)


def verify_action(s: PostmortemState, answer: VerifyActionInput, now: datetime) -> None:
    """Whether a done action worked: once, by a done action's owner or an operator; a
    "did not work" says what showed it, and opens a follow-up (which must fit)."""
    not_finished(s)
    _refuse(limits.too_long("note", answer.note, limits.REASON))
    action = known_action(s, answer.action_id)
    if action.state is not ActionState.DONE:
        raise ValueError(
            f"action {action.id} is {action.state}: only a done action can be verified"
        )
    if action.verification.answered:
        when = action.verified_at.date().isoformat() if action.verified_at else "earlier"
        raise ValueError(f"action {action.id} was already answered {action.verification} ({when})")
    if not answer.worked:
        if not answer.note.strip():
            raise ValueError(
                "an action that did not work needs a note: what showed it (a repeat, a drill, "
                "a metric), so its follow-up starts from it"
            )
        follow_up = verification.revisit(action, answer.note, now)
        add_action(s, follow_up, now)
        within_record(s, [answer.note, follow_up], 1)
    else:
        within_record(s, answer.note)


def move_deadline(s: PostmortemState, move: MoveDeadlineInput, now: datetime) -> None:
    not_finished(s)
    _refuse(limits.too_long("reason", move.reason, limits.REASON))
    action = known_action(s, move.action_id)
    if action.state.is_terminal:
        raise ValueError(f"action {action.id} is {action.state}; its deadline no longer runs")
    if move.due <= now:
        raise ValueError(f"the new due date {move.due.isoformat()} is in the past")


def retry_filing(s: PostmortemState, request: RetryFilingInput) -> None:
    not_finished(s)
    action = known_action(s, request.action_id)
    follow_up_failed = action.ticket is not None and any(
        p.kind is ProblemKind.FOLLOW_UP and p.action_id == action.id for p in s.problems
    )
    if action.filing_error is None and not follow_up_failed:
        state = f"filed as {action.ticket.key}" if action.ticket else "waiting to be filed"
        raise ValueError(f"action {action.id} has no refused ticket to retry ({state})")


def route(s: PostmortemState, request: RouteInput) -> None:
    not_finished(s)
    if request.team == s.incident.team and not s.incident.unrouted:
        raise ValueError(f"this post-mortem is already with team {request.team}")


def begin(s: PostmortemState, *, begun: bool) -> None:
    if s.phase is not Phase.OPTIONAL or begun:
        raise ValueError(f"only an optional post-mortem can be begun; this one is {s.phase}")


def retry(s: PostmortemState) -> None:
    not_finished(s)
    if not s.blameless_unchecked and not any(p.kind is ProblemKind.STEP_FAILED for p in s.problems):
        raise ValueError(
            "no step of this post-mortem is waiting for a retry (a refused action's "
            "ticket is retried with 'action retry')"
        )


def cancel(s: PostmortemState, reason: str, *, cancelling: bool) -> None:
    not_finished(s)
    _refuse(limits.too_long("reason", reason, limits.REASON))
    if cancelling:
        raise ValueError("this post-mortem is already being cancelled")


# -- the shared checks ------------------------------------------------------------------


def _findings_hold(s: PostmortemState, findings: Findings, now: datetime) -> None:
    """The method's rules on findings, and room on the timeline for their corrections."""
    problems = check_findings(findings, now=now)
    if problems:
        raise ValueError("; ".join(problems))
    problem = limits.timeline_problem(s.timeline, as_stored(findings).timeline_corrections)
    if problem:
        raise ValueError(f"timeline_corrections: {problem}")


def as_stored(findings: Findings) -> Findings:
    """The findings as the workflow keeps them: each timeline correction marked as the
    review's (its `source`), so the checks count what is stored, not what was sent."""
    return findings.model_copy(
        update={
            "timeline_corrections": [
                e.model_copy(update={"source": "review"}) for e in findings.timeline_corrections
            ]
        }
    )


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


def not_finished(s: PostmortemState) -> None:
    if s.phase.is_terminal:
        raise ValueError(f"this post-mortem is {s.phase}")


def known_action(s: PostmortemState, action_id: str) -> CorrectiveAction:
    action = s.action(action_id)
    if action is None:
        known = ", ".join(a.id for a in s.actions) or "none"
        raise ValueError(f"no action {action_id!r} on this post-mortem (actions: {known})")
    return action


def within_record(
    s: PostmortemState, added: object, new_actions: int = 0, replaced: object = None
) -> None:
    """Input that would take the record past limits.RECORD_BYTES is refused, whole."""
    problem = limits.record_problem(
        record_bytes(s) - (limits.json_bytes(replaced) if replaced is not None else 0),
        limits.json_bytes(added),
        new_actions,
    )
    if problem:
        raise ValueError(problem)


def record_bytes(s: PostmortemState) -> int:
    """What people's input takes of the record now, counted as the limit counts it: each
    action at the most it can grow to (limits.action_bytes), the acknowledgements' notes,
    and the rest of the state as it is. The engine's own additions (problems, phase changes,
    blameless findings, publication) have their room beside it (limits.engine_extras)."""
    own = s.model_copy(
        update={
            "problems": [],
            "phase_history": [],
            "blameless": [],
            "actions": [],
            "tracking_ticket": None,
            "published_url": None,
            "published_locations": [],
            "publication_note": "",
        }
    )
    notes = [n.note for n in s.blameless if n.acknowledged]
    return (
        limits.json_bytes(own)
        + sum(limits.action_bytes(a) + 1 for a in s.actions)
        + (limits.json_bytes(notes) if notes else 0)
    )


def within_actions(s: PostmortemState, new_actions: int) -> None:
    total = len(s.actions) + new_actions
    if total > limits.ACTIONS:
        raise ValueError(
            f"a post-mortem holds at most {limits.ACTIONS} corrective actions; this would "
            f"make {total}"
        )
