"""Incident webhooks: a resolved incident starts its post-mortem, in under the vendor's deadline.

Each endpoint only verifies, normalises and starts (or finds) the workflow: everything slow
happens in activities. Answers: `{"workflow_id", "started"}`, `202` with `"skipped"` and the
reason, or `{"error": ...}` with the status that says what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import engine
from api import bodies
from api.signatures import pagerduty_signature_ok, sha256_signature_ok, shared_secret_ok
from config import ConfigError, Settings, load_routing
from domain.findings import describe_validation_error
from domain.intake import EventKind, IncidentEvent, SourceMapping, map_event, normalise
from domain.messages import ALREADY_RECORDED, PostmortemInput
from domain.models import TimelineEntry
from integrations import alerting, incidentio, pagerduty
from integrations.errors import SourceRejected, SourceUnavailable
from integrations.generic import GenericIncident, to_event
from integrations.incidentio import svix_signature_ok
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.api.incidents")


class KickoffAnswer(BaseModel):
    workflow_id: str | None = None
    started: bool = False
    skipped: str | None = None


class ErrorAnswer(BaseModel):
    error: str


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _documented(extra: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {
        201: {"model": KickoffAnswer, "description": "Post-mortem started"},
        202: {"model": KickoffAnswer, "description": "Skipped or ignored, with the reason"},
        400: {"model": ErrorAnswer, "description": "Malformed JSON"},
        401: {"model": ErrorAnswer, "description": "Missing or bad signature"},
        403: {"model": ErrorAnswer, "description": "No secret configured for this source"},
        413: {"model": ErrorAnswer, "description": "Body over 1 MiB"},
        415: {"model": ErrorAnswer, "description": "Not application/json"},
        422: {"model": ErrorAnswer, "description": "Fields missing or wrong"},
        503: {"model": ErrorAnswer, "description": "Temporal unreachable: retry later"},
    }
    answers.update({k: {"model": ErrorAnswer, "description": v} for k, v in extra.items()})
    return answers


def add_incident_routes(
    app: FastAPI,
    settings: Settings,
    client: Callable[[], Client],
    read_body: Callable[[Request], Any],
) -> None:
    def secret_of(source: str, setting: str = "") -> tuple[str | None, JSONResponse | None]:
        setting = setting or f"webhook_secret_{source}"
        value = getattr(settings, setting)
        if value is None:
            if settings.allow_unsigned:
                return None, None
            variable = f"PM_{setting.upper()}"
            return None, _error(403, f"{source} webhooks are refused: {variable} is not set")
        return value.get_secret_value(), None

    async def kickoff(event: IncidentEvent) -> JSONResponse:
        """Act with Temporal's own idempotency (workflow id, refused duplicate entries), so a
        redelivery, however it is labelled, has its effect once; nothing is remembered here,
        and a delivery that could not act is answered 503 for the sender to retry."""
        if event.kind is EventKind.OTHER:
            return JSONResponse(
                KickoffAnswer(skipped=event.detail or "not a resolution").model_dump(), 202
            )
        event = normalise(event)  # fitted to our models: clipped, never refused for length
        try:
            routing = load_routing(settings.teams_file)
            mapped = map_event(
                event, routing.mapping_for(event.source), set(routing.teams), routing.triage_team
            )
        except ConfigError as exc:
            return _error(503, f"routing file: {exc}")
        except ValueError as exc:  # a value our models refuse even after normalising
            return _error(422, f"not an incident we can record: {str(exc)[:300]}")
        if mapped.unroutable:
            # Not a 2xx: that would drop the incident. The sender retries until it is mapped.
            log.error("incident not routable", extra={"source": event.source})
            return _error(503, f"{mapped.skipped}, and the routing file has no triage_team")
        try:
            return await _start(event, mapped.incident, mapped.skipped, routing)
        except RPCError as exc:
            return _error(503, f"Temporal unavailable: {exc.message}")

    async def _record(handle: Any, entry: TimelineEntry) -> str | None:
        """Add an entry to a post-mortem's timeline: None once it is there (now or before),
        else why it could not be (the post-mortem is gone or finished). Raises RPCError when
        Temporal cannot answer."""
        try:
            await handle.execute_update(PostmortemWorkflow.add_timeline_entry, entry)
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

    async def _start(
        event: IncidentEvent, incident: Any, skipped: str, routing: Any
    ) -> JSONResponse:
        connected = client()
        if event.kind is EventKind.REOPENED:
            # Reopened: recorded on the post-mortem if there is one; nothing starts.
            workflow_id = f"postmortem-{event.source}-{event.incident_id}"
            if event.occurred_at is None:
                return JSONResponse(
                    KickoffAnswer(skipped="the event carries no time").model_dump(), 202
                )
            entry = TimelineEntry(
                at=event.occurred_at,
                text=f"Incident reopened in {event.source}",
                source=event.source,
                event="reopened",
            )
            problem = await _record(connected.get_workflow_handle(workflow_id), entry)
            if problem is not None:
                skipped = f"reopening not recorded: {problem}"
                return JSONResponse(KickoffAnswer(skipped=skipped).model_dump(), 202)
            return JSONResponse(KickoffAnswer(workflow_id=workflow_id).model_dump(), 200)
        if incident is None:
            log.info("incident webhook skipped", extra={"source": event.source, "reason": skipped})
            return JSONResponse(KickoffAnswer(skipped=skipped).model_dump(), 202)
        if not routing.policy.for_severity(incident.severity).required:
            reason = f"{incident.severity} post-mortems are optional under the policy"
            return JSONResponse(KickoffAnswer(skipped=reason).model_dump(), 202)
        started = await engine.start_postmortem(
            connected,
            settings.task_queue,
            PostmortemInput(incident=incident, timeline=list(event.timeline)),
        )
        if not started.started:
            # Resolved again after a reopening (a new delivery, not a retry): on the timeline,
            # once however often the same resolution is delivered.
            entry = TimelineEntry(
                at=incident.resolved_at,
                text=f"Resolved again in {event.source}",
                source=event.source,
                event="resolved_again",
            )
            problem = await _record(started.handle, entry)
            if problem is not None:
                log.info("resolved again, not recorded", extra={"id": started.handle.id})
        answer = KickoffAnswer(workflow_id=started.handle.id, started=started.started)
        return JSONResponse(answer.model_dump(), 201 if started.started else 200)

    async def parse_json(request: Request, body: bytes) -> tuple[Any, JSONResponse | None]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and kind != "application/json":
            return None, _error(415, f"content type {kind!r}: send application/json")
        try:
            return bodies.parse_json(body), None
        except bodies.BodyRefused as refused:
            return None, _error(refused.status, refused.reason)

    async def _fetch_private(event: IncidentEvent, mapping: SourceMapping) -> IncidentEvent:
        """incident.io sends only the id of a private incident: the API has the rest."""
        assert settings.incidentio_api_key is not None
        client_ = incidentio.IncidentIoClient(
            settings.incidentio_api_url, settings.incidentio_api_key.get_secret_value()
        )
        incident = await asyncio.to_thread(client_.incident, event.external_id or event.incident_id)
        return incidentio.event_from_incident(incident, mapping.team_label)

    def vendor_endpoint(
        source: str,
        setting: str,
        verify: Callable[[str, bytes, Request], str | None],
        parse: Callable[[dict[str, Any], SourceMapping], IncidentEvent],
        doc: str,
    ) -> None:
        async def endpoint(request: Request) -> JSONResponse:
            body = await read_body(request)
            if isinstance(body, JSONResponse):
                return body
            secret, refused = secret_of(source, setting)
            if refused is not None:
                return refused
            if secret is not None:
                problem = verify(secret, body, request)
                if problem is not None:
                    log.warning("incident webhook refused", extra={"source": source})
                    return _error(401, problem)
            payload, bad = await parse_json(request, body)
            if bad is not None:
                return bad
            if not isinstance(payload, dict):
                return _error(422, "the body must be a JSON object")
            try:
                mapping = load_routing(settings.teams_file).mapping_for(source)
                event = parse(payload, mapping)
                if event.detail == incidentio.PRIVATE_STUB and settings.incidentio_api_key:
                    event = await _fetch_private(event, mapping)
            except ConfigError as exc:
                return _error(503, f"routing file: {exc}")
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                # Odd values anywhere in a body we authenticated: the sender's to fix.
                return _error(422, f"not a {source} event we can read: {str(exc)[:200]}")
            except SourceUnavailable as exc:
                return _error(503, f"could not fetch the incident: {exc}")
            except SourceRejected as exc:
                return JSONResponse(
                    KickoffAnswer(skipped=f"incident not fetched: {exc}").model_dump(), 202
                )
            return await kickoff(event)

        endpoint.__doc__ = doc
        endpoint.__name__ = f"{source.replace('-', '_')}_webhook"
        app.post(f"/webhooks/{source}", response_model=KickoffAnswer, responses=_documented({}))(
            endpoint
        )

    vendor_endpoint(
        "pagerduty",
        "webhook_secret_pagerduty",
        lambda secret, body, request: (
            None
            if pagerduty_signature_ok(secret, body, request.headers.get("x-pagerduty-signature"))
            else "bad or missing X-PagerDuty-Signature"
        ),
        lambda payload, mapping: pagerduty.parse_webhook(payload),
        "PagerDuty v3: `incident.resolved` starts the post-mortem, `incident.reopened` is "
        "recorded on its timeline. Any `v1=` of X-PagerDuty-Signature may match (rotation).",
    )
    vendor_endpoint(
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
        lambda payload, mapping: incidentio.parse_webhook(payload, mapping.team_label),
        "incident.io (Svix-signed): a status update into the `learning` or `closed` category "
        "starts the post-mortem; back to `live` is recorded as a reopening.",
    )
    vendor_endpoint(
        "opsgenie",
        "webhook_secret_opsgenie",
        lambda secret, body, request: (
            None
            if shared_secret_ok(secret, request, header="x-webhook-secret")
            else "bad or missing X-Webhook-Secret (or basic auth password)"
        ),
        lambda payload, mapping: alerting.opsgenie(payload),
        'Opsgenie: `action == "Close"` starts the post-mortem. Opsgenie cannot sign: the '
        "shared secret comes in X-Webhook-Secret or as the basic-auth password.",
    )
    vendor_endpoint(
        "alertmanager",
        "webhook_token_alertmanager",
        lambda secret, body, request: (
            None
            if shared_secret_ok(secret, request)
            else "bad or missing bearer token (or basic auth password)"
        ),
        lambda payload, mapping: alerting.alertmanager(payload, mapping.team_label),
        "Prometheus Alertmanager: a group whose `status` is `resolved` starts the post-mortem. "
        "Authenticated by the receiver's bearer token or basic auth.",
    )
    vendor_endpoint(
        "grafana-oncall",
        "webhook_token_grafana",
        lambda secret, body, request: (
            None if shared_secret_ok(secret, request) else "bad or missing Authorization header"
        ),
        lambda payload, mapping: alerting.grafana_oncall(payload, mapping.team_label),
        'Grafana OnCall: `event.type == "resolve"` starts the post-mortem, `unresolve` is '
        "recorded as a reopening. Authenticated by the Authorization header.",
    )

    @app.post("/webhooks/generic", response_model=KickoffAnswer, responses=_documented({}))
    async def generic_webhook(request: Request) -> JSONResponse:
        """Our own body (see the schema GenericIncident), signed with HMAC-SHA256 of the raw
        body in `X-Signature-256: sha256=<hex>`. `X-Delivery-Id` deduplicates retries."""
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        secret, refused = secret_of("generic")
        if refused is not None:
            return refused
        if secret is not None and not sha256_signature_ok(
            secret, body, request.headers.get("x-signature-256")
        ):
            log.warning("generic webhook refused: bad signature")
            return _error(401, "bad or missing X-Signature-256")
        payload, bad = await parse_json(request, body)
        if bad is not None:
            return bad
        try:
            incident = GenericIncident.model_validate(payload)
        except ValidationError as exc:
            return _error(422, "; ".join(describe_validation_error(exc)))
        return await kickoff(to_event(incident))
