"""The dashboard and its JSON API on the real dev server: every number checked against the
post-mortems seeded for this test's own teams; access by role; operations."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

import engine
from config import Settings, load_routing
from domain.messages import ActionStateChange, CancelInput, CompleteReviewInput, PostmortemInput
from domain.models import ActionState, Findings, Phase, PhaseChange, PostmortemState
from record.store import Record
from tests import scenario
from tests.scenario import until
from tests.test_webhooks import free_port
from worker import build_worker
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

VIEWER, OPERATOR = "viewer-token-123", "operator-token-456"


@dataclass
class Seeded:
    team: str
    other: str
    following_up: str  # one late action (overdue, escalation pending), one on time
    scheduled: str  # waiting for its review
    late_review: str  # resolved long ago: the window has closed
    done: str  # its action done after its due date: counts in completion
    cancelled: str
    passing: list[str]  # one each in drafting, in review, actions filed, published


async def seed(client: Client, settings: Settings) -> Seeded:
    """Post-mortems in every phase a manager looks at, for this test's teams only."""
    team, other = sorted(load_routing(settings.teams_file).teams)
    now = datetime.now(UTC)

    async def started(**incident: Any) -> Any:
        inc = scenario.incident(now, **({"team": team} | incident))
        handle = (
            await engine.start_postmortem(
                client, settings.task_queue, PostmortemInput(incident=inc)
            )
        ).handle
        await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        return handle

    async def reviewed(handle: Any, actions: list[dict[str, Any]]) -> None:
        base = scenario.findings(now)["actions"][0]
        specs = [base | {"team": team} | a for a in actions]
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(
                findings=Findings.model_validate(scenario.findings(now, actions=specs))
            ),
        )

    following = await started()
    await reviewed(
        following,
        [
            {"id": "late", "type": "detect", "due": (now + timedelta(seconds=3)).isoformat()},
            {"id": "ontime", "type": "prevent", "due": (now + timedelta(days=3)).isoformat()},
        ],
    )
    scheduled = await started()
    late_review = await started(resolved_at=now - timedelta(days=30), severity="SEV1")
    done = await started()
    await reviewed(
        done, [{"id": "fixed", "type": "repair", "due": (now + timedelta(seconds=3)).isoformat()}]
    )
    cancelled = await started(team=other)
    await cancelled.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="false alarm"))

    # The two short deadlines pass; one is then done by hand.
    async def overdue(handle: Any, action_id: str) -> bool:
        child = client.get_workflow_handle(f"{handle.id}/action-{action_id}")
        return (await child.query(ActionFollowUpWorkflow.status)).overdue

    await until(lambda: overdue(following, "late"), bool, seconds=60)
    await until(lambda: overdue(done, "fixed"), bool, seconds=60)
    await done.execute_update(
        PostmortemWorkflow.set_action_state,
        ActionStateChange(action_id="fixed", state=ActionState.DONE, reason="shipped"),
    )
    await until(lambda: done.query(PostmortemWorkflow.phase), lambda p: p is Phase.CLOSED)

    # The phases a post-mortem passes through in seconds, held still for the counts: written
    # into the record as the projection would write them (no workflow moves them on).
    passing = []
    store = Record(settings.record_database)
    for phase in (Phase.DRAFTING, Phase.IN_REVIEW, Phase.ACTIONS_FILED, Phase.PUBLISHED):
        held = scenario.incident(now, team=team, severity="SEV3", incident_id=f"H-{phase.value}")
        state = PostmortemState(
            workflow_id=held.workflow_id,
            incident=held.model_copy(update={"title": f"Held in {phase.value}"}),
            phase=phase,
            phase_history=[PhaseChange(phase=phase, at=now)],
        )
        store.project(state, 1)
        passing.append(held.workflow_id)
    store.dispose()
    return Seeded(
        team=team,
        other=other,
        following_up=following.id,
        scheduled=scheduled.id,
        late_review=late_review.id,
        done=done.id,
        cancelled=cancelled.id,
        passing=passing,
    )


@pytest.fixture
async def api(dev_env, dev_settings: Settings, dev_worker):
    settings = dev_settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(f"other-viewer,{VIEWER}"),
            "operator_tokens": SecretStr(OPERATOR),
            "overview_cache_seconds": 0,  # every number fresh: the test compares them
        }
    )
    seeded = await seed(dev_env.client, settings)
    async with scenario.serving_api(settings, dev_env.client) as base:
        yield base, seeded


def as_role(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def visible(http: httpx.AsyncClient, path: str, check: Any) -> Any:
    """The record follows the workflows a moment later: ask until the answer settles."""

    async def probe() -> Any:
        answer = await http.get(path, headers=as_role(VIEWER))
        assert answer.status_code == 200, answer.text
        return answer.json()

    return await until(probe, check, seconds=30)


SEEDED_PHASES = {
    "optional": 0,
    "drafting": 1,
    "review_scheduled": 2,  # one waiting, one late (its slot is after the window)
    "in_review": 1,
    "actions_filed": 1,
    "published": 1,
    "following_up": 1,
    "closed": 1,
    "cancelled": 0,  # the cancelled one is the other team's
}


async def settled_overview(http: httpx.AsyncClient, s: Seeded) -> Any:
    """The seeded team's overview once the record has every seeded change."""
    return await visible(
        http,
        f"/api/overview?team={s.team}",
        lambda o: (
            o["phases"] == SEEDED_PHASES
            and o["late_reviews"] == 1
            and o["overdue_by_team"] == {s.team: 1}
            and o["weeks"][-1]["closed"] == 1
        ),
    )


async def test_overview_counts_and_lists_match_what_was_seeded(api):
    base, s = api
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        o = await settled_overview(http, s)
        assert o["ageing"] == {
            "due within 7 days": 1,
            "overdue up to 7 days": 1,
            "overdue 8-30 days": 0,
            "overdue over 30 days": 0,
        }
        assert o["completion_90d"]["repair"] == {"done": 1, "due": 1, "rate": 1.0}
        assert o["completion_90d"]["detect"] == {"done": 0, "due": 1, "rate": 0.0}
        assert o["completion_90d"]["prevent"]["due"] == 0  # due in 3 days, not yet
        assert o["weeks"][-1]["opened"] == 3 and o["weeks"][-1]["closed"] == 1
        assert len(o["weeks"]) == 12

        other = await visible(
            http, f"/api/overview?team={s.other}", lambda o: o["phases"]["cancelled"] == 1
        )
        assert sum(other["phases"].values()) == 1 and other["overdue_by_team"] == {s.other: 0}

        # The overdue list: exactly the late action, with its ticket and escalation state.
        page = await visible(
            http, f"/api/actions?overdue=true&team={s.team}", lambda p: p["total"] == 1
        )
        (row,) = page["items"]
        assert row["postmortem_id"] == s.following_up and row["action_id"] == "late"
        assert row["days_overdue"] == 0 and row["escalation_level"] == 0 and row["ticket"]["key"]
        assert (
            await http.get(
                f"/api/actions?overdue=true&team={s.team}&severity=SEV1", headers=as_role(VIEWER)
            )
        ).json()["total"] == 0

        text = (await http.get(f"/overdue.csv?team={s.team}", headers=as_role(VIEWER))).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["postmortem"], r["action"]) for r in rows] == [
            (s.following_up, "Add canary stage to config pushes")
        ]

        # Post-mortems, a page at a time; late reviews; the detail of one.
        first = await visible(
            http, f"/api/postmortems?team={s.team}&page_size=3", lambda p: len(p["items"]) == 3
        )
        ids, page = [r["workflow_id"] for r in first["items"]], first
        while page["next_page_token"]:
            token = page["next_page_token"]
            page = (
                await http.get(
                    f"/api/postmortems?team={s.team}&page_size=3&page_token={token}",
                    headers=as_role(VIEWER),
                )
            ).json()
            assert len(page["items"]) <= 3
            ids += [r["workflow_id"] for r in page["items"]]
        assert sorted(ids) == sorted(
            [s.following_up, s.scheduled, s.late_review, s.done, *s.passing]
        )
        late = (
            await http.get(
                f"/api/postmortems?team={s.team}&late_review=true", headers=as_role(VIEWER)
            )
        ).json()
        assert [r["workflow_id"] for r in late["items"]] == [s.late_review]
        detail = (
            await http.get(f"/api/postmortems/{s.following_up}", headers=as_role(VIEWER))
        ).json()
        assert detail["state"]["phase"] == "following_up"
        assert detail["temporal_ui_url"].endswith(f"/namespaces/default/workflows/{s.following_up}")
        assert (
            await http.get("/api/postmortems/postmortem-manual-nope", headers=as_role(VIEWER))
        ).status_code == 404

        # The pages show the same numbers.
        html = (await http.get(f"/?team={s.team}", headers=as_role(VIEWER))).text
        assert f'data-team="{s.team}">1</td>' in html and 'id="weekly-chart"' in html
        overdue_page = (await http.get(f"/overdue?team={s.team}", headers=as_role(VIEWER))).text
        assert f'data-postmortem="{s.following_up}" data-action="late"' in overdue_page
        detail_page = (
            await http.get(f"/postmortems/{s.following_up}", headers=as_role(VIEWER))
        ).text
        assert "Add canary stage to config pushes" in detail_page and "Temporal UI" in detail_page


async def test_roles_viewers_read_operators_act(api):
    base, s = api
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/api/overview")).status_code == 401
        assert (await http.get("/api/overview", headers=as_role("wrong"))).status_code == 401
        assert (await http.get("/")).status_code == 303  # to the sign-in page
        cancel = {"reason": "merged into another incident"}
        refused = await http.post(
            f"/api/postmortems/{s.scheduled}/cancel", json=cancel, headers=as_role(VIEWER)
        )
        assert refused.status_code == 403
        bad = await http.post(
            f"/api/postmortems/{s.scheduled}/cancel", json={"reason": ""}, headers=as_role(OPERATOR)
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "reason"]
        done = await http.post(
            f"/api/postmortems/{s.scheduled}/cancel", json=cancel, headers=as_role(OPERATOR)
        )
        assert done.status_code == 200, done.text
        again = await http.post(
            f"/api/postmortems/{s.scheduled}/cancel", json=cancel, headers=as_role(OPERATOR)
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"] in (
            "this post-mortem is already being cancelled",
            "this post-mortem is cancelled",
            "this post-mortem has ended (completed)",
        )
        # A browser signs in with a token once; a cookie carries it.
        login = await http.post("/login", data={"token": VIEWER, "next": "/overdue"})
        assert login.status_code == 303 and login.headers["location"] == "/overdue"
        assert (await http.get("/overdue")).status_code == 200
        assert (await http.post("/login", data={"token": "nope"})).status_code == 200


async def test_metrics_of_the_api(api):
    base, s = api
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.post("/webhooks/github", content=b"{}")).status_code == 403

        async def scrape() -> str:
            return (await http.get("/metrics", headers=as_role(VIEWER))).text

        text = await until(
            scrape, lambda t: f'postmortem_overdue_actions{{team="{s.team}"}} 1.0' in t
        )
        assert 'postmortem_webhook_requests_total{source="github",status="403"} 1.0' in text
        assert 'postmortem_open{phase="following_up"}' in text
        assert "postmortem_late_reviews " in text and 'postmortem_actions{state="done"}' in text
        assert 'postmortem_problems{kind="filing"}' in text


async def test_worker_metrics_count_actions_and_carry_the_sdk_metrics(dev_env, dev_settings):
    port = free_port()
    settings = dev_settings.model_copy(update={"worker_metrics_address": f"127.0.0.1:{port}"})
    team = sorted(load_routing(settings.teams_file).teams)[0]
    client = await engine.connect(settings, worker=True)
    async with build_worker(client, settings):
        now = datetime.now(UTC)
        inc = scenario.incident(now, team=team)
        started = await engine.start_postmortem(
            client, settings.task_queue, PostmortemInput(incident=inc)
        )
        handle = started.handle
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        actions = [a | {"team": team} for a in scenario.findings(now)["actions"]]
        findings = scenario.findings(now, actions=actions)
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(findings)),
        )
        async with httpx.AsyncClient(timeout=10) as http:

            async def scrape() -> str:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

            # Both actions' counters (they are filed one after the other).
            text = await until(scrape, lambda t: 'type="prevent"' in t and 'type="detect"' in t)
        created = [
            line for line in text.splitlines() if line.startswith("postmortem_actions_created")
        ]
        assert any(f'team="{team}"' in line and 'type="prevent"' in line for line in created)
        assert any('type="detect"' in line for line in created)
        assert "temporal_workflow_task_execution_latency" in text or "temporal_request" in text
