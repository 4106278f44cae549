"""Temporal unreachable mid-delivery: every webhook answers 503 (the sender retries), never a
2xx that drops the incident; once Temporal is back, the retried delivery starts it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests import scenario
from tests.conftest import DEV_SERVER_ARGS, ROUTING, binary
from tests.test_webhooks import free_port
from workflows import search_attributes

SECRET = "s-generic"


def delivery(incident: str) -> tuple[bytes, dict[str, str]]:
    body = {
        "incident_id": incident,
        "title": "Checkout errors",
        "severity": "SEV2",
        "team": "payments",
        "resolved_at": "2026-11-20T10:00:00Z",
    }
    raw = json.dumps(body).encode()
    mac = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"content-type": "application/json", "x-signature-256": f"sha256={mac}"}


async def start_temporal(port: int, db: Path) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=binary("temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[*DEV_SERVER_ARGS, "--db-filename", str(db)],
    )


async def test_temporal_stopped_mid_delivery_is_a_503_then_the_retry_starts_it(tmp_path: Path):
    port, db = free_port(), tmp_path / "temporal.sqlite3"
    environment = await start_temporal(port, db)
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"down-{uuid.uuid4()}",
        api_port=free_port(),
        webhook_secret_generic=SecretStr(SECRET),
        webhook_secret_github=SecretStr(SECRET),
        webhook_secret_jira=SecretStr(SECRET),
        webhook_secret_pagerduty=SecretStr(SECRET),
    )
    incident = f"D-{uuid.uuid4().hex[:8]}"
    async with (
        scenario.serving_api(settings, environment.client) as base,
        httpx.AsyncClient(timeout=60) as http,
    ):
        body, headers = delivery(f"{incident}-up")
        assert (
            await http.post(f"{base}/webhooks/generic", content=body, headers=headers)
        ).status_code == 201
        await environment.shutdown()  # Temporal goes away; the API stays up
        started = time.monotonic()
        body, headers = delivery(incident)
        down = await http.post(f"{base}/webhooks/generic", content=body, headers=headers)
        assert down.status_code == 503, down.text
        assert "Temporal unavailable" in down.json()["detail"]
        assert time.monotonic() - started < 60
        # A reopening, a GitHub close, a Jira change: 503 each, never "nothing to do".
        reopened = json.dumps(
            {
                "event": {
                    "id": "e2",
                    "event_type": "incident.reopened",
                    "occurred_at": "2026-11-20T11:00:00Z",
                    "data": {"id": f"{incident}-up"},
                }
            }
        ).encode()
        github = json.dumps(
            {
                "action": "closed",
                "issue": {"number": 1, "state": "closed", "state_reason": "completed"},
                "repository": {"full_name": "acme/x"},
            }
        ).encode()
        jira = json.dumps(
            {
                "webhookEvent": "jira:issue_updated",
                "issue": {"key": "PAY-1", "fields": {}},
                "changelog": {"items": [{"field": "status"}]},
            }
        ).encode()
        for path, raw, header, prefix, extra in [
            ("pagerduty", reopened, "x-pagerduty-signature", "v1=", {}),
            ("github", github, "x-hub-signature-256", "sha256=", {"x-github-event": "issues"}),
            ("jira", jira, "x-hub-signature", "sha256=", {}),
        ]:
            mac = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            answer = await http.post(
                f"{base}/webhooks/{path}",
                content=raw,
                headers={"content-type": "application/json", header: prefix + mac, **extra},
            )
            assert answer.status_code == 503, (path, answer.text)

        # Temporal is back (the same database): the sender's retry starts the post-mortem.
        environment = await start_temporal(port, db)
        try:
            retried = await http.post(f"{base}/webhooks/generic", content=body, headers=headers)
            assert retried.status_code == 201, retried.text
            assert retried.json()["workflow_id"] == f"postmortem-generic-{incident}"
        finally:
            await environment.shutdown()


async def test_with_no_worker_a_redelivery_is_answered_and_news_is_retried(
    tmp_path: Path, dev_env: WorkflowEnvironment
):
    """Temporal up, every worker down (an outage): a vendor's retry of a delivery is answered
    at once from the workflow's memo; news that the workflow must take (resolved again at
    another time) is a 503 within the vendor's deadline, not a request that hangs."""
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"no-worker-{uuid.uuid4().hex[:8]}",  # nobody polls it
        api_port=free_port(),
        webhook_secret_generic=SecretStr(SECRET),
    )
    incident = f"NW-{uuid.uuid4().hex[:8]}"
    body, headers = delivery(incident)
    async with (
        scenario.serving_api(settings, dev_env.client) as base,
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):
        first = await http.post("/webhooks/generic", content=body, headers=headers)
        assert first.status_code == 201, first.text
        handle = dev_env.client.get_workflow_handle(first.json()["workflow_id"])
        events = len((await handle.fetch_history()).events)
        for _ in range(3):
            again = await http.post("/webhooks/generic", content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["workflow_id"] == handle.id
        later = json.loads(body) | {"resolved_at": "2026-11-21T10:00:00Z"}
        raw = json.dumps(later).encode()
        mac = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        news = await http.post(
            "/webhooks/generic", content=raw, headers=headers | {"x-signature-256": f"sha256={mac}"}
        )
        assert news.status_code == 503, news.text
        assert "not answering" in news.json()["detail"]
        # An operator's action waits a bounded time for the workflow, then says so.
        cancel = await http.post(f"/api/postmortems/{handle.id}/cancel", json={"reason": "x"})
        assert cancel.status_code == 503 and "not answering" in cancel.json()["error"]
        assert len((await handle.fetch_history()).events) == events  # nothing written meanwhile
        await handle.terminate("test over")
