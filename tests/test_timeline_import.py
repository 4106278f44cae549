"""The incident's log imported from its source's API into the post-mortem's timeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from config import Settings
from domain.models import Phase, PostmortemState
from integrations.errors import SourceRejected, SourceUnavailable
from integrations.incidentio import IncidentIoClient
from integrations.pagerduty import PagerDutyClient
from tests import scenario
from tests.conftest import ROUTING
from tests.fakes.incidentio import IncidentIoEmulator, private_incident, update
from tests.fakes.pagerduty import PagerDutyEmulator, log_entry
from tests.fakes.server import Fault
from tests.scenario import until
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyEmulator]:
    emulator = PagerDutyEmulator().start()
    emulator.logs["PINC1"] = [
        log_entry("trigger", "2026-11-20T08:00:00Z", "Triggered through the API", "api"),
        log_entry("notify", "2026-11-20T08:00:30Z", "Notified Sam by phone"),
        log_entry("acknowledge", "2026-11-20T08:04:00Z", "Acknowledged by Sam"),
        log_entry("annotate", "2026-11-20T08:40:00Z", "Note: rolling back config 1234"),
        log_entry("resolve", "2026-11-20T10:00:00Z", "Resolved by Sam"),
    ]
    yield emulator
    emulator.stop()


def test_log_entries_are_read_across_pages(pagerduty: PagerDutyEmulator):
    client = PagerDutyClient(pagerduty.base_url, pagerduty.token)
    entries = client.log_entries("PINC1", limit=2)
    assert [e.text for e in entries] == [
        "Triggered through the API",
        "Notified Sam by phone",
        "Acknowledged by Sam",
        "Note: rolling back config 1234",
        "Resolved by Sam",
    ]
    assert entries[0].known == "via api" and entries[0].source == "pagerduty"
    assert pagerduty.count("GET", r".*/log_entries") == 3


def test_errors_are_typed(pagerduty: PagerDutyEmulator):
    with pytest.raises(SourceRejected, match="HTTP 401: Unauthorized"):
        PagerDutyClient(pagerduty.base_url, "wrong").log_entries("PINC1")
    with pytest.raises(SourceRejected, match="HTTP 404"):
        PagerDutyClient(pagerduty.base_url, pagerduty.token).log_entries("PNONE")
    pagerduty.inject(Fault(path=r".*/log_entries", status=429, retry_after=12))
    with pytest.raises(SourceUnavailable) as caught:
        PagerDutyClient(pagerduty.base_url, pagerduty.token).log_entries("PINC1")
    assert caught.value.retry_after == 12


async def test_a_pagerduty_post_mortem_starts_with_its_log(
    env: WorkflowEnvironment, tmp_path: Path, pagerduty: PagerDutyEmulator
):
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue="pd",
        pagerduty_api_url=pagerduty.base_url,
        pagerduty_api_token=SecretStr(pagerduty.token),
    )
    async with build_worker(env.client, settings):
        now = await env.get_current_time()
        incident = scenario.incident(now, "PINC1", source="pagerduty")
        handle = await scenario.start(env.client, "pd", incident)
        state: PostmortemState = await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: s.phase is Phase.REVIEW_SCHEDULED,
        )
        assert [e.text for e in state.timeline][:2] == [
            "Triggered through the API",
            "Notified Sam by phone",
        ]
        assert len(state.timeline) == 5 and state.problems == []
        # A source that refuses (no such incident there) is noted; the post-mortem goes on.
        other = await scenario.start(
            env.client, "pd", scenario.incident(now, "PNONE", source="pagerduty")
        )
        state = await until(
            lambda: other.query(PostmortemWorkflow.status),
            lambda s: s.phase is Phase.REVIEW_SCHEDULED,
        )
        assert state.timeline == [] and state.problems[0].startswith(
            "timeline not imported from pagerduty"
        )


@pytest.fixture
def incidentio() -> Iterator[IncidentIoEmulator]:
    emulator = IncidentIoEmulator().start()
    emulator.incidents["01PRIV"] = private_incident("01PRIV", "INC-77")
    emulator.updates["01PRIV"] = [
        update("2026-11-20T08:05:00Z", "Investigating", "Token found in a public build log"),
        update("2026-11-20T08:30:00Z", "Fixing", "Token revoked; rotating dependents"),
        update("2026-11-20T11:00:00Z", "Closed", "All dependents rotated"),
    ]
    yield emulator
    emulator.stop()


def test_incidentio_updates_across_pages_and_errors(incidentio: IncidentIoEmulator):
    client = IncidentIoClient(incidentio.base_url, incidentio.key)
    entries = client.log_entries("01PRIV")
    assert [e.text for e in entries] == [
        "Status: Investigating — Token found in a public build log",
        "Status: Fixing — Token revoked; rotating dependents",
        "Status: Closed — All dependents rotated",
    ]
    assert entries[0].known == "posted by Sam"
    assert incidentio.count("GET", r"/v2/incident_updates") == 2
    assert client.incident("01PRIV")["reference"] == "INC-77"
    with pytest.raises(SourceRejected, match="HTTP 401"):
        IncidentIoClient(incidentio.base_url, "wrong").incident("01PRIV")


async def test_private_incident_is_fetched_started_and_given_its_updates(
    tmp_path: Path, dev_env: WorkflowEnvironment, incidentio: IncidentIoEmulator
):
    import base64
    import hashlib
    import hmac
    import json
    import time

    import httpx

    from tests.test_webhooks import free_port

    secret = "whsec_" + base64.b64encode(b"k").decode()
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue="iio",
        api_port=free_port(),
        webhook_secret_incidentio=SecretStr(secret),
        incidentio_api_url=incidentio.base_url,
        incidentio_api_key=SecretStr(incidentio.key),
    )
    event = "private_incident.incident_status_updated_v2"
    body = json.dumps({"event_type": event, event: {"id": "01PRIV"}}).encode()
    sent = str(int(time.time()))
    signed = f"msg_p.{sent}.".encode() + body
    signature = base64.b64encode(hmac.new(b"k", signed, hashlib.sha256).digest()).decode()
    headers = {
        "webhook-id": "msg_p",
        "webhook-timestamp": sent,
        "webhook-signature": f"v1,{signature}",
        "content-type": "application/json",
    }
    async with (
        build_worker(dev_env.client, settings),
        scenario.serving_api(settings, dev_env.client) as base,
    ):
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{base}/webhooks/incidentio", content=body, headers=headers)
        assert answer.status_code == 201, answer.text
        assert answer.json()["workflow_id"] == "postmortem-incidentio-INC-77"
        handle = dev_env.client.get_workflow_handle("postmortem-incidentio-INC-77")
        state: PostmortemState = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
    assert state.incident.private and state.incident.team == "payments"
    assert state.incident.external_id == "01PRIV"
    assert [e.text.split(" — ")[0] for e in state.timeline] == [
        "Status: Investigating",
        "Status: Fixing",
        "Status: Closed",
    ]
