"""Tracker webhooks in (GitHub, Jira): hints that a ticket changed, so status flows back
without waiting for the poll. The follow-up reads the ticket itself before it believes one."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import engine
from api.answers import Refused, WebhookAnswer, webhook_answer, webhook_responses
from api.bodies import BodyRefused, parse_json
from api.deps import RawBody, SettingsDep, Temporal, signed_body
from api.signatures import sha256_signature_ok
from domain.messages import ActionReopened, TrackerStatusSignal
from domain.models import TicketRef
from integrations import github as github_tracker
from integrations import jira as jira_tracker
from integrations.payload import obj
from workflows import search_attributes as sa
from workflows.action import ActionFollowUpWorkflow
from workflows.postmortem import PostmortemWorkflow

log = logging.getLogger("postmortem.api.trackers")

router = APIRouter(prefix="/webhooks", tags=["tracker webhooks"])


GitHubBody = Annotated[
    bytes,
    Depends(
        signed_body(
            "github",
            "webhook_secret_github",
            lambda secret, body, request: (
                None
                if sha256_signature_ok(secret, body, request.headers.get("x-hub-signature-256"))
                else "bad or missing X-Hub-Signature-256"
            ),
        )
    ),
]


async def jira_body(request: Request, settings: SettingsDep, body: RawBody) -> bytes:
    """Signed with the webhook's secret (Jira Cloud), or, for Jira Data Center, which cannot
    sign, sent from one of its own addresses (`PM_JIRA_WEBHOOK_NETWORKS`)."""
    secret = settings.webhook_secret_jira
    if secret is not None:
        if not sha256_signature_ok(
            secret.get_secret_value(), body, request.headers.get("x-hub-signature")
        ):
            log.warning("jira webhook refused: bad signature")
            raise Refused(401, "bad or missing X-Hub-Signature")
        return body
    if settings.allow_unsigned or _from_networks(request, settings.jira_webhook_networks):
        return body
    raise Refused(
        403,
        "set PM_WEBHOOK_SECRET_JIRA, or PM_JIRA_WEBHOOK_NETWORKS for Jira Data Center "
        "(or PM_ALLOW_UNSIGNED=1 for a local trial)",
    )


JiraBody = Annotated[bytes, Depends(jira_body)]

_DOCUMENTED: dict[str, Any] = {"response_model": WebhookAnswer}


@router.post("/github", **_DOCUMENTED, responses=webhook_responses("X-Hub-Signature-256"))
async def github_webhook(request: Request, body: GitHubBody, temporal: Temporal) -> JSONResponse:
    """GitHub `issues` events (closed, reopened) for tickets the engine filed."""
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return webhook_answer(200, "pong", accepted=True)
    if event != "issues":
        return webhook_answer(202, f"event {event!r} is not followed")
    payload = _object(body)
    action = payload.get("action")
    issue, repo = obj(payload.get("issue")), obj(payload.get("repository"))
    if action not in ("closed", "reopened") or "number" not in issue or "full_name" not in repo:
        return webhook_answer(202, f"issues action {action!r} is not followed")
    key = f"{repo['full_name']}#{issue['number']}"
    verdict = github_tracker.ticket_status_of(
        TicketRef(tracker="github", key=key, url=str(issue.get("html_url") or "")), issue
    )
    status = TrackerStatusSignal(done=verdict.done, resolution=verdict.resolution)
    return await hint(temporal, "github", key, status)


@router.post("/jira", **_DOCUMENTED, responses=webhook_responses("X-Hub-Signature"))
async def jira_webhook(body: JiraBody, temporal: Temporal) -> JSONResponse:
    """`jira:issue_updated` with a status change; the category says done, not the name."""
    payload = _object(body)
    if payload.get("webhookEvent") != "jira:issue_updated":
        return webhook_answer(202, f"event {payload.get('webhookEvent')!r} is not followed")
    raw_items = obj(payload.get("changelog")).get("items")
    items = [i for i in raw_items if isinstance(i, dict)] if isinstance(raw_items, list) else []
    issue = obj(payload.get("issue"))
    if not any(item.get("field") == "status" for item in items) or not issue.get("key"):
        return webhook_answer(202, "no status change")
    ref = TicketRef(tracker="jira", key=str(issue["key"]), url=str(issue.get("self") or ""))
    verdict = jira_tracker.ticket_status_of(ref, issue.get("fields"))
    status = TrackerStatusSignal(done=verdict.done, resolution=verdict.resolution)
    return await hint(temporal, "jira", str(issue["key"]), status)


# -- acting ----------------------------------------------------------------------------------


async def hint(
    temporal: Client, tracker: str, key: str, status: TrackerStatusSignal
) -> JSONResponse:
    """Tell the ticket's follow-up that it may have changed (it reads the ticket itself)."""
    try:
        return await _signal_follow_up(temporal, tracker, key, status)
    except RPCError as exc:
        raise Refused(503, f"Temporal unavailable: {exc.message}") from None


async def _signal_follow_up(
    temporal: Client, tracker: str, key: str, status: TrackerStatusSignal
) -> JSONResponse:
    try:
        literal = engine.quote(sa.ticket_key(tracker, key))
    except engine.BadFilter:  # quotes, backslashes, control characters: no key we filed
        return webhook_answer(202, f"{tracker} ticket {key[:60]!r} is not one this engine filed")
    query = (
        f"WorkflowType = '{ActionFollowUpWorkflow.__name__}' AND {sa.TICKET_KEY.name} = {literal}"
    )
    found = [execution async for execution in temporal.list_workflows(query, limit=1)]
    if not found:
        return webhook_answer(202, f"{tracker} ticket {key} is not followed by this engine")
    # Visibility finds the follow-up; its status comes from the workflow itself, since the
    # visibility copy can lag behind by a moment.
    handle = temporal.get_workflow_handle(found[0].id)
    description = await handle.describe()
    if description.status is WorkflowExecutionStatus.RUNNING:
        try:
            await handle.signal(ActionFollowUpWorkflow.tracker_status, status)
            return webhook_answer(
                200,
                f"{tracker} ticket {key}: done={status.done}",
                accepted=True,
                workflow_id=handle.id,
            )
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            description = await handle.describe()  # it ended meanwhile
    if not status.done:
        return await _reopen(temporal, description, key)
    return webhook_answer(202, f"the follow-up of {key} has already ended", workflow_id=handle.id)


async def _reopen(temporal: Client, ended: WorkflowExecutionDescription, key: str) -> JSONResponse:
    """The ticket was reopened after its action ended: the post-mortem reopens it."""
    memo = await ended.memo()
    postmortem_id, action_id = str(memo.get("postmortem_id")), str(memo.get("action_id"))
    handle = temporal.get_workflow_handle(postmortem_id)
    try:
        await handle.signal(PostmortemWorkflow.action_reopened, ActionReopened(action_id=action_id))
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return webhook_answer(202, f"{postmortem_id} is finished; {key} stays closed there")
        raise
    return webhook_answer(
        200,
        f"{key} reopened: action {action_id} is open again",
        accepted=True,
        workflow_id=postmortem_id,
    )


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = parse_json(body)
    except BodyRefused as refused:
        raise Refused(refused.status, refused.reason) from None
    if not isinstance(value, dict):
        raise Refused(400, "the body is not a JSON object")
    return value


def _from_networks(request: Request, networks: list[Any]) -> bool:
    """The peer's address (not a forwarded header, which anyone can write) is in a network."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)
