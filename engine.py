"""Client-side operations on the engine, shared by the CLI and the HTTP API."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from config import ConfigError, Settings, load_routing
from domain import limits
from domain.messages import PostmortemInput
from domain.models import Phase, PostmortemDocument, PostmortemState, Severity
from domain.public import PublicSummary
from integrations.errors import IntegrationError
from record.store import Record
from workflows import search_attributes as sa
from workflows.postmortem import PostmortemWorkflow

_runtimes: dict[str, Runtime] = {}


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics at `address` (one per address)."""
    if address not in _runtimes:
        _runtimes[address] = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
        )
    return _runtimes[address]


def connect_config(settings: Settings) -> dict[str, Any]:
    """How to reach Temporal, the SDK's standard way (temporalio.envconfig): the profile
    TEMPORAL_PROFILE names in the TOML file (TEMPORAL_CONFIG_FILE, or the default path), then
    every TEMPORAL_* variable the SDK defines (TLS on/off, CA, client certificate and key,
    server name, API key, gRPC metadata). Address, namespace and API key given to these
    Settings (also as PM_TEMPORAL_*) win; the address defaults to localhost:7233."""
    profile = ClientConfigProfile.load(profile=os.environ.get("TEMPORAL_PROFILE") or None)
    config: dict[str, Any] = dict(profile.to_client_connect_config())
    given = settings.model_fields_set
    if "temporal_address" in given or "target_host" not in config:
        config["target_host"] = settings.temporal_address
    if "temporal_namespace" in given or "namespace" not in config:
        config["namespace"] = settings.temporal_namespace
    if settings.temporal_api_key is not None:
        config["api_key"] = settings.temporal_api_key.get_secret_value()
    if "api_key" in config:
        if config.get("tls") is False:  # an API key travels only over TLS
            raise ConfigError("an API key is set with TLS off (TEMPORAL_TLS=false): refused")
        config.setdefault("tls", True)
    return config


async def connect(settings: Settings, *, worker: bool = False) -> Client:
    """A client; a worker's client serves metrics when PM_WORKER_METRICS_ADDRESS is set."""
    runtime = (
        metrics_runtime(settings.worker_metrics_address)
        if worker and settings.worker_metrics_address
        else None
    )
    return await Client.connect(
        **connect_config(settings),
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


HEALTH_WAIT = timedelta(seconds=3)


async def temporal_answers(client: Client) -> str | None:
    """None when Temporal answers its health check (within HEALTH_WAIT), else why not."""
    try:
        healthy = await client.service_client.check_health(timeout=HEALTH_WAIT)
    except Exception as exc:  # unreachable, refused, timed out: all mean not ready
        return f"Temporal unavailable: {type(exc).__name__}"
    return None if healthy else "Temporal unavailable: not serving"


@dataclass(frozen=True)
class Started:
    handle: WorkflowHandle[PostmortemWorkflow, Any]
    started: bool  # False: the incident's post-mortem already existed


async def start_postmortem(client: Client, task_queue: str, inp: PostmortemInput) -> Started:
    """Start the incident's post-mortem, or find the one already there (same workflow id).
    ValueError with every reason when the input is past a limit (domain/limits.py)."""
    problems = limits.start_problems(inp)
    if problems:
        raise ValueError("; ".join(problems))
    incident = inp.incident
    try:
        handle = await client.start_workflow(
            PostmortemWorkflow.run,
            inp,
            id=incident.workflow_id,
            task_queue=task_queue,
            # A webhook delivered twice, or a manual start after one, reaches the same workflow;
            # a closed post-mortem is not started again for the same incident.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # The resolution it started from: a redelivery of it is recognised without asking
            # the workflow (which needs a worker).
            memo={"title": incident.title, "resolved_at": incident.resolved_at.isoformat()},
            search_attributes=sa.initial(
                {
                    sa.PHASE: (Phase.OPTIONAL if inp.optional else Phase.DRAFTING).value,
                    sa.TEAM: incident.team,
                    sa.SEVERITY: incident.severity.value,
                    sa.INCIDENT_ID: incident.id,
                    sa.OPEN_ACTIONS: 0,
                    sa.OVERDUE_ACTIONS: 0,
                    sa.SERVICE: incident.service or None,
                }
            ),
        )
    except WorkflowAlreadyStartedError:
        # Closed already (done, cancelled, an optional one never begun): not started again.
        return Started(
            handle=client.get_workflow_handle_for(PostmortemWorkflow.run, incident.workflow_id),
            started=False,
        )

    # The SDK keeps the server's answer, whose `started` says whether this call created it.
    response = getattr(handle, "_start_workflow_response", None)
    return Started(handle=handle, started=bool(getattr(response, "started", True)))


# What a filter value may hold: visibility's SQL backends disagree on escapes, so none are needed.
FILTER_VALUE = re.compile(r"^[^'\"\\\x00-\x1f]{1,200}$")


class BadFilter(ValueError):
    """A filter value (a team name, say) that cannot be put in a visibility query."""


def quote(value: str) -> str:
    """A visibility query string literal. Values come from routing names and enums; anything
    with a quote, a backslash or a control character is refused rather than escaped."""
    if not FILTER_VALUE.match(value):
        raise BadFilter(
            f"{value[:60]!r} cannot be a filter: no quotes, backslashes or control characters"
        )
    return f"'{value}'"


def postmortem_query(
    *,
    phase: Phase | None = None,
    team: str | None = None,
    severity: Severity | None = None,
    overdue: bool = False,
) -> str:
    # A continued-as-new run is the same post-mortem: only its latest run counts.
    clauses = [
        f"WorkflowType = '{PostmortemWorkflow.__name__}'",
        "ExecutionStatus != 'ContinuedAsNew'",
    ]
    if phase is not None:
        clauses.append(f"{sa.PHASE.name} = {quote(phase.value)}")
    if team is not None:
        clauses.append(f"{sa.TEAM.name} = {quote(team)}")
    if severity is not None:
        clauses.append(f"{sa.SEVERITY.name} = {quote(severity.value)}")
    if overdue:
        clauses.append(f"{sa.OVERDUE_ACTIONS.name} > 0")
    return " AND ".join(clauses)


def problems_query(*, team: str | None = None) -> str:
    """Running post-mortems with a ticket a tracker refused."""
    clauses = [
        f"WorkflowType = '{PostmortemWorkflow.__name__}'",
        "ExecutionStatus = 'Running'",
        f"{sa.TRACKER_PROBLEMS.name} IS NOT NULL",
    ]
    if team is not None:
        clauses.append(f"{sa.TEAM.name} = {quote(team)}")
    return " AND ".join(clauses)


class PostmortemRow(BaseModel):
    """A post-mortem as visibility lists it (also the dashboard API's list item)."""

    workflow_id: str
    title: str
    phase: str
    team: str
    severity: str
    incident_id: str
    open_actions: int
    overdue_actions: int
    next_action_due: datetime | None
    status: str
    started_at: datetime | None
    problems: list[str]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class OverdueRow:
    workflow_id: str
    postmortem_id: str
    action_id: str
    title: str
    owner: str
    team: str
    severity: str
    incident_id: str
    due: datetime | None
    ticket: str
    ticket_url: str
    escalation_level: int = 0
    last_reminder_at: datetime | None = None

    def days_overdue(self, now: datetime) -> int:
        return max(0, (now - self.due).days) if self.due else 0

    def row(self, now: datetime) -> ActionRow:
        return ActionRow(
            postmortem_id=self.postmortem_id,
            action_id=self.action_id,
            title=self.title,
            owner=self.owner,
            team=self.team,
            severity=self.severity,
            incident_id=self.incident_id,
            due=self.due,
            days_overdue=self.days_overdue(now),
            ticket=TicketLink(key=self.ticket, url=self.ticket_url),
            escalation_level=self.escalation_level,
            last_reminder_at=self.last_reminder_at,
        )

    def as_json(self, now: datetime) -> dict[str, Any]:
        return self.row(now).model_dump(mode="json")


class TicketLink(BaseModel):
    key: str
    url: str


class ActionRow(BaseModel):
    """An open corrective action as the CLI's --json and the dashboard's API give it."""

    postmortem_id: str
    action_id: str
    title: str
    owner: str
    team: str
    severity: str
    incident_id: str
    due: datetime | None
    days_overdue: int
    ticket: TicketLink
    escalation_level: int
    last_reminder_at: datetime | None


# How long a page or a command waits for a workflow to answer (a query, an update): with no
# worker running it would wait for one.
WORKER_WAIT = timedelta(seconds=10)


async def postmortem_state(
    client: Client, workflow_id: str, record: Record | None = None
) -> PostmortemState | None:
    """The post-mortem's whole state, asked of its workflow (live, while Temporal keeps it);
    once Temporal has deleted it (retention), as the record last had it. None when neither
    knows it."""
    handle = client.get_workflow_handle_for(PostmortemWorkflow.run, workflow_id)
    try:
        # Bounded: with no worker running, a query would wait for one (the callers answer 503).
        state: PostmortemState = await handle.query(
            PostmortemWorkflow.status, rpc_timeout=WORKER_WAIT
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        if record is None:
            return None
        recorded = await asyncio.to_thread(record.get, workflow_id)
        return recorded.state if recorded is not None else None
    return state


async def list_postmortems(
    client: Client, query: str, limit: int | None = None
) -> AsyncIterator[PostmortemRow]:
    async for execution in client.list_workflows(query, limit=limit):
        yield postmortem_row(execution, await execution.memo())


def postmortem_row(execution: WorkflowExecution, memo: Mapping[str, Any]) -> PostmortemRow:
    attrs = execution.typed_search_attributes
    status = execution.status or WorkflowExecutionStatus.RUNNING
    return PostmortemRow(
        workflow_id=execution.id,
        title=str(memo.get("title", "")),
        phase=attrs.get(sa.PHASE) or "",
        team=attrs.get(sa.TEAM) or "",
        severity=attrs.get(sa.SEVERITY) or "",
        incident_id=attrs.get(sa.INCIDENT_ID) or "",
        open_actions=attrs.get(sa.OPEN_ACTIONS) or 0,
        overdue_actions=attrs.get(sa.OVERDUE_ACTIONS) or 0,
        next_action_due=attrs.get(sa.NEXT_ACTION_DUE),
        status=status.name.lower(),
        started_at=execution.start_time,
        problems=list(attrs.get(sa.TRACKER_PROBLEMS) or []),
    )


async def list_overdue_actions(
    client: Client, query: str, limit: int | None = None
) -> AsyncIterator[OverdueRow]:
    async for execution in client.list_workflows(query, limit=limit):
        attrs = execution.typed_search_attributes
        memo = await execution.memo()
        yield OverdueRow(
            workflow_id=execution.id,
            postmortem_id=str(memo.get("postmortem_id", "")),
            action_id=str(memo.get("action_id", "")),
            title=str(memo.get("title", "")),
            owner=str(memo.get("owner", "")),
            team=attrs.get(sa.TEAM) or "",
            severity=attrs.get(sa.SEVERITY) or "",
            incident_id=attrs.get(sa.INCIDENT_ID) or "",
            due=attrs.get(sa.NEXT_ACTION_DUE),
            ticket=str(memo.get("ticket", "")),
            ticket_url=str(memo.get("ticket_url", "")),
            escalation_level=attrs.get(sa.ESCALATION_LEVEL) or 0,
            last_reminder_at=_instant(memo.get("last_reminder_at")),
        )


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# -- the public version (CLI, API and page alike) ------------------------------------------


class PublicRefused(Exception):
    """The public version cannot be published now, and why (nothing was written)."""


def public_summary(settings: Settings, state: PostmortemDocument) -> PublicSummary:
    """The post-mortem's customer-facing summary, scrubbed with its team's public hosts and
    every secret the engine holds, with what the blameless check still finds in it."""
    from domain import public
    from integrations.lexicon import load_lexicon
    from worker import known_secrets  # the worker imports this module

    team = load_routing(settings.teams_file).team(state.incident.team)
    return public.public_version(
        state,
        load_lexicon(settings.blameless_language),
        public_hosts=team.public_hosts,
        secrets=known_secrets(settings),
    )


def publish_public(
    settings: Settings, state: PostmortemDocument
) -> tuple[PublicSummary, list[str]]:
    """Publishes the public version to the team's `public` targets: where it went. Refused
    (PublicRefused) before the findings, or while the blameless check finds anything in it;
    a target that fails raises IntegrationError."""
    from domain import public
    from integrations.publishing import Document, IndexEntry
    from worker import team_public_publishing

    summary = public_summary(settings, state)
    if state.incident.private:
        raise PublicRefused(
            f"{state.workflow_id} is a private incident: nothing of it is published"
        )
    if state.findings is None:
        raise PublicRefused(
            f"{state.workflow_id} has no findings yet: the public version says what changed"
        )
    if summary.notes:
        raise PublicRefused("not published: the blameless check found " + "; ".join(summary.notes))
    document = Document(
        entry=IndexEntry(
            name=f"{state.incident.resolved_at:%Y}/{public.document_name(state)}",
            title=summary.title,
            incident_id=state.incident.id,
            severity=state.incident.severity.value,
            team="",
            resolved_at=state.incident.resolved_at,
            phase="published",
            tags=[summary.service] if summary.service else [],
            summary=summary.impact[:300],
        ),
        markdown=public.render(summary),
        html=public.render(summary, html=True),
    )
    places, failed = [], []
    for target in team_public_publishing(settings, state.incident.team):
        try:  # every target is tried: one down does not keep the others from it
            places.append(target.publish(document))
        except IntegrationError as exc:
            failed.append(str(exc))
    if failed:
        written = f"; published to {', '.join(places)}" if places else ""
        raise PublishIncomplete("; ".join(failed) + written, places)
    return summary, places


class PublishIncomplete(IntegrationError):
    """A target (or all) could not be written; `places` are the ones that were."""

    def __init__(self, message: str, places: list[str]) -> None:
        super().__init__(message)
        self.places = places
