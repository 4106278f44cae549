"""ActionFollowUpWorkflow: one per corrective action, from filing to done, with its deadline."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

from workflows.patches import DASHBOARD_ATTRIBUTES, NOTICES_FROM_NOW, VERIFY_TRACKER_HINTS
from workflows.timing import wait_until

with workflow.unsafe.imports_passed_through():
    from activities.errors import NEVER_RETRIED, TICKET_NOT_FOUND
    from activities.tracker import CommentInput, TicketStatusInput, TrackerActivities
    from domain import followup_timing, notices
    from domain.messages import (
        ActionFollowUpInput,
        ActionProgress,
        ChildDeadlineMove,
        ChildStateChange,
        TrackerStatusSignal,
    )
    from domain.models import ActionState, CorrectiveAction
    from integrations.tracker import TicketStatus

    # Constants and helpers only: shared, not re-imported for every workflow instance.
    from workflows import search_attributes as sa

# Name of the post-mortem's signal: by name, since the parent module imports this one.
ACTION_PROGRESS_SIGNAL = "action_progress"

HINT_GAP = timedelta(seconds=10)

# Also how long a call lost with a crashed worker waits before its retry: keep it tight.
TRACKER_TIMEOUT = timedelta(seconds=30)
# Reads and comments: a few tries, then give up until the next event (never stall follow-up).
TRACKER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
    non_retryable_error_types=[*NEVER_RETRIED, TICKET_NOT_FOUND],
)


@workflow.defn
class ActionFollowUpWorkflow:
    @workflow.init
    def __init__(self, inp: ActionFollowUpInput) -> None:
        self._inp = inp
        self._action: CorrectiveAction = inp.action.model_copy(deep=True)
        self._last_poll: datetime = inp.last_poll_at or workflow.now()
        self._woken = False
        self._notes: list[str] = []
        self._reported: CorrectiveAction | None = None
        self._visibility = sa.current_values()
        self._memo: dict[str, Any] = {}
        self._dashboard: bool | None = None  # the patch, asked once per run
        self._opened_at = inp.opened_at or workflow.info().start_time
        self._hinted = False  # a tracker webhook said the ticket changed: read it
        self._from_now: bool | None = None  # the notices-from-now patch, asked once per run

    @workflow.run
    async def run(self, inp: ActionFollowUpInput) -> CorrectiveAction:
        self._from_now = workflow.patched(NOTICES_FROM_NOW)
        self._sync_visibility()
        turns = 0
        try:
            while self._action.state is ActionState.OPEN:
                if not self._notes:  # a note queued during an await goes out now
                    await self._sleep_until(self._next_event())
                await self._post_notes()
                if self._action.state is ActionState.OPEN:
                    await self._on_time()
                await self._post_notes()
                await self._report()
                turns += 1
                if self._action.state is ActionState.OPEN and (
                    turns >= inp.continue_after or workflow.info().is_continue_as_new_suggested()
                ):
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        inp.model_copy(
                            update={
                                "action": self._action,
                                "last_poll_at": self._last_poll,
                                "opened_at": self._opened_at,
                            }
                        )
                    )
            await self._post_notes()
        except asyncio.CancelledError:
            # The post-mortem was cancelled: stop following up without a word to the ticket.
            self._action.state = ActionState.DROPPED
            self._action.state_reason = "post-mortem cancelled"
            self._sync_visibility()
            raise
        await self._report()
        return self._action

    @workflow.query
    def status(self) -> CorrectiveAction:
        return self._action

    @workflow.signal
    def set_state(self, change: ChildStateChange) -> None:
        """From the post-mortem: a person marked the action done or dropped it."""
        if change.state is ActionState.OPEN or self._action.state.is_terminal:
            return
        self._finish(change.state, change.reason, change.at)
        note = f": {change.reason}" if change.reason else ""
        self._notes.append(f"Marked {change.state} in the post-mortem engine{note}")

    @workflow.signal
    def move_deadline(self, move: ChildDeadlineMove) -> None:
        action = self._action
        if action.state.is_terminal:
            return
        now = workflow.now()
        action.due = move.due
        action.overdue = now >= move.due
        action.escalation_level = 0
        action.reminders_sent = followup_timing.reminders_passed(
            move.due, self._inp.policy.reminder_offsets, now
        )
        self._notes.append(f"Due date moved to {notices.when(move.due)}. Reason: {move.reason}")
        self._sync_visibility()
        self._woken = True

    @workflow.signal
    def tracker_status(self, status: TrackerStatusSignal) -> None:
        """From a tracker webhook: a hint that the ticket changed. The follow-up reads the
        ticket and acts on what the tracker says, never on the webhook's word alone (a forged
        or stale delivery closes nothing)."""
        if workflow.patched(VERIFY_TRACKER_HINTS):
            self._hinted = True
        else:
            self._apply_tracker(status.done, status.resolution)
        self._woken = True

    # -- the loop ---------------------------------------------------------------------

    def _next_event(self) -> datetime:
        moment = followup_timing.next_wake(
            self._action, self._inp.policy, self._last_poll, from_now=bool(self._from_now)
        )
        return min(moment, self._last_poll + HINT_GAP) if self._hinted else moment

    async def _sleep_until(self, moment: datetime) -> None:
        self._woken = False
        await wait_until(moment, lambda: self._woken)

    async def _on_time(self) -> None:
        action, policy = self._action, self._inp.policy
        now = workflow.now()
        at_deadline = not action.overdue and now >= action.due
        # A burst of webhooks costs one read every HINT_GAP at most.
        hinted = self._hinted and now >= self._last_poll + HINT_GAP
        if hinted or at_deadline or now >= self._last_poll + policy.status_poll_interval:
            self._hinted = False
            await self._poll()
            if action.state.is_terminal:
                return
        reminders_sent = followup_timing.reminders_due(action, policy, now)
        if reminders_sent > action.reminders_sent:
            action.reminders_sent = reminders_sent
            if now < action.due:  # a late reminder is what escalation is for
                action.last_reminder_at = now
                await self._comment(notices.action_reminder(action))
        if action.state.is_terminal:  # a person closed it while we were commenting
            return
        if not action.overdue and now >= action.due:
            action.overdue = True
            workflow.logger.info("corrective action overdue", extra={"action": action.id})
        if action.overdue and now >= followup_timing.next_escalation(
            action, policy, from_now=bool(self._from_now)
        ):
            action.escalation_level += 1
            action.last_escalation_at = now
            await self._comment(
                notices.action_escalation(
                    action,
                    self._inp.manager,
                    action.escalation_level,
                    now if self._from_now else None,  # the first says how late
                )
            )
        self._sync_visibility()

    async def _poll(self) -> None:
        action = self._action
        self._last_poll = workflow.now()
        if action.ticket is None:
            return
        try:
            status: TicketStatus = await workflow.execute_activity_method(
                TrackerActivities.ticket_status,
                TicketStatusInput(team=action.team, ref=action.ticket),
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning(
                "ticket status unavailable", extra={"action": action.id, "error": _cause(err)}
            )
            return
        self._apply_tracker(status.done, status.resolution)

    def _apply_tracker(self, done: bool, resolution: str) -> None:
        if not done or self._action.state.is_terminal:
            return
        if resolution == "not_planned":
            self._finish(
                ActionState.DROPPED, "closed in the tracker as not planned", workflow.now()
            )
        else:
            self._finish(ActionState.DONE, "closed in the tracker", workflow.now())

    def _finish(self, state: ActionState, reason: str, at: datetime) -> None:
        action = self._action
        workflow.metric_meter().create_counter(
            "postmortem_actions_closed", "Corrective actions done or dropped"
        ).add(1, {"team": action.team, "type": action.type.value, "state": state.value})
        action.state = state
        action.state_reason = reason
        action.completed_at = at
        action.overdue = False
        self._sync_visibility()
        self._woken = True

    async def _comment(self, text: str) -> None:
        action = self._action
        if action.ticket is None:
            return
        try:
            await workflow.execute_activity_method(
                TrackerActivities.comment,
                CommentInput(team=action.team, ref=action.ticket, text=text),
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as err:
            # A lost reminder is not worth stopping the follow-up for; the next one comes.
            workflow.logger.warning(
                "comment not posted", extra={"action": action.id, "error": _cause(err)}
            )

    async def _post_notes(self) -> None:
        while self._notes:
            await self._comment(self._notes.pop(0))

    async def _report(self) -> None:
        if self._reported == self._action:
            return
        snapshot = self._action.model_copy(deep=True)
        handle = workflow.get_external_workflow_handle(self._inp.postmortem_id)
        try:
            await handle.signal(ACTION_PROGRESS_SIGNAL, ActionProgress(action=snapshot))
        except FailureError as err:
            # The post-mortem is gone (closed or terminated): nothing left to tell.
            workflow.logger.warning("post-mortem not reachable", extra={"error": str(err)})
        self._reported = snapshot

    def _sync_visibility(self) -> None:
        action = self._action
        is_open = action.state is ActionState.OPEN
        values: dict[str, object] = {
            sa.TEAM.name: action.team,
            sa.SEVERITY.name: self._inp.severity.value,
            sa.INCIDENT_ID.name: self._inp.incident_id,
            sa.OPEN_ACTIONS.name: int(is_open),
            sa.OVERDUE_ACTIONS.name: int(is_open and action.overdue),
            sa.NEXT_ACTION_DUE.name: action.due if is_open else None,
        }
        if self._dashboard is None:
            self._dashboard = workflow.patched(DASHBOARD_ATTRIBUTES)
        if self._dashboard:
            values |= {
                # The due date stays after the action ends: completion by due date counts it.
                sa.NEXT_ACTION_DUE.name: action.due,
                sa.ACTION_OPENED_AT.name: self._opened_at,
                sa.ACTION_TYPE.name: action.type.value,
                sa.ACTION_STATE.name: action.state.value,
                sa.ESCALATION_LEVEL.name: action.escalation_level,
            }
            memo: dict[str, Any] = {
                "last_reminder_at": (
                    action.last_reminder_at.isoformat() if action.last_reminder_at else None
                ),
                "last_escalation_at": (
                    action.last_escalation_at.isoformat() if action.last_escalation_at else None
                ),
                "due": action.due.isoformat(),
            }
            if memo != self._memo:
                self._memo = memo
                workflow.upsert_memo(memo)
        sa.upsert_changed(self._visibility, values)


def _cause(err: ActivityError) -> str:
    return str(err.cause) if err.cause else str(err)
