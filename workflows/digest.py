"""DigestWorkflow: started by a team's Temporal Schedule; gathers and delivers its digest."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.digest import DeliverInput, DigestActivities, GatherInput
    from activities.errors import NEVER_RETRIED
    from domain.digest import Digest
    from domain.messages import DigestInput


@workflow.defn
class DigestWorkflow:
    @workflow.run
    async def run(self, inp: DigestInput) -> str:
        digest: Digest = await workflow.execute_activity_method(
            DigestActivities.gather,
            GatherInput(team=inp.team, kind=inp.kind, now=workflow.now()),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=10),
        )
        if digest.empty and inp.kind == "sev1-daily":
            return "nothing to report"  # the daily alert speaks only when there is something
        delivered = await workflow.execute_activity_method(
            DigestActivities.deliver,
            DeliverInput(digest=digest),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(minutes=10),
                maximum_attempts=20,
                non_retryable_error_types=NEVER_RETRIED,
            ),
        )
        return ", ".join(delivered.channels) or "no channel configured"
