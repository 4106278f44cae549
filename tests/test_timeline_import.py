"""The incident's log imported from its source's API into the post-mortem's timeline."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.incidents import ImportTimelineInput, IncidentSourceActivities
from config import Settings
from domain import limits
from domain.models import Phase, PostmortemState
from integrations.errors import SourceRejected, SourceUnavailable
from integrations.incidentio import IncidentIoClient
from integrations.pagerduty import PagerDutyClient
from integrations.source_api import LogInterrupted
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
        assert state.timeline == [] and state.problems[0].message.startswith(
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


def test_a_429_mid_log_resumes_from_the_page_it_stopped_at(pagerduty: PagerDutyEmulator):
    client = PagerDutyClient(pagerduty.base_url, pagerduty.token)
    pagerduty.inject(Fault(path=r".*/log_entries", status=429, retry_after=3, skip=1))
    with pytest.raises(LogInterrupted) as caught:
        client.log_entries("PINC1", limit=2)
    progress = caught.value.progress
    assert progress.cursor == "2" and len(progress.entries) == 2
    # The next try, through the activity's heartbeat details, reads from offset 2 on.
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[progress.model_dump(mode="json")])
    activities = IncidentSourceActivities(lambda source: client)
    entries = env.run(
        activities.import_timeline, ImportTimelineInput(source="pagerduty", incident_id="PINC1")
    )
    assert len(entries) == 5 and entries[-1].text == "Resolved by Sam"
    assert pagerduty.pages_read == [0, 2, 4, 6][: len(pagerduty.pages_read)]
    assert pagerduty.pages_read.count(0) == 1  # the first page was not read again


def test_a_429_leaves_its_progress_in_the_heartbeat(pagerduty: PagerDutyEmulator):
    pagerduty.logs["PLONG"] = long_log(250)
    client = PagerDutyClient(pagerduty.base_url, pagerduty.token)
    pagerduty.inject(Fault(path=r".*/log_entries", status=429, skip=1))
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    activities = IncidentSourceActivities(lambda source: client)
    with pytest.raises(ApplicationError, match="HTTP 429"):
        env.run(
            activities.import_timeline,
            ImportTimelineInput(source="pagerduty", incident_id="PLONG"),
        )
    assert beats[-1]["cursor"] == "100" and len(beats[-1]["entries"]) == 100


def long_log(count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, 20, 8, tzinfo=UTC)
    return [
        log_entry("annotate", (start + timedelta(seconds=n)).isoformat(), f"note {n}")
        for n in range(count)
    ]


def test_a_huge_log_is_clipped_with_a_note_and_never_pages_past_10000(
    pagerduty: PagerDutyEmulator, monkeypatch: pytest.MonkeyPatch
):
    pagerduty.logs["PHUGE"] = long_log(12_000)
    client = PagerDutyClient(pagerduty.base_url, pagerduty.token)
    entries = client.log_entries("PHUGE")
    assert len(entries) == limits.IMPORTED_ENTRIES + 1
    assert entries[-1].text == (
        "The pagerduty log was imported in part: 1,000 of 12,000 entries (an import takes "
        "at most 1,000 entries and 600 kB); the rest is in pagerduty."
    )
    assert pagerduty.pages_read == list(range(0, 1_000, 100))
    # Were the import to take more, the client stops at PagerDuty's cap, not at a 400.
    monkeypatch.setattr(limits, "IMPORTED_ENTRIES", 50_000)
    monkeypatch.setattr(limits, "TIMELINE_BYTES", 10**8)
    pagerduty.pages_read.clear()
    entries = client.log_entries("PHUGE")
    assert len(entries) == 10_001 and "10,000 of 12,000 entries" in entries[-1].text
    assert max(pagerduty.pages_read) == 9_900


def test_a_log_of_long_entries_is_clipped_by_its_size_too(pagerduty: PagerDutyEmulator):
    """Entries at their longest, in characters of several bytes: the import stops at the
    timeline's size (so its result and heartbeat stay far under Temporal's payload limit),
    with the note of what was left out, whatever the count."""
    pagerduty.logs["PLONG"] = [
        log_entry("annotate", f"2026-11-20T08:{n // 60:02d}:{n % 60:02d}Z", "é" * 30_000)
        for n in range(300)
    ]
    entries = PagerDutyClient(pagerduty.base_url, pagerduty.token).log_entries("PLONG")
    *kept, note = entries
    assert 0 < len(kept) < 300 and all(len(e.text) == limits.TEXT for e in kept)
    assert limits.json_bytes(kept) <= limits.TIMELINE_BYTES
    assert f"{len(kept)} of 300 entries" in note.text and "600 kB" in note.text
    assert pagerduty.pages_read == [0]  # the first page filled it: nothing more is read


async def test_after_a_429_the_import_goes_on_from_its_page_on_a_real_server(
    tmp_path: Path, dev_env: WorkflowEnvironment, pagerduty: PagerDutyEmulator
):
    """On the dev server (it keeps an activity's heartbeat details through a failure): the
    second page answers 429 once; the retry reads from that page, not from the first."""
    pagerduty.logs["PLONG"] = long_log(250)
    pagerduty.inject(Fault(path=r".*/log_entries", status=429, retry_after=1, skip=1))
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    queue = f"pd-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=queue,
        pagerduty_api_url=pagerduty.base_url,
        pagerduty_api_token=SecretStr(pagerduty.token),
    )
    async with build_worker(dev_env.client, settings):
        now = datetime.now(UTC)
        incident = scenario.incident(
            now, f"PLONG{uuid.uuid4().hex[:6].upper()}", source="pagerduty"
        )
        incident = incident.model_copy(update={"external_id": "PLONG"})
        handle = await scenario.start(dev_env.client, queue, incident)
        state: PostmortemState = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
    assert len(state.timeline) == 250 and state.problems == []
    assert pagerduty.pages_read == [0, 100, 200]  # the 429 came at 100; page 0 read once
    assert pagerduty.count("GET", r".*/log_entries") == 4
