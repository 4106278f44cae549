"""Prometheus metrics of the API: webhook traffic as counters, and at each scrape the state
of the post-mortems from visibility counts (open by phase, overdue actions by team, late
reviews, actions by state). The worker serves its own (the SDK's and ours) on another port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

import engine
import readmodel
from api.deps import SettingsDep, Temporal, Viewer
from config import load_routing
from domain.models import ActionState, Phase, ProblemKind
from workflows import search_attributes as sa

WEBHOOK_SOURCES = frozenset(
    {
        *("pagerduty", "incidentio", "opsgenie", "alertmanager", "grafana-oncall", "generic"),
        *("github", "jira"),
    }
)


class Metrics:
    """The API's registry: counters of webhook traffic, gauges set at each scrape."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.webhooks = Counter(
            "postmortem_webhook_requests",
            "Webhook requests by source and HTTP status",
            ["source", "status"],
            registry=registry,
        )
        self.open_by_phase = Gauge(
            "postmortem_open", "Post-mortems not yet closed, by phase", ["phase"], registry=registry
        )
        self.overdue_by_team = Gauge(
            "postmortem_overdue_actions",
            "Overdue corrective actions by team",
            ["team"],
            registry=registry,
        )
        self.late_reviews = Gauge(
            "postmortem_late_reviews",
            "Post-mortems whose review window has closed without findings",
            registry=registry,
        )
        self.unrouted = Gauge(
            "postmortem_unrouted",
            "Running post-mortems still with the triage team (no mapping named their team)",
            registry=registry,
        )
        self.problems = Gauge(
            "postmortem_problems",
            "Running post-mortems with a problem of this kind (what the engine could not do)",
            ["kind"],
            registry=registry,
        )
        self.actions = Gauge(
            "postmortem_actions",
            "Corrective actions by state (visibility, retention applies)",
            ["state"],
            registry=registry,
        )


async def count_webhooks(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Middleware: each webhook request counted by source and status."""
    response = await call_next(request)
    path = request.url.path
    if path.startswith("/webhooks/"):
        # Only the routes that exist name a series: a scan of made-up paths adds none.
        source = path.removeprefix("/webhooks/").split("/", 1)[0]
        request.app.state.metrics.webhooks.labels(
            source=source if source in WEBHOOK_SOURCES else "other",
            status=str(response.status_code),
        ).inc()
    return response


router = APIRouter(include_in_schema=False)


@router.get("/metrics", response_class=Response)
async def metrics(
    request: Request, _: Viewer, settings: SettingsDep, temporal: Temporal
) -> Response:
    m: Metrics = request.app.state.metrics
    count = readmodel.Counter(temporal)
    now = datetime.now(UTC)
    routing = load_routing(settings.teams_file)
    teams = sorted(routing.teams)
    phases = [p for p in Phase if not p.is_terminal]
    # Unrouted: running post-mortems still with the triage team.
    running = "ExecutionStatus = 'Running'"
    triage = (
        count(f"{engine.postmortem_query(team=routing.triage_team)} AND {running}")
        if routing.triage_team
        else None
    )
    by_phase = count.many(engine.postmortem_query(phase=p) for p in phases)
    by_team = count.many(readmodel.actions_query(overdue=True, team=t) for t in teams)
    late = count(readmodel.late_reviews_query(now))
    states = list(ActionState)
    ended = readmodel.actions_query(running=False)
    by_state = count.many(
        f"{ended} AND {sa.ACTION_STATE.name} = {readmodel.quote(s.value)}" for s in states
    )
    kinds = list(ProblemKind)
    by_kind = count.many(
        f"{running} AND {sa.PROBLEM_KINDS.name} = {readmodel.quote(k.value)}" for k in kinds
    )
    for phase, n in zip(phases, await by_phase, strict=True):
        m.open_by_phase.labels(phase=phase.value).set(n)
    m.overdue_by_team.clear()
    for team, n in zip(teams, await by_team, strict=True):
        m.overdue_by_team.labels(team=team).set(n)
    m.late_reviews.set(await late)
    m.unrouted.set(await triage if triage is not None else 0)
    for state, n in zip(states, await by_state, strict=True):
        m.actions.labels(state=state.value).set(n)
    for kind, n in zip(kinds, await by_kind, strict=True):
        m.problems.labels(kind=kind.value).set(n)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
