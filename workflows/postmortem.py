"""PostmortemWorkflow: one per incident, walking the blameless method from draft to closed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.errors import INVALID_INPUT, NEVER_RETRIED
    from activities.incidents import ImportTimelineInput, IncidentSourceActivities
    from activities.publishing import Publication, PublishingActivities, PublishInput
    from activities.record import ProjectInput, RecordActivities, RelatedFound, RelatedInput
    from activities.review import (
        BlamelessActivities,
        BlamelessCheckInput,
        BlamelessReport,
        Delivery,
        InvitationActivities,
        InvitationInput,
        InvitationKind,
        VerificationAsk,
    )
    from activities.routing import (
        PlanReviewInput,
        PostmortemContext,
        PrepareActionsInput,
        ResolveContextInput,
        RoutingActivities,
    )
    from activities.tracker import CommentInput, TicketStatusInput, TrackerActivities
    from domain import followup_timing, limits, notices, updates, verification
    from domain.invitation import is_address
    from domain.messages import (
        ALREADY_RECORDED,
        AcknowledgeInput,
        ActionFollowUpInput,
        ActionProgress,
        ActionReopened,
        ActionStateChange,
        BeginInput,
        CancelInput,
        ChildDeadlineMove,
        ChildStateChange,
        CompleteReviewInput,
        MoveDeadlineInput,
        PostmortemInput,
        RescheduleReviewInput,
        RetryFilingInput,
        ReviewAccepted,
        ReviseFindingsInput,
        RouteInput,
        VerifyActionInput,
    )
    from domain.models import (
        ActionSpec,
        ActionState,
        BlamelessNote,
        CorrectiveAction,
        Phase,
        PhaseChange,
        PostmortemState,
        Problem,
        ProblemKind,
        ReviewOutcome,
        ReviewSlot,
        TicketRef,
        TimelineEntry,
        Verification,
        action_workflow_id,
    )
    from integrations.tracker import TicketRequest
    from workflows import search_attributes as sa

import contextlib

from workflows.action import TRACKER_RETRY, TRACKER_TIMEOUT, ActionFollowUpWorkflow
from workflows.patches import (
    ACTION_VERIFICATION,
    ANSWERS_BEFORE_CONTINUE,
    BLAMELESS_CHECK,
    BLAMELESS_FAILS_CLOSED,
    BOUNDED_STATE,
    DASHBOARD_ATTRIBUTES,
    NO_REMINDER_BEHIND_INVITATION,
    NOTICES_FROM_NOW,
    OPTIONAL_POSTMORTEMS,
    RECORD_PROJECTION,
    RELATED_POSTMORTEMS,
    REVIEW_INVITATION,
    VERIFY_REOPEN,
)
from workflows.timing import wait_until

T = TypeVar("T")

QUICK_TIMEOUT = timedelta(seconds=10)  # routing reads: local and fast
# The record: retried until the database answers (it is never given up on), and written at
# most once per gap (a burst of changes is one write).
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
RECORD_GAP = timedelta(seconds=5)
QUICK_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=NEVER_RETRIED,
)
# Filing must eventually happen: retry a tracker outage for as long as it lasts.
FILING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=NEVER_RETRIED,
)

# An optional post-mortem waits this long for an operator to begin it; then it ends as
# cancelled, saying so.
OPTIONAL_KEEP_DAYS = 30
INVITATION_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=12,  # about 40 minutes; then a problem on status, the review goes on
    non_retryable_error_types=NEVER_RETRIED,
)
# The related lookup is advice: a few tries, then the post-mortem goes on without it (its
# next one, at the findings, tries again).
RELATED_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=3)
PUBLISH_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=NEVER_RETRIED,
)


@workflow.defn
class PostmortemWorkflow:
    @workflow.init
    def __init__(self, inp: PostmortemInput) -> None:
        if inp.resume is not None:
            self._s = inp.resume
        else:
            self._s = PostmortemState(
                workflow_id=workflow.info().workflow_id,
                incident=inp.incident,
                owner=inp.owner,
                timeline=sorted(inp.timeline, key=lambda e: e.at),
            )
        self._continue_after_events = inp.continue_after_events
        self._lock = asyncio.Lock()
        self._woken = False
        self._cancel_reason: str | None = None
        self._reopened: list[str] = []  # actions reopened in their tracker after they ended
        self._republish = False  # the findings changed after publication
        self._invitation_due = False  # rescheduled: send the updated invitation
        self._visibility = sa.current_values()
        self._dashboard: bool | None = None  # the dashboard-attributes patch, asked once
        self._optional = inp.optional and inp.resume is None
        self._begin: BeginInput | None = None  # an operator began an optional post-mortem
        self._from_now: bool | None = None  # the notices-from-now patch, asked once
        self._reopen_claims: list[ActionReopened] = []  # webhook hints, to read before acting
        self._bounded: bool | None = None  # the bounded-state patch, asked once
        self._retry_asked = False  # an operator asked a failed step to run again
        self._changes = 1  # changes seen; the record has those up to _projected
        self._projected = 0
        self._projector: asyncio.Task[None] | None = None
        self._closing = False  # the run ends: the projector writes what is left, then stops
        self._related_news: list[str] = []  # related found with the findings: said on the ticket
        # Whether this run asks if done actions worked: known once it follows up (a run that
        # began following up before that release never asks).
        self._verifying: bool | None = None
        self._answers: list[tuple[str, str | None]] = []  # verified actions (and follow-ups): said

    @workflow.run
    async def run(self, inp: PostmortemInput) -> PostmortemState:
        s = self._s
        self._bounded_state()  # asked first: every later step of this run agrees
        if workflow.patched(RECORD_PROJECTION):
            self._projector = asyncio.create_task(self._project_changes())
        if not s.phase_history:
            optional = self._optional and workflow.patched(OPTIONAL_POSTMORTEMS)
            self._set_phase(Phase.OPTIONAL if optional else Phase.DRAFTING)
        self._sync_visibility()
        steps: dict[Phase, Callable[[], Awaitable[None]]] = {
            Phase.OPTIONAL: self._await_begin,
            Phase.DRAFTING: self._draft,
            Phase.REVIEW_SCHEDULED: self._await_review,
            Phase.IN_REVIEW: self._await_review,
            Phase.ACTIONS_FILED: self._file_actions,
            Phase.PUBLISHED: self._publish,
            Phase.FOLLOWING_UP: self._follow_up,
        }
        while not s.phase.is_terminal:
            if self._cancel_reason is not None:
                await self._cancel(self._cancel_reason)
                break
            await steps[s.phase]()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_record()
        return s

    # -- phases -----------------------------------------------------------------------

    async def _await_begin(self) -> None:
        """Optional: nothing happens until an operator begins it, or it is cancelled; after
        OPTIONAL_KEEP_DAYS untouched it ends, cancelled, with the reason."""
        try:
            await workflow.wait_condition(
                lambda: self._begin is not None or self._cancel_reason is not None,
                timeout=timedelta(days=OPTIONAL_KEEP_DAYS),
            )
        except TimeoutError:
            self._cancel_reason = f"optional post-mortem not begun within {OPTIONAL_KEEP_DAYS} days"
            return
        if self._begin is not None:
            why = f": {self._begin.reason}" if self._begin.reason.strip() else ""
            self._set_phase(Phase.DRAFTING, f"begun by an operator{why}")

    async def _draft(self) -> None:
        s = self._s
        context: PostmortemContext | None = await self._step(
            "drafting stopped: the team's routing could not be read",
            lambda: workflow.execute_activity_method(
                RoutingActivities.resolve_context,
                ResolveContextInput(
                    team=s.incident.team, severity=s.incident.severity, owner=s.owner
                ),
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            ),
        )
        if context is None:  # cancelled while it waited for a fix
            return
        s.team, s.policy, s.follow_up, s.owner = (
            context.team,
            context.policy,
            context.follow_up,
            context.owner,
        )
        s.public_url = context.public_url
        if s.incident.source not in ("manual", "generic"):
            await self._import_timeline()
        if workflow.patched(RELATED_POSTMORTEMS):
            await self._find_related()
        title, body = notices.tracking_ticket(s)
        s.tracking_ticket, error = await self._file_ticket(
            TicketRequest(
                idempotency_key=f"{s.workflow_id}/postmortem",
                team=s.incident.team,
                title=title,
                body=body,
                assignee=s.owner,
                labels=["postmortem", s.incident.id],
            )
        )
        if s.tracking_ticket is not None and self._bounded_state():
            s.tracking_ticket, kept_error = _kept_ref(s.tracking_ticket)
            error = error or kept_error
        if error:
            self._problem(ProblemKind.TRACKING_TICKET, f"tracking ticket not filed: {error}")
        review = await self._step(
            "drafting stopped: the review could not be planned",
            lambda: self._plan_review(context.policy.review_within_business_days),
        )
        if review is None:
            return
        s.review = review
        self._reminder_covered_by_invitation()
        await self._comment_tracking(notices.review_scheduled(s))
        self._set_phase(Phase.REVIEW_SCHEDULED)
        if workflow.patched(REVIEW_INVITATION):
            await self._send_invitation("request")

    async def _plan_review(
        self, window_business_days: int, team: str | None = None, owner: str | None = None
    ) -> ReviewSlot:
        """The first slot in the owning team's calendar (its facilitator, its participants);
        `team` and `owner` when they are about to change (routing)."""
        s = self._s
        return await workflow.execute_activity_method(
            RoutingActivities.plan_review,
            PlanReviewInput(
                team=team or s.incident.team,
                resolved_at=s.incident.resolved_at,
                now=workflow.now(),
                window_business_days=window_business_days,
                workflow_id=s.workflow_id,
                responders=s.incident.responders,
                owner=owner if team else s.owner,
            ),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )

    async def _import_timeline(self) -> None:
        """The source's own log (who did what, when), merged into the timeline once."""
        s = self._s
        try:
            entries: list[TimelineEntry] = await workflow.execute_activity_method(
                IncidentSourceActivities.import_timeline,
                ImportTimelineInput(
                    source=s.incident.source,
                    incident_id=s.incident.external_id or s.incident.id,
                ),
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as err:
            self._problem(
                ProblemKind.TIMELINE_IMPORT,
                f"timeline not imported from {s.incident.source}: {err.cause}",
            )
            return
        seen = {(e.at, e.text) for e in s.timeline}
        fresh = [e for e in entries if (e.at, e.text) not in seen]
        kept, left_out = limits.fitting_entries(s, fresh)
        s.timeline = sorted([*s.timeline, *kept], key=lambda e: e.at)
        if left_out:
            self._problem(
                ProblemKind.TIMELINE_IMPORT,
                f"{left_out} of {len(fresh)} entries of the {s.incident.source} log left out: "
                f"the timeline holds {limits.TIMELINE_ENTRIES} entries and "
                f"{limits.TIMELINE_BYTES / 1e3:.0f} kB; the full log stays in "
                f"{s.incident.source}",
            )

    async def _await_review(self) -> None:
        s = self._s
        assert s.review is not None and s.follow_up is not None
        while s.findings is None and self._cancel_reason is None:
            review, now = s.review, workflow.now()
            reminder_at = review.start - s.follow_up.review_reminder_before
            late_at = self._review_late_at()
            moments = [late_at]
            if s.phase is Phase.REVIEW_SCHEDULED:
                moments.append(review.start)
                if not s.review_reminder_sent:
                    moments.append(max(reminder_at, now))
            await self._sleep_until(min(moments))
            if s.findings is not None or self._cancel_reason is not None:
                break
            if self._invitation_due:  # only set under REVIEW_INVITATION
                self._invitation_due = False
                await self._send_invitation("request")
            now, review = workflow.now(), s.review
            if workflow.patched(NO_REMINDER_BEHIND_INVITATION):
                # Rescheduled while asleep: the reminder belongs to the new time.
                reminder_at = review.start - s.follow_up.review_reminder_before
            if (
                s.phase is Phase.REVIEW_SCHEDULED
                and not s.review_reminder_sent
                and reminder_at <= now < review.start
            ):
                s.review_reminder_sent = True
                await self._comment_tracking(notices.review_reminder(s))
                if workflow.patched(REVIEW_INVITATION):
                    await self._send_invitation("reminder")
            if s.phase is Phase.REVIEW_SCHEDULED and now >= review.start:
                self._set_phase(Phase.IN_REVIEW)
            if now >= self._review_late_at():
                s.review_escalations += 1
                s.review_escalated_at = now if self._from_now else None
                assert s.team is not None
                await self._comment_tracking(
                    notices.review_late(
                        review,
                        s.team.manager,
                        s.review_escalations,
                        now if self._from_now else None,  # the first says how late
                    )
                )
        if s.findings is not None:
            self._set_phase(Phase.ACTIONS_FILED)

    def _review_late_at(self) -> datetime:
        s = self._s
        assert s.review is not None and s.follow_up is not None
        repeat = s.follow_up.escalation_repeat
        if self._from_now is None:
            self._from_now = workflow.patched(NOTICES_FROM_NOW)
        if self._from_now:
            return followup_timing.next_review_notice(
                s.review.window_end, repeat, s.review_escalated_at
            )
        return s.review.window_end + s.review_escalations * repeat

    async def _file_actions(self) -> None:
        if self._related_news:
            news, self._related_news = self._related_news, []
            await self._comment_tracking(notices.related_found(self._s, news))
        await self._file_pending_actions()
        self._set_phase(Phase.PUBLISHED)

    async def _publish(self) -> None:
        if workflow.patched(BLAMELESS_CHECK):
            await self._hold_for_blameless_check()
            if self._cancel_reason is not None:
                return
        self._republish = False
        await self._publish_document()
        self._set_phase(Phase.FOLLOWING_UP)

    async def _hold_for_blameless_check(self) -> None:
        """Publication waits until each finding is reworded away or acknowledged with a note;
        actions are filed and followed up meanwhile."""
        s = self._s
        if workflow.patched(BLAMELESS_FAILS_CLOSED):
            await self._await_blameless_check()
        while s.blameless_holds and self._cancel_reason is None:
            if not s.publication_held:
                s.publication_held = True
                await self._comment_tracking(
                    notices.publication_held(s.workflow_id, s.blameless_open)
                )
            self._woken = False
            await self._file_pending_actions()
            await workflow.wait_condition(lambda: self._woken)
        s.publication_held = False

    async def _await_blameless_check(self) -> None:
        """A check that could not run holds publication until it runs: `postmortem retry`
        runs it again (after the word list or the worker is fixed), and so does a revision."""
        s = self._s
        while s.blameless_unchecked and self._cancel_reason is None:
            if not s.publication_held:
                s.publication_held = True
                problem = next(
                    (p.message for p in s.problems if p.kind is ProblemKind.BLAMELESS_CHECK),
                    "no reason recorded",
                )
                await self._comment_tracking(notices.publication_unchecked(s.workflow_id, problem))
            self._woken = self._retry_asked = False
            await self._file_pending_actions()
            await workflow.wait_condition(lambda: self._woken)
            if self._retry_asked and s.blameless_unchecked:
                async with self._lock:
                    await self._check_blameless()

    async def _follow_up(self) -> None:
        s = self._s
        verifying = self._verifying = workflow.patched(ACTION_VERIFICATION)
        while self._cancel_reason is None:
            # Reset before any await: a wake-up (cancel, signal) during filing is not lost.
            self._woken = False
            await self._file_pending_actions()
            if self._republish:
                self._republish = False
                await self._publish_document()
            if verifying:
                await self._verify_due()
            if all(a.state.is_terminal for a in s.actions) and not (
                verifying and any(verification.waiting(a) for a in s.actions)
            ):
                break
            if self._history_is_long():
                await self._continue_as_new()
            moment = verification.next_moment(s.actions) if verifying else None
            if moment is None:
                await workflow.wait_condition(lambda: self._woken)
            else:
                await wait_until(moment, lambda: self._woken)
        # An answer given while the last questions were out is said before the close.
        if self._answers and workflow.patched(ANSWERS_BEFORE_CONTINUE):
            await self._say_answers()
        if self._cancel_reason is None:
            self._set_phase(Phase.CLOSED, notices.closed(s))
            await self._publish_document()
            await self._comment_tracking(notices.closed(s))

    async def _verify_due(self) -> None:
        """Did they work? Asks the owners of done actions whose time came (a comment on each
        ticket, one email per owner, all at once), notes those left unanswered, and says the
        answers. An action nobody could be asked about is a problem on status."""
        s, now = self._s, workflow.now()
        asking = verification.due_to_ask(s.actions, now)
        expired = verification.due_to_expire(s.actions, now)
        for a in asking:  # marked before any await: each is asked once
            a.verification, a.verification_asked_at = Verification.ASKED, now
        for a in expired:
            a.verification, a.verified_at = Verification.UNANSWERED, now
            self._clear(ProblemKind.VERIFICATION, a.id)
        if asking or expired:
            self._changes += 1
            s.updated_at = now
        owners: dict[str, list[CorrectiveAction]] = {}
        for a in asking:
            if is_address(a.owner):
                owners.setdefault(a.owner, []).append(a.model_copy())
        answers, self._answers = self._answers, []
        question, answered = notices.verification_question, notices.verification_answered
        sends: list[tuple[list[str], Callable[[], Awaitable[bool]]]] = [
            *(
                ([a.id], partial(self._comment_on, a.team, a.ticket, question(s.workflow_id, a)))
                for a in asking
            ),
            *(
                ([a.id for a in theirs], partial(self._email_question, o, theirs))
                for o, theirs in owners.items()
            ),
            *(
                ([], partial(self._comment_on, told.team, told.ticket, answered(told, made)))
                for action_id, made in answers
                if (told := s.action(action_id)) is not None
            ),
        ]
        reached: set[str] = set()
        for first in range(0, len(sends), limits.FILING_BATCH):  # at once, in batches
            batch = sends[first : first + limits.FILING_BATCH]
            delivered = await asyncio.gather(*(send() for _ids, send in batch))
            reached.update(
                i for (ids, _send), ok in zip(batch, delivered, strict=True) if ok for i in ids
            )
        for a in asking:  # unless answered meanwhile
            if a.id not in reached and a.verification is Verification.ASKED:
                self._problem(
                    ProblemKind.VERIFICATION,
                    f"{a.owner} was not asked whether action {a.id} worked (no ticket comment or "
                    "email went out): answer with `postmortem action verify`",
                    a.id,
                )
        if expired:
            await self._comment_tracking(notices.verification_unanswered(expired))

    async def _say_answers(self) -> None:
        """The answers given since they were last said, each on its action's ticket."""
        s = self._s
        answers, self._answers = self._answers, []
        sends = [
            partial(
                self._comment_on, told.team, told.ticket, notices.verification_answered(told, made)
            )
            for action_id, made in answers
            if (told := s.action(action_id)) is not None
        ]
        for first in range(0, len(sends), limits.FILING_BATCH):
            await asyncio.gather(*(send() for send in sends[first : first + limits.FILING_BATCH]))

    async def _email_question(self, owner: str, actions: list[CorrectiveAction]) -> bool:
        s = self._s
        try:
            delivery: Delivery = await workflow.execute_activity_method(
                InvitationActivities.ask_verification,
                VerificationAsk(
                    workflow_id=s.workflow_id, incident=s.incident.id, owner=owner, actions=actions
                ),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=INVITATION_RETRY,
            )
        except ActivityError as err:  # the ticket's comment asked too
            workflow.logger.warning("verification not emailed: %s", err.cause)
            return False
        return delivery.sent

    async def _continue_as_new(self) -> None:
        """A fresh history, unless a cancel came in meanwhile: it is carried out first (the
        next run would not know of it)."""
        s = self._s
        if self._cancel_reason is not None:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._cancel_reason is not None:
            return
        await self._flush_record()
        # Answers not yet said on their tickets live in this run's memory only: said first.
        # An update that began during the flush or a say ends first too (its answer would be
        # lost with the run, its sender told the run had ended).
        while (self._answers or not workflow.all_handlers_finished()) and workflow.patched(
            ANSWERS_BEFORE_CONTINUE
        ):
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._cancel_reason is not None:
                return
            if self._answers:
                await self._say_answers()
        incident = s.incident
        if self._bounded_state():  # the next run reads the incident from the state
            incident = incident.carried()
        workflow.continue_as_new(
            PostmortemInput(
                incident=incident,
                resume=s,
                continue_after_events=self._continue_after_events,
            ),
            memo={"title": s.incident.title, "resolved_at": s.incident.resolved_at.isoformat()},
            search_attributes=workflow.info().typed_search_attributes,
        )

    async def _step(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """A step whose failure no retry fixes (a bug, a configuration error) is shown as a
        problem and waits for `postmortem retry` after the fix; None when cancelled."""
        while True:
            try:
                return await call()
            except ActivityError as err:
                if not self._bounded_state():
                    raise
                cause = err.cause
                self._problem(
                    ProblemKind.STEP_FAILED, f"{what}: {getattr(cause, 'message', cause)}"
                )
                self._retry_asked = False
                await workflow.wait_condition(
                    lambda: self._retry_asked or self._cancel_reason is not None
                )
                self._clear(ProblemKind.STEP_FAILED)
                if self._cancel_reason is not None:
                    return None

    def _history_is_long(self) -> bool:
        info = workflow.info()
        budget = self._continue_after_events
        return info.is_continue_as_new_suggested() or (
            budget is not None and info.get_current_history_length() >= budget
        )

    async def _cancel(self, reason: str) -> None:
        s = self._s
        s.cancel_reason = reason
        for action in s.open_actions:
            if action.ticket is not None:
                child = workflow.get_external_workflow_handle(
                    action_workflow_id(s.workflow_id, action.id)
                )
                with contextlib.suppress(FailureError):  # its follow-up already ended
                    await child.cancel()
            action.state, action.state_reason = ActionState.DROPPED, "post-mortem cancelled"
        self._set_phase(Phase.CANCELLED, reason)
        await self._comment_tracking(notices.cancelled(reason))
        if s.invitation_sent and s.findings is None and workflow.patched(REVIEW_INVITATION):
            await self._send_invitation("cancel")  # calendars drop the event

    # -- work shared by the phases --------------------------------------------------------

    async def _confirm_reopenings(self) -> None:
        """Each webhook's "reopened" is checked against the tracker: a ticket the tracker says
        is still closed reopens nothing (a stale or forged delivery). When the tracker cannot
        be read, the action reopens anyway: its new follow-up reads the ticket at once and
        closes it again if need be, while a real reopening is never lost."""
        claims, self._reopen_claims = self._reopen_claims, []
        for claim in claims:
            action = self._s.action(claim.action_id)
            if action is None or action.ticket is None or not action.state.is_terminal:
                continue
            try:
                status = await workflow.execute_activity_method(
                    TrackerActivities.ticket_status,
                    TicketStatusInput(team=action.team, ref=action.ticket),
                    start_to_close_timeout=TRACKER_TIMEOUT,
                    retry_policy=TRACKER_RETRY,
                )
            except ActivityError:
                workflow.logger.warning("ticket unreadable; reopening", extra={"action": action.id})
            else:
                if status.done:
                    workflow.logger.info("reopening not confirmed", extra={"action": action.id})
                    continue
            if action.state.is_terminal:  # unchanged while the tracker was read
                self._reopen(action, claim.reason)

    async def _file_pending_actions(self) -> None:
        if self._reopen_claims:
            await self._confirm_reopenings()
        pending = [
            a
            for a in self._s.actions
            if a.ticket is None and a.filing_error is None and a.state is ActionState.OPEN
        ]
        if len(pending) <= limits.FILING_BATCH or not self._bounded_state():
            await asyncio.gather(*(self._file_action(a) for a in pending))
        else:
            await self._file_in_batches(pending)
        reopened, self._reopened = self._reopened, []
        for action_id in reopened:
            action = self._s.action(action_id)
            if action is not None and action.state is ActionState.OPEN:
                await self._start_follow_up(action)  # a new run of the same follow-up id
        self._sync_visibility()

    async def _file_in_batches(self, pending: list[CorrectiveAction]) -> None:
        """Within Temporal's limits on pending work: limits.FILING_BATCH tickets and follow-ups
        at a time, and a fresh history between batches when this one grows long (the next
        run files what is left: an action without a ticket is still pending)."""
        for start in range(0, len(pending), limits.FILING_BATCH):
            if self._cancel_reason is not None:
                return
            batch = pending[start : start + limits.FILING_BATCH]
            await asyncio.gather(*(self._file_action(a) for a in batch))
            self._sync_visibility()
            left = start + limits.FILING_BATCH < len(pending)
            quiet = not (self._reopened or self._reopen_claims or self._republish)
            quiet = quiet and self._cancel_reason is None
            if left and quiet and self._history_is_long():
                await self._continue_as_new()

    async def _file_action(self, action: CorrectiveAction) -> None:
        s = self._s
        title, body = notices.action_ticket(s.incident, action, s.workflow_id)
        ref, error = await self._file_ticket(
            TicketRequest(
                idempotency_key=f"{s.workflow_id}/{action.id}",
                team=action.team,
                title=title,
                body=body,
                assignee=action.owner,
                labels=["postmortem", s.incident.id, f"action-{action.type}"],
                due=action.due,
                priority=action.priority,
                # Linked to the tracking ticket when both live in the same team's tracker.
                related_key=(
                    s.tracking_ticket.key
                    if s.tracking_ticket is not None and action.team == s.incident.team
                    else None
                ),
            )
        )
        if ref is not None and self._bounded_state():
            ref, error = _kept_ref(ref)
        if ref is None:
            action.filing_error = limits.clip_bytes(error or "refused", limits.FILING_ERROR)
            self._problem(
                ProblemKind.FILING,
                f"action {action.id} ({action.team}): ticket not filed: {error}",
                action.id,
            )
            return
        action.ticket = ref
        await self._start_follow_up(action)

    async def _start_follow_up(self, action: CorrectiveAction) -> None:
        s = self._s
        ref = action.ticket
        assert s.team is not None and s.follow_up is not None and ref is not None
        child_id = action_workflow_id(s.workflow_id, action.id)
        try:
            await workflow.start_child_workflow(
                ActionFollowUpWorkflow.run,
                ActionFollowUpInput(
                    postmortem_id=s.workflow_id,
                    incident_id=s.incident.id,
                    severity=s.incident.severity,
                    manager=s.team.manager,
                    action=action,
                    policy=s.follow_up,
                    opened_at=workflow.now(),
                ),
                id=child_id,
                # Children outlive a continue-as-new of this workflow; cancel stops them.
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                memo={
                    "postmortem_id": s.workflow_id,
                    "action_id": action.id,
                    "title": action.title,
                    "owner": action.owner,
                    "ticket": ref.key,
                    "ticket_url": ref.url,
                },
                search_attributes=sa.initial(
                    {
                        sa.TEAM: action.team,
                        sa.SEVERITY: s.incident.severity.value,
                        sa.INCIDENT_ID: s.incident.id,
                        sa.OPEN_ACTIONS: 1,
                        sa.OVERDUE_ACTIONS: 0,
                        sa.NEXT_ACTION_DUE: action.due,
                        sa.TICKET_KEY: sa.ticket_key(ref.tracker, ref.key),
                    }
                ),
            )
        except FailureError as err:
            self._problem(
                ProblemKind.FOLLOW_UP,
                f"action {action.id}: follow-up not started: {err}",
                action.id,
            )
            if self._bounded_state():  # kept on the action: `action retry` finds it there
                action.filing_error = limits.clip_bytes(
                    f"follow-up not started: {err}", limits.FILING_ERROR
                )
            return
        self._clear(ProblemKind.FOLLOW_UP, action.id)
        # Metrics are not history: replay does not count again.
        workflow.metric_meter().create_counter(
            "postmortem_actions_created", "Corrective actions filed and followed up"
        ).add(1, {"team": action.team, "type": action.type.value})

    async def _file_ticket(self, request: TicketRequest) -> tuple[TicketRef | None, str | None]:
        try:
            ref: TicketRef = await workflow.execute_activity_method(
                TrackerActivities.create_ticket,
                request,
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=FILING_RETRY,
            )
        except ActivityError as err:
            return None, str(err.cause) if err.cause else str(err)
        return ref, None

    async def _comment_tracking(self, text: str) -> None:
        await self._comment_on(self._s.incident.team, self._s.tracking_ticket, text)

    async def _comment_on(self, team: str, ticket: TicketRef | None, text: str) -> bool:
        """Whether the comment was posted."""
        if ticket is None:
            return False
        try:
            await workflow.execute_activity_method(
                TrackerActivities.comment,
                CommentInput(team=team, ref=ticket, text=text),
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("comment not posted on %s: %s", ticket.key, err.cause)
            return False
        return True

    async def _publish_document(self) -> None:
        s = self._s
        try:
            publication: Publication = await workflow.execute_activity_method(
                PublishingActivities.publish,
                PublishInput(state=s.document(), rendered_at=workflow.now()),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=PUBLISH_RETRY,
            )
        except ActivityError as err:
            # A team's template or publisher configuration is wrong: said, then fixed and
            # published again with `postmortem publish`.
            self._problem(ProblemKind.PUBLICATION, f"not published: {err.cause}", sync=True)
            return
        self._clear(ProblemKind.PUBLICATION)  # fixed since: the problem is gone
        first = s.published_url is None
        location = publication.location
        s.published_url = limits.clip_bytes(location, limits.LOCATION) if location else location
        s.publication_note = limits.clip_bytes(publication.note, limits.PROBLEM_TEXT)
        s.published_locations = [
            limits.clip_bytes(loc, limits.LOCATION)
            for loc in publication.locations[: limits.LOCATIONS]
        ]
        if first and publication.location is not None:
            await self._comment_tracking(notices.published(publication.locations))

    async def _sleep_until(self, moment: datetime) -> None:
        self._woken = False
        await wait_until(moment, lambda: self._woken)

    def _set_phase(self, phase: Phase, note: str = "") -> None:
        s = self._s
        self._changes += 1
        s.phase = phase
        s.phase_history.append(
            PhaseChange(
                phase=phase, at=workflow.now(), note=limits.clip_bytes(note, limits.PHASE_NOTE)
            )
        )
        if len(s.phase_history) > limits.PHASE_CHANGES:  # the first and the newest are kept
            s.phase_history = [s.phase_history[0], *s.phase_history[-limits.PHASE_CHANGES + 1 :]]
        s.updated_at = workflow.now()
        workflow.logger.info("post-mortem phase %s", phase.value)
        self._sync_visibility()

    def _sync_visibility(self) -> None:
        s = self._s
        open_actions = s.open_actions
        values: dict[str, object] = {}
        if self._dashboard is None:
            self._dashboard = workflow.patched(DASHBOARD_ATTRIBUTES)
        if self._dashboard:
            awaiting = s.phase.awaits_review and s.review is not None and s.findings is None
            values[sa.REVIEW_DUE.name] = s.review.window_end if awaiting and s.review else None
        # Only once there is or was a problem: histories without one stay as they were.
        if s.problems or sa.TRACKER_PROBLEMS.name in self._visibility:
            values[sa.TRACKER_PROBLEMS.name] = [p.message[:250] for p in s.problems[:5]] or None
        if self._bounded and (s.problems or sa.PROBLEM_KINDS.name in self._visibility):
            values[sa.PROBLEM_KINDS.name] = sorted({p.kind.value for p in s.problems}) or None
        sa.upsert_changed(
            self._visibility,
            values
            | {
                sa.PHASE.name: s.phase.value,
                sa.TEAM.name: s.incident.team,
                sa.SEVERITY.name: s.incident.severity.value,
                sa.INCIDENT_ID.name: s.incident.id,
                sa.OPEN_ACTIONS.name: len(open_actions),
                sa.OVERDUE_ACTIONS.name: len(s.overdue_actions),
                sa.NEXT_ACTION_DUE.name: min((a.due for a in open_actions), default=None),
            },
        )

    def _wake(self) -> None:
        self._s.updated_at = workflow.now()
        self._woken = True
        self._changes += 1

    async def _project_changes(self) -> None:
        """The record follows the post-mortem: after each change (several at once are one
        write); in a burst (changes while writing), at most one write per RECORD_GAP; and
        the last before the run ends."""
        s = self._s
        while True:
            await workflow.wait_condition(lambda: self._changes != self._projected or self._closing)
            if self._changes == self._projected:
                return
            seen = self._changes
            s.record_version += 1
            try:
                await workflow.execute_activity_method(
                    RecordActivities.project,
                    ProjectInput(state=s, version=s.record_version),
                    start_to_close_timeout=QUICK_TIMEOUT * 6,
                    retry_policy=RECORD_RETRY,
                )
            except ActivityError as err:  # a write no retry fixes (a bug): shown, never fatal
                self._problem(ProblemKind.RECORD, f"not written to the record: {err.cause}")
                if self._closing:
                    return  # the run ends all the same; the record keeps the last write
                await workflow.wait_condition(
                    lambda seen=seen: self._changes != seen or self._closing  # type: ignore[misc]
                )
                continue
            self._clear(ProblemKind.RECORD)
            self._projected = seen
            if self._changes != seen and not self._closing:  # a burst: the next one waits
                await wait_until(workflow.now() + RECORD_GAP, lambda: self._closing)

    async def _flush_record(self) -> None:
        """Before the run ends (closed, cancelled, continued as new): the record has it all."""
        if self._projector is None:
            return
        self._closing = True
        await self._projector
        self._projector = None

    def _bounded_state(self) -> bool:
        if self._bounded is None:
            self._bounded = workflow.patched(BOUNDED_STATE)
        return self._bounded

    def _fails_closed(self) -> bool:
        return workflow.patched(BLAMELESS_FAILS_CLOSED)

    def _problem(
        self,
        kind: ProblemKind,
        message: str,
        action_id: str | None = None,
        *,
        sync: bool = False,
    ) -> None:
        """Shown on status, the CLI, the dashboard and the metrics until what fixes it
        happens; one per kind and action (the newest wording), at most limits.PROBLEMS."""
        s = self._s
        if not self._bounded_state():  # recorded before: appended, shown when it was then
            s.problems.append(
                Problem(kind=kind, message=message, action_id=action_id, since=workflow.now())
            )
            if sync:
                self._sync_visibility()
            return
        earlier = [p for p in s.problems if (p.kind, p.action_id) == (kind, action_id)]
        since = earlier[0].since if earlier and earlier[0].since else workflow.now()
        others = [p for p in s.problems if (p.kind, p.action_id) != (kind, action_id)]
        problem = Problem(
            kind=kind,
            message=limits.clip_bytes(message, limits.PROBLEM_TEXT),
            action_id=action_id,
            since=since,
        )
        s.problems = [*others, problem][-limits.PROBLEMS :]
        self._sync_visibility()

    def _clear(self, kind: ProblemKind, action_id: str | None = None) -> None:
        s = self._s
        if kind is not ProblemKind.PUBLICATION and not self._bounded_state():
            return  # recorded before: only a publication's problem cleared itself
        kept = [p for p in s.problems if (p.kind, p.action_id) != (kind, action_id)]
        if len(kept) != len(s.problems):
            s.problems = kept
            self._sync_visibility()

    # -- the surface: query, updates, signal --------------------------------------------

    @workflow.query
    def status(self) -> PostmortemState:
        return self._s

    @workflow.query
    def phase(self) -> Phase:
        """The phase alone: a cheap answer for callers that wait for one."""
        return self._s.phase

    @workflow.update
    async def add_timeline_entry(self, entry: TimelineEntry) -> int:
        self._s.timeline = sorted([*self._s.timeline, entry], key=lambda e: e.at)
        self._wake()
        return len(self._s.timeline)

    @add_timeline_entry.validator
    def _check_timeline_entry(self, entry: TimelineEntry) -> None:
        try:
            updates.timeline_entry(self._s, entry)
        except updates.AlreadyRecorded as exc:  # the sender is told it is a repeat
            raise ApplicationError(str(exc), type=ALREADY_RECORDED) from None

    @workflow.update
    async def schedule_review(self, request: RescheduleReviewInput) -> ReviewSlot:
        s = self._s
        assert s.review is not None
        # The same event, one SEQUENCE higher: calendars update it in place.
        s.review = s.review.model_copy(
            update={
                "start": request.at,
                "outside_window": request.at > s.review.window_end,
                "reason": request.reason,
                "sequence": s.review.sequence + 1,
            }
        )
        s.review_reminder_sent = False
        self._reminder_covered_by_invitation()
        if s.phase is Phase.IN_REVIEW:
            self._set_phase(Phase.REVIEW_SCHEDULED, "review rescheduled")
        self._invitation_due = workflow.patched(REVIEW_INVITATION)
        self._wake()
        async with self._lock:
            await self._comment_tracking(notices.review_rescheduled(s, request.reason))
        return s.review

    @schedule_review.validator
    def _check_schedule(self, request: RescheduleReviewInput) -> None:
        updates.schedule(self._s, request, workflow.now())

    @workflow.update
    async def complete_review(self, request: CompleteReviewInput) -> ReviewAccepted:
        s = self._s
        findings = request.findings
        async with self._lock:
            actions = await self._prepare_actions(findings.actions)
            if s.findings is not None:
                raise ApplicationError("the review's findings were already recorded")
            # Checked again: other updates may have been applied while actions were prepared.
            self._still_valid(lambda: updates.review(s, request, workflow.now()))
            corrections = updates.as_stored(findings).timeline_corrections
            s.timeline = sorted([*s.timeline, *corrections], key=lambda e: e.at)
            s.findings = ReviewOutcome(
                **findings.model_dump(exclude={"actions", "timeline_corrections"}),
                accepted_at=workflow.now(),
            )
            s.actions.extend(actions)
            if workflow.patched(BLAMELESS_CHECK):
                await self._check_blameless()
            if workflow.patched(RELATED_POSTMORTEMS):
                await self._find_related()
            self._wake()
            return ReviewAccepted(
                action_ids=[a.id for a in actions],
                blameless=s.blameless,
                publication_held=s.blameless_holds,
            )

    @complete_review.validator
    def _check_review(self, request: CompleteReviewInput) -> None:
        updates.review(self._s, request, workflow.now())

    @workflow.update
    async def revise_findings(self, request: ReviseFindingsInput) -> ReviewAccepted:
        """The narrative reworded (say, after the blameless check): checked again, and
        republished when it was already published."""
        s = self._s
        findings = request.findings
        async with self._lock:
            assert s.findings is not None
            # Checked again: other updates may have been applied while this one waited.
            self._still_valid(lambda: updates.revision(s, request, workflow.now()))
            corrections = updates.as_stored(findings).timeline_corrections
            s.timeline = sorted([*s.timeline, *corrections], key=lambda e: e.at)
            s.findings = ReviewOutcome(
                **findings.model_dump(exclude={"actions", "timeline_corrections"}),
                accepted_at=s.findings.accepted_at,
                revised_at=workflow.now(),
            )
            await self._check_blameless()
            if workflow.patched(RELATED_POSTMORTEMS):
                await self._find_related()
            self._republish = s.published_url is not None
            self._wake()
            return ReviewAccepted(
                action_ids=[],
                blameless=s.blameless,
                publication_held=s.blameless_holds,
            )

    @revise_findings.validator
    def _check_revision(self, request: ReviseFindingsInput) -> None:
        updates.revision(self._s, request, workflow.now())

    @workflow.update
    async def republish(self) -> str:
        """Publish again now (after a team fixed its template or publisher settings)."""
        self._republish = True
        self._wake()
        return self._s.workflow_id

    @republish.validator
    def _check_republish(self) -> None:
        updates.republish(self._s)

    @workflow.update
    async def acknowledge_findings(self, ack: AcknowledgeInput) -> list[BlamelessNote]:
        """The team read these findings and keeps the wording, for the reason in the note."""
        for note in self._s.blameless:
            if note.id in ack.finding_ids:
                note.acknowledged, note.note = True, ack.note
        self._wake()
        return self._s.blameless_open

    @acknowledge_findings.validator
    def _check_acknowledgement(self, ack: AcknowledgeInput) -> None:
        updates.acknowledgement(self._s, ack)

    @workflow.update
    async def add_action(self, spec: ActionSpec) -> str:
        async with self._lock:
            (action,) = await self._prepare_actions([spec])
            self._still_valid(lambda: updates.add_action(self._s, spec, workflow.now()))
            self._s.actions.append(action)
            self._wake()
            return action.id

    @add_action.validator
    def _check_add_action(self, spec: ActionSpec) -> None:
        updates.add_action(self._s, spec, workflow.now())

    @workflow.update
    async def set_action_state(self, change: ActionStateChange) -> CorrectiveAction:
        action = self._s.action(change.action_id)
        assert action is not None
        now = workflow.now()
        action.state, action.state_reason, action.completed_at = change.state, change.reason, now
        action.overdue = False
        self._sync_visibility()
        self._wake()
        if action.ticket is not None:
            child = workflow.get_external_workflow_handle_for(
                ActionFollowUpWorkflow.run, action_workflow_id(self._s.workflow_id, action.id)
            )
            with contextlib.suppress(FailureError):  # its follow-up already ended
                await child.signal(
                    ActionFollowUpWorkflow.set_state,
                    ChildStateChange(state=change.state, reason=change.reason, at=now),
                )
        return action

    @set_action_state.validator
    def _check_action_state(self, change: ActionStateChange) -> None:
        updates.action_state(self._s, change)

    @workflow.update
    async def verify_action(self, answer: VerifyActionInput) -> CorrectiveAction:
        """Whether a done action worked; one that did not opens a follow-up to revisit it."""
        async with self._lock:
            now = workflow.now()
            self._still_valid(lambda: updates.verify_action(self._s, answer, now))
            action = self._s.action(answer.action_id)
            assert action is not None
            follow_up: CorrectiveAction | None = None
            if not answer.worked:
                spec = verification.revisit(action, answer.note.strip(), now)
                (follow_up,) = await self._prepare_actions([spec])
                self._still_valid(lambda: updates.verify_action(self._s, answer, now))
                # The action as it is now: a follow-up's report during the await replaced it.
                action = self._s.action(answer.action_id)
                assert action is not None
            action.verification = (
                Verification.VERIFIED if answer.worked else Verification.INEFFECTIVE
            )
            action.verification_note = answer.note.strip()
            action.verified_at = now
            if follow_up is not None:
                self._s.actions.append(follow_up)
            self._answers.append((action.id, follow_up.id if follow_up else None))
            self._clear(ProblemKind.VERIFICATION, action.id)
            self._sync_visibility()
            self._wake()
            return action

    @verify_action.validator
    def _check_verify_action(self, answer: VerifyActionInput) -> None:
        updates.verify_action(self._s, answer, workflow.now())

    @workflow.update
    async def move_deadline(self, move: MoveDeadlineInput) -> CorrectiveAction:
        action = self._s.action(move.action_id)
        assert action is not None
        action.due, action.overdue, action.escalation_level = move.due, False, 0
        self._sync_visibility()
        self._wake()
        if action.ticket is not None:
            child = workflow.get_external_workflow_handle_for(
                ActionFollowUpWorkflow.run, action_workflow_id(self._s.workflow_id, action.id)
            )
            await child.signal(
                ActionFollowUpWorkflow.move_deadline,
                ChildDeadlineMove(due=move.due, reason=move.reason),
            )
        return action

    @move_deadline.validator
    def _check_move_deadline(self, move: MoveDeadlineInput) -> None:
        updates.move_deadline(self._s, move, workflow.now())

    @workflow.update
    async def retry_filing(self, request: RetryFilingInput) -> CorrectiveAction:
        """After a fix in routing or the tracker: file the refused ticket again."""
        action = self._s.action(request.action_id)
        assert action is not None
        if self._bounded_state():
            # Whichever step failed runs again: the filing, or the follow-up of a filed ticket.
            if action.ticket is not None and action.state is ActionState.OPEN:
                self._reopened.append(action.id)
            action.filing_error = None
            self._clear(ProblemKind.FILING, action.id)  # a follow-up's clears once it starts
            self._wake()
            return action
        action.filing_error = None
        prefix = f"action {action.id} ("
        self._s.problems = [p for p in self._s.problems if not p.message.startswith(prefix)]
        self._sync_visibility()
        self._wake()
        return action

    @retry_filing.validator
    def _check_retry_filing(self, request: RetryFilingInput) -> None:
        updates.retry_filing(self._s, request)

    @workflow.update
    async def route(self, request: RouteInput) -> str:
        """Another team owns this post-mortem from now on: its policy, follow-up rules and
        owner apply, and a review not yet held is planned again in its calendar. Filed
        tickets stay where they are (each action names its own team)."""
        s = self._s
        async with self._lock:
            try:
                context: PostmortemContext = await workflow.execute_activity_method(
                    RoutingActivities.resolve_context,
                    ResolveContextInput(team=request.team, severity=s.incident.severity),
                    start_to_close_timeout=QUICK_TIMEOUT,
                    retry_policy=QUICK_RETRY,
                )
            except ActivityError as err:  # an unknown team: refused, nothing changed
                cause = err.cause
                raise ApplicationError(
                    f"cannot route to {request.team!r}: {getattr(cause, 'message', cause)}",
                    type=INVALID_INPUT,
                ) from None
            # Planned before anything changes: a failure refuses the routing, whole.
            slot: ReviewSlot | None = None
            if s.review is not None and s.findings is None and s.phase.awaits_review:
                try:
                    slot = await self._plan_review(
                        context.policy.review_within_business_days, request.team, context.owner
                    )
                except ActivityError as err:
                    cause = err.cause
                    raise ApplicationError(
                        f"cannot route to {request.team!r}: its review could not be planned: "
                        f"{getattr(cause, 'message', cause)}",
                        type=INVALID_INPUT,
                    ) from None
            before = s.incident.team
            s.incident = s.incident.model_copy(update={"team": request.team, "unrouted": ""})
            s.team, s.policy, s.follow_up, s.owner = (
                context.team,
                context.policy,
                context.follow_up,
                context.owner,
            )
            if slot is not None and s.review is not None:
                s.review = slot.model_copy(update={"sequence": s.review.sequence + 1})
                s.review_reminder_sent = False
                self._reminder_covered_by_invitation()
                if s.phase is Phase.IN_REVIEW:
                    self._set_phase(Phase.REVIEW_SCHEDULED, "routed to another team")
                self._invitation_due = s.invitation_sent
            self._sync_visibility()
            self._wake()
            why = f" Reason: {request.reason}" if request.reason.strip() else ""
            await self._comment_tracking(f"Routed from team {before} to team {request.team}.{why}")
            return request.team

    @route.validator
    def _check_route(self, request: RouteInput) -> None:
        updates.route(self._s, request)

    @workflow.update
    def begin(self, request: BeginInput) -> str:
        """Start an optional post-mortem: from here it runs like any other."""
        self._begin = request
        self._wake()
        return self._s.workflow_id

    @begin.validator
    def _check_begin(self, request: BeginInput) -> None:
        updates.begin(self._s, begun=self._begin is not None)

    @workflow.update
    def retry(self) -> str:
        """Run the failed step again (after the fix the problem names)."""
        self._retry_asked = True
        self._wake()
        return self._s.workflow_id

    @retry.validator
    def _check_retry(self) -> None:
        updates.retry(self._s)

    @workflow.update
    async def cancel(self, request: CancelInput) -> str:
        self._cancel_reason = request.reason
        self._wake()
        return self._s.workflow_id

    @cancel.validator
    def _check_cancel(self, request: CancelInput) -> None:
        updates.cancel(self._s, request.reason, cancelling=self._cancel_reason is not None)

    @workflow.signal
    def action_reopened(self, event: ActionReopened) -> None:
        """From a tracker webhook: a ticket closed earlier was reopened, so is its action."""
        action = self._s.action(event.action_id)
        if action is None or action.ticket is None or not action.state.is_terminal:
            return
        if self._s.phase.is_terminal or self._cancel_reason is not None:
            return
        if workflow.patched(VERIFY_REOPEN):
            # A hint: the tracker is read first (_confirm_reopenings), then the action reopens.
            self._reopen_claims.append(event)
            self._wake()
            return
        self._reopen(action, event.reason)

    def _reopen(self, action: CorrectiveAction, reason: str) -> None:
        now = workflow.now()
        if self._bounded_state():  # the tracker's words: room for them is the engine's
            reason = limits.clip_bytes(reason, limits.ENGINE_REASON)
        action.state, action.state_reason, action.completed_at = ActionState.OPEN, reason, None
        action.overdue, action.escalation_level = now >= action.due, 0
        # Redone: asked again once it is done again (an earlier verdict was on other work).
        action.verification, action.verification_note = Verification.NONE, ""
        action.verification_asked_at = action.verified_at = None
        self._reopened.append(action.id)
        self._sync_visibility()
        self._wake()

    @workflow.signal
    def action_progress(self, progress: ActionProgress) -> None:
        """From an action's follow-up: its latest state (reminders, overdue, done)."""
        reported = progress.action
        current = self._s.action(reported.id)
        if current is None:
            return
        # A person's done/dropped here wins over a snapshot the child sent before it knew.
        if current.state.is_terminal and not reported.state.is_terminal:
            return
        index = self._s.actions.index(current)
        # Whether it worked is the post-mortem's to know: the follow-up's copy never heard.
        kept = {k: getattr(current, k) for k in verification.KEPT_BY_POSTMORTEM}
        self._s.actions[index] = reported.model_copy(update=kept)
        self._sync_visibility()
        self._wake()

    # -- helpers for the handlers -------------------------------------------------------

    async def _prepare_actions(self, specs: list[ActionSpec]) -> list[CorrectiveAction]:
        """Checks against the current routing (teams, time zones); refuses with every problem."""
        if not specs:
            return []
        try:
            actions: list[CorrectiveAction] = await workflow.execute_activity_method(
                RoutingActivities.prepare_actions,
                PrepareActionsInput(
                    actions=specs,
                    now=workflow.now(),
                    existing_action_ids=[a.id for a in self._s.actions],
                ),
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise
        if self._verifying is False:  # its ticket promises no question this run never asks
            for action in actions:
                action.verify_after_days = 0
        return actions

    def _still_valid(self, check: Callable[[], None]) -> None:
        """A validator's check, run again where a handler applies its change after an await
        (a validator sees the state before other updates' handlers ran): refused, whole."""
        if not self._bounded_state():
            return
        try:
            check()
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID_INPUT, non_retryable=True) from None

    async def _find_related(self) -> None:
        """Earlier post-mortems of the same service, or with similar findings (the record
        finds them). Advice: the database down, the post-mortem goes on with what it had.
        Those new since the last lookup are said on the tracking ticket once the findings
        are in (at the start, the ticket is filed with them)."""
        s = self._s
        try:
            found: RelatedFound = await workflow.execute_activity_method(
                RecordActivities.related,
                RelatedInput(document=s.document()),
                start_to_close_timeout=QUICK_TIMEOUT * 3,
                retry_policy=RELATED_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("related post-mortems not looked up: %s", err.cause)
            return
        before = {r.workflow_id for r in s.related}
        s.related = found.related[: limits.RELATED]
        s.related_summary = limits.clip_bytes(found.summary, limits.PROBLEM_TEXT)
        if s.findings is not None:
            self._related_news = [r.workflow_id for r in s.related if r.workflow_id not in before]

    async def _check_blameless(self) -> None:
        """Run the check on the text as it is now; acknowledgements of findings still present
        are kept (a finding's id is stable for the same sentence in the same field)."""
        s = self._s
        try:
            report: BlamelessReport = await workflow.execute_activity_method(
                BlamelessActivities.check,
                BlamelessCheckInput(state=s.document()),
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as err:
            if not self._bounded_state():
                raise
            # The findings stand; the check is said not to have run, and runs again with
            # the next revision.
            self._problem(
                ProblemKind.BLAMELESS_CHECK, f"blameless check not run: {err.cause}", sync=True
            )
            if self._fails_closed():
                s.blameless_unchecked = True
            return
        self._clear(ProblemKind.BLAMELESS_CHECK)
        s.blameless_unchecked = False
        acknowledged = {n.id: n for n in s.blameless if n.acknowledged}
        s.blameless = [acknowledged.get(n.id, n) for n in report.notes][: limits.BLAMELESS_NOTES]
        s.blameless_enforced = report.enforced

    async def _send_invitation(self, kind: InvitationKind) -> None:
        s = self._s
        try:
            delivery: Delivery = await workflow.execute_activity_method(
                InvitationActivities.send_invitation,
                InvitationInput(state=s.document(), kind=kind, now=workflow.now()),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=INVITATION_RETRY,
            )
        except ActivityError as err:
            self._problem(
                ProblemKind.INVITATION, f"review {kind} not emailed: {err.cause}", sync=True
            )
            return
        self._clear(ProblemKind.INVITATION)
        if delivery.sent and kind == "request":
            s.invitation_sent = True

    def _reminder_covered_by_invitation(self) -> None:
        s = self._s
        assert s.review is not None and s.follow_up is not None
        reminder_at = s.review.start - s.follow_up.review_reminder_before
        if workflow.now() >= reminder_at and workflow.patched(NO_REMINDER_BEHIND_INVITATION):
            s.review_reminder_sent = True


def _kept_ref(ref: TicketRef) -> tuple[TicketRef | None, str | None]:
    """A ticket as the state keeps it (limits.TICKET_*): a link too long is left out (the
    key finds the ticket); a key or tracker name too long is a filing problem, said."""
    for name, value, limit in (
        ("key", ref.key, limits.TICKET_KEY),
        ("tracker", ref.tracker, limits.TICKET_TRACKER),
    ):
        if limits.text_bytes(value) > limit:
            return None, (
                f"the tracker answered with a ticket {name} of {limits.text_bytes(value):,} "
                f"bytes, over the {limit} this engine keeps: {limits.clip(value, 80)!r}"
            )
    if limits.text_bytes(ref.url) > limits.TICKET_URL:
        ref = ref.model_copy(update={"url": ""})
    return ref, None
