"""A resolved incident starts its post-mortem by itself: incident webhooks over real HTTP."""

from __future__ import annotations

import base64
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
from domain.messages import CancelInput
from domain.models import PostmortemState, Severity
from integrations import pagerduty
from integrations.timestamps import parse_timestamp
from tests import scenario
from tests.conftest import ROUTING
from tests.scenario import until
from tests.test_webhooks import free_port
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

SECRET, OLD_SECRET = "pd-secret", "pd-old-secret"
SVIX_SECRET = "whsec_" + base64.b64encode(b"incident-io-signing-key").decode()


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
        webhook_secret_incidentio=SecretStr(SVIX_SECRET),
        webhook_secret_opsgenie=SecretStr(SECRET),
        webhook_token_alertmanager=SecretStr(SECRET),
        webhook_token_grafana=SecretStr(SECRET),
    )
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        yield base, settings, suffix


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
        "accepted": True,
        "started": True,
        "workflow_id": f"postmortem-generic-{incident}",
        "detail": "post-mortem started",
    }
    handle = dev_env.client.get_workflow_handle(f"postmortem-generic-{incident}")
    state: PostmortemState = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.incident.severity is Severity.SEV2 and state.incident.team == "payments"
    assert [e.text for e in state.timeline] == ["Alert fired"]

    # A vendor retry, or the same body under another delivery id (a replay): the same
    # workflow, and nothing new on it: Temporal's workflow id and the refused duplicate entry
    # make the effect happen once, with nothing remembered in the API.
    async def updates() -> int:
        events = (await handle.fetch_history()).events
        return sum(
            e.HasField("workflow_execution_update_accepted_event_attributes") for e in events
        )

    for delivery in ("d-1", "d-2"):
        again = await post(f"{base}/webhooks/generic", body, headers | {"x-delivery-id": delivery})
        assert again.status_code == 200, again.text
        assert again.json() == {
            "accepted": True,
            "started": False,
            "workflow_id": f"postmortem-generic-{incident}",
            "detail": "the post-mortem already exists",
        }
    state = await handle.query(PostmortemWorkflow.status)
    assert [e.text for e in state.timeline] == ["Alert fired"]
    assert await updates() == 0  # a refused update writes nothing to history
    # Resolved again later (after a reopening): on the timeline, once however often it comes.
    later = generic_body(incident, resolved_at="2026-11-20T12:00:00Z")
    for _ in range(3):
        answer = await post(
            f"{base}/webhooks/generic", later, {"x-signature-256": "sha256=" + sign(later, SECRET)}
        )
        assert answer.status_code == 200 and answer.json()["started"] is False
    state = await handle.query(PostmortemWorkflow.status)
    assert [e.text for e in state.timeline] == ["Alert fired", "Resolved again in generic"]
    # Closed (here: cancelled), the post-mortem is not started again, and a redelivery of
    # either resolution is answered as done, not a 500 (found by a review).
    await handle.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="duplicate"))
    await handle.result()
    for raw in (body, later):
        closed = await post(
            f"{base}/webhooks/generic", raw, {"x-signature-256": "sha256=" + sign(raw, SECRET)}
        )
        assert closed.status_code == 200, closed.text
        assert closed.json()["workflow_id"] == f"postmortem-generic-{incident}"


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
    assert bad.status_code == 401 and bad.json() == {
        "accepted": False,
        "started": False,
        "workflow_id": None,
        "detail": "bad or missing X-Signature-256",
    }
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
    assert answer.status_code == 422 and "team" in answer.json()["detail"]
    odd_time = generic_body(incident, resolved_at="yesterday")
    assert (await post(url, odd_time, signed(odd_time))).status_code == 422
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    assert (await post(url, huge, signed(huge))).status_code == 413
    optional = generic_body(f"{incident}-minor", severity="SEV4")
    answer = await post(url, optional, signed(optional))
    assert answer.status_code == 202 and answer.json()["accepted"] is True
    assert answer.json()["detail"].startswith("SEV4 post-mortems are optional under the policy")
    unknown = generic_body(incident, team="logistics")
    answer = await post(url, unknown, signed(unknown))
    # No such team and no triage team: the sender must retry (a 2xx would drop it).
    assert answer.status_code == 503 and "not in the routing file" in answer.json()["detail"]
    other = pagerduty_body("PX2", suffix, "incident.acknowledged")
    answer = await post(
        f"{base}/webhooks/pagerduty", other, {"x-pagerduty-signature": f"v1={sign(other, SECRET)}"}
    )
    assert answer.status_code == 202 and "not followed" in answer.json()["detail"]
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
    assert parse_timestamp(1690292089123456789).microsecond == 123456  # exact, not via float
    assert parse_timestamp("1690292089123456789").microsecond == 123456
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


def svix_headers(body: bytes, sent: int, msg_id: str = "msg_1") -> dict[str, str]:
    key = base64.b64decode(SVIX_SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{sent}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(sent),
        "webhook-signature": f"v1,bogus v1,{signature}",
    }


def incidentio_body(reference: str, new: str = "learning", old: str = "live") -> bytes:
    incident = {
        "id": "01HX",
        "reference": reference,
        "name": "Search is slow",
        "summary": "p99 at 9 s",
        "permalink": f"https://app.incident.io/incidents/{reference}",
        "mode": "standard",
        "visibility": "public",
        "severity": {"id": "s1", "name": "Major", "rank": 2},
        "incident_status": {"category": new, "name": new.title()},
        "custom_field_entries": [
            {
                "custom_field": {"id": "cf", "name": "Team"},
                "values": [{"value_option": {"value": "platform"}}],
            }
        ],
        "created_at": "2026-11-20T08:00:00Z",
        "updated_at": "2026-11-20T10:00:00Z",
    }
    event = "public_incident.incident_status_updated_v2"
    return json.dumps(
        {
            "event_type": event,
            event: {
                "incident": incident,
                "new_status": {"category": new},
                "previous_status": {"category": old},
            },
        }
    ).encode()


async def test_incidentio_svix_signed_and_replay_refused(api, dev_env: WorkflowEnvironment):
    base, _, _ = api
    reference = f"INC-{uuid.uuid4().hex[:6]}"
    body = incidentio_body(reference)
    now = int(datetime.now(UTC).timestamp())
    replayed = await post(f"{base}/webhooks/incidentio", body, svix_headers(body, now - 3600))
    assert replayed.status_code == 401 and "5 minutes" in replayed.json()["detail"]
    answer = await post(f"{base}/webhooks/incidentio", body, svix_headers(body, now))
    assert answer.status_code == 201, answer.text
    handle = dev_env.client.get_workflow_handle(f"postmortem-incidentio-{reference}")
    state: PostmortemState = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.incident.severity is Severity.SEV2 and state.incident.team == "platform"
    live = incidentio_body(reference, new="live", old="triage")
    ignored = await post(f"{base}/webhooks/incidentio", live, svix_headers(live, now, "msg_2"))
    assert ignored.status_code == 202 and "does not resolve it" in ignored.json()["detail"]


async def test_opsgenie_alertmanager_grafana(api, dev_env: WorkflowEnvironment):
    base, _, _ = api
    alias = uuid.uuid4().hex[:8]
    opsgenie = json.dumps(
        {
            "action": "Close",
            "alert": {
                "alertId": f"a-{alias}",
                "tinyId": f"T{alias}",
                "message": "Disk full on db-1",
                "tags": ["team:platform"],
                "priority": "P2",
                "createdAt": 1763625600000,
                "updatedAt": 1763632800123456789,
            },
            "source": {"name": "web", "type": "web"},
        }
    ).encode()
    basic = base64.b64encode(f"opsgenie:{SECRET}".encode()).decode()
    assert (
        await post(f"{base}/webhooks/opsgenie", opsgenie, {"x-webhook-secret": "nope"})
    ).status_code == 401
    answer = await post(f"{base}/webhooks/opsgenie", opsgenie, {"authorization": f"Basic {basic}"})
    assert answer.status_code == 201, answer.text
    handle = dev_env.client.get_workflow_handle(f"postmortem-opsgenie-T{alias}")
    state: PostmortemState = await until(
        lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
    )
    assert state.incident.team == "platform" and state.incident.severity is Severity.SEV2
    assert state.incident.resolved_at == datetime(2025, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    again = await post(f"{base}/webhooks/opsgenie", opsgenie, {"x-webhook-secret": SECRET})
    assert again.status_code == 200 and again.json()["started"] is False  # a retry: the same

    group = f'{{}}:{{alertname="HighErrorRate", run="{alias}"}}'
    alertmanager = json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "status": "resolved",
            "receiver": "postmortem",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {
                "alertname": "HighErrorRate",
                "severity": "critical",
                "team": "payments",
            },
            "commonAnnotations": {"summary": "Checkout error rate above 5%"},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": "resolved",
                    "labels": {},
                    "annotations": {},
                    "startsAt": "2026-11-20T08:00:00.123456789Z",
                    "endsAt": "2026-11-20T10:00:00Z",
                    "fingerprint": "f1",
                }
            ],
        }
    ).encode()
    assert (await post(f"{base}/webhooks/alertmanager", alertmanager, {})).status_code == 401
    answer = await post(
        f"{base}/webhooks/alertmanager", alertmanager, {"authorization": f"Bearer {SECRET}"}
    )
    assert answer.status_code == 201, answer.text
    state = await until(
        lambda: dev_env.client.get_workflow_handle(answer.json()["workflow_id"]).query(
            PostmortemWorkflow.status
        ),
        lambda s: s.phase.awaits_review,
    )
    assert (
        state.incident.severity is Severity.SEV1
        and state.incident.title == "Checkout error rate above 5%"
    )
    firing = alertmanager.replace(
        b'"status": "resolved", "receiver"', b'"status": "firing", "receiver"'
    )
    ignored = await post(
        f"{base}/webhooks/alertmanager", firing, {"authorization": f"Bearer {SECRET}"}
    )
    assert ignored.status_code == 202

    grafana = json.dumps(
        {
            "event": {"type": "resolve", "time": "2026-11-20T10:00:00Z"},
            "alert_group": {
                "id": f"G{alias}",
                "title": "Latency SLO burn",
                "state": "resolved",
                "created_at": "2026-11-20T09:00:00Z",
                "resolved_at": "2026-11-20T10:00:00Z",
                "labels": {"severity": "warning", "team": "platform"},
                "permalinks": {"web": "https://grafana.example/a/G1"},
            },
            "integration": {"id": "i1", "type": "alertmanager", "name": "prod"},
        }
    ).encode()
    answer = await post(f"{base}/webhooks/grafana-oncall", grafana, {"authorization": SECRET})
    assert answer.status_code == 202  # warning -> SEV3: optional under the default policy
    assert answer.json()["detail"].startswith("SEV3 post-mortems are optional under the policy")
    refused = await post(f"{base}/webhooks/grafana-oncall", grafana, {"authorization": "other"})
    assert refused.status_code == 401
