"""The blameless check inside the lifecycle: findings at the review, publication held until
each is reworded or acknowledged, and PM_BLAMELESS_MODE=warn (time-skipping server)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from domain.messages import AcknowledgeInput, CompleteReviewInput, ReviseFindingsInput
from domain.models import Findings, Phase
from tests import scenario
from tests.scenario import until
from tests.test_lifecycle import comments, record, status_of
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

BLAMING = {
    "proximate_cause": "A human error pushed a timeout of 0 ms.",
    "went_badly": ["Detection took 90 minutes", "Obviously the alert threshold was wrong."],
}


def review(now, **overrides) -> CompleteReviewInput:
    return CompleteReviewInput(
        findings=Findings.model_validate(scenario.findings(now, **overrides))
    )


async def reviewed_with_blame(env, client, settings):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    accepted = await handle.execute_update(
        PostmortemWorkflow.complete_review, review(now, **BLAMING)
    )
    return handle, now, accepted


async def test_publication_waits_for_rewording_or_acknowledgement(
    env, client, settings, worker, tracker
):
    handle, now, accepted = await reviewed_with_blame(env, client, settings)

    # The review's answer names every finding, with the field and a rewording.
    rules = sorted(n.rule for n in accepted.blameless)
    assert rules == ["human-error", "obviously"], accepted.blameless
    assert accepted.publication_held
    blame = next(n for n in accepted.blameless if n.rule == "human-error")
    assert blame.field == "proximate_cause" and "human error" in blame.sentence
    assert blame.suggestion

    # Actions are filed and followed up; the document is not published.
    state = await until(
        status_of(handle), lambda s: s.publication_held and all(a.ticket for a in s.actions)
    )
    assert state.phase is Phase.PUBLISHED and state.published_url is None
    notes = await until(comments(tracker, "PAY-1"), lambda c: any("blameless" in n for n in c))
    held = next(n for n in notes if "blameless" in n)
    assert blame.id in held and "--ack" in held

    # A rewording removes the blame; the hindsight sentence stays and keeps its id.
    revised = await handle.execute_update(
        PostmortemWorkflow.revise_findings,
        ReviseFindingsInput(
            findings=Findings.model_validate(
                scenario.findings(
                    now,
                    actions=[],
                    timeline_corrections=[],
                    proximate_cause="A config push set the payment timeout to 0 ms.",
                    went_badly=BLAMING["went_badly"],
                )
            )
        ),
    )
    assert [n.rule for n in revised.blameless] == ["obviously"] and revised.publication_held
    hindsight = revised.blameless[0]
    assert hindsight.id == next(n.id for n in accepted.blameless if n.rule == "obviously")
    state = await handle.query(PostmortemWorkflow.status)
    assert state.published_url is None and state.findings and state.findings.revised_at

    # For as long as it stays open, nothing is published: a month passes, the follow-ups
    # remind (7 and 1 days before their due dates) and wake the post-mortem, which stays held.
    await env.sleep(timedelta(days=30))
    action_ticket = state.actions[0].ticket
    assert action_ticket is not None
    await until(comments(tracker, action_ticket.key), lambda c: len(c) >= 2)
    state = await handle.query(PostmortemWorkflow.status)
    assert state.phase is Phase.PUBLISHED and state.publication_held
    assert state.published_url is None
    assert not list(settings.published_dir.glob("**/*.md"))  # nothing written anywhere

    # An unknown id or an empty note is refused and changes nothing.
    reason = await scenario.refused(
        handle,
        PostmortemWorkflow.acknowledge_findings,
        AcknowledgeInput(finding_ids=["nope"], note="kept"),
    )
    assert reason.startswith(f"no blameless finding nope on this post-mortem (open: {hindsight.id}")
    with pytest.raises(ValueError, match="at least 1 character"):
        AcknowledgeInput(finding_ids=[hindsight.id], note="  ")

    # Acknowledged with a note: published, and the note is kept on the record.
    still_open = await handle.execute_update(
        PostmortemWorkflow.acknowledge_findings,
        AcknowledgeInput(finding_ids=[hindsight.id], note="Quoting the on-call chat verbatim."),
    )
    assert still_open == []
    state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
    assert state.published_url is not None and not state.publication_held
    assert state.blameless[0].acknowledged and state.blameless[0].note.startswith("Quoting")
    published = Path(state.published_url.removeprefix("file://")).read_text()
    assert "A config push set the payment timeout to 0 ms." in published
    assert "human error" not in published
    reason = await scenario.refused(
        handle,
        PostmortemWorkflow.acknowledge_findings,
        AcknowledgeInput(finding_ids=[hindsight.id], note="again"),
    )
    assert reason == f"already acknowledged: {hindsight.id}"
    await record("blameless-gate", handle)


async def test_a_revision_after_publication_republishes_in_place(
    env, client, settings, worker, tracker
):
    now = await env.get_current_time()
    handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
    await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
    accepted = await handle.execute_update(PostmortemWorkflow.complete_review, review(now))
    assert accepted.blameless == [] and not accepted.publication_held
    state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
    assert state.published_url is not None
    path = Path(state.published_url.removeprefix("file://"))
    assert "12% of checkouts failed." in path.read_text()

    reason = await scenario.refused(
        handle,
        PostmortemWorkflow.revise_findings,
        ReviseFindingsInput(findings=Findings.model_validate(scenario.findings(now))),
    )
    assert "add actions with 'action add'" in reason
    await handle.execute_update(
        PostmortemWorkflow.revise_findings,
        ReviseFindingsInput(
            findings=Findings.model_validate(
                scenario.findings(
                    now, actions=[], timeline_corrections=[], impact="14% of checkouts failed."
                )
            )
        ),
    )
    await until(lambda: _read(path), lambda text: "14% of checkouts failed." in text)
    assert sorted(p.name for p in path.parent.iterdir() if p.suffix == ".html") == [path.name]
    notes = await comments(tracker, "PAY-1")()
    assert sum("is published" in n for n in notes) == 1  # the link is posted once


async def _read(path: Path) -> str:
    return path.read_text()


async def test_warn_mode_shows_findings_and_publishes(env, client, settings, tracker):
    warn = settings.model_copy(update={"blameless_mode": "warn"})
    async with build_worker(client, warn):
        handle, _, accepted = await reviewed_with_blame(env, client, warn)
        assert len(accepted.blameless) == 2 and not accepted.publication_held
        state = await until(status_of(handle), lambda s: s.phase is Phase.FOLLOWING_UP)
        assert state.published_url is not None and not state.blameless_enforced
        assert len(state.blameless_open) == 2
