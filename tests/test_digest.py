"""The digest: schedules made idempotently at worker start, and a triggered digest delivered
to a tracker issue, by email (aiosmtpd) and to a Slack-compatible webhook (a local receiver),
on the real dev server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import ScheduleActionStartWorkflow

from config import Settings
from integrations.local import LocalTracker
from integrations.tracker import TicketRequest
from record import reads
from record.store import Record
from tests.conftest import Inbox
from tests.fakes.server import EmulatorServer, Request, Response
from tests.scenario import until
from tests.test_dashboard import seed
from worker import build_worker, digest_schedules, ensure_digest_schedules


class Receiver(EmulatorServer):
    """A Slack-compatible incoming webhook: keeps what was posted."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[dict[str, Any]] = []
        self.route("POST", r"/hooks/T1/B2/secret", self._post)

    def _post(self, request: Request) -> Response:
        self.posted.append(request.json())
        return Response(200, "ok")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def with_digest(settings: Settings, team: str, table: str) -> None:
    text = settings.teams_file.read_text()
    settings.teams_file.write_text(text + f"\n[teams.{team}.digest]\n{table}\n")


async def test_a_weekly_digest_reaches_every_channel(
    dev_env,
    dev_settings: Settings,
    inbox: Inbox,
    receiver: Receiver,
    monkeypatch,
):
    settings = dev_settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox.port,
            "smtp_security": "none",
            "public_url": "https://pm.example.com",
        }
    )
    monkeypatch.setenv("PM_TEST_DIGEST_WEBHOOK", f"{receiver.base_url}/hooks/T1/B2/secret")
    client = dev_env.client
    async with build_worker(client, settings):
        seeded = await seed(client, settings)
        team = seeded.team
        issue = LocalTracker(settings.tracker_db, {team: "PAY"}).create_ticket(
            TicketRequest(
                idempotency_key="digest", team=team, title="Post-mortem follow-up", body="Digests."
            )
        )
        with_digest(
            settings,
            team,
            f'tracker_issue = "{issue.key}"\nemail = ["dana.manager@example.com"]\n'
            'webhook_url_env = "PM_TEST_DIGEST_WEBHOOK"\nweekly = "FRI 16:30"',
        )

        # The digest reads the record, which follows the workflows a moment later.
        store = Record(settings.record_database)
        await until(
            lambda: asyncio.to_thread(reads.ranked_actions, store, team=team),
            lambda found: found[0] == 1,
        )
        store.dispose()
        ids = await ensure_digest_schedules(client, settings)
        assert ids == [f"digest-sev1-daily-{team}", f"digest-weekly-{team}"]
        assert await ensure_digest_schedules(client, settings) == ids  # idempotent
        weekly = client.get_schedule_handle(f"digest-weekly-{team}")
        described = await weekly.describe()
        (calendar,) = described.schedule.spec.calendars
        assert described.schedule.spec.time_zone_name == "Europe/Berlin"
        assert (calendar.day_of_week[0].start, calendar.hour[0].start) == (5, 16)
        assert calendar.minute[0].start == 30
        assert isinstance(described.schedule.action, ScheduleActionStartWorkflow)

        await weekly.trigger()
        posted = await until(lambda: _posted(receiver), lambda p: len(p) == 1, seconds=60)
        text = posted[0]["text"]
        assert text.startswith(f"{team}: weekly post-mortem digest")
        assert "1 corrective action(s) overdue" in text
        assert "Add canary stage to config pushes. Owner alex@example.com." in text
        assert "1 review(s) past their window:" in text
        assert f"Dashboard: https://pm.example.com/overdue?team={team}" in text
        # (The seeded post-mortems' review invitations are in the inbox too.)
        digests = await until(lambda: _digests(inbox), lambda m: len(m) == 1)
        (to, message) = digests[0]
        assert to == ["dana.manager@example.com"]
        body = message.get_body(("plain",))
        assert body is not None and "1 corrective action(s) overdue" in body.get_content()
        comments = LocalTracker(settings.tracker_db, {team: "PAY"}).get(issue.key)
        assert comments is not None and comments.comments[-1].body == text

        # The SEV1 alert has nothing to say (the overdue action is SEV2): it stays quiet.
        daily = client.get_schedule_handle(f"digest-sev1-daily-{team}")
        await daily.trigger()
        runs = await until(
            lambda: _runs(client, f"digest-sev1-daily-{team}"), lambda r: len(r) == 1
        )
        assert await client.get_workflow_handle(runs[0]).result() == "nothing to report"
        assert len(receiver.posted) == 1

        # A team without a digest any more loses its schedules.
        settings.teams_file.write_text(
            settings.teams_file.read_text().split(f"\n[teams.{team}.digest]")[0]
        )
        assert await ensure_digest_schedules(client, settings) == []
        assert not [s async for s in await client.list_schedules() if team in s.id]


def test_digest_settings_are_validated(dev_settings: Settings):
    from config import ConfigError, load_routing

    team = sorted(load_routing(dev_settings.teams_file).teams)[0]
    with_digest(dev_settings, team, 'weekly = "Monday at nine"')
    with pytest.raises(ConfigError, match=r"digest\.weekly"):
        digest_schedules(dev_settings)


async def _posted(receiver: Receiver) -> list[dict[str, Any]]:
    return list(receiver.posted)


async def _digests(inbox: Inbox) -> list[Any]:
    return [m for m in inbox.messages if "post-mortem digest" in str(m[1]["Subject"])]


async def _runs(client: Any, prefix: str) -> list[str]:
    query = f"WorkflowId STARTS_WITH '{prefix}'"
    return [
        w.id
        async for w in client.list_workflows(query)
        if w.status and w.status.name == "COMPLETED"
    ]
