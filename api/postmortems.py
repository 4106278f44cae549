"""Pages of one post-mortem: its review invitation (.ics), its live draft and its public
version (read, and published by operators)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowQueryFailedError

import engine
from api.answers import Problem, Refused
from api.deps import Operator, RecordDep, SettingsDep, Temporal, Viewer
from config import ConfigError, Settings, routed_teams
from domain.blameless import check_postmortem
from domain.document import render_html
from domain.invitation import review_event
from domain.models import Phase, PostmortemState
from domain.public import PublicSummary
from domain.public import render as render_public
from integrations.errors import IntegrationError
from integrations.lexicon import load_lexicon
from record import related
from record.store import Record

# Post-mortem ids are `postmortem-<source>-<incident>`: a safe alphabet, no slashes.
_ID = re.compile(r"^postmortem-[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$")


async def state_of(client: Client, record: Record, workflow_id: str) -> PostmortemState:
    """A post-mortem's state for a page or the API: from its workflow while Temporal keeps it,
    then from the record. A 404 when neither knows it, a 503 when its workflow cannot answer
    (the app answers both as {"error": ...})."""
    if not _ID.match(workflow_id):
        raise HTTPException(404, f"{workflow_id!r} is not a post-mortem id")
    try:
        state = await engine.postmortem_state(client, workflow_id, record)
    except WorkflowQueryFailedError as exc:
        raise HTTPException(503, f"the post-mortem cannot answer: {exc}") from None
    if state is None:
        raise HTTPException(404, f"no post-mortem {workflow_id!r}")
    # The later post-mortems that found this one related (from the record).
    enriched: PostmortemState = await asyncio.to_thread(related.both_ways, record, state)
    return enriched


router = APIRouter(tags=["post-mortem"])


@router.get(
    "/postmortems/{workflow_id}/review.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "The review's event"},
        404: {"description": "No such post-mortem"},
        409: {"description": "No review scheduled yet"},
    },
)
async def review_ics(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> Response:
    """The review as an iCalendar event: the same UID and SEQUENCE as the emailed one."""
    state = await state_of(temporal, record, workflow_id)
    if state.review is None:
        return JSONResponse({"error": "the review is not scheduled yet"}, 409)
    cancelled = state.phase is Phase.CANCELLED and state.findings is None
    ics = review_event(
        state,
        method="CANCEL" if cancelled else "PUBLISH",
        organizer=settings.smtp_from,
        base_url=settings.public_url,
        stamp=state.updated_at or datetime.now(UTC),
    )
    return Response(
        ics,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{workflow_id}-review.ics"'},
    )


@router.get(
    "/postmortems/{workflow_id}/draft",
    response_class=HTMLResponse,
    responses={404: {"description": "No such post-mortem"}},
)
async def draft(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> Response:
    """The document as it stands, for the participants to read before the review, with
    the blameless check's findings for the facilitator."""
    state = await state_of(temporal, record, workflow_id)
    # Before the review, the check runs here on the draft as it is; after, its record.
    lexicon = load_lexicon(settings.blameless_language)
    # In a thread: a large post-mortem's check takes a second or two, the event loop must not.
    notes = state.blameless or await asyncio.to_thread(
        check_postmortem, state, lexicon, routed_teams(settings)
    )
    html = render_html(
        state,  # the whole draft, private entries too: it is for the participants
        rendered_at=datetime.now(UTC),
        blameless=notes,
        draft=True,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _public(settings: Settings, state: PostmortemState) -> PublicSummary:
    try:
        return engine.public_summary(settings, state)
    except ConfigError as exc:  # its team left the routing file
        raise Refused(409, str(exc)) from None


@router.get(
    "/postmortems/{workflow_id}/public",
    response_class=HTMLResponse,
    responses={404: {"description": "No such post-mortem"}},
)
async def public_page(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> Response:
    """The customer-facing version as it would be published (no private entries, names,
    internal links or secrets); what the blameless check still finds is in /api/…/public."""
    state = await state_of(temporal, record, workflow_id)
    summary = await asyncio.to_thread(_public, settings, state)
    return HTMLResponse(render_public(summary, html=True), headers={"Cache-Control": "no-store"})


class PublicOut(BaseModel):
    workflow_id: str
    markdown: str = Field(description="The public version, as it would be published")
    notes: list[str] = Field(description="What the blameless check finds: publishing waits")
    removed: int = Field(description="Names, addresses, links and secrets taken out")
    publishable: bool


@router.get(
    "/api/postmortems/{workflow_id}/public",
    responses={404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    tags=["operations"],
)
async def api_public(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> PublicOut:
    """The public version in Markdown, with what the blameless check finds in it."""
    state = await state_of(temporal, record, workflow_id)
    summary = await asyncio.to_thread(_public, settings, state)
    return PublicOut(
        workflow_id=workflow_id,
        markdown=render_public(summary),
        notes=summary.notes,
        removed=summary.removed,
        publishable=state.findings is not None and not state.incident.private and not summary.notes,
    )


class PublishedOut(BaseModel):
    workflow_id: str
    published: list[str] = Field(description="Where it went: folders, repositories")
    removed: int


def publish(settings: Settings, state: PostmortemState) -> tuple[PublicSummary, list[str]]:
    """engine.publish_public, its refusals as the API's: 409 (no findings, the blameless
    check, a team no longer routed), 502 (a target refused or failed: nothing claimed)."""
    try:
        return engine.publish_public(settings, state)
    except (engine.PublicRefused, ConfigError) as exc:
        raise Refused(409, str(exc)) from None
    except engine.PublishIncomplete as exc:
        said = "not published to every target" if exc.places else "not published"
        raise Refused(502, f"{said}: {exc}") from None
    except IntegrationError as exc:
        raise Refused(502, f"not published: {exc}") from None


@router.post(
    "/api/postmortems/{workflow_id}/public/publish",
    responses={
        404: {"model": Problem},
        409: {"model": Problem},
        502: {"model": Problem},
        503: {"model": Problem},
    },
    tags=["operations"],
)
async def api_publish_public(
    workflow_id: str, _: Operator, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> PublishedOut:
    """Operators only: publish the public version to the team's `public` targets, once the
    findings are recorded and the blameless check finds nothing in it."""
    state = await state_of(temporal, record, workflow_id)
    summary, places = await asyncio.to_thread(publish, settings, state)
    return PublishedOut(workflow_id=workflow_id, published=places, removed=summary.removed)
