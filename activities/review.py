"""Activities of the review: the blameless check on the post-mortem's text."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from temporalio import activity

from domain.blameless import Lexicon, check_postmortem
from domain.models import BlamelessNote, PostmortemState


class BlamelessCheckInput(BaseModel):
    state: PostmortemState


class BlamelessReport(BaseModel):
    notes: list[BlamelessNote]
    # False with PM_BLAMELESS_MODE=warn: findings are shown, publication does not wait.
    enforced: bool


class BlamelessActivities:
    """In an activity, not the workflow: the word list is data read from a file, and the mode
    is the worker's setting; both may change between runs without touching history."""

    def __init__(self, lexicon: Callable[[], Lexicon], *, enforced: bool) -> None:
        self._lexicon = lexicon
        self._enforced = enforced

    @activity.defn(name="blameless.check")
    def check(self, request: BlamelessCheckInput) -> BlamelessReport:
        findings = check_postmortem(request.state, self._lexicon())
        notes = {f.id: f for f in findings}  # one per sentence and rule
        activity.logger.info("blameless check", extra={"findings": len(notes)})
        return BlamelessReport(notes=list(notes.values()), enforced=self._enforced)
