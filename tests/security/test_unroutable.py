"""No incident is lost for want of a mapping: it starts under the triage team, flagged
unrouted, until an operator routes it; without a triage team the sender is told to retry
(503) and a retry after the mapping is fixed starts it (dev server, real HTTP)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.messages import RouteInput
from domain.models import Phase, PostmortemState
from tests import scenario
from tests.conftest import ROUTING
from tests.scenario import until
from tests.test_kickoff import SECRET, pagerduty_body, sign
from tests.test_webhooks import free_port
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

TRIAGE = """
[teams.triage]
project = "TRI"
manager = "sre.lead@example.com"
timezone = "UTC"
"""


def settings_for(tmp_path: Path, routing: str) -> Settings:
    teams = tmp_path / "teams.toml"
    teams.write_text(routing)
    return Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",
        api_port=free_port(),
        webhook_secret_pagerduty=SecretStr(SECRET),
    )


async def deliver(base: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"{base}/webhooks/pagerduty",
            content=body,
            headers={
                "content-type": "application/json",
                "x-pagerduty-signature": f"v1={sign(body, SECRET)}",
            },
        )


async def test_an_unmapped_incident_starts_under_triage_and_is_routed(
    tmp_path: Path, dev_env: WorkflowEnvironment
):
    settings = settings_for(tmp_path, 'triage_team = "triage"\n' + ROUTING + TRIAGE)
    incident = f"PU{uuid.uuid4().hex[:8]}"
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        answer = await deliver(base, pagerduty_body(incident, "unmapped"))
        assert answer.status_code == 201, answer.text
        handle = dev_env.client.get_workflow_handle(answer.json()["workflow_id"])
        state: PostmortemState = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        assert state.incident.team == "triage" and state.team and state.team.name == "triage"
        assert "no team for service 'PSVCunmapped'" in state.incident.unrouted
        before = state.review
        assert before is not None

        async def unrouted_metric() -> str:
            async with httpx.AsyncClient(timeout=30) as http:
                text = (await http.get(f"{base}/metrics")).text
            return next(x for x in text.splitlines() if x.startswith("postmortem_unrouted "))

        await until(unrouted_metric, lambda line: line.endswith(" 1.0"))

        refused = await scenario.refused(
            handle, PostmortemWorkflow.route, RouteInput(team="nope", reason="x")
        )
        assert "nope" in refused
        assert (await handle.query(PostmortemWorkflow.status)).incident.team == "triage"

        routed = await handle.execute_update(
            PostmortemWorkflow.route, RouteInput(team="payments", reason="checkout service")
        )
        assert routed == "payments"
        state = await handle.query(PostmortemWorkflow.status)
        assert (state.incident.team, state.incident.unrouted) == ("payments", "")
        assert state.team and state.team.manager == "dana.manager@example.com"
        assert state.review and state.review.timezone == "Europe/Berlin"
        assert state.review.sequence == before.sequence + 1
        assert state.phase is Phase.REVIEW_SCHEDULED

        async def team_attribute() -> str:
            described = await handle.describe()
            return str(described.search_attributes.get("PostmortemTeam"))

        assert "payments" in await until(team_attribute, lambda t: "payments" in t)
        await until(unrouted_metric, lambda line: line.endswith(" 0.0"))


async def test_an_operator_routes_it_from_the_dashboard(
    tmp_path: Path, dev_env: WorkflowEnvironment
):
    settings = settings_for(tmp_path, 'triage_team = "triage"\n' + ROUTING + TRIAGE)
    incident = f"PD{uuid.uuid4().hex[:8]}"
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as browser,
    ):
        answer = await deliver(base, pagerduty_body(incident, "unmapped"))
        assert answer.status_code == 201, answer.text
        workflow_id = answer.json()["workflow_id"]
        handle = dev_env.client.get_workflow_handle(workflow_id)
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        page = await browser.get(f"/postmortems/{workflow_id}")
        assert 'id="unrouted"' in page.text and 'id="route"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        path, origin = f"/postmortems/{workflow_id}/operate", {"Origin": base}

        async def route(team: str) -> str:
            form = {"operation": "route", "team": team, "reason": "", "csrf": token.group(1)}
            sent = await browser.post(path, data=form, headers=origin, follow_redirects=False)
            assert sent.status_code == 303, sent.text
            return str(sent.headers["location"])

        assert "error=" in await route("nope")  # no such team: said on the page, nothing changed
        assert "error=" in await route("   ")
        assert (await handle.query(PostmortemWorkflow.status)).incident.team == "triage"
        assert "done=route" in await route("payments")
        state = await handle.query(PostmortemWorkflow.status)
        assert (state.incident.team, state.incident.unrouted) == ("payments", "")
        page = await browser.get(f"/postmortems/{workflow_id}")
        assert 'id="unrouted"' not in page.text


async def test_without_a_triage_team_the_sender_retries_until_it_is_mapped(
    tmp_path: Path, dev_env: WorkflowEnvironment
):
    settings = settings_for(tmp_path, ROUTING)
    incident = f"PN{uuid.uuid4().hex[:8]}"
    body = pagerduty_body(incident, "later")
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        refused = await deliver(base, body)
        assert refused.status_code == 503, refused.text
        assert "no triage_team" in refused.json()["detail"]
        gone = dev_env.client.get_workflow_handle(f"postmortem-pagerduty-{incident}")
        try:
            await gone.describe()
            raise AssertionError("a workflow was started")
        except Exception as exc:  # RPCError NOT_FOUND
            assert "not found" in str(exc).lower()
        # The operator maps the service; the sender's retry of the same delivery starts it.
        settings.teams_file.write_text(
            ROUTING + '\n[sources.pagerduty]\nservice_teams = { "PSVClater" = "platform" }\n'
        )
        retried = await deliver(base, body)
        assert retried.status_code == 201, retried.text
        assert retried.json()["workflow_id"] == f"postmortem-pagerduty-{incident}"


async def test_odd_titles_and_ids_are_fitted_not_refused(
    tmp_path: Path, dev_env: WorkflowEnvironment
):
    """A 2 KB title, a blank one, an id with spaces and slashes: each starts a post-mortem
    (clipped title, full text on the timeline, a stable id), and the same delivery again
    reaches the same workflow."""
    settings = settings_for(tmp_path, 'triage_team = "triage"\n' + ROUTING + TRIAGE)
    long_title = "Checkout " + "and payments " * 160  # about 2 KB
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        cases = [
            (f"PL{uuid.uuid4().hex[:6]}", long_title),
            (f"PB{uuid.uuid4().hex[:6]}", "   \t "),
            (f"odd id/{uuid.uuid4().hex[:6]}?x=1 é", "Odd id"),
        ]
        for incident, title in cases:
            body = json.loads(pagerduty_body(incident, "any"))
            body["event"]["data"]["title"] = title
            raw = json.dumps(body).encode()
            first = await deliver(base, raw)
            assert first.status_code == 201, first.text
            again = await deliver(base, raw)
            assert (
                again.status_code == 200
                and again.json()["workflow_id"] == first.json()["workflow_id"]
            )
            handle = dev_env.client.get_workflow_handle(first.json()["workflow_id"])
            state = await status_when_drafted(handle)
            if title is long_title:
                assert len(state.incident.title) == 200 and state.incident.title.endswith("…")
                full = " ".join(long_title.split())
                assert any(e.text == f"Title as sent: {full}" for e in state.timeline)
            elif not title.strip():
                assert state.incident.title == f"pagerduty incident {state.incident.id}"
            else:
                assert state.incident.id.startswith("odd-id-") and "/" not in handle.id


async def status_when_drafted(handle: Any) -> PostmortemState:
    async def status() -> PostmortemState:
        return await handle.query(PostmortemWorkflow.status)

    return await until(status, lambda s: s.phase.awaits_review)
