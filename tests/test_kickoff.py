"""A resolved incident starts its post-mortem by itself: incident webhooks over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.intake import EventKind
from domain.models import PostmortemState, Severity
from integrations import pagerduty
from integrations.timestamps import parse_timestamp
from tests.conftest import ROUTING
from tests.scenario import until
from tests.test_webhooks import free_port
from worker import api_server, build_worker
from workflows.postmortem import PostmortemWorkflow

SECRET, OLD_SECRET = "pd-secret", "pd-old-secret"


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
async def api(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> AsyncIterator[tuple[str, Settings, str]]:
    suffix = uuid.uuid4().hex[:6]
    teams = tmp_path / "teams.toml"
    teams.write_text(
        ROUTING
        + f"""
[sources.pagerduty]
service_teams = {{ "PSVC{suffix}" = "payments" }}
"""
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"tq-{suffix}",
        api_port=free_port(),
        webhook_secret_pagerduty=SecretStr(SECRET),
        webhook_secret_generic=SecretStr(SECRET),
    )
    server = api_server(settings, dev_env.client)
    async with build_worker(dev_env.client, settings):
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{settings.api_port}", settings, suffix
        server.should_exit = True
        await serving


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            url, content=body, headers={"content-type": "application/json", **headers}
        )


def generic_body(incident_id: str, **overrides: Any) -> bytes:
    body = {
        "incident_id": incident_id,
        "title": "Checkout errors",
        "severity": "SEV2",
        "team": "payments",
        "started_at": "2026-11-20T08:00:00Z",
        "resolved_at": "2026-11-20T10:00:00Z",
        "responders": ["sam@example.com"],
        "timeline": [
            {"at": "2026-11-20T08:05:00Z", "text": "Alert fired", "known": "Error rate above 5%"}
        ],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def pagerduty_body(incident_id: str, suffix: str, event_type: str = "incident.resolved") -> bytes:
    return json.dumps(
        {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-11-20T10:00:00.123Z",
                "agent": None,
                "client": None,
                "data": {
                    "id": incident_id,
                    "type": "incident",
                    "title": "Payment provider timeouts",
                    "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                    "number": 42,
                    "status": "resolved",
                    "created_at": "2026-11-20T08:00:00Z",
                    "service": {
                        "id": f"PSVC{suffix}",
                        "type": "service_reference",
                        "summary": "checkout",
                    },
                    "assignees": [{"id": "PU1", "type": "user_reference", "summary": "Sam"}],
                    "teams": [],
                    "priority": {"id": "PP1", "type": "priority_reference", "summary": "P1"},
                    "urgency": "high",
                    "resolve_reason": None,
                },
            }
        }
    ).encode()


async def test_generic_source_starts_one_post_mortem(api, dev_env: WorkflowEnvironment):
    base, _, _ = api
    incident = f"G-{uuid.uuid4().hex[:8]}"
    body = generic_body(incident)
    headers = {"x-signature-256": "sha256=" + sign(body, SECRET), "x-delivery-id": "d-1"}
    first = await post(f"{base}/webhooks/generic", body, headers)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "workflow_id": f"postmortem-generic-{incident}",
        "started": True,
        "skipped": None,
    }
    handle = dev_env.client.get_workflow_handle(f"postmortem-generic-{incident}")
    state: PostmortemState = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.incident.severity is Severity.SEV2 and state.incident.team == "payments"
    assert [e.text for e in state.timeline] == ["Alert fired"]
    # A vendor retry (same delivery id): nothing new. A new delivery: the same workflow.
    again = await post(f"{base}/webhooks/generic", body, headers)
    assert again.json()["skipped"] == "duplicate delivery"
    later = await post(f"{base}/webhooks/generic", body, headers | {"x-delivery-id": "d-2"})
    assert later.status_code == 200 and later.json()["started"] is False
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: len(s.timeline) == 2
    )
    assert state.timeline[-1].text == "Resolved again in generic"


async def test_pagerduty_resolved_with_rotated_secrets_and_mapping(
    api, dev_env: WorkflowEnvironment
):
    base, _, suffix = api
    incident = f"PD{uuid.uuid4().hex[:8].upper()}"
    body = pagerduty_body(incident, suffix)
    # During a rotation two v1 values arrive; either may be the one we hold.
    signature = f"v1={sign(body, OLD_SECRET)},v1={sign(body, SECRET)}"
    answer = await post(
        f"{base}/webhooks/pagerduty",
        body,
        {"x-pagerduty-signature": signature, "x-webhook-id": "w1"},
    )
    assert answer.status_code == 201, answer.text
    handle = dev_env.client.get_workflow_handle(f"postmortem-pagerduty-{incident}")
    state: PostmortemState = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.incident.severity is Severity.SEV1  # priority P1
    assert state.incident.team == "payments"  # its service
    assert state.incident.responders == ["Sam"]
    reopened = pagerduty_body(incident, suffix, "incident.reopened")
    answer = await post(
        f"{base}/webhooks/pagerduty",
        reopened,
        {"x-pagerduty-signature": f"v1={sign(reopened, SECRET)}"},
    )
    assert answer.status_code == 200, answer.text
    state = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: len(s.timeline) == 1
    )
    assert state.timeline[0].text == "Incident reopened in pagerduty"


async def test_refusals_start_nothing(api, dev_env: WorkflowEnvironment):
    base, _, suffix = api
    incident = f"R-{uuid.uuid4().hex[:8]}"
    body = generic_body(incident)
    url = f"{base}/webhooks/generic"
    bad = await post(url, body, {"x-signature-256": "sha256=" + sign(body, "wrong")})
    assert bad.status_code == 401 and bad.json() == {"error": "bad or missing X-Signature-256"}
    assert (await post(url, body, {})).status_code == 401
    pd = pagerduty_body("PX1", suffix)
    assert (
        await post(f"{base}/webhooks/pagerduty", pd, {"x-pagerduty-signature": "v1=00"})
    ).status_code == 401

    def signed(raw: bytes) -> dict[str, str]:
        return {"x-signature-256": "sha256=" + sign(raw, SECRET)}

    garbage = b"{not json"
    assert (await post(url, garbage, signed(garbage))).status_code == 400
    wrong_type = await httpx.AsyncClient().post(
        url, content=body, headers={"content-type": "text/plain", **signed(body)}
    )
    assert wrong_type.status_code == 415
    missing = generic_body(incident, team=None)
    answer = await post(url, missing, signed(missing))
    assert answer.status_code == 422 and "team" in answer.json()["error"]
    odd_time = generic_body(incident, resolved_at="yesterday")
    assert (await post(url, odd_time, signed(odd_time))).status_code == 422
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    assert (await post(url, huge, signed(huge))).status_code == 413
    optional = generic_body(incident, severity="SEV4")
    answer = await post(url, optional, signed(optional))
    assert answer.status_code == 202
    assert answer.json()["skipped"] == "SEV4 post-mortems are optional under the policy"
    unknown = generic_body(incident, team="logistics")
    answer = await post(url, unknown, signed(unknown))
    assert answer.status_code == 202 and "not in the routing file" in answer.json()["skipped"]
    other = pagerduty_body("PX2", suffix, "incident.acknowledged")
    answer = await post(
        f"{base}/webhooks/pagerduty", other, {"x-pagerduty-signature": f"v1={sign(other, SECRET)}"}
    )
    assert answer.status_code == 202 and "not followed" in answer.json()["skipped"]
    # None of these started anything.
    query = f"WorkflowType = 'PostmortemWorkflow' AND IncidentId = '{incident}'"
    assert [e async for e in dev_env.client.list_workflows(query)] == []


def test_timestamps_in_the_formats_tools_use():
    expected = datetime(2023, 7, 25, 13, 34, 49, tzinfo=UTC)
    assert parse_timestamp("2023-07-25 13:34:49 UTC") == expected  # FireHydrant style
    assert parse_timestamp("2023-07-25T13:34:49Z") == expected
    assert parse_timestamp("2023-07-25T15:34:49+02:00") == expected
    assert parse_timestamp(1690292089) == expected  # seconds
    assert parse_timestamp(1690292089000) == expected  # milliseconds
    assert parse_timestamp(1690292089000000000) == expected  # Opsgenie's nanoseconds
    assert parse_timestamp("2023-07-25T13:34:49.123456789Z").microsecond == 123456
    for bad in ("", "soon", None, True, "2023-13-45T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_pagerduty_parser_is_lenient_with_nulls():
    event = pagerduty.parse_webhook(
        {
            "event": {
                "event_type": "incident.resolved",
                "occurred_at": "2026-11-20T10:00:00Z",
                "data": {
                    "id": "P1",
                    "service": None,
                    "priority": None,
                    "teams": None,
                    "assignees": None,
                },
            }
        }
    )
    assert event.kind is EventKind.RESOLVED and event.service is None and event.priority is None
    with pytest.raises(ValueError, match=r"data\.id"):
        pagerduty.parse_webhook({"event": {"event_type": "incident.resolved", "data": {}}})
    assert (
        pagerduty.parse_webhook({"event": {"event_type": "service.updated"}}).kind
        is EventKind.OTHER
    )
