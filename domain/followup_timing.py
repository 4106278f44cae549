"""When a corrective action's follow-up speaks: reminders before its deadline, escalations
after it, and the next moment its workflow wakes. Pure: the workflow passes the clock in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from domain.models import CorrectiveAction
from domain.policy import FollowUpPolicy


def next_escalation(
    action: CorrectiveAction, policy: FollowUpPolicy, *, from_now: bool = False
) -> datetime:
    """The first escalation comes a grace period after the deadline, then one per repeat.

    `from_now` (the rule since the notices-from-now patch): the next one comes a repeat after
    the last one *sent*, never sooner, so a deadline long past (a backfilled incident, a
    worker back from an outage, a date moved into the past) gives one notice now, not one per
    missed interval."""
    first = action.due + policy.escalation_grace
    if from_now:
        if action.last_escalation_at is None:
            return first
        return max(first, action.last_escalation_at + policy.escalation_repeat)
    return first + action.escalation_level * policy.escalation_repeat


def next_review_notice(
    window_end: datetime, repeat: timedelta, last_sent: datetime | None
) -> datetime:
    """When a late review's next notice to the manager is due: at the window's close, then
    a repeat after the last one sent (never a burst for the intervals already missed)."""
    if last_sent is None:
        return window_end
    return max(window_end, last_sent + repeat)


def next_wake(
    action: CorrectiveAction,
    policy: FollowUpPolicy,
    last_poll: datetime,
    *,
    from_now: bool = False,
) -> datetime:
    """The earliest of: the next status poll, the next reminder, the deadline (while not
    overdue) or the next escalation (once overdue)."""
    candidates = [last_poll + policy.status_poll_interval]
    if action.reminders_sent < len(policy.reminder_offsets):
        candidates.append(action.due - policy.reminder_offsets[action.reminders_sent])
    if not action.overdue:
        candidates.append(action.due)
    else:
        candidates.append(next_escalation(action, policy, from_now=from_now))
    return min(candidates)


def reminders_due(action: CorrectiveAction, policy: FollowUpPolicy, now: datetime) -> int:
    """How many reminders count as sent at `now`: every one whose moment has passed. Several
    passed at once (a worker that was down) give one reminder, not a burst."""
    offsets = policy.reminder_offsets
    due = [i for i in range(action.reminders_sent, len(offsets)) if now >= action.due - offsets[i]]
    return due[-1] + 1 if due else action.reminders_sent


def reminders_passed(due: datetime, offsets: Sequence[timedelta], now: datetime) -> int:
    """After a deadline moves: reminders whose moment already passed for the new date are
    not sent late."""
    return sum(1 for offset in offsets if due - offset <= now)
