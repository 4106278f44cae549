"""An optional post-mortem (its severity's policy does not require one) is recorded and
listed, not dropped, and one command or click starts it; untouched, it ends after a month."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

import engine
from domain.messages import (
    BeginInput,
    CancelInput,
    CompleteReviewInput,
    PostmortemInput,
    RescheduleReviewInput,
)
from domain.models import Findings, Phase, PostmortemState
from integrations.local import LocalTracker
from tests import scenario
from tests.scenario import idle, until
from tests.test_kickoff import SECRET, api, generic_body, post, sign  # noqa: F401 (fixture)
from tests.test_lifecycle import record
from workflows.postmortem import OPTIONAL_KEEP_DAYS, PostmortemWorkflow


async def test_an_optional_post_mortem_waits_then_ends_saying_why(
    env, client, settings, worker, tracker: LocalTracker
):
    now = await env.get_current_time()
    inp = PostmortemInput(incident=scenario.incident(now, severity="SEV4"), optional=True)
    started = await engine.start_postmortem(client, settings.task_queue, inp)
    handle = started.handle
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase is Phase.OPTIONAL
    )
    assert state.tracking_ticket is None and state.review is None
    # Nothing of the review may happen before it is begun.
    findings = Findings.model_validate(scenario.findings(now))
    refused = await scenario.refused(
        handle, PostmortemWorkflow.complete_review, CompleteReviewInput(findings=findings)
    )
    assert "optional" in refused
    later = RescheduleReviewInput(at=now + timedelta(days=2), reason="x")
    assert "optional" in await scenario.refused(handle, PostmortemWorkflow.schedule_review, later)
    await env.sleep(timedelta(days=OPTIONAL_KEEP_DAYS - 1))
    assert (await handle.query(PostmortemWorkflow.status)).phase is Phase.OPTIONAL
    ended: PostmortemState = await handle.result()  # the server skips the last day
    assert ended.phase is Phase.CANCELLED
    assert ended.cancel_reason == f"optional post-mortem not begun within {OPTIONAL_KEEP_DAYS} days"
    assert ended.tracking_ticket is None and not tracker.list_tickets()
    assert [c.phase for c in ended.phase_history] == [Phase.OPTIONAL, Phase.CANCELLED]


async def test_begin_starts_it_once_and_cancel_ends_it(env, client, settings, worker, tracker):
    now = await env.get_current_time()
    inp = PostmortemInput(incident=scenario.incident(now, severity="SEV4"), optional=True)
    handle = (await engine.start_postmortem(client, settings.task_queue, inp)).handle
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p is Phase.OPTIONAL)
    await handle.execute_update(PostmortemWorkflow.begin, BeginInput(reason="a near miss"))
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.tracking_ticket is not None and state.review is not None
    assert [c.phase for c in state.phase_history][:2] == [Phase.OPTIONAL, Phase.DRAFTING]
    assert state.phase_history[1].note == "begun by an operator: a near miss"
    again = await scenario.refused(handle, PostmortemWorkflow.begin, BeginInput())
    assert "only an optional post-mortem" in again
    await record("optional-begun", handle)

    other = PostmortemInput(incident=scenario.incident(now, severity="SEV5"), optional=True)
    dropped = (await engine.start_postmortem(client, settings.task_queue, other)).handle
    await until(lambda: dropped.query(PostmortemWorkflow.phase), lambda p: p is Phase.OPTIONAL)
    await dropped.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="not worth one"))
    ended = await dropped.result()
    assert (ended.phase, ended.cancel_reason) == (Phase.CANCELLED, "not worth one")
    assert [c.phase for c in ended.phase_history] == [Phase.OPTIONAL, Phase.CANCELLED]


async def test_a_webhook_records_it_and_the_dashboard_begins_it(
    api,  # noqa: F811 (the fixture imported above)
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
):
    base, _, _ = api
    incident = f"OPT-{uuid.uuid4().hex[:8]}"
    body = generic_body(incident, severity="SEV4")
    headers = {"x-signature-256": "sha256=" + sign(body, SECRET)}
    answer = await post(f"{base}/webhooks/generic", body, headers)
    workflow_id = f"postmortem-generic-{incident}"
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "accepted": True,
        "started": False,
        "workflow_id": workflow_id,
        "detail": "SEV4 post-mortems are optional under the policy: recorded, not started "
        f"(`postmortem begin {workflow_id}` starts it)",
    }
    handle = dev_env.client.get_workflow_handle(workflow_id)
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p is Phase.OPTIONAL)
    await until(lambda: idle(handle), lambda quiet: quiet)  # its record written
    events = len((await handle.fetch_history()).events)
    again = await post(f"{base}/webhooks/generic", body, headers)  # the sender's retry
    assert again.status_code == 200 and again.json()["workflow_id"] == workflow_id
    assert len((await handle.fetch_history()).events) == events  # nothing new on it

    # Listed as optional: visibility (the dashboard's list, `postmortem list --phase optional`).
    async def listed() -> list[str]:
        async with httpx.AsyncClient(base_url=base) as http:
            page = await http.get("/api/postmortems", params={"phase": "optional"})
        return [row["workflow_id"] for row in page.json()["items"]]

    await until(listed, lambda ids: workflow_id in ids)

    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get(f"/postmortems/{workflow_id}")
        assert 'id="optional"' in page.text and 'id="begin"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        form = {"operation": "begin", "reason": "", "csrf": token.group(1)}
        done = await http.post(
            f"/postmortems/{workflow_id}/operate",
            data=form,
            headers={"Origin": base},
            follow_redirects=False,
        )
        assert done.status_code == 303 and "done=begin" in done.headers["location"]
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    async with httpx.AsyncClient(base_url=base) as script:  # a program: no cookies, no Origin
        twice = await script.post(f"/api/postmortems/{workflow_id}/begin", json={})
        assert twice.status_code == 409 and "only an optional" in twice.json()["error"]
