"""When an action's follow-up reminds, escalates and wakes: pure rules, no workflow needed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.followup_timing import (
    next_escalation,
    next_review_notice,
    next_wake,
    reminders_due,
    reminders_passed,
)
from domain.models import ActionType, CorrectiveAction
from domain.notices import ago
from domain.policy import FollowUpPolicy

DUE = datetime(2027, 3, 10, 17, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
POLICY = FollowUpPolicy(
    reminder_offsets=[7 * DAY, DAY],
    escalation_grace=2 * DAY,
    escalation_repeat=7 * DAY,
    status_poll_interval=6 * HOUR,
)


def action(**fields: object) -> CorrectiveAction:
    values: dict[str, object] = {
        "id": "canary",
        "title": "Canary config",
        "type": ActionType.REPAIR,
        "owner": "kim@example.com",
        "team": "payments",
        "due": DUE,
    }
    values.update(fields)
    return CorrectiveAction.model_validate(values)


def test_escalations_come_a_grace_after_the_deadline_then_every_repeat():
    assert next_escalation(action(overdue=True), POLICY) == DUE + 2 * DAY
    assert next_escalation(action(overdue=True, escalation_level=1), POLICY) == DUE + 9 * DAY
    assert next_escalation(action(overdue=True, escalation_level=3), POLICY) == DUE + 23 * DAY


def test_the_next_wake_is_the_first_reminder_when_it_comes_before_a_poll():
    last_poll = DUE - 7 * DAY - 2 * HOUR
    assert next_wake(action(), POLICY, last_poll) == DUE - 7 * DAY


def test_the_next_wake_is_the_poll_when_it_comes_first():
    last_poll = DUE - 7 * DAY - 7 * HOUR
    assert next_wake(action(), POLICY, last_poll) == DUE - 7 * DAY - HOUR


def test_the_next_wake_takes_the_reminder_not_yet_sent():
    last_poll = DUE - DAY - 2 * HOUR
    assert next_wake(action(reminders_sent=1), POLICY, last_poll) == DUE - DAY


def test_with_every_reminder_sent_the_deadline_is_next():
    last_poll = DUE - 2 * HOUR
    assert next_wake(action(reminders_sent=2), POLICY, last_poll) == DUE


def test_once_overdue_the_escalation_is_next_not_the_passed_deadline():
    late = action(reminders_sent=2, overdue=True, escalation_level=1)
    assert next_wake(late, POLICY, DUE + 9 * DAY - 7 * HOUR) == DUE + 9 * DAY - HOUR  # a poll
    assert next_wake(late, POLICY, DUE + 9 * DAY - 2 * HOUR) == DUE + 9 * DAY


def test_without_reminders_the_wake_is_the_deadline_or_the_poll():
    quiet = FollowUpPolicy(reminder_offsets=[], status_poll_interval=6 * HOUR)
    assert next_wake(action(), quiet, DUE - 3 * HOUR) == DUE
    assert next_wake(action(), quiet, DUE - 30 * HOUR) == DUE - 24 * HOUR


@pytest.mark.parametrize(
    ("sent", "now", "expected"),
    [
        (0, DUE - 7 * DAY - HOUR, 0),  # nothing due yet
        (0, DUE - 7 * DAY, 1),  # the first reminder's moment itself
        (1, DUE - 2 * DAY, 1),  # between the two: the first was sent
        (1, DUE - DAY, 2),
        (0, DUE - 12 * HOUR, 2),  # both passed while nobody looked: one reminder, not two
        (0, DUE + DAY, 2),
        (2, DUE + DAY, 2),
        (2, DUE - 2 * DAY, 2),  # what counts as sent stays counted
    ],
)
def test_reminders_due(sent: int, now: datetime, expected: int):
    assert reminders_due(action(reminders_sent=sent), POLICY, now) == expected


def test_after_a_deadline_moves_only_passed_reminders_count_as_sent():
    offsets = POLICY.reminder_offsets
    assert reminders_passed(DUE, offsets, DUE - 8 * DAY) == 0
    assert reminders_passed(DUE, offsets, DUE - 7 * DAY) == 1
    assert reminders_passed(DUE, offsets, DUE - 2 * DAY) == 1
    assert reminders_passed(DUE, offsets, DUE - DAY) == 2
    assert reminders_passed(DUE, [], DUE) == 0


# -- notices from now (the notices-from-now patch) ---------------------------------------------


def test_from_now_the_first_escalation_is_a_grace_after_the_deadline():
    assert next_escalation(action(overdue=True), POLICY, from_now=True) == DUE + 2 * DAY


def test_from_now_the_next_escalation_is_a_repeat_after_the_last_one_sent():
    # Backfilled: the first notice went out 300 days after the deadline; the next is a week
    # after that, not the 40 intervals already missed.
    late = DUE + 300 * DAY
    sent = action(overdue=True, escalation_level=1, last_escalation_at=late)
    assert next_escalation(sent, POLICY, from_now=True) == late + 7 * DAY
    assert next_escalation(sent, POLICY) == DUE + 9 * DAY  # the old rule: a burst


def test_from_now_a_deadline_moved_into_the_past_waits_for_the_interval():
    last = DUE + 3 * DAY  # escalated, then the date was moved back (level reset to 0)
    moved = action(due=DUE - 30 * DAY, overdue=True, escalation_level=0, last_escalation_at=last)
    assert next_escalation(moved, POLICY, from_now=True) == last + 7 * DAY


def test_from_now_the_follow_up_wakes_for_the_next_escalation_not_a_missed_one():
    late = DUE + 300 * DAY
    sent = action(overdue=True, reminders_sent=2, escalation_level=1, last_escalation_at=late)
    poll = late + 7 * DAY  # the next poll comes 6 h after the escalation is due
    assert next_wake(sent, POLICY, poll, from_now=True) == late + 7 * DAY
    assert next_wake(sent, POLICY, poll) == DUE + 9 * DAY  # the old rule: at once


def test_a_late_reviews_notices_come_at_the_close_then_a_repeat_after_the_last():
    close, week = DUE, 7 * DAY
    assert next_review_notice(close, week, None) == close
    assert next_review_notice(close, week, close + 400 * DAY) == close + 407 * DAY
    assert next_review_notice(close, week, close + week) == close + 2 * week
    assert next_review_notice(close, week, close - 30 * DAY) == close  # moved: not before it


def test_a_notice_says_how_late_from_a_day_on():
    assert ago(DUE, None) == "" and ago(DUE, DUE + 23 * HOUR) == ""
    assert ago(DUE, DUE + DAY) == " (1 day ago)"
    assert ago(DUE, DUE + 57 * DAY + HOUR) == " (57 days ago)"


@settings(max_examples=300, deadline=None)
@given(
    due_offset=st.integers(min_value=-600, max_value=60),  # days from the first wake
    wakes=st.lists(st.integers(min_value=1, max_value=60 * 24), min_size=1, max_size=60),
)
def test_escalations_never_burst_whatever_the_wakes(due_offset: int, wakes: list[int]):
    """The follow-up wakes at arbitrary moments (hours apart: polls, or weeks: an outage):
    never two escalations within a repeat, none before the grace, and at most 1 + span/repeat
    over any span."""
    start = datetime(2027, 1, 1, tzinfo=UTC)
    current = action(due=start + due_offset * DAY, overdue=True)
    moment, sent = start, []
    for gap in wakes:
        moment += gap * HOUR
        if moment >= next_escalation(current, POLICY, from_now=True):
            sent.append(moment)
            current = current.model_copy(
                update={
                    "escalation_level": current.escalation_level + 1,
                    "last_escalation_at": moment,
                }
            )
    assert all(b - a >= POLICY.escalation_repeat for a, b in itertools.pairwise(sent))
    assert all(s >= current.due + POLICY.escalation_grace for s in sent)
    span = moment - start
    assert len(sent) <= 1 + span / POLICY.escalation_repeat
