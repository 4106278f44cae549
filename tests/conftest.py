"""Shared fixtures: one time-skipping test server per session, a fresh queue and data per test."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config import Settings
from integrations.local import LocalTracker
from record.store import Record
from tests.postgres import PostgresServer
from worker import build_worker, register_search_attributes
from workflows import search_attributes

ROUTING = """
[policy.follow_up]
reminders_before = ["7d", "1d"]
escalate_after = "2d"
escalate_every = "7d"
poll_every = "6h"

[teams.payments]
project = "PAY"
manager = "dana.manager@example.com"
postmortem_owner = "owner@example.com"
timezone = "Europe/Berlin"

[teams.platform]
project = "PLAT"
manager = "lee.manager@example.com"
timezone = "America/New_York"
"""


# -- the clock ---------------------------------------------------------------------------
#
# PM_TEST_CLOCK runs the suite as if it were another moment: "sunday 23:30" (the next such
# moment in UTC), "leap-day 12:00" (the next 29 February) or an ISO instant in the future.
# This process's clock travels there (time-machine: datetime.now, time.time) and each
# time-skipping server skips forward to it, so the two agree. Tests that run a server on the
# machine's real clock (the dev server, `postmortem up`) cannot follow and are skipped.

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def shifted_moment(spec: str, now: datetime) -> datetime:
    """The moment PM_TEST_CLOCK names, always after `now` (a server's clock only moves on)."""
    spec = spec.strip().lower()
    named = re.fullmatch(r"(\w+|leap-day)\s+(\d{1,2}):(\d{2})", spec)
    if named and (named.group(1) in WEEKDAYS or named.group(1) == "leap-day"):
        hour, minute = int(named.group(2)), int(named.group(3))
        day = now.date() + timedelta(days=1)
        while not (
            day.weekday() == WEEKDAYS.index(named.group(1))
            if named.group(1) in WEEKDAYS
            else (day.month, day.day) == (2, 29)
        ):
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    moment = datetime.fromisoformat(spec.upper().replace("Z", "+00:00"))
    if moment.tzinfo is None or moment <= now:
        raise pytest.UsageError(f"PM_TEST_CLOCK={spec!r}: give a future instant with its offset")
    return moment


CLOCK_SPEC = os.environ.get("PM_TEST_CLOCK", "").strip()
_travel: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _travel
    config.addinivalue_line(
        "markers", "realclock: runs a server on the machine's clock; skipped under PM_TEST_CLOCK"
    )
    if CLOCK_SPEC:
        import time_machine

        _travel = time_machine.travel(shifted_moment(CLOCK_SPEC, datetime.now(UTC)), tick=True)
        _travel.start()


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests.fakes import contract

    try:
        contract.available()
    except contract.MissingDescriptions as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if _travel is not None:
        _travel.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from tests.fakes import contract

    lines = []
    if CLOCK_SPEC:
        lines.append(f"clock shifted ({CLOCK_SPEC}): now is {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if not contract.available():
        lines.append(f"contract checks OFF: no API descriptions under {contract.SPECS}")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CLOCK_SPEC:
        return
    real = pytest.mark.skip(reason="its server runs on the machine's clock, which is not shifted")
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("realclock") or fixtures & {"dev_env", "dev_settings"}:
            item.add_marker(real)


async def skip_to(environment: WorkflowEnvironment, moment: datetime) -> None:
    """Move a time-skipping server's clock forward to `moment` (never back)."""
    gap = moment - await environment.get_current_time()
    if gap > timedelta(0):
        await environment.sleep(gap)


def binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make test` installs it with the dev extras")
    return found


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test (0.1 s to start): its clock is global, so tests that
    skip months must not share it with another test's leftover workflows."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(environment.client, "default")
    if CLOCK_SPEC:
        await skip_to(environment, datetime.now(UTC))
    yield environment
    await environment.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    return Settings(data_dir=tmp_path / "data", teams_file=teams, task_queue=f"tq-{uuid.uuid4()}")


@pytest.fixture
def tracker(settings: Settings) -> LocalTracker:
    return LocalTracker(settings.tracker_db, {"payments": "PAY", "platform": "PLAT"})


@pytest.fixture
async def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    async with build_worker(client, settings) as running:
        yield running


DEV_SERVER_ARGS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (the time-skipping one has no visibility queries)."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=DEV_SERVER_ARGS,
        # The SDK waits 5 s by default: a cold CI machine once took longer, and every test
        # on the dev server failed at setup.
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    yield environment
    await environment.shutdown()


@pytest.fixture
def dev_settings(tmp_path: Path, dev_env: WorkflowEnvironment) -> Settings:
    """Settings whose team names are unique to the test, so visibility queries by team see
    only this test's post-mortems on the shared dev server."""
    suffix = uuid.uuid4().hex[:8]
    teams = tmp_path / "teams.toml"
    teams.write_text(
        ROUTING.replace("[teams.payments]", f"[teams.payments-{suffix}]").replace(
            "[teams.platform]", f"[teams.platform-{suffix}]"
        )
    )
    return Settings(
        data_dir=tmp_path / "data",
        teams_file=teams,
        task_queue=f"tq-{uuid.uuid4()}",
        temporal_address=dev_env.client.service_client.config.target_host,
    )


@pytest.fixture
async def dev_worker(dev_env: WorkflowEnvironment, dev_settings: Settings) -> AsyncIterator[Worker]:
    async with build_worker(dev_env.client, dev_settings) as running:
        yield running


@pytest.fixture
def emulators() -> Iterator[tuple[Any, Any]]:
    """A Jira and a GitHub emulator whose keys are unique to the test: follow-ups of other
    tests live on the same dev server."""
    from tests.fakes.github import GitHubEmulator
    from tests.fakes.jira import JiraEmulator

    tag = uuid.uuid4().hex[:6].upper()
    jira = JiraEmulator(project=f"W{tag}").start()
    github = GitHubEmulator(repo=f"acme/platform-{tag.lower()}").start()
    yield jira, github
    jira.stop()
    github.stop()


class Inbox:
    """What the SMTP server received: the envelope's recipients and the parsed message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox(_free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the record on both databases (tests/test_record*.py) ------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except FileNotFoundError as missing:
        if os.environ.get("CI"):  # CI must run them: `make test` installs PostgreSQL
            raise
        pytest.skip(str(missing))
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def record_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def record(record_url: str) -> Iterator[Record]:
    store = Record(record_url)
    store.upgrade()
    yield store
    store.dispose()
