"""Incident webhooks: a resolved incident starts its post-mortem, within the vendor's deadline.

Each endpoint authenticates (a `signed_body` dependency), reads the vendor's body into an
`IncidentEvent`, and hands it to `kickoff`, which acts with Temporal's own idempotency and
answers a `WebhookAnswer`. Everything slow happens in activities."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import engine
from api import bodies
from api.answers import Refused, WebhookAnswer, webhook_answer, webhook_responses
from api.deps import SettingsDep, Temporal, signed_body
from api.signatures import pagerduty_signature_ok, sha256_signature_ok, shared_secret_ok
from config import ConfigError, Routing, Settings, load_routing
from domain.findings import describe_validation_error
from domain.intake import (
    EventKind,
    IncidentEvent,
    SourceMapping,
    check_times,
    map_event,
    normalise,
)
from domain.messages import ALREADY_RECORDED, PostmortemInput
from domain.models import Incident, TimelineEntry, postmortem_workflow_id
from integrations import alerting, incidentio, pagerduty
from integrations.errors import SourceRejected, SourceUnavailable
from integrations.generic import GenericIncident, to_event
from integrations.incidentio import svix_signature_ok
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.api.incidents")

router = APIRouter(prefix="/webhooks", tags=["incident webhooks"])

# How long a delivery waits for a post-mortem to take a timeline entry: well inside the
# vendors' deadlines (PagerDuty: 5 s). Past it the entry was not recorded: 503, retry.
UPDATE_WAIT = timedelta(seconds=4)

Parse = Callable[[dict[str, Any], SourceMapping], IncidentEvent]


def _documented(signature: str) -> dict[str, Any]:
    extra = {
        201: "Post-mortem started",
        415: "Not application/json",
        422: "Fields missing or wrong",
    }
    return {"response_model": WebhookAnswer, "responses": webhook_responses(signature, extra)}


# -- authentication, one dependency per source ----------------------------------------------


def _unless(genuine: bool, refusal: str) -> str | None:
    return None if genuine else refusal


PagerDutyBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "pagerduty",
            "webhook_secret_pagerduty",
            lambda secret, body, request: _unless(
                pagerduty_signature_ok(secret, body, request.headers.get("x-pagerduty-signature")),
                "bad or missing X-PagerDuty-Signature",
            ),
        )
    ),
]
IncidentIoBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "incidentio",
            "webhook_secret_incidentio",
            lambda secret, body, request: svix_signature_ok(
                secret,
                request.headers.get("webhook-id", ""),
                request.headers.get("webhook-timestamp", ""),
                body,
                request.headers.get("webhook-signature", ""),
                time.time(),
            ),
        )
    ),
]
OpsgenieBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "opsgenie",
            "webhook_secret_opsgenie",
            lambda secret, body, request: _unless(
                shared_secret_ok(secret, request, header="x-webhook-secret"),
                "bad or missing X-Webhook-Secret (or basic auth password)",
            ),
        )
    ),
]
AlertmanagerBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "alertmanager",
            "webhook_token_alertmanager",
            lambda secret, body, request: _unless(
                shared_secret_ok(secret, request),
                "bad or missing bearer token (or basic auth password)",
            ),
        )
    ),
]
GrafanaBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "grafana-oncall",
            "webhook_token_grafana",
            lambda secret, body, request: _unless(
                shared_secret_ok(secret, request), "bad or missing Authorization header"
            ),
        )
    ),
]
GenericBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "generic",
            "webhook_secret_generic",
            lambda secret, body, request: _unless(
                sha256_signature_ok(secret, body, request.headers.get("x-signature-256")),
                "bad or missing X-Signature-256",
            ),
        )
    ),
]


# -- the endpoints ---------------------------------------------------------------------------


@router.post("/pagerduty", **_documented("X-PagerDuty-Signature"))
async def pagerduty_webhook(
    request: Request, body: PagerDutyBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """PagerDuty v3: `incident.resolved` starts the post-mortem, `incident.reopened` is
    recorded on its timeline. Any `v1=` of X-PagerDuty-Signature may match (rotation)."""
    event = _read(request, body, settings, "pagerduty", lambda p, m: pagerduty.parse_webhook(p))
    return await kickoff(event, settings, temporal)


@router.post("/incidentio", **_documented("webhook-signature"))
async def incidentio_webhook(
    request: Request, body: IncidentIoBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """incident.io (Svix-signed): a status update into the `learning` or `closed` category
    starts the post-mortem; back to `live` is recorded as a reopening. A private incident's
    details are fetched through the API."""
    event = _read(
        request,
        body,
        settings,
        "incidentio",
        lambda p, m: incidentio.parse_webhook(p, m.team_label, m.service_label),
    )
    if event.detail == incidentio.PRIVATE_STUB and settings.incidentio_api_key:
        event = await _fetch_private(event, settings)
    return await kickoff(event, settings, temporal)


@router.post("/opsgenie", **_documented("X-Webhook-Secret"))
async def opsgenie_webhook(
    request: Request, body: OpsgenieBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """Opsgenie: `action == "Close"` starts the post-mortem. Opsgenie cannot sign: the shared
    secret comes in X-Webhook-Secret or as the basic-auth password."""
    event = _read(request, body, settings, "opsgenie", lambda p, m: alerting.opsgenie(p))
    return await kickoff(event, settings, temporal)


@router.post("/alertmanager", **_documented("bearer token"))
async def alertmanager_webhook(
    request: Request, body: AlertmanagerBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """Prometheus Alertmanager: a group whose `status` is `resolved` starts the post-mortem.
    Authenticated by the receiver's bearer token or basic auth."""
    event = _read(
        request,
        body,
        settings,
        "alertmanager",
        lambda p, m: alerting.alertmanager(p, m.team_label, m.service_label),
    )
    return await kickoff(event, settings, temporal)


@router.post("/grafana-oncall", **_documented("Authorization header"))
async def grafana_oncall_webhook(
    request: Request, body: GrafanaBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """Grafana OnCall: `event.type == "resolve"` starts the post-mortem, `unresolve` is
    recorded as a reopening. Authenticated by the Authorization header."""
    event = _read(
        request,
        body,
        settings,
        "grafana-oncall",
        lambda p, m: alerting.grafana_oncall(p, m.team_label, m.service_label),
    )
    return await kickoff(event, settings, temporal)


@router.post("/generic", **_documented("X-Signature-256"))
async def generic_webhook(
    request: Request, body: GenericBody, settings: SettingsDep, temporal: Temporal
) -> JSONResponse:
    """Our own body (see the schema GenericIncident), signed with HMAC-SHA256 of the raw body
    in `X-Signature-256: sha256=<hex>`. Retries reach the same post-mortem (its workflow id)."""
    try:
        incident = GenericIncident.model_validate(_json_object(request, body))
    except ValidationError as exc:
        raise Refused(422, "; ".join(describe_validation_error(exc))) from None
    return await kickoff(to_event(incident), settings, temporal)


# -- reading a body --------------------------------------------------------------------------


def _json_object(request: Request, body: bytes) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json":
        raise Refused(415, f"content type {kind!r}: send application/json")
    try:
        payload = bodies.parse_json(body)
    except bodies.BodyRefused as refused:
        raise Refused(refused.status, refused.reason) from None
    if not isinstance(payload, dict):
        raise Refused(422, "the body must be a JSON object")
    return payload


def _read(
    request: Request, body: bytes, settings: Settings, source: str, parse: Parse
) -> IncidentEvent:
    payload = _json_object(request, body)
    try:
        return parse(payload, _routing(settings).mapping_for(source))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Odd values anywhere in a body we authenticated: the sender's to fix.
        raise Refused(422, f"not a {source} event we can read: {str(exc)[:200]}") from None


def _routing(settings: Settings) -> Routing:
    try:
        return load_routing(settings.teams_file)
    except ConfigError as exc:
        raise Refused(503, f"routing file: {exc}") from None


async def _fetch_private(event: IncidentEvent, settings: Settings) -> IncidentEvent:
    """incident.io sends only the id of a private incident: the API has the rest."""
    assert settings.incidentio_api_key is not None
    mapping = _routing(settings).mapping_for("incidentio")
    api = incidentio.IncidentIoClient(
        settings.incidentio_api_url, settings.incidentio_api_key.get_secret_value()
    )
    try:
        incident = await asyncio.to_thread(api.incident, event.external_id or event.incident_id)
    except SourceUnavailable as exc:
        raise Refused(503, f"could not fetch the incident: {exc}") from None
    except SourceRejected as exc:
        raise Refused(202, f"incident not fetched: {exc}") from None
    return incidentio.event_from_incident(incident, mapping.team_label, mapping.service_label)


# -- acting ----------------------------------------------------------------------------------


async def kickoff(event: IncidentEvent, settings: Settings, temporal: Client) -> JSONResponse:
    """Act with Temporal's own idempotency (workflow id, refused duplicate timeline entries),
    so a redelivery, however it is labelled, has its effect once. Nothing is remembered here,
    and a delivery that could not act is answered 503 for the sender to retry."""
    if event.kind is EventKind.OTHER:
        return webhook_answer(202, event.detail or "not a resolution")
    event = normalise(event)  # fitted to our models: clipped, never refused for length
    try:
        check_times(datetime.now(UTC), event.resolved_at, event.started_at)
    except ValueError as exc:
        raise Refused(422, f"not an incident we can record: {exc}") from None
    routing = _routing(settings)
    try:
        mapped = map_event(
            event,
            routing.mapping_for(event.source),
            set(routing.teams),
            routing.triage_team,
            routing.services,
        )
    except ValueError as exc:  # a value our models refuse even after normalising
        raise Refused(422, f"not an incident we can record: {str(exc)[:300]}") from None
    if mapped.unroutable:
        # Not a 2xx: that would drop the incident. The sender retries until it is mapped.
        log.error("incident not routable", extra={"source": event.source})
        raise Refused(503, f"{mapped.skipped}, and the routing file has no triage_team")
    try:
        if event.kind is EventKind.REOPENED:
            return await _reopened(event, temporal)
        if mapped.incident is None:
            log.info("incident webhook skipped", extra={"source": event.source})
            return webhook_answer(202, mapped.skipped)
        return await _resolved(event, mapped.incident, routing, settings, temporal)
    except RPCError as exc:
        raise Refused(503, f"Temporal unavailable: {exc.message}") from None


async def _reopened(event: IncidentEvent, temporal: Client) -> JSONResponse:
    """Recorded on the post-mortem if there is one; nothing starts."""
    workflow_id = postmortem_workflow_id(event.source, event.incident_id)
    if event.occurred_at is None:
        return webhook_answer(202, "the event carries no time")
    entry = TimelineEntry(
        at=event.occurred_at,
        text=f"Incident reopened in {event.source}",
        source=event.source,
        event="reopened",
    )
    problem = await record(temporal, workflow_id, entry)
    if problem is not None:
        return webhook_answer(202, f"reopening not recorded: {problem}")
    return webhook_answer(200, "reopening recorded", accepted=True, workflow_id=workflow_id)


async def _resolved(
    event: IncidentEvent, incident: Incident, routing: Routing, settings: Settings, temporal: Client
) -> JSONResponse:
    # Optional under the policy: recorded (a workflow waiting in phase "optional", listed on
    # the dashboard and by `postmortem list --phase optional`), not started.
    optional = not routing.policy.for_severity(incident.severity).required
    inp = PostmortemInput(incident=incident, timeline=list(event.timeline), optional=optional)
    started = await engine.start_postmortem(temporal, settings.task_queue, inp)
    workflow_id = started.handle.id
    if started.started and optional:
        return webhook_answer(
            202,
            f"{incident.severity} post-mortems are optional under the policy: recorded, not "
            f"started (`postmortem begin {workflow_id}` starts it)",
            accepted=True,
            workflow_id=workflow_id,
        )
    if started.started:
        return webhook_answer(
            201, "post-mortem started", accepted=True, started=True, workflow_id=workflow_id
        )
    # The same resolution again (a retry, a replay): nothing to do, and nothing asked of the
    # workflow, so a redelivery is answered at once even while no worker runs.
    memo = await (await started.handle.describe()).memo()
    if memo.get("resolved_at") == incident.resolved_at.isoformat():
        return webhook_answer(
            200, "the post-mortem already exists", accepted=True, workflow_id=workflow_id
        )
    # Resolved again after a reopening (a new delivery, not a retry): on the timeline, once
    # however often the same resolution is delivered.
    entry = TimelineEntry(
        at=incident.resolved_at,
        text=f"Resolved again in {event.source}",
        source=event.source,
        event="resolved_again",
    )
    problem = await record(temporal, workflow_id, entry)
    if problem is not None:
        log.info("resolved again, not recorded", extra={"id": workflow_id})
    return webhook_answer(
        200, "the post-mortem already exists", accepted=True, workflow_id=workflow_id
    )


async def record(temporal: Client, workflow_id: str, entry: TimelineEntry) -> str | None:
    """Add an entry to a post-mortem's timeline: None once it is there (now or before), else
    why it could not be (the post-mortem is gone or finished). Raises RPCError when Temporal
    cannot answer."""
    try:
        await temporal.get_workflow_handle(workflow_id).execute_update(
            PostmortemWorkflow.add_timeline_entry, entry, rpc_timeout=UPDATE_WAIT
        )
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        # No worker took it in time (an outage): not confirmed, so the sender retries; a
        # retry is safe, since the workflow refuses an entry it already has.
        raise Refused(
            503, "the post-mortem is not answering (its worker is down?): retry later"
        ) from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == ALREADY_RECORDED:
            return None
        return str(getattr(cause, "message", cause))
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return "no post-mortem for this incident"
        raise
    return None
