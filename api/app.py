"""The HTTP API: tracker webhooks in (GitHub, Jira), so status flows back without waiting."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import engine
from api.bodies import BodyRefused, parse_json, read_limited
from api.browser import add_browser_guards
from api.dashboard import add_dashboard_routes
from api.incidents import add_incident_routes
from api.metrics import add_metrics
from api.postmortems import add_postmortem_routes
from api.signatures import sha256_signature_ok
from config import Settings
from domain.messages import ActionReopened, TrackerStatusSignal
from domain.models import TicketRef
from integrations import github as github_tracker
from integrations import jira as jira_tracker
from integrations.payload import obj
from workflows import search_attributes as sa
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.api")


class WebhookAnswer(BaseModel):
    """What every webhook endpoint answers."""

    accepted: bool
    detail: str
    workflow_id: str | None = None


def answer(
    status: int, accepted: bool, detail: str, workflow_id: str | None = None
) -> JSONResponse:
    return JSONResponse(
        WebhookAnswer(accepted=accepted, detail=detail, workflow_id=workflow_id).model_dump(),
        status_code=status,
    )


def webhook_responses(header: str, *, secret_required: bool) -> dict[int | str, dict[str, Any]]:
    """Every status a webhook endpoint answers, for the OpenAPI document."""
    described = {
        202: "Acknowledged and ignored (the reason is in `detail`)",
        400: "The body is not a JSON object",
        401: f"Missing or bad {header}",
        413: "Body over 1 MiB",
        503: "Temporal unreachable: the vendor should retry",
    }
    if secret_required:
        described[403] = "No secret configured for this source"
    return {
        status: {"model": WebhookAnswer, "description": text} for status, text in described.items()
    }


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """The app; `client` is connected at start-up from settings when not given."""
    state: dict[str, Any] = {"client": client}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["client"] is None:
            state["client"] = await engine.connect(settings)
        # The overview of every team, computed now and kept fresh (its counts take ~0.5 s).
        warming = asyncio.ensure_future(app.state.overviews.keep_warm([None]))
        try:
            yield
        finally:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming

    app = FastAPI(
        title="Post-mortem engine",
        version="0.1.0",
        summary="Tracker webhooks in; status flows back to the corrective actions.",
        lifespan=lifespan,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The same body as every other refusal of this API: {"error": "..."}.
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("Temporal refused %s: %s", request.url.path, exc.message)
        return JSONResponse({"error": f"Temporal unavailable: {exc.message}"}, 503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours: logged with its trace, answered without one.
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal error; the engine logged it"}, status_code=500)

    async def read_body(request: Request) -> bytes | JSONResponse:
        try:
            return await read_limited(request)
        except BodyRefused as refused:
            return answer(refused.status, False, refused.reason)

    async def signal_follow_up(tracker: str, key: str, status: TrackerStatusSignal) -> JSONResponse:
        connected: Client = state["client"]
        query = (
            f"WorkflowType = '{ActionFollowUpWorkflow.__name__}' AND "
            f"{sa.TICKET_KEY.name} = '{sa.ticket_key(tracker, key).replace(chr(39), '')}'"
        )
        found = [execution async for execution in connected.list_workflows(query, limit=1)]
        if not found:
            return answer(202, False, f"{tracker} ticket {key} is not followed by this engine")
        # Visibility finds the follow-up; its status comes from the workflow itself, since the
        # visibility copy can lag behind by a moment.
        handle = connected.get_workflow_handle(found[0].id)
        description = await handle.describe()
        if description.status is WorkflowExecutionStatus.RUNNING:
            try:
                await handle.signal(ActionFollowUpWorkflow.tracker_status, status)
                return answer(200, True, f"{tracker} ticket {key}: done={status.done}", handle.id)
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise
                description = await handle.describe()  # it ended meanwhile
        if not status.done:
            return await reopen(description, key)
        return answer(202, False, f"the follow-up of {key} has already ended", handle.id)

    async def reopen(ended: WorkflowExecutionDescription, key: str) -> JSONResponse:
        """The ticket was reopened after its action ended: the post-mortem reopens it."""
        memo = await ended.memo()
        postmortem_id, action_id = str(memo.get("postmortem_id")), str(memo.get("action_id"))
        handle = state["client"].get_workflow_handle(postmortem_id)
        try:
            await handle.signal(
                PostmortemWorkflow.action_reopened, ActionReopened(action_id=action_id)
            )
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return answer(202, False, f"{postmortem_id} is finished; {key} stays closed there")
            raise
        return answer(200, True, f"{key} reopened: action {action_id} is open again", postmortem_id)

    add_incident_routes(
        app,
        settings,
        lambda: state["client"],
        read_body,
    )

    add_postmortem_routes(app, settings, lambda: state["client"])
    add_dashboard_routes(app, settings, lambda: state["client"])
    add_metrics(app, settings, lambda: state["client"])
    add_browser_guards(app, settings)  # outermost: Host, cross-site, headers, form token

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/webhooks/github",
        response_model=WebhookAnswer,
        responses=webhook_responses("X-Hub-Signature-256", secret_required=True),
    )
    async def github(request: Request) -> JSONResponse:
        """GitHub `issues` events (closed, reopened) for tickets the engine filed."""
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        secret = settings.webhook_secret_github
        if secret is None and not settings.allow_unsigned:
            return answer(403, False, "set PM_WEBHOOK_SECRET_GITHUB (or PM_ALLOW_UNSIGNED=1)")
        if secret is not None and not sha256_signature_ok(
            secret.get_secret_value(), body, request.headers.get("x-hub-signature-256")
        ):
            log.warning("github webhook refused: bad signature")
            return answer(401, False, "bad or missing X-Hub-Signature-256")
        event = request.headers.get("x-github-event", "")
        if event == "ping":
            return answer(200, True, "pong")
        if event != "issues":
            return answer(202, False, f"event {event!r} is not followed")
        payload = _json(body)
        if payload is None:
            return answer(400, False, "the body is not a JSON object")
        action = payload.get("action")
        issue, repo = obj(payload.get("issue")), obj(payload.get("repository"))
        if action not in ("closed", "reopened") or "number" not in issue or "full_name" not in repo:
            return answer(202, False, f"issues action {action!r} is not followed")
        key = f"{repo['full_name']}#{issue['number']}"
        verdict = github_tracker.ticket_status_of(
            TicketRef(tracker="github", key=key, url=str(issue.get("html_url") or "")), issue
        )
        status = TrackerStatusSignal(done=verdict.done, resolution=verdict.resolution)
        try:
            return await signal_follow_up("github", key, status)
        except RPCError as exc:
            return answer(503, False, f"Temporal unavailable: {exc.message}")

    @app.post(
        "/webhooks/jira",
        response_model=WebhookAnswer,
        responses=webhook_responses("X-Hub-Signature", secret_required=True),
    )
    async def jira(request: Request) -> JSONResponse:
        """`jira:issue_updated` with a status change; the category says done, not the name."""
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        secret = settings.webhook_secret_jira
        if secret is not None:
            if not sha256_signature_ok(
                secret.get_secret_value(), body, request.headers.get("x-hub-signature")
            ):
                log.warning("jira webhook refused: bad signature")
                return answer(401, False, "bad or missing X-Hub-Signature")
        elif not settings.allow_unsigned and not _from_networks(
            request, settings.jira_webhook_networks
        ):
            # Jira Data Center cannot sign: then only its own addresses are believed.
            return answer(
                403,
                False,
                "set PM_WEBHOOK_SECRET_JIRA, or PM_JIRA_WEBHOOK_NETWORKS for Jira Data Center "
                "(or PM_ALLOW_UNSIGNED=1 for a local trial)",
            )
        payload = _json(body)
        if payload is None:
            return answer(400, False, "the body is not a JSON object")
        if payload.get("webhookEvent") != "jira:issue_updated":
            return answer(202, False, f"event {payload.get('webhookEvent')!r} is not followed")
        raw_items = obj(payload.get("changelog")).get("items")
        items = [i for i in raw_items if isinstance(i, dict)] if isinstance(raw_items, list) else []
        issue = obj(payload.get("issue"))
        if not any(item.get("field") == "status" for item in items) or not issue.get("key"):
            return answer(202, False, "no status change")
        ref = TicketRef(tracker="jira", key=str(issue["key"]), url=str(issue.get("self") or ""))
        verdict = jira_tracker.ticket_status_of(ref, issue.get("fields"))
        status = TrackerStatusSignal(done=verdict.done, resolution=verdict.resolution)
        try:
            return await signal_follow_up("jira", str(issue["key"]), status)
        except RPCError as exc:
            return answer(503, False, f"Temporal unavailable: {exc.message}")

    return app


def _from_networks(request: Request, networks: list[Any]) -> bool:
    """The peer's address (not a forwarded header, which anyone can write) is in a network."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        value = parse_json(body)
    except BodyRefused:
        return None
    return value if isinstance(value, dict) else None
