"""When a corrective action's follow-up speaks: reminders before its deadline, escalations
after it, and the next moment its workflow wakes. Pure: the workflow passes the clock in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from domain.models import CorrectiveAction
from domain.policy import FollowUpPolicy


def next_escalation(action: CorrectiveAction, policy: FollowUpPolicy) -> datetime:
    """The first escalation comes a grace period after the deadline, then one per repeat."""
    return action.due + policy.escalation_grace + action.escalation_level * policy.escalation_repeat


def next_wake(action: CorrectiveAction, policy: FollowUpPolicy, last_poll: datetime) -> datetime:
    """The earliest of: the next status poll, the next reminder, the deadline (while not
    overdue) or the next escalation (once overdue)."""
    candidates = [last_poll + policy.status_poll_interval]
    if action.reminders_sent < len(policy.reminder_offsets):
        candidates.append(action.due - policy.reminder_offsets[action.reminders_sent])
    if not action.overdue:
        candidates.append(action.due)
    else:
        candidates.append(next_escalation(action, policy))
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
