"""Did a corrective action work? A done action carries a verification: `verify_after_days`
after it was done, its owner is asked the action's question (on its ticket and by email);
the answer (`postmortem action verify`, the page, the API) makes it `verified` or
`ineffective`, and an ineffective one opens a follow-up action to revisit it. Nobody
answering within ANSWER_DAYS leaves it `unanswered`. The post-mortem closes once every
done action's verification is answered or left unanswered.

Each action is asked once and noted unanswered once: two notices at most per action,
whatever the clock does (a worker back from an outage asks the late ones in one go)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from domain import limits
from domain.models import (
    ActionSpec,
    ActionState,
    ActionType,
    CorrectiveAction,
    Verification,
)

# How long after it is done an action of each type is asked about, and what. Investigating
# is not a fix to verify: its findings become actions of their own.
DEFAULT_DAYS: dict[ActionType, int] = {
    ActionType.INVESTIGATE: 0,
    ActionType.MITIGATE: 30,
    ActionType.REPAIR: 30,
    ActionType.DETECT: 60,
    ActionType.PREVENT: 90,
    ActionType.PROCESS: 60,
}
DEFAULT_QUESTION: dict[ActionType, str] = {
    ActionType.INVESTIGATE: "Did the investigation answer its question?",
    ActionType.MITIGATE: (
        "When the problem came back or was exercised, did this limit its impact as intended?"
    ),
    ActionType.REPAIR: "Has the repaired part held since, without the failure coming back?",
    ActionType.DETECT: (
        "Has the new detection fired on a real problem or a drill, early enough to act on?"
    ),
    ActionType.PREVENT: (
        "Has this class of failure stayed away, and would this change have stopped the "
        "original incident?"
    ),
    ActionType.PROCESS: "Is the changed process followed in practice, and has it helped?",
}
# Asked, nobody answered this long: left unanswered, and the post-mortem closes.
ANSWER_DAYS = 30
# An ineffective action's follow-up is due this many days after the answer.
REVISIT_DAYS = 14
REVISIT_PREFIX = "Revisit: "
# The fields the post-mortem keeps for an action whatever its follow-up reports.
KEPT_BY_POSTMORTEM = ("verification", "verification_note", "verification_asked_at", "verified_at")


def verify_days(spec: ActionSpec) -> int:
    return DEFAULT_DAYS[spec.type] if spec.verify_after_days is None else spec.verify_after_days


def own_question(spec: ActionSpec) -> str:
    """The spec's own question, one line, clipped by bytes; "" for its type's default (kept
    out of the state: only a person's question takes room, counted as their input)."""
    own = " ".join((spec.verify_question or "").split())
    return limits.clip_bytes(own, limits.VERIFY_QUESTION) if own else ""


def question(action: CorrectiveAction) -> str:
    return action.verify_question or DEFAULT_QUESTION[action.type]


def ask_at(action: CorrectiveAction) -> datetime | None:
    """When its owner is asked, for a done action not yet asked nor answered."""
    if (
        action.state is not ActionState.DONE
        or action.verify_after_days <= 0
        or action.verification is not Verification.NONE
        or action.completed_at is None
    ):
        return None
    return action.completed_at + timedelta(days=action.verify_after_days)


def expires_at(action: CorrectiveAction) -> datetime | None:
    """When an asked question is left unanswered."""
    if action.verification is not Verification.ASKED or action.verification_asked_at is None:
        return None
    return action.verification_asked_at + timedelta(days=ANSWER_DAYS)


def waiting(action: CorrectiveAction) -> bool:
    """A done action whose verification is still to come or to be answered."""
    return ask_at(action) is not None or expires_at(action) is not None


def next_moment(actions: Iterable[CorrectiveAction]) -> datetime | None:
    moments = [m for a in actions for m in (ask_at(a), expires_at(a)) if m is not None]
    return min(moments, default=None)


def due_to_ask(actions: Iterable[CorrectiveAction], now: datetime) -> list[CorrectiveAction]:
    return [a for a in actions if (at := ask_at(a)) is not None and at <= now]


def due_to_expire(actions: Iterable[CorrectiveAction], now: datetime) -> list[CorrectiveAction]:
    return [a for a in actions if (at := expires_at(a)) is not None and at <= now]


def revisit(action: CorrectiveAction, note: str, now: datetime) -> ActionSpec:
    """The follow-up an ineffective action opens: the same owner and team look again, as an
    investigation (which is not itself asked whether it worked: no loop)."""
    title = limits.clip(REVISIT_PREFIX + action.title, limits.NAME)
    description = limits.clip_bytes(
        f"Action {action.id} was done but did not work. What showed it: {note}",
        limits.NOTE,
    )
    return ActionSpec(
        title=title,
        description=description,
        type=ActionType.INVESTIGATE,
        priority=action.priority,
        owner=action.owner,
        team=action.team,
        due=(now + timedelta(days=REVISIT_DAYS)).date(),
    )


def describe(action: CorrectiveAction) -> str:
    """One short phrase for a listing ("" when there is nothing to say)."""
    v = action.verification
    if v is Verification.VERIFIED:
        return "verified: it worked"
    if v is Verification.INEFFECTIVE:
        return "ineffective: it did not work"
    if v is Verification.UNANSWERED:
        return "whether it worked: unanswered"
    if v is Verification.ASKED:
        return f"asked whether it worked: {question(action)}"
    at = ask_at(action)
    return f"to be asked whether it worked on {at.date().isoformat()}" if at else ""
