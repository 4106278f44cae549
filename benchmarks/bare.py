"""A bare workflow with the lifecycle's shape and none of its logic: the benchmark baseline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
def noop(step: int) -> int:
    return step


@workflow.defn
class BareWorkflow:
    """The lifecycle's shape without its logic: 4 activities, an update, 6 activities."""

    def __init__(self) -> None:
        self.ready = False
        self.reviewed = False
        self.filed = False

    @workflow.run
    async def run(self) -> None:
        for step in range(4):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        self.ready = True
        await workflow.wait_condition(lambda: self.reviewed)
        await workflow.execute_activity(noop, 4, start_to_close_timeout=timedelta(seconds=30))
        await asyncio.gather(
            *(
                workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
                for step in (5, 6, 7)
            )
        )
        for step in (8, 9):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        self.filed = True
        await workflow.wait_condition(lambda: False)  # stays open, like a follow-up would

    @workflow.query
    def phase(self) -> str:
        return "filed" if self.filed else "ready" if self.ready else "starting"

    @workflow.update
    async def review(self) -> None:
        self.reviewed = True
