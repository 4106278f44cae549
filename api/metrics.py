"""Prometheus metrics of the API: webhook traffic as counters, and at each scrape the state
of the post-mortems from the record (open by phase, overdue actions by team, late reviews,
actions by state, problems by kind). The worker serves its own (the SDK's and ours) on
another port."""

from __future__ import annotations

import asyncio
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

from api.deps import RecordDep, SettingsDep, Viewer
from config import load_routing
from record import reads

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
            "Corrective actions by state (the record: every post-mortem ever run)",
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
    request: Request, _: Viewer, settings: SettingsDep, record: RecordDep
) -> Response:
    m: Metrics = request.app.state.metrics
    routing = load_routing(settings.teams_file)
    g = await asyncio.to_thread(
        reads.gauges, record, datetime.now(UTC), sorted(routing.teams), routing.triage_team
    )
    for phase, n in g.open_by_phase.items():
        m.open_by_phase.labels(phase=phase).set(n)
    m.overdue_by_team.clear()
    for team, n in g.overdue_by_team.items():
        m.overdue_by_team.labels(team=team).set(n)
    m.late_reviews.set(g.late_reviews)
    m.unrouted.set(g.unrouted)
    for state, n in g.actions_by_state.items():
        m.actions.labels(state=state).set(n)
    for kind, n in g.problems_by_kind.items():
        m.problems.labels(kind=kind).set(n)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
