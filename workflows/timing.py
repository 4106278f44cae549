"""Waiting in workflow time: until a moment, or until a condition turns true first."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


async def wait_until(moment: datetime, woken: Callable[[], bool]) -> None:
    """The updatable-timer idiom: one durable timer, cut short when `woken()` turns true."""
    delay = moment - workflow.now()
    if delay <= timedelta(0):
        return
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(woken, timeout=delay)
