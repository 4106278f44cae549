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
from integrations.pagerduty import PagerDutyClient
from tests import scenario
from tests.conftest import ROUTING
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
